"""The evaluation's command line beyond the basics: ``--scale`` against a run's own,
``--lr`` (given LR images), ``--save-sr``, ``--twin`` and published RRDBNet checkpoints
(``--model FILE.pth``), each with its refusals. Tiny images, tiny networks: seconds."""

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from srlib import models, runs
from srlib.data import eval_pair, list_images, load_dataset, load_image, to_float
from srlib.evaluate import evaluate, load_upscaler, main, summary
from srlib.metrics import psnr_y, quantize
from srlib.models import RRDBNet, build_generator
from srlib.resize import BicubicDegradation
from srlib.train import Config

OP = BicubicDegradation(4)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tensors this small gain nothing from threads, and beside a busy job on a small
    machine torch's spinning threads made this file 5x slower; restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def hr_set(tmp_path_factory) -> Path:
    """Two HR images of 50 x 63 px: neither side a multiple of 4, so the mod-crop matters."""
    root = tmp_path_factory.mktemp("hr") / "tiny"
    root.mkdir()
    for name, img in load_dataset("default", "test")[:2]:
        crop = img[:, 40:90, 60:123].permute(1, 2, 0).numpy()
        Image.fromarray(crop).save(root / f"{name}.png")
    return root


def write_lr(hr_dir: Path, out: Path) -> Path:
    """LR PNGs made as the evaluation makes them: ``quantize(D(mod-cropped HR))``."""
    out.mkdir(parents=True, exist_ok=True)
    for path in list_images(hr_dir):
        runs.write_png(out / f"{path.stem}.png", eval_pair(load_image(path), OP)[1])
    return out


