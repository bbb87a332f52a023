"""Consistency by construction (``consistency: project``) and the loss's operator
(``loss_operator``): the generator, the config, old run folders, a short training."""

import dataclasses
import json
import warnings

import pytest
import torch
from conftest import write_small_sets

from srlib import runs
from srlib.losses import LOSS_OPERATORS
from srlib.models import CONSISTENCY, SKIPS, UPSAMPLERS, RRDBNet, build_generator
from srlib.resize import BicubicDegradation
from srlib.train import Config, check_inputs, train


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory) -> tuple[str, str]:
    return write_small_sets(tmp_path_factory.mktemp("data"))


def tiny(scale: int = 4, upsampler: str = "nearest", skip: str | None = None,
         consistency: str = "none") -> RRDBNet:
    return RRDBNet(scale=scale, upsampler=upsampler, nf=8, nb=1, gc=4, skip=skip,
                   consistency=consistency)


def tiny_config(sets, out, **kw) -> Config:
    return Config(**{"loss": "pixel", "upsampler": "nearest", "iters": 2, "out": str(out),
                     "data": sets[0], "test_data": [sets[1]], "batch": 2, "patch": 16,
                     "nf": 8, "nb": 1, "gc": 4, "d_nf": 8, "device": "cpu",
                     "progress": False} | kw)


# ---- the generator ------------------------------------------------------------------------

@pytest.mark.parametrize("skip", SKIPS)
@pytest.mark.parametrize("upsampler", UPSAMPLERS)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_projected_output_is_consistent(scale, upsampler, skip):
    torch.manual_seed(0)
    op = BicubicDegradation(scale)
    lr = torch.rand(2, 3, 8, 7)
    with torch.no_grad():
        raw = tiny(scale, upsampler, skip)(lr)
        torch.manual_seed(0)
        out = tiny(scale, upsampler, skip, "project")(lr)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 8 * scale, 7 * scale)
    # measured: max |D(SR) - LR| <= 1.8e-7 for every upsampler, skip and scale
    assert (op.down(out) - lr).abs().max() < 1e-5
    if skip != "pinv":  # the check can fail: the unprojected output is not consistent
        assert (op.down(raw) - lr).abs().max() > 1e-3


@pytest.mark.parametrize("upsampler", UPSAMPLERS)
def test_none_is_todays_output_and_project_is_p_of_it(upsampler):
    lr = torch.rand(1, 3, 8, 8)
    gens = {}
    for c in (None, *CONSISTENCY):
        torch.manual_seed(1)  # no random numbers drawn for consistency: same weights
        gens[c] = tiny(3, upsampler) if c is None else tiny(3, upsampler, consistency=c)
    keys = {k: tuple(g.state_dict()) for k, g in gens.items()}
    assert len(set(keys.values())) == 1
    for k in ("none", "project"):
        assert all(torch.equal(a, b) for a, b in zip(gens[None].state_dict().values(),
                                                     gens[k].state_dict().values(), strict=True))
    with torch.no_grad():
        today, none, proj = gens[None](lr), gens["none"](lr), gens["project"](lr)
    assert gens[None].consistency == "none" and torch.equal(today, none)
    want = BicubicDegradation(3).project(today.double(), lr.double())
    torch.testing.assert_close(proj.double(), want, rtol=0, atol=1e-6)
    gens["project"].load_state_dict(gens["none"].state_dict())  # no weights of its own


