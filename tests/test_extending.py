"""README's "Extending the study", followed literally: each example entry added to its
table (``tests/extensions.py``), then a few training iterations that use it."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import write_small_sets
from extensions import install

from srlib import runs
from srlib.train import Config, train


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> tuple[str, str]:
    return write_small_sets(tmp_path_factory.mktemp("data"), n_train=2, n_test=1)


@pytest.fixture
def extended(monkeypatch):
    install(monkeypatch)


def _train(sets, out, **kw) -> dict:
    c = Config(**{"loss": "pixel", "upsampler": "nearest", "iters": 2, "out": str(out),
                  "data": sets[0], "test_data": [sets[1]], "batch": 2, "patch": 16, "nf": 8,
                  "nb": 1, "gc": 4, "d_nf": 8, "device": "cpu", "progress": False, **kw})
    return train(c)


@pytest.mark.parametrize("kw, column", [
    ({"loss": "pixel+0.1*l1:grad"}, "grad"),  # a loss term, logged as its own column
    ({"loss": "charbonnier:pixel"}, "pixel"),  # a distance
    ({"loss": "pixel+0.01*lsgan:adv"}, "adv"),  # a GAN loss
    ({"upsampler": "bilinear"}, "pixel"),  # an upsampler
    ({"loss": "down", "loss_operator": "box"}, "down"),  # a loss operator
    ({"consistency": "clamp-project"}, "pixel"),  # a consistency step
], ids=["term", "distance", "gan", "upsampler", "operator", "consistency"])
def test_each_extension_trains(extended, sets, tmp_path, kw, column):
    r = _train(sets, tmp_path / "run", **kw)
    assert r["iters"] == 2
    log = pd.read_csv(tmp_path / "run" / runs.LOSSES)
    assert column in log and log[column].notna().all()


def test_a_new_metric_reaches_the_tables_and_the_hypotheses(extended, sets, tmp_path):
    from srlib import results as rs
    from srlib.grid import parse_hypotheses

    _train(sets, tmp_path / "runs" / "a" / "seed0")
    per_image = pd.read_csv(runs.eval_dir(tmp_path / "runs" / "a" / "seed0",
                                          runs.eval_sets(tmp_path / "runs" / "a" /
                                                         "seed0")[0]) / runs.PER_IMAGE)
    assert per_image["mae_y"].between(0, 255).all()
    grid = {"variants": {"a": {"loss": "pixel"}}, "defaults": {}}
    table = rs.collect(tmp_path, grid, [0])
    assert "mae_y" in table and table.loc[table.variant == "a", "mae_y"].notna().all()
    (h,) = parse_hypotheses([{"id": "M", "statement": "s", "a": "a", "b": 1.0,
                              "metric": "mae_y", "direction": "less"}], ["a"], "grid.yaml")
    assert h.metric == "mae_y"


def test_the_command_line_takes_a_new_upsampler(extended):
    from srlib.train import argument_parser

    assert argument_parser().parse_args(["--upsampler", "bilinear"]).upsampler == "bilinear"
    Config(upsampler="bilinear").resolved()