@pytest.fixture(scope="module")
def lr_set(hr_set, tmp_path_factory) -> Path:
    return write_lr(hr_set, tmp_path_factory.mktemp("lr") / "tiny")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A finished-looking x4 run folder (config.json, generator.pt), untrained weights."""
    out = tmp_path_factory.mktemp("runs") / "run"
    c = dataclasses.asdict(Config(nf=8, nb=1, gc=4, scale=4, skip="bicubic",
                                  out=str(out)).resolved())
    out.mkdir()
    (out / runs.CONFIG).write_text(json.dumps(c))
    torch.manual_seed(0)
    g = build_generator("quick", 4, c["upsampler"], nf=8, nb=1, gc=4)
    torch.save(g.state_dict(), out / runs.GENERATOR)
    return out


def run_json(capsys, *argv) -> dict:
    assert main([*map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def refused(capsys, *argv) -> str:
    """The stderr of a command refused with exit code 2: by argparse (before any work) or
    by the evaluation (``error: ...``)."""
    try:
        code = main(list(map(str, argv)))
    except SystemExit as err:
        code = err.code
    assert code == 2
    return capsys.readouterr().err


# ---- --lr -------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["bicubic", "pinv", "run"])
def test_given_lr_made_by_our_d_gives_todays_numbers(model, hr_set, lr_set, run, capsys):
    model = run if model == "run" else model
    synthesised = run_json(capsys, "--model", model, "--data", hr_set)
    given = run_json(capsys, "--model", model, "--data", hr_set, "--lr", lr_set)
    assert given.pop("lr_dir") == str(lr_set)
    assert given == synthesised and synthesised["n_images"] == 2


def test_given_lr_is_what_lr_psnr_compares_with(hr_set, lr_set, tmp_path, capsys):
    shifted = tmp_path / "lr"
    shutil.copytree(lr_set, shifted)
    for path in shifted.iterdir():  # another LR: one grey level brighter
        img = to_float(load_image(path))
        runs.write_png(path, (img + 1 / 255).clamp(0, 1))
    ours = run_json(capsys, "--model", "pinv", "--data", hr_set)
    given = run_json(capsys, "--model", "pinv", "--data", hr_set, "--lr", shifted)
    assert ours["lr_psnr"] > 40 and given["lr_psnr"] > 40  # pinv explains its own LR
    assert given["psnr_y"] != ours["psnr_y"]  # and the SR came from the given LR


def test_lr_names_must_match_the_hr_images(hr_set, lr_set, tmp_path, capsys):
    lr = tmp_path / "lr"
    shutil.copytree(lr_set, lr)
    (lr / "astronaut.png").rename(lr / "astro.png")
    err = refused(capsys, "--model", "bicubic", "--data", hr_set, "--lr", lr)
    assert f"--lr {lr}: its images do not match the HR images of {hr_set}" in err
    assert "no LR image for astronaut; no HR image for astro" in err
    (lr / "astro.png").rename(lr / "astronaut.png")
    shutil.copy(lr / "chelsea.png", lr / "chelsea.bmp")
    err = refused(capsys, "--model", "bicubic", "--data", hr_set, "--lr", lr)
    assert "LR images share a name (chelsea" in err
    err = refused(capsys, "--model", "bicubic", "--data", hr_set, "--lr", tmp_path / "none")
    assert "--lr" in err and "not a folder" in err


def test_lr_size_must_be_the_mod_cropped_hr_size_over_s(hr_set, lr_set, tmp_path, capsys):
    lr = tmp_path / "lr"
    shutil.copytree(lr_set, lr)
    # 13 x 16: 50 x 63 / 4 rounded up, as an imresize without the mod-crop gives
    big = F.pad(to_float(load_image(lr / "chelsea.png"))[None], (0, 1, 0, 1), mode="replicate")
    runs.write_png(lr / "chelsea.png", big[0])
    err = refused(capsys, "--model", "bicubic", "--data", hr_set, "--lr", lr)
    assert (f"{(lr / 'chelsea.png').absolute()}: LR image of 13x16 px, expected 12x15 px: its "
            f"HR image {hr_set / 'chelsea.png'} is 50x63 px, 48x60 once mod-cropped") in err


# ---- --scale ------------------------------------------------------------------------------

def test_scale_that_disagrees_with_a_run_is_refused(hr_set, run, capsys):
    err = refused(capsys, "--model", run, "--data", hr_set, "--scale", "2")
    assert f"--scale 2 disagrees with the run {run}, trained at x4" in err
    assert run_json(capsys, "--model", run, "--data", hr_set, "--scale", "4")["scale"] == 4


# ---- --save-sr ----------------------------------------------------------------------------

@pytest.mark.parametrize("twin", [None, "+P"])
def test_save_sr_writes_the_measured_images(twin, hr_set, run, tmp_path, capsys):
    out = tmp_path / "sr" / "new"  # created, parents too
    r = run_json(capsys, "--model", run, "--data", hr_set, "--save-sr", out,
                 *(["--twin", twin] if twin else []))
    assert r["sr_dir"] == str(out / "tiny")
    psnrs = []
    for path in list_images(hr_set):
        saved = to_float(load_image(out / "tiny" / f"{path.stem}.png"))
        hr = eval_pair(load_image(path), OP)[0]
        psnrs.append(float(psnr_y(saved, hr, crop=4)))
    assert sum(psnrs) / len(psnrs) == pytest.approx(r["psnr_y"], abs=1e-12)


def test_save_sr_of_bicubic_is_the_quantised_upsampling(hr_set, tmp_path, capsys):
    run_json(capsys, "--model", "bicubic", "--data", hr_set, "--save-sr", tmp_path)
    for path in list_images(hr_set):
        lr = eval_pair(load_image(path), OP)[1]
        saved = to_float(load_image(tmp_path / "tiny" / f"{path.stem}.png"))
        assert torch.equal(saved, quantize(OP.up(lr[None])[0]))


def test_save_sr_refuses_a_file_and_the_input_folders(hr_set, lr_set, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    err = refused(capsys, "--model", "bicubic", "--data", hr_set, "--save-sr", tmp_path / "file")
    assert f"--save-sr {tmp_path / 'file'} is an existing file, not a folder" in err
    hr = tmp_path / "hr" / "tiny"
    shutil.copytree(hr_set, hr)
    before = {p.name: p.read_bytes() for p in hr.iterdir()}
    err = refused(capsys, "--model", "bicubic", "--data", hr, "--save-sr", hr.parent)
    assert "the folder of the input images, and overwrite them" in err
    assert {p.name: p.read_bytes() for p in hr.iterdir()} == before
    err = refused(capsys, "--model", "bicubic", "--data", hr_set, "--lr", lr_set,
                  "--save-sr", lr_set.parent)
    assert "overwrite them" in err


# ---- --twin -------------------------------------------------------------------------------

@pytest.mark.parametrize("twin", ["+P", "+B"])
def test_twin_measures_the_projected_outputs(twin, hr_set, lr_set, run, capsys):
    r = run_json(capsys, "--model", run, "--data", hr_set, "--twin", twin)
    assert r["model"] == f"{run} {twin}"
    g = runs.load_generator(run)
    own, tables = evaluate(g, str(hr_set), 4, twins={twin: None})  # the runner's own function
    assert r == summary(tables[twin], str(hr_set), 4, f"{run} {twin}")
    # consistent with its LR, up to 8-bit rounding
    assert r["lr_psnr"] > own["lr_psnr"].mean() + 5
    # projected onto the given LR: the same numbers when it is the LR we make
    given = run_json(capsys, "--model", run, "--data", hr_set, "--twin", twin, "--lr", lr_set)
    assert given.pop("lr_dir") == str(lr_set) and given == r


def test_twin_with_samples_is_refused(run, tmp_path, capsys):
    err = refused(capsys, "--model", run, "--twin", "+P", "--samples", "2", "--out", tmp_path)
    assert "--twin +P with --samples" in err
    with pytest.raises(SystemExit):
        main(["--model", "bicubic", "--twin", "+X"])
    assert "invalid choice: '+X'" in capsys.readouterr().err


# ---- published RRDBNet checkpoints ---------------------------------------------------------

# Each layout's names, written out from its arch file: trunk conv, the conv after the trunk,
# the two upsampling convs, the HR conv (conv_first and conv_last as here).
LAYOUTS = {
    "ESRGAN": ("RRDB_trunk.{i}.RDB{j}.conv{k}", "trunk_conv", "upconv1", "upconv2", "HRconv"),
    "BasicSR": ("body.{i}.rdb{j}.conv{k}", "conv_body", "conv_up1", "conv_up2", "conv_hr"),
}


def source_net(seed: int = 0) -> RRDBNet:
    """A small x4 RRDBNet as ESRGAN's (nearest upsampler, no skip), every weight and bias
    perturbed so that a misplaced one shows."""
    torch.manual_seed(seed)
    g = RRDBNet(4, "nearest", nf=8, nb=2, gc=4, skip="none")
    with torch.no_grad():
        for p in g.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return g.eval()


def in_layout(g: RRDBNet, layout: str) -> dict[str, torch.Tensor]:
    rdb, body, up1, up2, hr = LAYOUTS[layout]
    names = {"conv_first": "conv_first", "conv_body": body, "upsample.1": up1,
             "upsample.4": up2, "conv_hr": hr, "conv_last": "conv_last"}
    names |= {f"body.{i}.blocks.{j}.convs.{k}": rdb.format(i=i, j=j + 1, k=k + 1)
              for i in range(len(g.body)) for j in range(3) for k in range(5)}
    return {f"{names[k.rsplit('.', 1)[0]]}.{k.rsplit('.', 1)[1]}": v.clone()
            for k, v in g.state_dict().items()}


def esrgan_forward(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """xinntao/ESRGAN's RRDBNet_arch.py forward pass, written out on its own key names."""
    def conv(name, t):
        return F.conv2d(t, sd[f"{name}.weight"], sd[f"{name}.bias"], padding=1)

    def lrelu(t):
        return F.leaky_relu(t, 0.2)

    fea = conv("conv_first", x)
    trunk = fea
    for i in range(len({k.split(".")[1] for k in sd if k.startswith("RRDB_trunk.")})):
        rrdb_in = trunk
        for j in (1, 2, 3):
            feats = [trunk]
            for k in (1, 2, 3, 4):
                feats.append(lrelu(conv(f"RRDB_trunk.{i}.RDB{j}.conv{k}", torch.cat(feats, 1))))
            trunk = conv(f"RRDB_trunk.{i}.RDB{j}.conv5", torch.cat(feats, 1)) * 0.2 + trunk
        trunk = trunk * 0.2 + rrdb_in
    fea = fea + conv("trunk_conv", trunk)
    fea = lrelu(conv("upconv1", F.interpolate(fea, scale_factor=2, mode="nearest")))
    fea = lrelu(conv("upconv2", F.interpolate(fea, scale_factor=2, mode="nearest")))
    return conv("conv_last", lrelu(conv("HRconv", fea)))


