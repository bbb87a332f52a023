"""The committed study's verdicts, re-derived from its ``per_image.csv`` alone, and every
interval the README quotes from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from srlib import report as rp

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "reports" / "study"
INTERVAL = re.compile(r"-?\d+\.\d+ \[-?\d+\.\d+, -?\d+\.\d+\]")


@pytest.fixture(scope="module")
def verdicts():
    if not (STUDY / "per_image.csv").is_file():
        pytest.skip("no committed study in reports/study")
    return rp.verdicts(STUDY, ROOT / "configs" / "study.yaml")


def _section(text: str, start: str, end: str) -> str:
    return text[text.index(start):text.index(end, text.index(start))]


def test_intervals_include_retraining_and_every_is_tested_on_every_image(verdicts):
    v = verdicts.set_index(["id", "dataset"])
    h3 = v.loc[("H3", "BSD68")]
    seeds = [float(x) for x in h3.seed_means.split(" / ")]
    print(f"H3 on BSD68: {h3['mean']:.2f} [{h3.low:.2f}, {h3.high:.2f}], per seed "
          f"{' / '.join(f'{s:.2f}' for s in seeds)}")
    assert h3.n_seeds == 3 and h3.low < min(seeds) and h3.high > max(seeds)
    every = v.loc[("H5a-every", "pooled")]
    assert every.every and every.verdict == "supported" and every.n_images == 19
    assert "all 57 meet it" in every.note and "Set14/ppt3" in every.note
    # three runs on both sides of every hypothesis of the second edition
    assert (verdicts[verdicts.dataset == "pooled"].n_seeds == 3).all()


def test_every_interval_of_the_readme_is_in_the_verdict_table(verdicts):
    cells = {rp.cell_text(r).removeprefix("share ") for _, r in verdicts.iterrows()}
    readme = (ROOT / "README.md").read_text()
    quoted = (INTERVAL.findall(_section(readme, "**The answer**", "In short:"))
              + INTERVAL.findall(_section(readme, "What the study finds.",
                                          "Regenerate the table with")))
    assert len(quoted) >= 25  # the regular expression still finds them
    missing = [q for q in quoted if q not in cells]
    assert not missing, f"README intervals not in the study's verdict table: {missing}"
