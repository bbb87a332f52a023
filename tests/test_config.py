"""One source of defaults, the training step on its own, and bad input to a run."""

import contextlib
import dataclasses
import json
import os
import socket
from pathlib import Path

import jupytext
import pytest
import torch
from conftest import write_small_sets
from PIL import Image

from srlib import runs
from srlib.data import list_images
from srlib.losses import Loss
from srlib.models import GENERATOR_FIELDS, build_generator
from srlib.resize import BicubicDegradation
from srlib.train import Config, Nets, argument_parser, main, train, train_step

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory) -> tuple[str, str]:
    return write_small_sets(tmp_path_factory.mktemp("data"))


def tiny_args(sets, out) -> list[str]:
    return ["--loss", "pixel", "--upsampler", "nearest", "--iters", "2", "--out", str(out),
            "--data", sets[0], "--test-data", sets[1], "--batch", "2", "--patch", "16",
            "--nf", "8", "--nb", "1", "--gc", "4", "--device", "cpu", "--no-progress"]


# ---- one source of defaults --------------------------------------------------------------

def test_cli_has_every_config_field_with_its_default_and_help():
    ap = argument_parser()
    defaults = vars(ap.parse_args([]))
    assert defaults == dataclasses.asdict(Config())
    flags = {a.dest: a for a in ap._actions if a.dest != "help"}
    for f in dataclasses.fields(Config):
        assert f.name in flags, f.name
        assert f.metadata["help"].split(" (")[0] in flags[f.name].help
    c = Config(**vars(ap.parse_args(["--nf", "16", "--test-data", "a", "b", "--no-progress",
                                     "--learning-rate", "1e-4"])))
    assert (c.nf, c.test_data, c.progress, c.learning_rate) == (16, ["a", "b"], False, 1e-4)


def test_the_generator_fields_of_the_config_are_the_table():
    fields = {f.name: f for f in dataclasses.fields(Config)}
    for name, knob in GENERATOR_FIELDS.items():
        f = fields[name]
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        assert (default, f.metadata["help"], f.metadata["knob"]) == (knob.default, knob.help,
                                                                     knob), name


def test_every_field_with_choices_refuses_another_value_naming_them():
    with_choices = [f for f in dataclasses.fields(Config)
                    if f.metadata["knob"].choices is not None]
    assert {"preset", "scale", "upsampler", "skip", "consistency", "loss_operator",
            "discriminator"} <= {f.name for f in with_choices}
    for f in with_choices:
        choices = ", ".join(map(str, f.metadata["knob"].choices))
        with pytest.raises(ValueError) as err:
            Config(**{f.name: "no-such-value"}).resolved()
        assert str(err.value) == f"{f.name} must be one of {choices}, got 'no-such-value'"


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(Config)
                                  if f.metadata.get("knob") and f.metadata["knob"].least
                                  is not None])
def test_every_integer_field_refuses_a_value_below_its_least(name):
    knob = next(f for f in dataclasses.fields(Config) if f.name == name).metadata["knob"]
    with pytest.raises(ValueError, match=rf"^{name} must be .*, got {knob.least - 1}$"):
        Config(**{name: knob.least - 1}).resolved()
    with pytest.raises(ValueError, match=rf"^{name} must be .*, got 2.0$"):
        Config(**{name: 2.0}).resolved()  # an integer, not a float


def test_notebook_parameters_are_a_config_mapping():
    nb = jupytext.read(NOTEBOOKS / "02_train.py")
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    scope: dict = {}
    exec(cell.source, scope)
    names = {k for k in scope if not k.startswith("__")}
    assert names == {"variant", "config", "gpus"}, \
        "only a label, one Config mapping and the number of GPUs (ranks)"
    assert scope["gpus"] == 1  # one process, unless a grid variant asks for more
    fields = {f.name for f in dataclasses.fields(Config)}
    assert set(scope["config"]) <= fields
    Config(**scope["config"]).resolved()  # a valid config as it stands


# ---- the training step ------------------------------------------------------------------

