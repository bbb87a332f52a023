"""Generators, discriminators and the losses of the study."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from srlib import losses, models, runs
from srlib.losses import (
    LOSS_OPERATORS,
    TERMS,
    Loss,
    Term,
    adversarial_d,
    adversarial_g,
    loss_operator,
    parse_spec,
)
from srlib.models import (
    GENERATOR_FIELDS,
    PRESETS,
    SKIPS,
    UPSAMPLERS,
    Knob,
    RRDBNet,
    UNetDiscriminator,
    VGGDiscriminator,
    build_generator,
    default_skip,
)
from srlib.resize import BicubicDegradation


def tiny(scale: int = 4, upsampler: str = "nearest", skip: str | None = None) -> RRDBNet:
    return RRDBNet(scale=scale, upsampler=upsampler, nf=8, nb=1, gc=4, skip=skip)


def zero_last(g: RRDBNet) -> RRDBNet:
    """The network's own contribution set to 0: the output is the skip alone."""
    nn.init.zeros_(g.conv_last.weight)
    nn.init.zeros_(g.conv_last.bias)
    return g


def is_nearest_upsampled(x: torch.Tensor, r: int) -> bool:
    """Each r x r block of ``(..., r*h, r*w)`` constant: x == nearest x r of its corners."""
    return torch.equal(x, F.interpolate(x[..., ::r, ::r], scale_factor=r, mode="nearest"))


@pytest.mark.parametrize("upsampler", UPSAMPLERS)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_generator_shapes(upsampler, scale):
    g = tiny(scale, upsampler)
    lr = torch.rand(2, 3, 7, 9)
    assert g(lr).shape == (2, 3, 7 * scale, 9 * scale)


def test_pre_upsampling_starts_from_bicubic():
    g = tiny(4, "pre")
    torch.nn.init.zeros_(g.conv_last.weight)
    torch.nn.init.zeros_(g.conv_last.bias)
    lr = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(g(lr), BicubicDegradation(4).up(lr))


@pytest.mark.parametrize("r", [2, 3])
def test_icnr_step_is_nearest_after_a_conv(r):
    torch.manual_seed(0)
    feat = torch.randn(2, 8, 5, 6)
    plain = nn.Sequential(*UPSAMPLERS["pixelshuffle"](8, r))
    assert not is_nearest_upsampled(plain(feat), r)  # the check can fail
    icnr = nn.Sequential(*UPSAMPLERS["pixelshuffle-icnr"](8, r))
    out = icnr(feat)
    assert out.shape == (2, 8, 5 * r, 6 * r) and is_nearest_upsampled(out, r)
    conv = icnr[0]  # its first sub-pixel kernels, applied at LR size, then nearest x r
    first = F.conv2d(feat, conv.weight[:: r * r], conv.bias[:: r * r], padding=1)
    torch.testing.assert_close(out, F.interpolate(first, scale_factor=r, mode="nearest"))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_icnr_generator_shuffles_to_constant_blocks(scale):
    torch.manual_seed(0)
    g = tiny(scale, "pixelshuffle-icnr")
    seen = []
    for m in g.upsample:
        if isinstance(m, nn.PixelShuffle):
            m.register_forward_hook(lambda mod, inp, out: seen.append((mod.upscale_factor, out)))
    with torch.no_grad():
        g(torch.rand(1, 3, 9, 8))
    assert [r for r, _ in seen] == ([2, 2] if scale == 4 else [scale])
    assert all(is_nearest_upsampled(out, r) for r, out in seen)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_icnr_differs_from_plain_only_in_the_tying(scale):
    torch.manual_seed(3)
    plain = tiny(scale, "pixelshuffle").state_dict()
    torch.manual_seed(3)
    icnr = tiny(scale, "pixelshuffle-icnr").state_dict()
    assert plain.keys() == icnr.keys()
    r = 2 if scale == 4 else scale
    tied = [k for k in plain if not torch.equal(plain[k], icnr[k])]
    assert tied and all(k.startswith("upsample.") for k in tied)
    for k in tied:  # the first sub-pixel kernel of each channel is the plain one
        torch.testing.assert_close(icnr[k][:: r * r], plain[k][:: r * r], rtol=0, atol=0)


