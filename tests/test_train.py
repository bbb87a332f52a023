"""The training engine: every loss family runs, runs resume exactly, bad input is refused."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import interrupt_at, write_small_sets

from srlib.evaluate import main as evaluate_main
from srlib.losses import Loss
from srlib.runs import load_generator
from srlib.train import Config, Interrupted, train

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory) -> tuple[str, str]:
    """Small train / test folders cut from the embedded images (fast evaluation)."""
    return write_small_sets(tmp_path_factory.mktemp("data"))


def tiny_config(tmp_path, sets, **kw) -> Config:
    base = dict(loss="pixel", upsampler="pixelshuffle", iters=6, seed=0,
                out=str(tmp_path / "run"), data=sets[0], test_data=[sets[1]], batch=2,
                patch=16, nf=8, nb=1, gc=4, ckpt_every=3, log_every=2, device="cpu",
                progress=False)
    return Config(**(base | kw))


@pytest.mark.parametrize("loss,upsampler,patch", [
    ("pixel", "pixelshuffle", 16), ("l1:down", "deconv", 16), ("down+0.005*adv", "pre", 32),
    ("0.01*l1:pixel+perc+0.005*adv", "nearest", 32), ("hinge:adv+down", "nearest", 32),
])
def test_each_loss_family_trains_and_evaluates(tmp_path, tiny_sets, loss, upsampler, patch):
    disc = "unet" if loss.startswith("hinge") else "vgg"
    r = train(tiny_config(tmp_path, tiny_sets, loss=loss, upsampler=upsampler, patch=patch,
                          discriminator=disc))
    for key in ("psnr_y", "ssim_y", "lpips", "lpips_kind", "lr_psnr", "range_mse", "null_mse",
                "iters", "train_seconds", "its_per_second", "eval_seconds", "precision",
                "device", "resumed_from_iter",
                "config"):
        assert key in r, key
    assert r["iters"] == 6 and r["resumed_from_iter"] is None and r["device"] == "cpu"
    assert r["eval_seconds"] > 0 and r["precision"] in ("bf16", "fp32")
    assert r["n_images"] == 2 and r["lpips"] > 0
    run = tmp_path / "run"
    assert (run / "generator.pt").is_file() and not (run / "checkpoint.pt").exists()
    assert sorted(p.name for p in (run / "eval" / "test").iterdir())[-1] == "per_image.csv"
    log = (run / "losses.csv").read_text().splitlines()
    assert log[0].startswith("iter,total") and len(log) == 1 + 3  # iterations 2, 4, 6
    if "perc" in loss:
        assert r["perc_backend"] in ("vgg19-imagenet-conv5_4", "stlpips-vgg16-conv5_3")


def test_same_seed_same_metrics(tmp_path, tiny_sets):
    a = train(tiny_config(tmp_path, tiny_sets, out=str(tmp_path / "a"), loss="down"))
    b = train(tiny_config(tmp_path, tiny_sets, out=str(tmp_path / "b"), loss="down"))
    for k in ("psnr_y", "ssim_y", "lpips", "lr_psnr", "range_mse", "null_mse"):
        assert a[k] == b[k], k
    c = train(tiny_config(tmp_path, tiny_sets, out=str(tmp_path / "c"), loss="down", seed=1))
    assert c["psnr_y"] != a["psnr_y"]


def test_resume_gives_the_same_weights(tmp_path, tiny_sets, monkeypatch):
    kw = dict(loss="down+0.005*adv", patch=32, iters=8, ckpt_every=100)
    whole = train(tiny_config(tmp_path, tiny_sets, out=str(tmp_path / "whole"), **kw))
    cfg = tiny_config(tmp_path, tiny_sets, out=str(tmp_path / "cut"), **kw)
    interrupt_at(monkeypatch, 5)
    with pytest.raises(Interrupted, match="iteration 5"):
        train(cfg)
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["iter"] == 5
    monkeypatch.undo()
    resumed = train(cfg)
    assert resumed["resumed_from_iter"] == 5
    ga, gb = load_generator(tmp_path / "whole"), load_generator(tmp_path / "cut")
    for (name, pa), pb in zip(ga.state_dict().items(), gb.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert resumed["psnr_y"] == whole["psnr_y"]
    log = (tmp_path / "cut" / "losses.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == ["2", "4", "6", "8"]
    assert train(cfg)["psnr_y"] == whole["psnr_y"]  # a finished run returns its results


def test_other_config_in_same_folder_is_refused(tmp_path, tiny_sets):
    train(tiny_config(tmp_path, tiny_sets))
    with pytest.raises(ValueError, match=r"loss: 'pixel' -> 'down'"):
        train(tiny_config(tmp_path, tiny_sets, loss="down"))
    train(tiny_config(tmp_path, tiny_sets, ckpt_every=5))  # bookkeeping may change


def test_nan_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_sets, monkeypatch):
    original, count = Loss.forward, {"n": 0}

    def forward(self, *a, **k):
        total, terms = original(self, *a, **k)
        count["n"] += 1
        return (total * float("nan") if count["n"] == 5 else total), terms

    monkeypatch.setattr(Loss, "forward", forward)
    with pytest.raises(FloatingPointError, match="iteration 5.*checkpoint"):
        train(tiny_config(tmp_path, tiny_sets, ckpt_every=2))
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["iter"] == 4
    assert all(torch.isfinite(v).all() for v in state["g"].values())


@pytest.mark.parametrize("field,value,match", [
    ("preset", "huge", "preset must be one of"), ("upsampler", "no-such-upsampler", "upsampler"),
    ("loss", "dwn", "unknown term"), ("patch", 18, "multiple of scale"),
    ("iters", 0, "iters must be a positive integer"),
    ("learning_rate", 3.0, "learning_rate must be"), ("scale", 0, "scale must be one of"),
    ("device", "tpu", "device must be"), ("discriminator", "patchgan", "discriminator"),
    ("data", "NoSuchSet", "'NoSuchSet' not found"),
])
def test_bad_config(tmp_path, tiny_sets, field, value, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        train(tiny_config(tmp_path, tiny_sets, **{field: value}))


def test_init_from(tmp_path, tiny_sets):
    train(tiny_config(tmp_path, tiny_sets, out=str(tmp_path / "pre")))
    r = train(tiny_config(tmp_path, tiny_sets, out=str(tmp_path / "gan"), patch=32,
                          loss="pixel+0.005*adv", init_from=str(tmp_path / "pre")))
    assert r["config"]["init_from"] == str(tmp_path / "pre")
    with pytest.raises(ValueError, match="its generator differs.*upsampler"):
        train(tiny_config(tmp_path, tiny_sets, out=str(tmp_path / "x"), upsampler="nearest",
                          init_from=str(tmp_path / "pre")))
    with pytest.raises(FileNotFoundError, match="not a finished run"):
        train(tiny_config(tmp_path, tiny_sets, out=str(tmp_path / "y"),
                          init_from=str(tmp_path / "gan" / "eval")))


def test_cli_sigterm_then_resume(tmp_path, tiny_sets):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "srlib.train", "--loss", "down", "--upsampler", "nearest",
           "--iters", "600", "--out", str(out), "--data", tiny_sets[0], "--test-data",
           tiny_sets[1], "--batch", "2", "--patch", "16", "--device", "cpu", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, cwd=PROJECT, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "losses.csv").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "checkpoint saved" in err and "run the same command to resume" in err
    stopped_at = torch.load(out / "checkpoint.pt", weights_only=True)["iter"]
    assert 0 < stopped_at < 600
    changed = subprocess.run([*cmd[:8], "10", *cmd[9:]], cwd=PROJECT, env=env,
                             capture_output=True, text=True)
    assert changed.returncode == 2 and "iters: 600 -> 10" in changed.stderr
    done = subprocess.run(cmd, cwd=PROJECT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    r = json.loads((out / "metrics.json").read_text())
    assert r["resumed_from_iter"] == stopped_at and r["iters"] == 600


def test_evaluate_cli_on_a_run(tmp_path, tiny_sets, capsys):
    train(tiny_config(tmp_path, tiny_sets))
    assert evaluate_main(["--model", str(tmp_path / "run"), "--data", tiny_sets[1],
                          "--json", "--lpips", "stlpips-alex"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["n_images"] == 2 and r["scale"] == 4 and r["lpips_kind"] == "stlpips-alex"
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert r["psnr_y"] == pytest.approx(saved["psnr_y"], abs=1e-9)
    (tmp_path / "empty").mkdir()
    assert evaluate_main(["--model", str(tmp_path / "empty")]) == 2
    assert "not a finished run" in capsys.readouterr().err
