"""Whether two result folders hold the same numbers: ``per_image.csv`` byte for byte, and
``results.csv`` byte for byte but for ``train_seconds`` (wall-clock time, which no two
runs share). Used to show that a change of the code changes no number:

    git worktree add /tmp/before <commit>   # then run the same grid at both commits
    python -m srlib.ablate GRID --out /tmp/a      # (PYTHONPATH=/tmp/before for the first)
    python benchmarks/same_results.py /tmp/a /tmp/b

Prints one line per file and exits 1 when any differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def _without_time(path: Path) -> str:
    t = pd.read_csv(path, dtype=str, keep_default_na=False)
    return t.drop(columns=["train_seconds"]).to_csv(index=False)


def main(a: str, b: str) -> int:
    a, b = Path(a), Path(b)
    same = (a / "per_image.csv").read_bytes() == (b / "per_image.csv").read_bytes()
    print(f"per_image.csv: {'identical' if same else 'DIFFERENT'} "
          f"({len((a / 'per_image.csv').read_text().splitlines())} lines)")
    ra, rb = _without_time(a / "results.csv"), _without_time(b / "results.csv")
    print(f"results.csv without train_seconds: {'identical' if ra == rb else 'DIFFERENT'} "
          f"({len(ra.splitlines())} lines)")
    return 0 if same and ra == rb else 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python benchmarks/same_results.py FOLDER_A FOLDER_B")
    sys.exit(main(*sys.argv[1:]))
