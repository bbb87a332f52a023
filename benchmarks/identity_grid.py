"""Writes a micro grid that touches every kind of run (both baselines, two trained
variants, a fine-tune, a projected stochastic fine-tune with samples; two seeds, one
variant with fewer) and its small data sets under FOLDER, for ``same_results.py``:

    python benchmarks/identity_grid.py /tmp/ident   # then: srlib.ablate /tmp/ident/grid.yaml
"""

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import write_small_sets  # noqa: E402

root = Path(sys.argv[1])
root.mkdir(parents=True, exist_ok=True)
train, test = write_small_sets(root, n_train=2, n_test=2)
defaults = {"preset": "quick", "iters": 6, "batch": 2, "patch": 16, "nf": 8, "nb": 1, "gc": 4,
            "log_every": 2, "val_every": 3, "device": "cpu", "data": train, "test_data": [test]}
grid = {
    "name": "ident", "defaults": defaults, "seeds": [0, 1],
    "variants": {
        "bicubic": {"baseline": "bicubic"}, "pinv": {"baseline": "pinv"},
        "pixel/nearest": {"loss": "pixel", "upsampler": "nearest"},
        "down/pixelshuffle": {"loss": "down", "upsampler": "pixelshuffle"},
        "ft": {"loss": "pixel+0.01*adv", "upsampler": "nearest", "init_from": "pixel/nearest",
               "iters": 4},
        "noise": {"loss": "0.01*adv", "upsampler": "nearest", "consistency": "project",
                  "noise": 2, "eval_samples": 3, "init_from": "pixel/nearest", "iters": 4,
                  "seeds": [0]}},
    "notebook_params": {"01_manifold": {"toy_steps": 10}, "03_artifacts": {"crop": 32}},
    "hypotheses": [{"id": "H", "statement": "x", "a": "pixel/nearest", "b": "pinv",
                    "metric": "psnr_y", "direction": "greater"}],
}
(root / "grid.yaml").write_text(yaml.safe_dump(grid))
print(root / "grid.yaml")