def lr_grid_share(up: str, scale: int, seed: int) -> float:
    """LR-grid share of a fresh quick generator's own output (skip=bicubic, so that
    ``sr - bicubic(lr)`` is exactly the network's contribution), 64x64 random LR."""
    from srlib.analysis import lr_grid_energy

    torch.manual_seed(seed)
    g = build_generator("quick", scale, up, skip="bicubic").eval()
    lr = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        sr = g(lr)[0]
    return lr_grid_energy(sr, BicubicDegradation(scale).up(lr)[0], scale)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_icnr_starts_without_lr_grid_energy(scale):
    # Measured (seeds 0-3, mean): plain 0.55 / 0.64 / 0.62 at x2 / x3 / x4 (0.16-0.81 per
    # seed), ICNR <= 0.005 per seed.
    plain = [lr_grid_share("pixelshuffle", scale, seed) for seed in range(4)]
    icnr = [lr_grid_share("pixelshuffle-icnr", scale, seed) for seed in range(4)]
    assert sum(plain) / 4 > 0.4
    assert max(icnr) < 0.05


@pytest.mark.parametrize("skip", SKIPS)
@pytest.mark.parametrize("upsampler", UPSAMPLERS)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_skip_is_the_output_of_a_zeroed_network(scale, upsampler, skip):
    torch.manual_seed(0)
    g = zero_last(tiny(scale, upsampler, skip))
    op = BicubicDegradation(scale)
    lr = torch.rand(2, 3, 8, 7)
    with torch.no_grad():
        out = g(lr)
    want = {"none": torch.zeros(2, 3, 8 * scale, 7 * scale), "bicubic": op.up(lr),
            "pinv": op.pinv(lr)}[skip]
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, want, rtol=0, atol=1e-6)
    if skip == "pinv":  # consistent by construction
        torch.testing.assert_close(op.down(out), lr, rtol=0, atol=1e-5)


def test_skip_runs_in_float32_under_autocast():
    torch.manual_seed(0)
    g = zero_last(tiny(2, "pixelshuffle", "pinv"))
    lr = torch.rand(1, 3, 8, 8)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = g(lr)
    assert out.dtype == torch.float32
    torch.testing.assert_close(BicubicDegradation(2).down(out), lr, rtol=0, atol=1e-5)


@pytest.mark.parametrize("skip", SKIPS)
def test_pre_input_stays_bicubic_whatever_the_skip(skip):
    g = tiny(3, "pre", skip)
    seen = []
    g.conv_first.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0]))
    lr = torch.rand(1, 3, 6, 6)
    g(lr)
    torch.testing.assert_close(seen[0], BicubicDegradation(3).up(lr))


def test_default_skip_is_the_historical_one():
    # pre-upsampling (a None entry) has the bicubic skip; every other upsampler none
    assert {u: default_skip(u) for u in UPSAMPLERS} == {
        u: "bicubic" if UPSAMPLERS[u] is None else "none" for u in UPSAMPLERS}
    assert default_skip("pre") == "bicubic" and default_skip("nearest") == "none"
    for u in UPSAMPLERS:
        assert tiny(2, u).skip == default_skip(u)
        assert build_generator("quick", 2, u).skip == default_skip(u)
        assert build_generator("quick", 2, u, skip="pinv", nf=8).skip == "pinv"
        # skips hold no weights: an old run folder's generator.pt loads under any skip
        keys = {tuple(tiny(2, u, s).state_dict()) for s in SKIPS}
        assert len(keys) == 1


