"""Generators, discriminators and the losses of the study."""

import pytest
import torch

from srlib.losses import Loss, Term, adversarial_d, adversarial_g, parse_spec
from srlib.models import (
    PRESETS,
    UPSAMPLERS,
    RRDBNet,
    UNetDiscriminator,
    VGGDiscriminator,
    build_generator,
)
from srlib.resize import BicubicDegradation


def tiny(scale: int = 4, upsampler: str = "nearest") -> RRDBNet:
    return RRDBNet(scale=scale, upsampler=upsampler, nf=8, nb=1, gc=4)


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


def test_presets():
    assert PRESETS["esrgan"] | {} == PRESETS["esrgan"]
    g = build_generator("esrgan", 4, "nearest")
    assert len(g.body) == 23 and g.conv_first.out_channels == 64
    assert g.body[0].blocks[0].convs[0].out_channels == 32
    with pytest.raises(ValueError, match="preset must be one of quick, esrgan"):
        build_generator("huge", 4, "nearest")


def test_generator_bad_input():
    with pytest.raises(ValueError, match="upsampler must be one of"):
        RRDBNet(upsampler="bilinear")
    with pytest.raises(ValueError, match="scale must be one of"):
        RRDBNet(scale=8)
    with pytest.raises(ValueError, match="nf must be a positive integer"):
        RRDBNet(nf=0)


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
    assert "pixel (mse | l1); down (mse | l1); perc" in str(err.value)


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
