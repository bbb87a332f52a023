"""Faults of a training run: a crafted or foreign checkpoint, --compile, a full disk, a
failure at the first step, odd test sets, a finished run that lost its generator, seeds."""

import dataclasses
import errno
import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import interrupt_at, write_small_sets

from srlib import runs
from srlib.models import build_generator
from srlib.train import Config, Interrupted, main, train

SEED_MAX = 2**64 - 1  # the largest seed torch.manual_seed accepts (measured, torch 2.13)


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory) -> tuple[str, str]:
    return write_small_sets(tmp_path_factory.mktemp("data"))


def tiny_config(sets, out, **kw) -> Config:
    return Config(**{"loss": "pixel", "upsampler": "nearest", "iters": 6, "out": str(out),
                     "data": sets[0], "test_data": [sets[1]], "batch": 2, "patch": 16,
                     "nf": 8, "nb": 1, "gc": 4, "ckpt_every": 2, "log_every": 2,
                     "device": "cpu", "progress": False} | kw)


def tiny_args(sets, out) -> list[str]:
    return ["--loss", "pixel", "--upsampler", "nearest", "--iters", "6", "--out", str(out),
            "--data", sets[0], "--test-data", sets[1], "--batch", "2", "--patch", "16",
            "--nf", "8", "--nb", "1", "--gc", "4", "--ckpt-every", "2", "--device", "cpu",
            "--no-progress"]


def interrupted_run(sets, out, monkeypatch, **kw) -> Path:
    """A run stopped (SIGTERM) at iteration 2: its checkpoint's path."""
    interrupt_at(monkeypatch, 2)
    with pytest.raises(Interrupted):
        train(tiny_config(sets, out, **kw))
    monkeypatch.undo()
    return out / runs.CHECKPOINT


# ---- a checkpoint is data, never code ---------------------------------------------------------