def test_presets():
    assert PRESETS["esrgan"] | {} == PRESETS["esrgan"]
    g = build_generator("esrgan", 4, "nearest")
    assert len(g.body) == 23 and g.conv_first.out_channels == 64
    assert g.body[0].blocks[0].convs[0].out_channels == 32
    with pytest.raises(ValueError, match=f"preset must be one of {', '.join(models.PRESETS)}"):
        build_generator("huge", 4, "nearest")


def test_generator_bad_input():
    with pytest.raises(ValueError, match="upsampler must be one of"):
        RRDBNet(upsampler="no-such-upsampler")
    with pytest.raises(ValueError, match="scale must be one of"):
        RRDBNet(scale=8)
    with pytest.raises(ValueError, match="nf must be a positive integer"):
        RRDBNet(nf=0)
    with pytest.raises(ValueError, match=f"skip must be one of {', '.join(models.SKIPS)}"):
        build_generator("quick", 2, "pre", skip="residual")


def test_a_new_generator_knob_is_its_entry_and_its_use(monkeypatch, tmp_path):
    """As GENERATOR_FIELDS' comment says: an entry there, the generator using it (here a
    subclass of RRDBNet, as its own parameter would be); the builder, its checks and
    runs.load_generator need nothing else."""

    class Scaled(RRDBNet):  # the generator using the knob
        def __init__(self, res_scale: float = 0.2, **kw):
            super().__init__(**kw)
            self.res_scale = res_scale

    knob = Knob(0.2, "residual scaling of the RRDB blocks", ok=lambda v: 0 < v <= 1,
                expected="a number in (0, 1]")
    monkeypatch.setitem(GENERATOR_FIELDS, "res_scale", knob)
    monkeypatch.setattr(models, "RRDBNet", Scaled)
    sizes = {"nf": 8, "nb": 1, "gc": 4}
    assert build_generator("quick", 4, "nearest", **sizes).res_scale == 0.2  # its default
    g = build_generator("quick", 4, "nearest", res_scale=0.5, **sizes)
    assert isinstance(g, Scaled) and g.res_scale == 0.5
    with pytest.raises(ValueError, match=r"res_scale must be a number in \(0, 1\], got 2"):
        build_generator("quick", 4, "nearest", res_scale=2, **sizes)
    with pytest.raises(ValueError, match=r"generator field must be one of .*res_scale, got "
                                         r"'res_scal' \(did you mean"):
        build_generator("quick", 4, "nearest", res_scal=0.5, **sizes)
    # a run folder records it in config.json; load_generator rebuilds the generator with it
    run = tmp_path / "run"
    run.mkdir()
    config = {"preset": "quick", **{k: f.default for k, f in GENERATOR_FIELDS.items()},
              "scale": 4, "upsampler": "nearest", "res_scale": 0.5} | sizes
    (run / runs.CONFIG).write_text(json.dumps(config))
    torch.save(g.state_dict(), run / runs.GENERATOR)
    assert runs.load_generator(run).res_scale == 0.5
    del config["res_scale"]  # a run from before the knob: refused, not guessed
    (run / runs.CONFIG).write_text(json.dumps(config))
    with pytest.raises(ValueError, match="config.json lacks res_scale: a run from before"):
        runs.load_generator(run)


@pytest.mark.parametrize("patch", [32, 48, 128])
def test_vgg_discriminator(patch):
    d = VGGDiscriminator(patch, nf=8)
    assert d(torch.rand(3, 3, patch, patch)).shape == (3, 1)
    with pytest.raises(ValueError, match="expects"):
        d(torch.rand(1, 3, patch + 8, patch + 8))


def test_unet_discriminator():
    d = UNetDiscriminator(nf=8)
    assert d(torch.rand(2, 3, 32, 40)).shape == (2, 1, 32, 40)
    with pytest.raises(ValueError, match="multiples of 8"):
        d(torch.rand(1, 3, 30, 32))


def test_parse_spec():
    assert parse_spec("down") == [Term(1.0, "down", "mse")]
    assert parse_spec("0.01*l1:pixel+perc+0.005*adv") == [
        Term(0.01, "pixel", "l1"), Term(1.0, "perc", "l1"), Term(0.005, "adv", "ragan")]
    assert parse_spec("mse:down + hinge:adv")[1] == Term(1.0, "adv", "hinge")
    assert str(parse_spec("0.5*l1:down")[0]) == "0.5*l1:down"