def test_the_project_rrdbnet_is_esrgans_network():
    src = source_net()
    x = torch.rand(1, 3, 12, 15)
    with torch.no_grad():
        assert torch.allclose(src(x), esrgan_forward(in_layout(src, "ESRGAN"), x), atol=1e-6)


WRAPPED = {
    "ESRGAN": lambda sd, _: sd,
    "BasicSR": lambda sd, _: sd,
    "BasicSR params": lambda sd, _: {"params": sd},
    # both: the moving average is the one loaded
    "BasicSR params_ema": lambda sd, other: {"params": other, "params_ema": sd},
    "BasicSR DataParallel": lambda sd, _: {f"module.{k}": v for k, v in sd.items()},
}


@pytest.mark.parametrize("kind", WRAPPED)
def test_a_published_checkpoint_loads_exactly(kind, tmp_path):
    layout = kind.split()[0]
    src, other = source_net(0), source_net(1)
    path = tmp_path / "net.pth"
    torch.save(WRAPPED[kind](in_layout(src, layout), in_layout(other, layout)), path)
    g, scale, about = load_upscaler(str(path), None, "cpu")  # what --model FILE.pth calls
    assert (scale, about) == (4, {"layout": layout, "nf": 8, "nb": 2, "gc": 4})
    x = torch.rand(2, 3, 12, 15)
    with torch.no_grad():
        assert torch.equal(g(x), src(x))