class _Marker:
    """Unpickled, it would create the file ``path`` (what a crafted checkpoint could do)."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_a_crafted_checkpoint_is_refused_and_its_code_never_runs(tiny_sets, tmp_path, capsys):
    out, marker = tmp_path / "run", tmp_path / "marker"
    out.mkdir()
    torch.save({"iter": 1, "g": {}, "x": _Marker(marker)}, out / runs.CHECKPOINT)
    assert main(tiny_args(tiny_sets, out)) == 2
    err = capsys.readouterr().err
    assert f"{out / runs.CHECKPOINT} is not a checkpoint this project wrote" in err, err
    assert "delete it to restart" in err and "Traceback" not in err
    assert not marker.exists()


def test_a_checkpoint_loads_as_plain_data(tiny_sets, tmp_path, monkeypatch):
    ckpt = interrupted_run(tiny_sets, tmp_path / "run", monkeypatch, loss="down+0.005*adv",
                           patch=32, noise=2)
    state = torch.load(ckpt, weights_only=True)  # nothing but tensors, numbers, containers
    assert state["iter"] == 2 and {"torch_rng", "sampler_rng", "g_ema"} <= set(state)
    assert train(tiny_config(tiny_sets, tmp_path / "run", loss="down+0.005*adv", patch=32,
                             noise=2))["resumed_from_iter"] == 2


# ---- --compile --------------------------------------------------------------------------------

def test_compile_trains_on_the_cpu(tiny_sets, tmp_path):
    r = train(tiny_config(tiny_sets, tmp_path / "run", iters=2, compile=True))
    assert r["iters"] == 2 and runs.load_generator(tmp_path / "run") is not None
    torch._dynamo.reset()


def test_compile_without_a_compiler_names_the_flag(tiny_sets, tmp_path, monkeypatch):
    import torch._inductor.config as inductor

    monkeypatch.setattr(inductor.cpp, "cxx", (str(tmp_path / "no-such-cxx"),))
    monkeypatch.setattr(inductor, "fx_graph_cache", False)
    with pytest.raises(ValueError, match=r"--compile: torch.compile cannot compile the generator "
                                         r"on this machine \(.*C\+\+ compiler.*without --compile"):
        train(tiny_config(tiny_sets, tmp_path / "run", iters=2, nf=4, compile=True))
    torch._dynamo.reset()


# ---- a full disk ------------------------------------------------------------------------------

def _full_disk_at(monkeypatch, name: str, after: int) -> None:
    """Writes of ``name`` (through ``runs``' atomic writer) fail with ENOSPC after the first
    ``after`` of them, as on a disk that just filled up."""
    original, count = Path.write_bytes, {"n": 0}

    def write_bytes(self, data):
        if self.name.startswith(f".{name}."):
            count["n"] += 1
            if count["n"] > after:
                raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return original(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)


@pytest.mark.parametrize("name,after,kept", [(runs.CHECKPOINT, 1, 2), (runs.METRICS, 0, 6)])
def test_a_full_disk_names_the_folder_and_the_same_command_resumes(
        tiny_sets, tmp_path, monkeypatch, capsys, name, after, kept):
    out = tmp_path / "run"
    _full_disk_at(monkeypatch, name, after)
    assert main(tiny_args(tiny_sets, out)) == 2
    err = capsys.readouterr().err
    assert f"no space left on {out}; free space and run the same command" in err, err
    assert "Traceback" not in err
    assert torch.load(out / runs.CHECKPOINT, weights_only=True)["iter"] == kept  # intact
    monkeypatch.undo()
    assert main(tiny_args(tiny_sets, out)) == 0
    assert runs.read_metrics(out)["resumed_from_iter"] == kept


def test_recording_a_failure_on_a_full_disk_returns_the_line_and_warns(tmp_path, monkeypatch,
                                                                      capsys):
    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(runs, "write_bytes", full)
    line = runs.write_error(tmp_path / "run", "Traceback (most recent call last):\n  ...\n"
                                              "ValueError: boom\n")
    assert line == "ValueError: boom"
    err = capsys.readouterr().err
    assert "warning" in err and "No space left on device" in err and str(tmp_path / "run") in err


# ---- a file of another model ----------------------------------------------------------------

def test_a_checkpoint_of_another_model_is_refused_naming_it(tiny_sets, tmp_path, monkeypatch):
    ckpt = interrupted_run(tiny_sets, tmp_path / "a", monkeypatch)
    for name, change in (("wider", None), ("missing", "conv_last.bias")):
        out = tmp_path / name
        out.mkdir()
        state = torch.load(ckpt, weights_only=True)
        if change:
            del state["g"][change]
        torch.save(state, out / runs.CHECKPOINT)
        nf = 16 if name == "wider" else 8
        with pytest.raises(ValueError, match=rf"{out / runs.CHECKPOINT} was written by a "
                                             r"different model \(.+\): delete it to restart"):
            train(tiny_config(tiny_sets, out, nf=nf))
        assert not (out / runs.CONFIG).exists()


def _fake_run(out: Path, **sizes) -> Path:
    """A finished-looking run folder whose config says nf=8, nb=1, gc=4 and whose
    generator.pt holds a generator of ``sizes``: its generator's path."""
    c = dataclasses.asdict(Config(nf=8, nb=1, gc=4, out=str(out)).resolved())
    out.mkdir(parents=True)
    (out / runs.CONFIG).write_text(json.dumps(c))
    g = build_generator("quick", 4, c["upsampler"], **({"nf": 8, "nb": 1, "gc": 4} | sizes))
    torch.save(g.state_dict(), out / runs.GENERATOR)
    return out / runs.GENERATOR


def test_a_generator_of_another_model_is_refused_naming_it(tmp_path):
    for name, sizes in (("wider", {"nf": 16}), ("deeper", {"nb": 2})):
        gen = _fake_run(tmp_path / name, **sizes)
        with pytest.raises(ValueError, match=rf"{gen} was written by a different model "
                                             r"\(.+\): delete it to restart"):
            runs.load_generator(tmp_path / name)
    gen = _fake_run(tmp_path / "missing")
    state = torch.load(gen, weights_only=True)
    del state["conv_first.weight"]
    torch.save(state, gen)
    with pytest.raises(ValueError, match=r"different model \(missing conv_first.weight\)"):
        runs.load_generator(tmp_path / "missing")


# ---- a failure at the first step --------------------------------------------------------------

def test_a_run_failing_at_its_first_step_leaves_no_config(tiny_sets, tmp_path, monkeypatch):
    import srlib.train

    def boom(*a, **k):
        raise RuntimeError("boom at the first step")

    monkeypatch.setattr(srlib.train, "train_step", boom)
    with pytest.raises(RuntimeError, match="boom"):
        train(tiny_config(tiny_sets, tmp_path / "run", loss="pixel"))
    assert not (tmp_path / "run" / runs.CONFIG).exists()
    monkeypatch.undo()
    r = train(tiny_config(tiny_sets, tmp_path / "run", loss="down"))  # the corrected command
    assert r["config"]["loss"] == "down" and r["resumed_from_iter"] is None


# ---- test sets --------------------------------------------------------------------------------

def test_test_data_as_a_string_is_one_set(tiny_sets, tmp_path):
    c = tiny_config(tiny_sets, tmp_path / "run", test_data=tiny_sets[1], iters=2)
    assert c.resolved().test_data == [tiny_sets[1]]
    assert train(c)["n_images"] == 2
    assert Config(test_data="default").resolved().test_data == ["default"]


def test_two_test_sets_of_one_name_are_refused(tiny_sets, tmp_path):
    a, b = tmp_path / "a" / "SetX", tmp_path / "b" / "SetX"
    for d in (a, b):
        shutil.copytree(tiny_sets[1], d)
    with pytest.raises(ValueError, match=rf"two test sets are named SetX: {a}, {b}; rename one "
                                         "folder"):
        tiny_config(tiny_sets, tmp_path / "run", test_data=[str(a), str(b)]).resolved()


# ---- a finished run needs its generator -----------------------------------------------------

def test_a_run_that_lost_its_generator_is_not_finished(tiny_sets, tmp_path):
    pre, tune = tmp_path / "pre", tmp_path / "tune"
    train(tiny_config(tiny_sets, pre, iters=2))
    assert runs.is_finished(pre)
    (pre / runs.GENERATOR).unlink()
    assert not runs.is_finished(pre)
    with pytest.raises(FileNotFoundError, match=rf"init_from {pre}: its {runs.GENERATOR} is "
                                                r"missing.*run its command again"):
        train(tiny_config(tiny_sets, tune, iters=2, init_from=str(pre)))
    assert train(tiny_config(tiny_sets, pre, iters=2))["resumed_from_iter"] is None  # retrained
    assert train(tiny_config(tiny_sets, tune, iters=2, init_from=str(pre)))["iters"] == 2


def test_a_baseline_is_finished_without_a_generator(tiny_sets, tmp_path):
    from srlib.evaluate import baseline_run

    c = json.loads(json.dumps(dataclasses.asdict(Config(
        loss="bicubic", upsampler="", test_data=[tiny_sets[1]], out=str(tmp_path / "b")))))
    baseline_run(tmp_path / "b", c)
    assert not (tmp_path / "b" / runs.GENERATOR).exists() and runs.is_finished(tmp_path / "b")


# ---- the seed ---------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [-1, SEED_MAX + 1, 2**70, 1.0, True])
def test_a_seed_out_of_range_is_refused_naming_the_field(seed):
    with pytest.raises(ValueError, match=rf"seed must be an integer in \[0, {SEED_MAX}\], "
                                         rf"got {seed!r}"):
        Config(seed=seed).resolved()


def test_the_largest_seed_trains(tiny_sets, tmp_path):
    assert train(tiny_config(tiny_sets, tmp_path / "run", iters=2, seed=SEED_MAX))["iters"] == 2