@pytest.mark.parametrize("bad,why", [
    ("", "empty"), ("dwn", "unknown term"), ("x*down", "malformed weight"),
    ("-1*down", "positive"), ("0*down", "positive"), ("l2:pixel", "criterion"),
    ("hinge:pixel", "criterion"), ("down+down", "twice"), ("down++pixel", "unknown term"),
])
def test_parse_spec_errors(bad, why):
    with pytest.raises(ValueError, match=why) as err:
        parse_spec(bad)
    grammar = "; ".join(f"{n} ({' | '.join(t.criteria)})" for n, t in TERMS.items())
    assert grammar in str(err.value)


def test_down_is_zero_on_consistent_images():
    op = BicubicDegradation(4)
    hr = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    lr = op.down(hr)
    sr = op.project(torch.rand_like(hr), lr)
    loss = Loss("down", op)
    total, terms = loss(sr, hr, lr)
    assert total.item() < 1e-20 and terms["down"].item() < 1e-20
    assert Loss("pixel", op)(sr, hr, lr)[0].item() > 1e-3  # yet far from HR


@pytest.mark.parametrize("spec", ["pixel", "l1:pixel", "down", "l1:down", "perc",
                                  "down+0.005*adv", "hinge:adv", "vanilla:adv"])
def test_gradients_reach_the_generator(spec):
    torch.manual_seed(0)
    op = BicubicDegradation(4)
    g = tiny()
    hr = torch.rand(2, 3, 32, 32)
    lr = op.down(hr)
    loss = Loss(spec, op)
    sr = g(lr)
    d_real = d_fake = None
    if loss.needs_discriminator:
        d = VGGDiscriminator(32, nf=8)
        d_real, d_fake = d(hr).detach(), d(sr)
    total, terms = loss(sr, hr, lr, d_real, d_fake)
    total.backward()
    grads = [p.grad for p in g.parameters()]
    assert all(gr is not None for gr in grads) and sum(gr.abs().sum() for gr in grads) > 0
    assert set(terms) == {t.name for t in parse_spec(spec)}


def test_perc_backend_recorded():
    loss = Loss("perc", BicubicDegradation(4))
    assert loss.perc_backend in ("vgg19-imagenet-conv5_4", "stlpips-vgg16-conv5_3")
    assert Loss("down", BicubicDegradation(4)).perc_backend is None


@pytest.mark.parametrize("crit", ["ragan", "vanilla", "hinge"])
def test_adversarial_losses_point_the_right_way(crit):
    real, fake = torch.full((4, 1), 2.0), torch.full((4, 1), -2.0)
    # D is winning: its loss is lower than when it is fooled, G's is higher.
    assert adversarial_d(crit, real, fake) < adversarial_d(crit, fake, real)
    assert adversarial_g(crit, real, fake) > adversarial_g(crit, fake, real)


def test_loss_without_discriminator_inputs():
    loss = Loss("down+0.005*adv", BicubicDegradation(2))
    hr = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="pass d_real, d_fake"):
        loss(hr, hr, BicubicDegradation(2).down(hr))
    with pytest.raises(ValueError, match="no adv term"):
        Loss("down", BicubicDegradation(2)).discriminator(hr, hr)


# ---- the loss's operator D' ------------------------------------------------------------

