"""The extension tables: a new entry is used at once, a missing name is refused with the
choices."""

import pytest
import torch
from torch import nn

from srlib import losses
from srlib.losses import ADVERSARIAL, CRITERIA, TERMS, GanLoss, Loss, TermSpec, parse_spec
from srlib.models import SKIPS, UPSAMPLERS, RRDBNet
from srlib.resize import BicubicDegradation

OP = BicubicDegradation(2)


def images() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    hr = torch.rand(2, 3, 16, 16)
    return torch.rand_like(hr), hr, OP.down(hr)  # sr, hr, lr


def test_new_criterion_is_used_by_every_distance_term(monkeypatch):
    monkeypatch.setitem(CRITERIA, "seven", lambda a, b: torch.tensor(7.0))
    sr, hr, lr = images()
    for name in ("pixel", "down"):
        assert "seven" in TERMS[name].criteria and TERMS[name].criteria[0] == "mse"
        total, terms = Loss(f"0.5*seven:{name}", OP)(sr, hr, lr)
        assert terms[name].item() == 7.0 and total.item() == 3.5


def test_unknown_criterion_is_refused():
    sr, hr, lr = images()
    ctx = losses.Context(OP, None, None, None)
    with pytest.raises(ValueError, match=f"criterion must be one of {', '.join(CRITERIA)}, "
                                         "got 'l2'"):
        TERMS["pixel"].fn("l2", sr, hr, lr, ctx)
    with pytest.raises(ValueError, match="criterion 'l2' does not apply to 'pixel'") as err:
        parse_spec("l2:pixel")
    assert f"pixel ({' | '.join(TERMS['pixel'].criteria)})" in str(err.value)


def test_new_adversarial_criterion_is_used(monkeypatch):
    calls = []

    def g(real, fake):
        calls.append("g")
        return fake.mean() * 0 + 3.0

    def d(real, fake):
        calls.append("d")
        return real.mean() * 0 + 5.0

    monkeypatch.setitem(ADVERSARIAL, "wgan", GanLoss(g, d))
    assert TERMS["adv"].criteria == tuple(ADVERSARIAL) and "wgan" in TERMS["adv"].criteria
    sr, hr, lr = images()
    real, fake = torch.randn(2, 1), torch.randn(2, 1)
    loss = Loss("down+0.1*wgan:adv", OP)
    total, terms = loss(sr, hr, lr, real, fake)
    assert terms["adv"].item() == 3.0
    torch.testing.assert_close(total, terms["down"] + 0.3)
    assert loss.discriminator(real, fake).item() == 5.0
    assert calls == ["g", "d"]


def test_unknown_adversarial_criterion_is_refused():
    real, fake = torch.randn(2, 1), torch.randn(2, 1)
    why = f"adversarial criterion must be one of {', '.join(ADVERSARIAL)}, got 'wgan'"
    for fn in (losses.adversarial_g, losses.adversarial_d):
        with pytest.raises(ValueError, match=why):
            fn("wgan", real, fake)
    with pytest.raises(ValueError, match="does not apply to 'adv'") as err:
        parse_spec("wgan:adv")
    assert f"adv ({' | '.join(TERMS['adv'].criteria)})" in str(err.value)


def test_new_term_is_parsed_and_computed(monkeypatch):
    built = []

    class Gray(nn.Module):  # the term's own network, as perc has its VGG
        def __init__(self):
            super().__init__()
            built.append(self)

        def forward(self, x):
            return x.mean(dim=1, keepdim=True)

    def gray(crit, sr, hr, lr, ctx):
        return losses.CRITERIA[crit](ctx.module(sr), ctx.module(hr))

    monkeypatch.setitem(TERMS, "gray_2", TermSpec(gray, "l1", CRITERIA, module=Gray))
    assert Loss("down", OP).nets.keys() == set() and built == []  # built only when used
    assert parse_spec("0.5*gray_2+down")[0] == losses.Term(0.5, "gray_2", "l1")
    crits = " | ".join(TERMS["gray_2"].criteria)
    assert f"gray_2 ({crits})" in str(pytest.raises(ValueError, parse_spec, "dwn").value)
    sr, hr, lr = images()
    total, terms = Loss("0.5*mse:gray_2+down", OP)(sr, hr, lr)
    assert len(built) == 1
    want = torch.mean((sr.mean(1) - hr.mean(1)) ** 2)
    torch.testing.assert_close(terms["gray_2"], want)
    torch.testing.assert_close(total, 0.5 * want + terms["down"])


def test_unknown_term_is_refused():
    with pytest.raises(ValueError, match="unknown term 'tv'") as err:
        parse_spec("down+tv")
    grammar = "; ".join(f"{n} ({' | '.join(t.criteria)})" for n, t in TERMS.items())
    assert grammar in str(err.value)


def test_new_upsampler_is_built(monkeypatch):
    def bilinear(nf, r):
        return [nn.Upsample(scale_factor=r, mode="bilinear"), nn.Conv2d(nf, nf, 1)]

    monkeypatch.setitem(UPSAMPLERS, "bilinear", bilinear)
    g = RRDBNet(scale=4, upsampler="bilinear", nf=8, nb=1, gc=4)
    ups = [m for m in g.upsample if isinstance(m, nn.Upsample)]
    assert [m.scale_factor for m in ups] == [2, 2]  # x4 = two x2 steps
    assert g(torch.rand(1, 3, 5, 7)).shape == (1, 3, 20, 28)


def test_pre_upsampling_is_its_entry(monkeypatch):
    monkeypatch.setitem(UPSAMPLERS, "bicubic", None)  # None marks pre-upsampling
    g = RRDBNet(scale=3, upsampler="bicubic", nf=8, nb=1, gc=4)
    assert isinstance(g.upsample, nn.Identity) and g.pre and g.skip == "bicubic"
    nn.init.zeros_(g.conv_last.weight)
    nn.init.zeros_(g.conv_last.bias)
    lr = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(g(lr), BicubicDegradation(3).up(lr))


def test_unknown_upsampler_is_refused():
    why = f"upsampler must be one of {', '.join(UPSAMPLERS)}, got 'no-such-upsampler'"
    with pytest.raises(ValueError, match=why):
        RRDBNet(upsampler="no-such-upsampler", nf=8, nb=1, gc=4)


def test_new_skip_is_used(monkeypatch):
    monkeypatch.setitem(SKIPS, "half", lambda op, lr: 0.5 * op.up(lr))
    for up in ("nearest", "pre"):
        g = RRDBNet(scale=2, upsampler=up, nf=8, nb=1, gc=4, skip="half")
        nn.init.zeros_(g.conv_last.weight)
        nn.init.zeros_(g.conv_last.bias)
        lr = torch.rand(1, 3, 8, 8)
        torch.testing.assert_close(g(lr), 0.5 * OP.up(lr))


def test_unknown_skip_is_refused():
    with pytest.raises(ValueError, match=f"skip must be one of {', '.join(SKIPS)}, got 'res'"):
        RRDBNet(upsampler="pre", nf=8, nb=1, gc=4, skip="res")