@pytest.mark.parametrize("upsampler", UPSAMPLERS)
def test_gradients_flow_through_the_projection(upsampler):
    torch.manual_seed(0)
    g = tiny(4, upsampler, consistency="project")
    lr = torch.rand(2, 3, 8, 8)
    out = g(lr)
    (out - torch.rand_like(out)).square().mean().backward()
    grads = dict(g.named_parameters())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in grads.values())
    # conv_last.bias adds a constant per channel: constants lie in D's range (D^+ D 1 == 1),
    # so P removes it and its gradient is zero up to rounding; every other parameter acts
    live = {n: p.grad.abs().max().item() for n, p in grads.items() if n != "conv_last.bias"}
    assert min(live.values()) > 0, {n: v for n, v in live.items() if v == 0}
    # measured: conv_last.weight 1.5e-4 to 1.2e-3, conv_last.bias <= 7.4e-10
    assert grads["conv_last.weight"].grad.abs().max() > 1e-5
    assert grads["conv_last.bias"].grad.abs().max() < 1e-7


def test_projection_runs_in_float64_outside_bf16_autocast(monkeypatch):
    seen = []
    project = BicubicDegradation.project

    def spy(self, sr, lr):
        seen.append((sr.dtype, lr.dtype, torch.is_autocast_enabled("cpu")))
        return project(self, sr, lr)

    monkeypatch.setattr(BicubicDegradation, "project", spy)
    torch.manual_seed(0)
    g = tiny(2, "pixelshuffle", consistency="project")
    lr = torch.rand(1, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")
        out = g(lr)
    assert seen == [(torch.float64, torch.float64, False)]
    assert out.dtype == torch.float32
    assert (BicubicDegradation(2).down(out) - lr).abs().max() < 1e-5


CHOICES = ", ".join(CONSISTENCY)  # read at collection, as the message reads the table


def test_unknown_consistency_is_refused():
    with pytest.raises(ValueError, match=f"consistency must be one of {CHOICES}, got 'cem'"):
        tiny(consistency="cem")
    with pytest.raises(ValueError, match=f"consistency must be one of {CHOICES}"):
        build_generator("quick", 2, "nearest", consistency="Project")
    assert build_generator("quick", 2, "pre", consistency="project", nf=8).consistency \
        == "project"
    with pytest.raises(ValueError, match=f"consistency must be one of {CHOICES}, got 'x'"):
        Config(consistency="x").resolved()
    with pytest.raises(ValueError, match=f"loss_operator must be one of "
                                         f"{', '.join(LOSS_OPERATORS)}, got 'no-such-op'"):
        Config(loss_operator="no-such-op").resolved()


# ---- a finished-looking run folder --------------------------------------------------------

def fake_run(out, **kw) -> dict:
    """A finished-looking run folder (config.json, generator.pt) without training; ``kw``
    overrides config fields (a value None deletes the key)."""
    c = dataclasses.asdict(Config(nf=8, nb=1, gc=4, scale=2, out=str(out)).resolved())
    for k, v in kw.items():
        if v is None:
            del c[k]
        else:
            c[k] = v
    out.mkdir(parents=True)
    (out / runs.CONFIG).write_text(json.dumps(c))
    torch.manual_seed(0)
    g = build_generator("quick", 2, c["upsampler"], nf=8, nb=1, gc=4)
    torch.save(g.state_dict(), out / runs.GENERATOR)
    return c


# ---- check_inputs: init_from and the warnings --------------------------------------------

def caught(c: Config) -> list[str]:
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        check_inputs(c.resolved())
    return [str(x.message) for x in w]


def test_fine_tune_from_an_unprojected_run_into_projection(tiny_sets, tmp_path):
    src = tmp_path / "src"
    fake_run(src, consistency="none")
    c = tiny_config(tiny_sets, tmp_path / "r", scale=2, patch=16, consistency="project",
                    init_from=str(src))
    assert caught(c) == []  # consistency is not part of the architecture check
    with pytest.raises(ValueError, match="its generator differs"):
        check_inputs(dataclasses.replace(c, nf=16).resolved())


@pytest.mark.parametrize("loss,consistency,operator,expected", [
    ("down", "project", "matlab", "the down term is zero by construction"),
    ("0.01*pixel+down", "project", "matlab", "the down term is zero by construction"),
    ("down", "project", "bilinear", None),  # D' != D: D'(SR) - LR is not zero
    ("down", "none", "matlab", None),
    ("adv", "none", "matlab", "nothing ties the output to its input"),
    ("adv", "project", "matlab", None),  # the projection ties it
    ("pixel", "none", "gauss", "loss_operator 'gauss' is unused"),
])
def test_loss_warnings(tiny_sets, tmp_path, loss, consistency, operator, expected):
    got = caught(tiny_config(tiny_sets, tmp_path / "r", loss=loss, consistency=consistency,
                             loss_operator=operator))
    if expected is None:
        assert got == []
    else:
        assert len(got) == 1 and expected in got[0], got


# ---- training --------------------------------------------------------------------------

def test_unknown_loss_operator_is_refused_before_training(tiny_sets, tmp_path):
    out = tmp_path / "r"
    with pytest.raises(ValueError, match="loss_operator must be one of "
                                         f"{', '.join(LOSS_OPERATORS)}"):
        train(tiny_config(tiny_sets, out, loss="down", loss_operator="Bilinear"))
    assert not out.exists() or not (out / runs.CONFIG).exists()


def test_projected_training_with_a_bilinear_loss_operator(tiny_sets, tmp_path):
    import pandas as pd

    out = tmp_path / "r"
    r = train(tiny_config(tiny_sets, out, loss="pixel+down", loss_operator="bilinear",
                          consistency="project"))
    assert r["iters"] == 2
    cfg = runs.read_config(out)
    assert (cfg["loss_operator"], cfg["consistency"]) == ("bilinear", "project")
    # the loss used D' = bilinear: D'(SR) != LR although D(SR) == LR by construction
    assert (pd.read_csv(out / runs.LOSSES)["down"] > 1e-6).all()
    g = runs.load_generator(out)
    assert g.consistency == "project"
    lr = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert (BicubicDegradation(4).down(g(lr)) - lr).abs().max() < 1e-5


def test_projection_onto_the_box_keeps_consistency_after_clipping():
    """Dykstra's projection onto {D x = LR} within [0, 1]: exactly consistent, in the box
    to 1e-6, closer to SR than any other such point tried, and consistent after saving."""
    from srlib.metrics import lr_psnr, quantize
    from srlib.models import CONSISTENCY

    op = BicubicDegradation(4)
    g = torch.Generator().manual_seed(1)
    hr = torch.rand(1, 3, 64, 64, generator=g).double()
    lr = quantize(op.down(hr))
    sr = hr + 0.3 * torch.randn(hr.shape, generator=g, dtype=torch.float64)
    plain = op.project(sr, lr)
    boxed, info = op.project_box(sr, lr, iters=500)
    assert float(((plain < 0) | (plain > 1)).double().mean()) > 0.05  # plain P leaves the box
    assert info["box_violation"] <= 1e-6 and info["lr_error"] < 1e-12 and info["iters"] < 500
    # the closest point: nearer to sr than where plain alternating projections end, which
    # is also a point of the intersection
    other = sr
    for _ in range(500):
        other = op.project(other.clamp(0, 1), lr)
    assert (other - other.clamp(0, 1)).abs().max() < 1e-4
    assert (boxed - sr).norm() < (other - sr).norm()
    saved = quantize(boxed.float())
    assert lr_psnr(saved, lr.float(), op) > lr_psnr(quantize(plain.float()), lr.float(), op) + 20
    # the training path: forward value boxed, gradient that of the plain projection
    x = sr.float().requires_grad_()
    out = CONSISTENCY["project-box"](op, x, lr.float())
    assert (out.detach() - boxed.float()).abs().max() < 1e-3
    out.sum().backward()
    ref = sr.float().requires_grad_()
    CONSISTENCY["project"](op, ref, lr.float()).sum().backward()
    torch.testing.assert_close(x.grad, ref.grad)


# ---- project-box and the rounding that keeps consistency ------------------------------

@pytest.mark.parametrize("upsampler", UPSAMPLERS)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_project_box_generator_ends_in_the_box_and_consistent(scale, upsampler):
    """A project-box generator's output is P_box of its raw output: consistent with LR to
    float64 precision and inside [0, 1] (Dykstra's tolerance, 1e-6), for every upsampler
    and scale; its gradient reaches the network's weights."""
    from srlib.models import BOX_ITERS

    op = BicubicDegradation(scale)
    g = torch.Generator().manual_seed(scale)
    # sharp edges (blocks of 0.1 and 0.9), so that plain P overshoots; the HR strictly
    # inside the box, so that the intersection has an inside (measured: 16 to 25 rounds)
    hr = 0.1 + 0.8 * (torch.rand(1, 3, 6, 5, generator=g) > 0.5).double()
    lr = op.down(hr.repeat_interleave(2 * scale, -1).repeat_interleave(2 * scale, -2))
    torch.manual_seed(0)
    net = tiny(scale, upsampler, consistency="project-box")
    out = net(lr.float())
    with torch.no_grad():
        torch.manual_seed(0)
        raw = tiny(scale, upsampler)(lr.float())
        boxed, info = op.project_box(raw.double(), lr, iters=BOX_ITERS)
    assert info["lr_error"] < 1e-12 and info["box_violation"] <= 1e-6
    plain = op.project(raw.double(), lr)  # the check can fail: plain P leaves the box
    assert float(((plain < 0) | (plain > 1)).double().mean()) > 0.01
    torch.testing.assert_close(out.detach(), boxed.float())
    out.pow(2).mean().backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert grads and any(float(gr.abs().max()) > 0 for gr in grads)


def test_project_box_gradient_never_pushes_outside_the_box():
    """project-box's straight-through gradient is the projection's, except that no
    component moves a value already outside [0, 1] further out (the plain projection's
    gradient did, without limit: the pilot's runaway samples); components that move it
    back toward the box pass."""
    from srlib.models import project64, project_box64

    op = BicubicDegradation(4)
    lr = torch.rand(1, 3, 4, 4, dtype=torch.float64) * 0.8 + 0.1
    sr = (torch.rand(1, 3, 16, 16) * 3 - 1).requires_grad_(True)  # a third inside [0, 1]
    weights = torch.randn(1, 3, 16, 16)
    out = project_box64(op, sr, lr)
    (out * weights).sum().backward()
    ours = sr.grad.clone()
    sr.grad = None
    (project64(op, sr, lr) * weights).sum().backward()
    plain, x = sr.grad, sr.detach()
    outward = ((x < 0) & (plain > 0)) | ((x > 1) & (plain < 0))
    assert 0 < float(outward.double().mean()) < 0.5  # the check can fail both ways
    assert float(ours[outward].abs().max()) == 0.0
    torch.testing.assert_close(ours[~outward], plain[~outward])


def _noisy_consistent(seed: int, side: int = 64, scale: int = 4):
    op = BicubicDegradation(scale)
    g = torch.Generator().manual_seed(seed)
    hr = torch.rand(3, side, side, generator=g).double()
    hr = torch.nn.functional.avg_pool2d(hr[None], 3, 1, 1)[0]  # some spatial correlation
    hr = torch.floor(hr * 255 + 0.5) / 255
    lr = torch.floor(op.down(hr) * 255 + 0.5) / 255
    sr = hr + 0.1 * torch.randn(hr.shape, generator=g, dtype=torch.float64)
    return op, hr, lr, op.project_box(sr, lr, iters=300)[0]


@pytest.mark.parametrize("seed", range(4))
def test_consistent_rounding_is_never_less_consistent_than_plain_rounding(seed):
    """On each fixture: every value on the 8-bit grid and within one level of the input;
    LR-PSNR (ours, and the challenge's) at least that of plain rounding; ours higher."""
    from srlib.metrics import lr_psnr, quantize
    from srlib.ntire import lr_psnr_ntire_float

    op, hr, lr, x = _noisy_consistent(seed)
    plain = quantize(x)
    ours = op.round_consistent(x, lr)
    assert torch.equal(torch.floor(ours * 255 + 0.5), ours * 255) or \
        (ours * 255 - torch.round(ours * 255)).abs().max() < 1e-9
    assert (ours - x.clamp(0, 1)).abs().max() <= 1 / 255 + 1e-12
    p_plain, p_ours = float(lr_psnr(plain, lr, op)), float(lr_psnr(ours, lr, op))
    assert p_ours > p_plain + 3  # measured: about +7 dB at two sweeps
    assert lr_psnr_ntire_float(ours.float(), hr.float(), 4) >= \
        lr_psnr_ntire_float(plain.float(), hr.float(), 4)


def test_project_box_runs_are_saved_with_consistent_rounding(tiny_sets, tmp_path):
    """evaluate() saves a project-box generator's outputs with the consistent rounding (its
    PNGs and metrics), any other with plain rounding."""
    from srlib.data import eval_pair, list_images, load_image
    from srlib.evaluate import evaluate, rounding_of
    from srlib.metrics import lr_psnr, quantize

    torch.manual_seed(0)
    boxed = tiny(consistency="project-box").eval()
    assert rounding_of(boxed) == "consistent" and rounding_of(tiny().eval()) == "plain"
    assert rounding_of(BicubicDegradation(4).pinv) == "plain"
    table, _ = evaluate(boxed, tiny_sets[1], 4, save_dir=tmp_path / "png")
    op = BicubicDegradation(4)
    for path, row in zip(list_images(tiny_sets[1]), table.itertuples(), strict=True):
        hr, lr = eval_pair(load_image(path), op)
        with torch.no_grad():
            sr = boxed(lr[None])[0]
        plain = float(lr_psnr(quantize(sr), lr, op))
        assert row.lr_psnr >= plain
        png = load_image(tmp_path / "png" / f"{path.stem}.png").float() / 255
        assert abs(float(lr_psnr(png, lr, op)) - row.lr_psnr) < 1e-6


def test_the_box_twin_is_evaluated_beside_the_plain_one(tiny_sets, tmp_path):
    """twins [+P, +B]: both twins' tables in metrics.json and in their folders; the result
    folder collects v+P and v+B rows and per-image tables; the +B outputs are saved in
    [0, 1] with consistent rounding, so their LR-PSNR is at least the +P twin's on every
    image; an unknown twin is refused naming the choices."""
    import yaml

    from srlib import results as rs
    from srlib.grid import load_grid

    with pytest.raises(ValueError, match=r"twins must be a list of distinct twins from \+P, \+B"):
        Config(twins=["+X"]).resolved()
    grid_file = tmp_path / "g.yaml"
    grid_file.write_text(yaml.safe_dump({"variants": {"v": {"loss": "pixel"}},
                                         "defaults": {"twins": ["+P", "+B"],
                                                      "test_data": [str(tiny_sets[1])]}}))
    grid = load_grid(grid_file)
    root = tmp_path / "out"
    out = runs.run_dir(root, "v", 0)
    m = train(tiny_config(tiny_sets, out, twins=["+P", "+B"], iters=4))
    assert set(m["twins"]) == {"+P", "+B"}
    assert (out / "projected-box" / "eval").is_dir() and (out / "projected" / "eval").is_dir()
    table = rs.write(root, grid, [0])
    assert set(table.variant) == {"v", "v+P", "v+B"}
    per = rs.read_per_image(root).set_index(["variant", "image"])
    plain, box = per.loc["v+P"], per.loc["v+B"]
    assert (box.lr_psnr >= plain.lr_psnr - 1e-9).all() and (box.clipped <= 1e-3).all()