@pytest.mark.parametrize("name", LOSS_OPERATORS)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_loss_operators_shape_phase_and_gradient(name, scale):
    op = loss_operator(name, scale)
    x = torch.rand(2, 3, 8 * scale, 6 * scale, requires_grad=True)
    y = op.down(x)
    assert y.shape == (2, 3, 8, 6) and y.dtype == torch.float32
    y.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # weights sum to 1, and the LR grid is MATLAB's (block centres): a linear ramp maps to
    # the same interior values as D's, so a mismatch is the kernel's, never a shift
    torch.testing.assert_close(op.down(torch.ones(1, 1, 8 * scale, 8 * scale)),
                               torch.ones(1, 1, 8, 8), rtol=0, atol=1e-6)
    n = 12 * scale
    i = torch.arange(n, dtype=torch.float64)
    ramp = (i[:, None] + 0.5 * i[None, :]).expand(1, 1, n, n)
    inner = (..., slice(3, -3), slice(3, -3))
    torch.testing.assert_close(op.down(ramp)[inner], BicubicDegradation(scale).down(ramp)[inner],
                               rtol=0, atol=1e-12)


def test_matlab_loss_operator_is_d():
    op = loss_operator("matlab", 3)
    hr = torch.rand(2, 3, 24, 21)
    assert isinstance(op, BicubicDegradation)
    assert torch.equal(op.down(hr), BicubicDegradation(3).down(hr))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_torch_bicubic_is_d_but_at_the_borders(scale):
    torch.manual_seed(0)
    hr = torch.rand(2, 3, 16 * scale, 12 * scale)
    diff = (loss_operator("torch-bicubic", scale).down(hr) - BicubicDegradation(scale).down(hr))
    assert diff[..., 2:-2, 2:-2].abs().max() < 1e-6  # measured <= 2.4e-7 in float32
    assert diff[..., 0, :].abs().max() > 1e-3 and diff[..., :, -1].abs().max() > 1e-3


@pytest.mark.parametrize("scale,at,want", [
    (3, 13, (4,)),  # odd s: LR pixel 4 samples HR pixel 3*4 + 1 = 13 itself
    (2, 9, (4, 5)),  # even s: centres 8.5 and 10.5, offsets 0.5 and 1.5 (< 3 sigma = 1.73)
])
def test_gauss_operator_is_blur_then_decimation_at_block_centres(scale, at, want):
    """An impulse at HR pixel ``at`` (both axes) lands on the LR pixels whose block centre
    ``s*i + (s-1)/2`` is within 3 sigma, weighted by the normalised Gaussian there."""
    op = loss_operator("gauss", scale)
    sigma = scale / 12**0.5
    assert op.sigma == pytest.approx(sigma)
    radius = 3 * sigma

    def weight(i: int) -> float:  # 1-D weight of HR pixel `at` in LR pixel i
        c = scale * i + (scale - 1) / 2
        offsets = torch.arange(-10, 11, dtype=torch.float64) + (c % 1)
        g = torch.exp(-0.5 * (offsets / sigma) ** 2) * (offsets.abs() <= radius)
        d = torch.tensor(at - c, dtype=torch.float64)
        return (torch.exp(-0.5 * (d / sigma) ** 2) / g.sum()).item()

    x = torch.zeros(1, 1, 10 * scale, 10 * scale, dtype=torch.float64)
    x[..., at, at] = 1.0
    y = op.down(x)[0, 0]
    expected = torch.zeros(10, 10, dtype=torch.float64)
    for i in want:
        for j in want:
            expected[i, j] = weight(i) * weight(j)
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-12)


def test_unknown_loss_operator_is_refused():
    with pytest.raises(ValueError, match=f"loss_operator must be one of "
                                         f"{', '.join(losses.LOSS_OPERATORS)}, got 'no-such-op'"):
        loss_operator("no-such-op", 4)
    with pytest.raises(ValueError, match="not a multiple of the scale 4"):
        loss_operator("gauss", 4).down(torch.rand(1, 3, 18, 16))


def test_down_term_uses_the_given_operator():
    torch.manual_seed(0)
    hr = torch.rand(2, 3, 32, 32)
    lr = BicubicDegradation(4).down(hr)
    assert Loss("down", loss_operator("matlab", 4))(hr, hr, lr)[0].item() < 1e-12
    assert Loss("down", loss_operator("bilinear", 4))(hr, hr, lr)[0].item() > 1e-5