def test_a_checkpoint_on_the_command_line(hr_set, tmp_path, capsys):
    src, path = source_net(), tmp_path / "net.pth"
    torch.save({"params_ema": in_layout(src, "BasicSR")}, path)
    r = run_json(capsys, "--model", path, "--data", hr_set)
    assert r.pop("checkpoint") == {"layout": "BasicSR", "nf": 8, "nb": 2, "gc": 4}
    assert r == summary(evaluate(src, str(hr_set), 4)[0], str(hr_set), 4, str(path))
    assert main(["--model", str(path), "--data", str(hr_set)]) == 0
    assert "BasicSR checkpoint, nf=8 nb=2 gc=4" in capsys.readouterr().out


def _esrgan() -> dict:
    return in_layout(source_net(), "ESRGAN")


def _renamed_block(sd: dict, old: str, new: str) -> dict:
    return {k.replace(old, new): v for k, v in sd.items()}


BAD = {  # contents -> what the message says after the file's name
    "a list": (lambda: list(_esrgan().values()), "holds a list, not a state dict"),
    "empty": (lambda: {}, "holds an empty dict, not a state dict"),
    "params of a list": (lambda: {"params": [torch.zeros(1)]},
                         "holds under 'params' a list, not a state dict"),
    "not tensors": (lambda: {"conv_first.weight": torch.zeros(1), "iter": 5},
                    "holds a dict whose entry 'iter' is of type int, not a state dict"),
    "no layout": (lambda: {"foo.weight": torch.zeros(1), "bar.bias": torch.zeros(1)},
                  "has keys of no RRDBNet layout known here (foo.weight, bar.bias); expected "
                  "ESRGAN's layout (conv_first, RRDB_trunk.0.RDB1.conv1, trunk_conv, upconv1, "
                  "upconv2, HRconv, conv_last) or BasicSR's layout (conv_first, "
                  "body.0.rdb1.conv1, conv_body, conv_up1, conv_up2, conv_hr, conv_last)"),
    "unknown key": (lambda: _esrgan() | {"extra.weight": torch.zeros(1)},
                    "has unknown keys extra.weight; expected ESRGAN's layout"),
    "missing key": (lambda: {k: v for k, v in _esrgan().items()
                             if k != "RRDB_trunk.1.RDB3.conv5.bias"},
                    "lacks RRDB_trunk.1.RDB3.conv5.bias; expected ESRGAN's layout"),
    "a block missing": (lambda: _renamed_block(_esrgan(), "RRDB_trunk.1.", "RRDB_trunk.2."),
                        "lacks trunk blocks 1 of RRDB_trunk.0 to RRDB_trunk.2"),
    "x2 of BasicSR": (lambda: in_layout(source_net(), "BasicSR")
                      | {"conv_first.weight": torch.zeros(8, 12, 3, 3)},
                      "has conv_first taking 12 input channels (BasicSR's x2 RRDBNet), "
                      "expected 3 (RGB): only x4 RRDBNet checkpoints are supported"),
    "a shape": (lambda: _esrgan() | {"conv_last.weight": torch.zeros(4, 8, 3, 3)},
                "has conv_last.weight of shape (4, 8, 3, 3), expected (3, 8, 3, 3) for nf=8, "
                "nb=2, gc=4"),
    "a whole module": (source_net, "is not a PyTorch state dict that loads as data (it holds "
                                   "the Python object srlib.models.RRDBNet, which loading "
                                   "would run)"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_file_that_is_not_a_published_rrdbnet_is_refused(case, tmp_path, capsys):
    contents, message = BAD[case]
    path = tmp_path / "net.pth"
    torch.save(contents(), path)
    err = refused(capsys, "--model", path)
    assert f"error: {path} {message}" in err


def test_other_files_and_scales_are_refused(tmp_path, capsys):
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    err = refused(capsys, "--model", tmp_path / "notes.pth")
    assert f"{tmp_path / 'notes.pth'} is not a PyTorch state dict that loads as data (" in err
    err = refused(capsys, "--model", tmp_path / "missing.pth")
    assert (f"--model '{tmp_path / 'missing.pth'}': no such file or folder; expected one of "
            "bicubic, pinv or the folder of a trained run, or a published x4 RRDBNet") in err
    torch.save(_esrgan(), tmp_path / "net.pth")
    err = refused(capsys, "--model", tmp_path / "net.pth", "--scale", "2")
    assert (f"--scale 2 disagrees with the checkpoint {tmp_path / 'net.pth'}: published "
            "RRDBNet checkpoints (ESRGAN's, BasicSR's) are loaded at x4 only") in err


def test_an_upsampler_that_is_not_esrgans_cannot_hold_a_checkpoint(tmp_path, capsys,
                                                                    monkeypatch):
    torch.save(_esrgan(), tmp_path / "net.pth")
    monkeypatch.setitem(models.UPSAMPLERS, "nearest", models.UPSAMPLERS["pixelshuffle"])
    err = refused(capsys, "--model", tmp_path / "net.pth")
    assert "cannot be held exactly here: this project's RRDBNet upsampler 'nearest'" in err
