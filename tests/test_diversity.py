"""The NTIRE 2021 diversity score, sample statistics, and the spatial LPIPS map beneath."""

import importlib
import sys
import types

import pytest
import torch

from srlib import lpips
from srlib.data import eval_pair, load_dataset
from srlib.diversity import diversity_score, sample_seeds, sample_stats
from srlib.metrics import quantize
from srlib.resize import BicubicDegradation

OP = BicubicDegradation(4)


@pytest.fixture(scope="module")
def metric() -> lpips.LPIPS:
    return lpips.load("stlpips-alex")  # weights ship with its wheel: always offline


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    """A 64 x 64 HR crop of an embedded test image and its x4 LR."""
    img = dict(load_dataset("default", "test"))["astronaut"]
    return eval_pair(img[:, 160:224, 180:244], OP)


def _noisy(hr: torch.Tensor, k: int, sigma: float = 0.05, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return quantize(hr + sigma * torch.randn(k, *hr.shape, generator=g))


def test_spatial_map_is_the_scalar_per_pixel(metric, pair):
    hr, _ = pair
    x, y = _noisy(hr, 2), hr.expand(2, *hr.shape)
    m = metric.spatial_map(x, y)
    assert m.shape == (2, 1, 64, 64) and m.min() >= 0
    scalar = metric(x, y)
    # exact before upsampling; bilinear upsampling from a size that does not divide 64
    # (30, 15 here) weights border pixels a little differently: ~1e-4 relative
    layers = sum(d.mean(dim=(1, 2, 3)) for d in metric.layer_maps(x, y))
    torch.testing.assert_close(layers, scalar, rtol=0, atol=1e-6)
    torch.testing.assert_close(m.mean(dim=(1, 2, 3)), scalar, rtol=1e-3, atol=1e-6)
    assert metric.spatial_map(x[:1], x[:1]).abs().max() == 0
    # each pixel's value follows where the images differ: noise on the left half only
    left = torch.cat([x[:1, ..., :32], y[:1, ..., 32:]], dim=-1)
    m = metric.spatial_map(left, y[:1])[0, 0]
    assert m[:, 4:24].mean() > 10 * m[:, 44:60].mean()


def _import_stlpips(monkeypatch):
    """The reference ST-LPIPS module. Its shift-tolerant AlexNet uses no torchvision, but
    the package imports torchvision (absent beside our torch), IPython and torchsummary
    at module level: where they fail, import it once with stand-ins for those three, and
    forget the import afterwards so that no other test sees it."""
    try:
        return importlib.import_module("stlpips_pytorch.stlpips"), []
    except Exception:  # ImportError, or torchvision's operator errors at import
        pass
    stubs = {n: types.ModuleType(n) for n in ("torchvision", "IPython", "torchsummary")}
    stubs["torchvision"].models = types.ModuleType("torchvision.models")
    stubs["IPython"].embed = stubs["torchsummary"].summary = lambda *a, **k: None
    for name, module in stubs.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setitem(sys.modules, "torchvision.models", stubs["torchvision"].models)
    before = set(sys.modules)
    try:
        module = importlib.import_module("stlpips_pytorch.stlpips")
    except Exception as err:
        pytest.skip(f"reference stlpips_pytorch does not import here ({err})")
    return module, sorted(set(sys.modules) - before)


def test_spatial_map_matches_reference(metric, monkeypatch):
    stlpips, imported = _import_stlpips(monkeypatch)
    try:
        ref = stlpips.LPIPS(net="alex", variant="shift_tolerant", spatial=True, verbose=False)
        g = torch.Generator().manual_seed(0)
        for shape in ((2, 3, 64, 64), (1, 3, 57, 71)):  # sizes their layers do not divide
            x, y = torch.rand(shape, generator=g), torch.rand(shape, generator=g)
            want = ref(x, y, normalize=True)
            torch.testing.assert_close(metric.spatial_map(x, y), want, rtol=1e-4, atol=1e-7)
    finally:
        for name in imported:
            sys.modules.pop(name, None)


def test_identical_samples_score_zero(metric, pair):
    hr, _ = pair
    samples = _noisy(hr, 1).expand(3, -1, -1, -1)
    d = diversity_score(samples, hr, metric)
    assert d["global_best"] > 0
    assert d["local_best"] == d["global_best"] == d["lpips_mean"]
    assert d["score"] == 0.0


def test_different_samples_score_positive(metric, pair):
    hr, _ = pair
    d = diversity_score(_noisy(hr, 3), hr, metric)  # independent noise per sample
    assert 0 < d["local_best"] < d["global_best"] <= d["lpips_mean"]
    assert d["score"] > 0
    # each sample right in one half, wrong in the other: the best per pixel beats any
    # whole sample by far
    noisy = _noisy(hr, 1, sigma=0.1)[0]
    a = torch.cat([hr[..., :32], noisy[..., 32:]], dim=-1)
    b = torch.cat([noisy[..., :32], hr[..., 32:]], dim=-1)
    halves = diversity_score(torch.stack([a, b]), hr, metric)
    assert halves["score"] > 30
    expected = (halves["global_best"] - halves["local_best"]) / halves["global_best"] * 100
    assert halves["score"] == pytest.approx(expected, rel=1e-12)


def test_sample_stats(pair):
    # mid-tone HR, so that projected samples need no clipping, which would undo consistency
    hr = quantize(0.1 + 0.8 * pair[0])
    lr = quantize(OP.down(hr))
    noise = 0.05 * torch.randn(4, *hr.shape, generator=torch.Generator().manual_seed(0))
    consistent = OP.project(hr + noise, lr)
    s = sample_stats(consistent, hr, lr, OP)
    assert s["lr_psnr_worst"] > 50 and s["lr_psnr_mean"] >= s["lr_psnr_worst"]
    assert sample_stats(hr + noise, hr, lr, OP)["lr_psnr_mean"] < 45  # unprojected
    # independent errors partly cancel in the mean image
    assert s["psnr_y_mean_image"] > s["psnr_y_mean"] > 20
    exact = sample_stats(hr.expand(2, -1, -1, -1), hr, lr, OP)
    assert exact["psnr_y_mean"] == exact["psnr_y_mean_image"] == float("inf")


def test_sample_seeds_and_bad_input(metric, pair):
    assert sample_seeds() == list(range(10))
    assert sample_seeds(3, base=100) == [100, 101, 102]
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="k must be"):
            sample_seeds(bad)
    with pytest.raises(ValueError, match="base must be"):
        sample_seeds(3, base=-1)
    hr, _ = pair
    with pytest.raises(ValueError, match=r"samples must have shape \(K, 3, H, W\)"):
        diversity_score(hr, hr, metric)
    with pytest.raises(ValueError, match="hr must have shape"):
        diversity_score(hr[None], hr[:, :32], metric)
