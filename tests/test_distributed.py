"""One run on several processes under torchrun (gloo on the CPU): the ranks follow one
process's trajectory, rank 0 alone writes, a bad world size is refused, a stopped run
resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import write_small_sets

from srlib import distributed


def _args(sets, out: Path, **kw) -> list[str]:
    f = {"loss": "pixel", "upsampler": "nearest", "iters": 6, "patch": 16, "batch": 8,
         "nf": 8, "nb": 1, "gc": 4, "data": sets[0], "test_data": sets[1], "log_every": 1,
         "val_every": 0, "device": "cpu", "out": str(out),
         # float32: the ranks' sums must agree to float rounding (bf16 autocast rounds each
         # half batch's convolutions to 8 bits of mantissa)
         "precision": "fp32"} | kw
    return [x for k, v in f.items() for x in ("--" + k.replace("_", "-"), str(v))] + \
        ["--no-progress", "--no-eval-lpips"]


def _train(args: list[str], ranks: int = 0, **popen) -> subprocess.Popen:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc-per-node={ranks}", "-m", "srlib.train"] if ranks else \
        [sys.executable, "-m", "srlib.train"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.Popen([*launcher, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    return write_small_sets(tmp_path_factory.mktemp("data"), n_train=3, n_test=1)


def test_two_ranks_follow_one_process(sets, tmp_path):
    """2 ranks at batch 16 (8 patches each) against one process at batch 16: the same
    patches, the mean gradient, so the same losses and weights up to float sums
    (measured: relative 1e-7 on the losses)."""
    two = _train(_args(sets, tmp_path / "two", batch=16), ranks=2)
    one = _train(_args(sets, tmp_path / "one", batch=16))
    for p in (two, one):
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out
    a, b = (pd.read_csv(tmp_path / r / "losses.csv") for r in ("two", "one"))
    assert len(a) == len(b) == 6
    diff = ((a.total - b.total).abs() / b.total).max()
    print(f"largest relative difference of the loss over 6 iterations: {diff:.2e}")
    assert diff < 1e-5
    assert b.total.nunique() == 6  # the weights moved at every step: the check can fail
    ga, gb = (torch.load(tmp_path / r / "generator.pt") for r in ("two", "one"))
    for k in gb:
        torch.testing.assert_close(ga[k], gb[k], rtol=1e-4, atol=1e-6)
    m = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert m["iters"] == 6 and m["psnr_y"] > 0  # rank 0 evaluated and wrote


def test_a_world_size_that_does_not_divide_the_batch_is_refused(sets, tmp_path):
    p = _train(_args(sets, tmp_path / "r", batch=5), ranks=2)
    out, _ = p.communicate(timeout=300)
    assert p.returncode != 0
    assert "batch 5 is not divisible by torchrun's world size 2" in out
    assert not (tmp_path / "r").exists()


def test_a_stopped_run_resumes_on_every_rank(sets, tmp_path):
    """SIGTERM to torchrun: every rank stops at the same iteration after rank 0's
    checkpoint; the same command resumes from it."""
    args = _args(sets, tmp_path / "r", iters=400, ckpt_every=5, batch=4)
    p = _train(args, ranks=2, start_new_session=True)
    ckpt = tmp_path / "r" / "checkpoint.pt"
    t0 = time.time()
    while not ckpt.exists() and time.time() - t0 < 120 and p.poll() is None:
        time.sleep(0.2)
    assert ckpt.exists(), "no checkpoint within 120 s"
    os.kill(p.pid, signal.SIGTERM)
    out, _ = p.communicate(timeout=120)
    assert p.returncode != 0
    assert out.count("stopped by signal") == 2, out  # both ranks, one message each
    stopped = pd.read_csv(tmp_path / "r" / "losses.csv").iter.max()
    assert 5 <= stopped < 400
    again = _train(args, ranks=2)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["resumed_from_iter"] and 5 <= m["resumed_from_iter"] <= stopped
    assert pd.read_csv(tmp_path / "r" / "losses.csv").iter.is_monotonic_increasing


@pytest.mark.parametrize(("env", "says"), [
    ({"WORLD_SIZE": "2", "RANK": "2"}, r"RANK 2 must lie in \[0, WORLD_SIZE 2\)"),
    ({"WORLD_SIZE": "two"}, "must be integers"),
])
def test_bad_rank_variables_are_refused(monkeypatch, env, says):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError, match=says):
        distributed.world()


def test_one_process_is_unchanged(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    w = distributed.world()
    assert not w.on and w.main
    x = torch.arange(6.0).view(6, 1)
    assert distributed.share(x, w) is x
    assert distributed.share(x, distributed.World(1, 3)).flatten().tolist() == [2.0, 3.0]


def test_train_on_two_ranks_passes_a_stop_on_and_resumes(sets, tmp_path):
    """``train_on(config, 2)``, what a grid variant's ``gpus: 2`` runs in its kernel:
    SIGUSR2 to the caller (SLURM's warning before a preemption) reaches the ranks through
    torchrun, which checkpoint and stop; the same call resumes and finishes."""
    out = tmp_path / "run"
    code = ("import sys\n"
            "from srlib.train import Config, train_on, Interrupted\n"
            f"c = Config(loss='pixel', upsampler='nearest', iters=1000, patch=16, batch=8, "
            f"nf=8, nb=1, gc=4, data={sets[0]!r}, test_data=[{sets[1]!r}], log_every=5, "
            f"device='cpu', out={str(out)!r}, eval_lpips=False, progress=False)\n"
            "try:\n    print(train_on(c, 2)['resumed_from_iter'])\n"
            "except Interrupted as e:\n    print('INTERRUPTED', e); sys.exit(130)\n")
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    log = out / "losses.csv"
    t0 = time.monotonic()
    while not (log.is_file() and len(log.read_text().splitlines()) > 2):
        assert p.poll() is None and time.monotonic() - t0 < 180, p.communicate()[0]
        time.sleep(0.2)
    os.kill(p.pid, signal.SIGUSR2)
    text = p.communicate(timeout=180)[0]
    assert p.returncode == 130 and "INTERRUPTED" in text, text
    stopped = torch.load(out / "checkpoint.pt", weights_only=False)["iter"]
    assert 0 < stopped < 1000
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert int(done.stdout.split()[-1]) == stopped


def test_a_dead_peer_rank_is_said_with_the_resume_command(tmp_path, monkeypatch, capsys):
    """A rank killed with -9: the others' collective fails in gloo. Rank 0 says so and how
    to resume (its checkpoint is intact), not a traceback; any other error keeps it."""
    from srlib import distributed, train

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")

    def dies(_config):
        raise RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection "
                           "closed by peer [127.0.0.1]:29500")

    monkeypatch.setattr(train, "train", dies)
    argv = ["--loss", "pixel", "--out", str(tmp_path / "run")]
    assert train.main(argv) == 1
    err = capsys.readouterr().err
    assert "rank 0: another rank of this torchrun job stopped (" in err
    assert "Connection closed by peer" in err and "run the same command again" in err
    assert "Traceback" not in err

    def bug(_config):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(train, "train", bug)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        train.main(argv)
    assert distributed.peer_failure(RuntimeError("Connection closed by peer")) != ""
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert distributed.peer_failure(RuntimeError("Connection closed by peer")) == ""