def _nets(spec: str, patch: int = 16):
    torch.manual_seed(0)
    g = build_generator("quick", 4, "nearest", nf=8, nb=1, gc=4)
    loss = Loss(spec, BicubicDegradation(4))
    d = None
    if loss.needs_discriminator:
        from srlib.models import VGGDiscriminator
        d = VGGDiscriminator(patch, 8)
    nets = Nets(g, torch.optim.Adam(g.parameters(), lr=1e-3), d,
                torch.optim.Adam(d.parameters(), lr=1e-3) if d else None)
    hr = torch.rand(2, 3, patch, patch)
    return nets, loss, hr, BicubicDegradation(4).down(hr)


def test_train_step_updates_the_generator_and_lowers_the_loss():
    nets, loss, hr, lr = _nets("pixel")
    before = [p.detach().clone() for p in nets.g.parameters()]
    first, terms, d_loss = train_step(nets, loss, hr, lr, contextlib.nullcontext())
    assert d_loss is None and set(terms) == {"pixel"} and not first.requires_grad
    assert any(not torch.equal(a, b) for a, b in zip(before, nets.g.parameters(), strict=True))
    for _ in range(20):
        last, _, _ = train_step(nets, loss, hr, lr, contextlib.nullcontext())
    assert last < first


def test_train_step_trains_the_discriminator_for_adversarial_specs():
    nets, loss, hr, lr = _nets("down+0.005*adv")
    d_before = [p.detach().clone() for p in nets.d.parameters()]
    _, terms, d_loss = train_step(nets, loss, hr, lr, contextlib.nullcontext())
    assert set(terms) == {"down", "adv"} and d_loss is not None and torch.isfinite(d_loss)
    assert any(not torch.equal(a, b) for a, b in zip(d_before, nets.d.parameters(), strict=True))
    assert all(p.requires_grad for p in nets.d.parameters())


def test_train_step_refuses_a_non_finite_loss_before_changing_weights():
    nets, loss, hr, lr = _nets("pixel")
    before = [p.detach().clone() for p in nets.g.parameters()]
    with pytest.raises(FloatingPointError, match="loss became nan"):
        train_step(nets, loss, hr * float("nan"), lr, contextlib.nullcontext())
    assert all(torch.equal(a, b) for a, b in zip(before, nets.g.parameters(), strict=True))


def test_cli_without_lpips_prints_what_it_measured(tiny_sets, tmp_path, capsys):
    """--no-eval-lpips: the CLI's closing summary leaves LPIPS out (it used to fail after
    training, on the missing key) and prints the rest."""
    assert main([*tiny_args(tiny_sets, tmp_path / "r"), "--no-eval-lpips"]) == 0
    out = capsys.readouterr().out
    printed = json.loads(out[out.rindex("{\n"):])
    assert "lpips" not in printed and "psnr_y" in printed and printed["out"].endswith("r")


# ---- bad input: a clear message, before anything is written -------------------------------

def test_cli_scale_zero(tiny_sets, tmp_path, capsys):
    assert main([*tiny_args(tiny_sets, tmp_path / "r"), "--scale", "0"]) == 2
    assert "scale must be one of 2, 3, 4, got 0" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("kind", ["empty", "file", "under_file", "unwritable"])
def test_bad_out(tiny_sets, tmp_path, capsys, kind):
    f = tmp_path / "a_file"
    f.write_text("x")
    out = {"empty": "", "file": str(f), "under_file": str(f / "run"),
           "unwritable": "/proc/srlib-cannot-write/run"}[kind]
    assert main(tiny_args(tiny_sets, out)) == 2
    err = capsys.readouterr().err
    expected = {"empty": "--out is empty", "file": "is an existing file",
                "under_file": "which is a file", "unwritable": "cannot be"}[kind]
    assert expected in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("content", [b"", b"\x80\x02garbage", None])
