"""LPIPS offline: agreement with the reference packages, known answers, bad input."""

import importlib

import pytest
import torch
from torch import nn

from srlib import lpips
from srlib.data import eval_pair, load_dataset
from srlib.metrics import quantize
from srlib.resize import BicubicDegradation


def _reference(module: str):
    """Import a reference package, or skip: both need torchvision, absent beside our torch."""
    try:
        return importlib.import_module(module)
    except Exception as err:  # ImportError, or torchvision's operator errors at import
        pytest.skip(f"reference {module} does not import here ({type(err).__name__}: {err})")


def image_pairs() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """Deterministic pairs: real crops vs their x4 bicubic reconstruction, a crop vs the
    same crop shifted by one pixel, and seeded noise; sizes not multiples of 16 or 32."""
    imgs = dict(load_dataset("default", "test"))
    op = BicubicDegradation(4)
    hr, lr = eval_pair(imgs["astronaut"][:, 160:256, 180:276], op)
    coffee = imgs["coffee"].float() / 255
    g = torch.Generator().manual_seed(0)
    return [
        ("astronaut-bicubic", hr[None], quantize(op.up(lr))[None]),
        ("coffee-shift", coffee[None, :, 100:157, 200:271], coffee[None, :, 101:158, 200:271]),
        ("noise", torch.rand(2, 3, 48, 40, generator=g), torch.rand(2, 3, 48, 40, generator=g)),
    ]


# Measured with the reference package (stlpips_pytorch 0.0.2, torch 2.14.1, torchvision
# 0.29.1) on image_pairs(); our implementation matched to the last bit there.
PINNED = {
    "stlpips-alex": {
        "astronaut-bicubic": [0.3461867], "coffee-shift": [0.0043052],
        "noise": [0.0387073, 0.0456103],
    },
    "stlpips-vgg": {
        "astronaut-bicubic": [0.2994467], "coffee-shift": [0.0054359],
        "noise": [0.0649218, 0.0686905],
    },
}


@pytest.mark.parametrize("kind", ["stlpips-alex", "stlpips-vgg"])
def test_stlpips_pinned_values(kind):
    m = lpips.load(kind)
    for name, x, y in image_pairs():
        want = PINNED[kind][name]
        got = m(x, y).tolist()
        assert got == pytest.approx(want, rel=1e-4), (name, got)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_stlpips_matches_reference(net):
    stlpips = _reference("stlpips_pytorch.stlpips")
    ref = stlpips.LPIPS(net=net, variant="shift_tolerant", verbose=False)
    ours = lpips.load(f"stlpips-{net}")
    for name, x, y in image_pairs():
        want = ref(x, y, normalize=True).flatten()
        got = ours(x, y)
        assert ((got - want).abs() / want.abs()).max() < 1e-3, name


def _random_trunk(net: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchvision-layout state dict ("features.{i}.weight") with random weights."""
    g = torch.Generator().manual_seed(seed)
    features, _, _ = (lpips._alexnet(False) if net == "alex" else lpips.vgg_trunk(16))
    state = {}
    for i, layer in enumerate(features):
        if isinstance(layer, nn.Conv2d):
            std = layer.weight[0].numel() ** -0.5
            state[f"features.{i}.weight"] = std * torch.randn(layer.weight.shape, generator=g)
            state[f"features.{i}.bias"] = 0.1 * torch.randn(layer.bias.shape, generator=g)
    state["classifier.1.weight"] = torch.zeros(4, 4)  # torchvision files carry these too
    return state


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(lpips, "_online", lambda *a, **k: False)  # never download in tests
    return tmp_path


def _write_trunk(torch_home, net: str) -> dict[str, torch.Tensor]:
    state = _random_trunk(net)
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / lpips.TRUNK_FILES[net])
    return state


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_loads_trunk_from_hub_cache(net, torch_home):
    with pytest.raises(FileNotFoundError, match=lpips.TRUNK_FILES[net] + " not found in .*offline"):
        lpips.load(f"lpips-{net}")
    state = _write_trunk(torch_home, net)
    m = lpips.load(f"lpips-{net}")
    first = next(k for k in state if k.startswith("features."))
    assert torch.equal(m.features.get_parameter(first.split(".", 1)[1]), state[first])
    x, y = image_pairs()[0][1:]
    assert m(x, y).item() > 0 and m(x, x).item() == 0


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_matches_reference_given_the_same_trunk(net, torch_home):
    ref_pkg = _reference("lpips")
    state = _write_trunk(torch_home, net)
    ref = ref_pkg.LPIPS(net=net, pnet_rand=True, verbose=False)
    for sl in (ref.net.slice1, ref.net.slice2, ref.net.slice3, ref.net.slice4, ref.net.slice5):
        for idx, layer in sl.named_children():
            if isinstance(layer, nn.Conv2d):
                layer.weight.data.copy_(state[f"features.{idx}.weight"])
                layer.bias.data.copy_(state[f"features.{idx}.bias"])
    ours = lpips.load(f"lpips-{net}")
    for name, x, y in image_pairs():
        want = ref(x, y, normalize=True).flatten()
        got = ours(x, y)
        assert ((got - want).abs() / want.abs()).max() < 1e-3, name


def test_default_kind(torch_home):
    assert lpips.default_kind() == "stlpips-alex"
    _write_trunk(torch_home, "alex")
    assert lpips.default_kind() == "lpips-alex"


@pytest.mark.parametrize("kind", ["stlpips-alex", "stlpips-vgg"])
def test_properties(kind):
    m = lpips.load(kind)
    assert not m.training and not any(p.requires_grad for p in m.parameters())
    _, x, y = image_pairs()[1]
    assert m(x, x).item() == 0
    torch.testing.assert_close(m(x, y), m(y, x))
    x = x.clone().requires_grad_(True)
    m(x, y).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_bad_input():
    m = lpips.load("stlpips-alex")
    x = torch.rand(1, 3, 40, 40)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        m(x[0], x[0])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        m(x[:, :1], x[:, :1])
    with pytest.raises(ValueError, match="shapes differ"):
        m(x, torch.rand(1, 3, 40, 41))
    with pytest.raises(ValueError, match=r"expected \[0, 1\]"):
        m(2 * x - 1, x)
    m(x + 5e-4, x.clamp(max=0.99))  # round-off just outside [0, 1] is tolerated
    with pytest.raises(ValueError, match="too small"):
        m(torch.rand(1, 3, 16, 40), torch.rand(1, 3, 16, 40))
    with pytest.raises(ValueError, match="known kinds: lpips-alex, lpips-vgg"):
        lpips.load("lpips-squeeze")
