"""Every GPU of a machine: one run per GPU at a time, each kernel seeing only its own GPU
(``CUDA_VISIBLE_DEVICES``), recorded in the run's ``metrics.json``. Checked on the CPU
with a pretend pool of GPUs: what is tested is the placement, not CUDA."""

from __future__ import annotations

import json
import os
import re
import time

import pytest
from conftest import write_micro_grid, write_small_sets

from srlib import ablate
from srlib.notebooks import Stop


def test_each_run_gets_one_gpu_of_the_pool_and_records_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ablate, "visible_gpus", lambda: ["3", "5"])
    cfg = write_micro_grid(tmp_path)
    a = ablate.parse_args([str(cfg), "--out", str(tmp_path / "out"), "--only",
                           "pixel/pixelshuffle", "down/pixelshuffle", "--seeds", "0", "1"])
    plan = ablate.make_plan(a)
    assert plan.gpus == ["3", "5"] and plan.jobs == 2  # one run per GPU by default
    outcomes = ablate.run_grid(plan, Stop(), time.perf_counter())
    assert {o.kind for o in outcomes.values()} == {"done"}
    used = {}
    for variant, seed in outcomes:
        m = json.loads((tmp_path / "out" / "runs" / variant / f"seed{seed}" / "metrics.json")
                       .read_text())
        used[(variant, seed)] = m["placement"]["cuda_visible_devices"]
        assert m["placement"]["host"] and m["device"] == "cpu"  # no CUDA here
    assert set(used.values()) == {"3", "5"}  # four runs over the two GPUs
    printed = capsys.readouterr().out
    assert printed.count(" on GPU 3") + printed.count(" on GPU 5") == 4


def test_gpus_option_picks_a_subset_and_jobs_overrides(monkeypatch, tmp_path):
    monkeypatch.setattr(ablate, "visible_gpus", lambda: ["0", "1", "2", "3"])
    cfg = write_micro_grid(tmp_path)
    plan = ablate.make_plan(ablate.parse_args([str(cfg), "--out", str(tmp_path / "o"),
                                               "--gpus", "0,2,3"]))
    assert plan.gpus == ["0", "2", "3"] and plan.jobs == 3
    plan = ablate.make_plan(ablate.parse_args([str(cfg), "--out", str(tmp_path / "o"),
                                               "--gpus", "1", "--jobs", "2"]))
    assert plan.gpus == ["1"] and plan.jobs == 2


@pytest.mark.parametrize(("visible", "option", "says"), [
    (["0", "1"], "0,5", r"--gpus 0,5: expected distinct GPUs among 0, 1 \(the visible ones\), "
                        r"got 5"),
    (["0", "1"], "1,1", r"--gpus 1,1: expected distinct GPUs among 0, 1"),
    (["0", "1"], "0,", r"--gpus 0,: expected distinct GPUs"),
    ([], "0", r"--gpus 0: this machine has no CUDA GPU .*leave --gpus out to train on the CPU"),
])
def test_bad_gpus_are_refused_before_anything_runs(monkeypatch, tmp_path, capsys, visible,
                                                   option, says):
    monkeypatch.setattr(ablate, "visible_gpus", lambda: visible)
    cfg = write_micro_grid(tmp_path)
    assert ablate.main([str(cfg), "--out", str(tmp_path / "o"), "--gpus", option]) == 2
    err = capsys.readouterr().err
    assert re.search(says, err), err
    assert not (tmp_path / "o" / "runs").exists()


def test_a_cpu_machine_has_no_pool(monkeypatch, tmp_path):
    monkeypatch.setattr(ablate, "visible_gpus", lambda: [])
    cfg = write_micro_grid(tmp_path)
    plan = ablate.make_plan(ablate.parse_args([str(cfg), "--out", str(tmp_path / "o")]))
    assert plan.gpus == [] and plan.jobs == min(2, os.cpu_count() or 1)


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    assert ablate.visible_gpus() == ["4", "6"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert ablate.visible_gpus() == ["0", "1"]


def test_a_run_without_lpips_trains_through_its_notebook(tmp_path):
    """The training notebook of a run with eval_lpips off (most of the study's): its
    table shows what was measured (it failed on the missing lpips column once, after
    training, in the study)."""
    from srlib.notebooks import train_run

    train, test = write_small_sets(tmp_path, n_train=2, n_test=1)
    config = {"loss": "pixel", "upsampler": "nearest", "iters": 2, "batch": 2, "patch": 16,
              "nf": 8, "nb": 1, "gc": 4, "device": "cpu", "data": train, "test_data": [test],
              "eval_lpips": False, "seed": 0, "out": str(tmp_path / "r"), "progress": False}
    train_run("v", 0, config, tmp_path / "r", env={"CUDA_VISIBLE_DEVICES": "0"})
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert "lpips" not in m and m["placement"]["cuda_visible_devices"] == "0"
    html = (tmp_path / "r" / "train.html").read_text()
    assert "psnr_y" in html.split("Metrics on")[1][:4000]