def test_damaged_checkpoint_names_the_file(tiny_sets, tmp_path, capsys, content):
    out = tmp_path / "run"
    out.mkdir()
    if content is None:  # a truncated real checkpoint
        torch.save({"iter": 1, "g": torch.zeros(1000)}, out / "checkpoint.pt")
        data = (out / "checkpoint.pt").read_bytes()
        content = data[: len(data) // 2]
    (out / "checkpoint.pt").write_bytes(content)
    assert main(tiny_args(tiny_sets, out)) == 2
    err = capsys.readouterr().err
    assert "checkpoint.pt is damaged" in err and "delete it to restart" in err


@pytest.mark.parametrize("content,match", [("{not json", "not valid JSON"),
                                           ("[1, 2]", "expected a JSON object")])
def test_bad_config_json_names_the_file(tiny_sets, tmp_path, capsys, content, match):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(content)
    assert main(tiny_args(tiny_sets, out)) == 2
    err = capsys.readouterr().err
    assert str(out / "config.json") in err and match in err


def test_rejected_config_writes_nothing(tiny_sets, tmp_path):
    out = tmp_path / "run"
    c = Config(loss="pixel", upsampler="nearest", iters=2, out=str(out), data=tiny_sets[0],
               test_data=[tiny_sets[1], str(tmp_path / "no_such_set")], batch=2, patch=16,
               nf=8, nb=1, gc=4, device="cpu", progress=False)
    with pytest.raises(FileNotFoundError, match="no_such_set"):
        train(c)  # the missing test set is found before training, not after
    assert not (out / "config.json").exists()
    with pytest.raises(ValueError, match="no training image is at least 128x128 px.*rocket.png"):
        train(dataclasses.replace(c, test_data=[tiny_sets[1]], patch=128))
    assert not (out / "config.json").exists()
    r = train(dataclasses.replace(c, test_data=[tiny_sets[1]]))  # the corrected command runs
    assert r["iters"] == 2


def test_adversarial_loss_alone_warns(tiny_sets, tmp_path):
    c = Config(loss="adv", upsampler="nearest", iters=1, out=str(tmp_path / "r"),
               data=tiny_sets[0], test_data=[tiny_sets[1]], batch=2, patch=16, nf=8, nb=1,
               gc=4, d_nf=8, device="cpu", progress=False)
    with pytest.warns(UserWarning, match="nothing ties the output to its input"):
        train(c)


def test_small_images_are_named(tiny_sets, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    Image.new("RGB", (3, 3)).save(small / "tiny.png")
    c = Config(loss="pixel", upsampler="nearest", iters=1, out=str(tmp_path / "r"),
               data=tiny_sets[0], test_data=[str(small)], batch=2, patch=16, nf=8, nb=1,
               gc=4, device="cpu", progress=False)
    with pytest.raises(ValueError, match=r"tiny.png: 3x3 px is too small to evaluate at x4"):
        train(c)
    with pytest.raises(ValueError, match=r"no training image.*tiny.png"):
        train(dataclasses.replace(c, data=str(small), test_data=[tiny_sets[1]],
                                  out=str(tmp_path / "r2")))


def test_test_images_too_small_for_lpips_are_refused_before_training(tiny_sets, tmp_path,
                                                                     capsys):
    """20 px images evaluate at x4 but LPIPS needs 32: refused at load, by the trainer and
    by the runner, unless eval_lpips is off (baselines included)."""
    from srlib import ablate
    from srlib.train import check_inputs

    small = tmp_path / "small20"
    small.mkdir()
    Image.new("RGB", (20, 20)).save(small / "a.png")
    c = Config(loss="pixel", upsampler="nearest", iters=1, out=str(tmp_path / "r"),
               data=tiny_sets[0], test_data=[str(small)], device="cpu")
    with pytest.raises(ValueError, match=r"a.png: 20x20 px is too small for LPIPS"):
        check_inputs(c)
    check_inputs(dataclasses.replace(c, eval_lpips=False))
    grid = tmp_path / "g.yaml"
    grid.write_text(f"defaults: {{iters: 1, data: {tiny_sets[0]}, test_data: [{small}]}}\n"
                    "variants:\n  pinv: {baseline: pinv}\n  a: {loss: pixel}\n")
    assert ablate.main([str(grid), "--out", str(tmp_path / "out")]) == 2
    assert "a.png: 20x20 px is too small for LPIPS" in capsys.readouterr().err
    assert not (tmp_path / "out" / "runs").exists()  # nothing trained


def test_a_second_process_in_the_same_run_folder_is_refused(tiny_sets, tmp_path, capsys):
    out = tmp_path / "run"
    with runs.locked(out):  # as another training process would hold it
        assert main(tiny_args(tiny_sets, out)) == 2
    assert f"is in use by host {socket.gethostname()} pid {os.getpid()}" in capsys.readouterr().err


def test_validation_curves_are_logged_and_pinv_scores_zero_gain(tiny_sets, tmp_path):
    from srlib.evaluate import Validation

    c = Config(loss="pixel", upsampler="nearest", iters=6, out=str(tmp_path / "r"),
               data=tiny_sets[0], test_data=[tiny_sets[1]], batch=2, patch=16, nf=8, nb=1,
               gc=4, device="cpu", progress=False, val_every=2, val_crop=32, val_images=2)
    train(c)
    import pandas as pd

    log = pd.read_csv(tmp_path / "r" / "validation.csv")
    assert log.iter.tolist() == [2, 4, 6]
    assert set(log.columns) == {"iter", "psnr_y", "lr_psnr", "null_gain_db", "range_gain_db",
                                "null_corr"}
    assert log.notna().all().all() and (log.psnr_y > 5).all()
    assert (log.null_corr.abs() <= 1 + 1e-9).all()
    val = Validation(list_images(tiny_sets[1])[:2], 4, 32)
    op = BicubicDegradation(4)

    class Pinv(torch.nn.Module):
        def forward(self, lr):
            return op.pinv(lr)

    scores = val(Pinv())
    assert abs(scores["null_gain_db"]) < 1e-6 and abs(scores["range_gain_db"]) < 1e-6


def test_discriminator_warm_up_freezes_the_generator():
    nets, loss, hr, lr = _nets("down+0.005*adv")
    g_before = [p.detach().clone() for p in nets.g.parameters()]
    d_before = [p.detach().clone() for p in nets.d.parameters()]
    total, terms, d_loss = train_step(nets, loss, hr, lr, contextlib.nullcontext(),
                                      update_g=False)
    assert all(torch.equal(a, b) for a, b in zip(g_before, nets.g.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(d_before, nets.d.parameters(), strict=True))
    assert set(terms) == {"down", "adv"} and d_loss is not None and torch.isfinite(total)


def test_a_run_from_before_a_field_is_refused_not_guessed(tiny_sets, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(tiny_args(tiny_sets, out)) == 0
    cfg = json.loads((out / "config.json").read_text())
    del cfg["d_warmup"]  # as a run made before the field existed
    (out / "config.json").write_text(json.dumps(cfg))
    assert main(tiny_args(tiny_sets, out)) == 2
    assert "d_warmup: '(absent)' -> 0" in capsys.readouterr().err


def test_r1_penalty_changes_the_critic_step_only_by_its_gradient_term():
    """With r1 > 0 the critic's step differs (the penalty's gradient), the logged d_loss
    is the plain loss (what the health criterion reads) and the generator's step is the
    same."""
    out = {}
    for r1 in (0.0, 10.0):
        nets, loss, hr, lr = _nets("down+0.005*adv")
        _, _, d_loss = train_step(nets, loss, hr, lr, contextlib.nullcontext(), r1=r1)
        out[r1] = (d_loss, [p.detach().clone() for p in nets.d.parameters()],
                   [p.detach().clone() for p in nets.g.parameters()])
    assert torch.allclose(out[0.0][0], out[10.0][0])
    assert any(not torch.allclose(a, b) for a, b in zip(out[0.0][1], out[10.0][1], strict=True))
    assert all(torch.equal(a, b) for a, b in zip(out[0.0][2], out[10.0][2], strict=True))


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("r1", -1.0, "r1 must be a finite number >= 0"),
    ("d_learning_rate", 2.0, "d_learning_rate must be a number in (0, 1)"),
    ("holdout", -1, "holdout must be a non-negative integer"),
    ("val_data", "holdout", "'holdout' needs holdout >= 1"),
])
def test_critic_and_holdout_fields_are_checked(field, value, expected):
    with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        Config(**{field: value}).resolved()


def test_d_learning_rate_defaults_to_the_generators():
    assert Config(learning_rate=3e-4).resolved().d_learning_rate == 3e-4
    assert Config(learning_rate=3e-4, d_learning_rate=1e-5).resolved().d_learning_rate == 1e-5


def test_holdout_images_are_not_trained_on_and_validate(tiny_sets, tmp_path):
    """The last `holdout` training images are left out of the patch stream and are the
    validation crops of val_data 'holdout'; holding out every image is refused."""
    from srlib.train import split_holdout

    paths = list_images(tiny_sets[0], "train")
    train_part, held = split_holdout(paths, 1)
    assert train_part == paths[:-1] and held == paths[-1:]
    with pytest.raises(ValueError, match=f"holdout {len(paths)}: the training set has"):
        split_holdout(paths, len(paths))
    c = Config(loss="pixel", upsampler="nearest", iters=2, out=str(tmp_path / "r"),
               data=tiny_sets[0], test_data=[tiny_sets[1]], batch=2, patch=16, nf=8, nb=1,
               gc=4, device="cpu", progress=False, val_every=2, val_crop=32, val_images=1,
               holdout=1, val_data="holdout")
    train(c)
    import pandas as pd

    log = pd.read_csv(tmp_path / "r" / "validation.csv")
    assert log.iter.tolist() == [2] and log.notna().all().all()
    with pytest.raises(ValueError, match="holdout"):
        train(dataclasses.replace(c, out=str(tmp_path / "r2"), holdout=len(paths)))


def test_null_correlation_is_one_for_an_untrained_network_against_itself(tiny_sets):
    from srlib.evaluate import Validation, null_correlation

    val = Validation(list_images(tiny_sets[1])[:2], 4, 32)
    for upsampler in ("pixelshuffle", "nearest", "deconv", "pre"):
        torch.manual_seed(0)
        g = build_generator("quick", 4, upsampler, nf=8, nb=1, gc=4)
        val.set_reference(g)
        assert val(g)["null_corr"] == pytest.approx(1.0, abs=1e-12)
    a = torch.randn(3, 16, 16)
    assert null_correlation(a, -a) == pytest.approx(-1.0)
    assert abs(null_correlation(a, torch.randn(3, 16, 16))) < 0.2


def test_two_folders_with_one_name_are_refused_at_load(tiny_sets, tmp_path, capsys):
    """Tables and hypotheses pair images by the test set's name."""
    import shutil

    from srlib import ablate

    other = tmp_path / "elsewhere" / Path(tiny_sets[1]).name
    shutil.copytree(tiny_sets[1], other)
    grid = tmp_path / "g.yaml"
    grid.write_text(f"defaults: {{iters: 1, data: {tiny_sets[0]}, test_data: [{tiny_sets[1]}]}}"
                    f"\nvariants:\n  a: {{loss: pixel}}\n  b: {{loss: down, test_data: [{other}]}}"
                    "\n")
    assert ablate.main([str(grid), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"two test sets named '{other.name}'" in err and "rename one folder" in err


@pytest.mark.parametrize("out", ["x" * 256, "a/" + "b/" * 2100])
def test_an_out_the_file_system_would_reject_is_refused_first(tmp_path, out, capsys):
    """A part over 255 bytes, or a path too long once the run's files are under it:
    refused before anything runs (train, the runner, evaluate), not an OSError later."""
    from srlib import ablate, evaluate
    from srlib.train import main as train_main

    path = str(tmp_path / out)
    assert train_main(["--loss", "pixel", "--out", path]) == 2
    assert "--out" in capsys.readouterr().err
    grid = tmp_path / "g.yaml"
    grid.write_text("variants:\n  a: {loss: pixel}\n")
    assert ablate.main([str(grid), "--out", path]) == 2
    assert "--out" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.main(["--model", "bicubic", "--data", "default", "--samples", "1",
                       "--out", path])
    assert "--out" in capsys.readouterr().err


def test_make_lab_starts_as_root_and_passes_lab_args():
    """Jupyter refuses root without --allow-root; containers and SR boxes run as root."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(["make", "-n", "-W", "setup", "lab", "LAB_ARGS=--no-browser --port 8899"],
                         cwd=root, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if "jupyter lab notebooks" in x)
    assert line.endswith("--no-browser --port 8899")
    assert ("--allow-root" in line) == (os.getuid() == 0)
