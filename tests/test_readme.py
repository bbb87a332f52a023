"""The README's command blocks run as written: each ```bash block, in the README's order,
in a sandbox that looks like a fresh clone (the project's environment, notebooks, data and
committed study report linked in; a copy of configs/ whose grids train 4 iterations).
The only edits to a command are the ones ``EDITS`` lists (a training length, a data
folder); blocks that need what a test cannot have (a GPU, a SLURM cluster, the whole
report) are named in ``NOT_HERE`` with why."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DATA = Path(os.environ.get("SRLIB_DATA", ROOT.parent / "shared" / "datasets"))

# a block holding one of these is not run here
NOT_HERE = {"make report": "it is CI's own command (make test runs this suite)",
            "torchrun": "it needs several GPUs",
            "--executor slurm": "it needs a SLURM cluster",
            "RRDB_PSNR_x4.pth": "it needs ESRGAN's published weights (a download)"}
# the edits a command gets here: a short training, the benchmark sets' folder
EDITS = {"iters: 1000": "iters: 4", "/data/sr": str(DATA)}


def blocks() -> list[str]:
    """The README's ```bash blocks, in order."""
    return re.findall(r"^```bash\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def not_here(block: str) -> bool:
    """Whether a block's commands (its comments left out) hold one of ``NOT_HERE``."""
    commands = "\n".join(line.split("#")[0] for line in block.splitlines())
    return any(k in commands for k in NOT_HERE)


def test_the_readme_has_the_blocks_this_test_knows():
    found = blocks()
    assert len(found) >= 7
    skipped = [b for b in found if not_here(b)]
    assert len(skipped) == 4, "a new block the test does not run: run it or say why"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    """A folder that looks like a fresh clone after ``make setup``."""
    box = tmp_path_factory.mktemp("clone")
    for name in (".venv", "notebooks", "data", "srlib"):
        (box / name).symlink_to(ROOT / name)
    (box / "reports").mkdir()
    (box / "reports" / "study").symlink_to(ROOT / "reports" / "study")
    (box / "configs").mkdir()
    for grid in (ROOT / "configs").glob("*.yaml"):
        g = yaml.safe_load(grid.read_text())
        g["defaults"].update(iters=4, val_every=2, val_images=1)
        (box / "configs" / grid.name).write_text(yaml.safe_dump(g, sort_keys=False))
    return box


def test_every_readme_block_runs_as_written(sandbox):
    if not (DATA / "Set5").is_dir():
        pytest.skip(f"the benchmark sets are not at {DATA} (set SRLIB_DATA)")
    env = {**os.environ, "PWD": str(sandbox)}
    for block in blocks():
        if not_here(block):
            continue
        for old, new in EDITS.items():
            block = block.replace(old, new)
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=sandbox, env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"README block failed:\n{block}\n{done.stderr[-3000:]}"


def test_the_readme_scale_table_is_what_the_presets_build():
    from srlib.models import PRESETS, generator_size

    text = README.read_text()
    for preset, p in PRESETS.items():
        size = generator_size(preset)
        row = (f"| `{preset}` | {p['nf']} x {p['nb']} | {size['params'] / 1e6:.2f} M | "
               f"{size['mflops_per_lr_pixel']:.2f} |")
        assert row in text, row
