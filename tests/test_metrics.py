"""Metric conventions: 8-bit quantisation, MATLAB Y, crop, PSNR, SSIM, range/null split."""

import math

import pytest
import torch

from srlib.metrics import (
    image_metrics,
    lr_psnr,
    psnr_rgb,
    psnr_y,
    quantize,
    range_null_mse,
    rgb_to_y,
    ssim_y,
)
from srlib.resize import BicubicDegradation


def test_quantize_rounds_half_up_and_clips():
    x = torch.tensor([-0.2, 0.0, 0.5 / 255, 1.49 / 255, 1.5 / 255, 254.5 / 255, 1.3])
    q = quantize(x) * 255
    assert q.tolist() == pytest.approx([0, 0, 1, 1, 2, 255, 255])


def test_rgb_to_y_matlab_levels():
    black, white = torch.zeros(3, 1, 1), torch.ones(3, 1, 1)
    assert rgb_to_y(black).item() == 16 and rgb_to_y(white).item() == 235
    red = torch.tensor([1.0, 0, 0]).view(3, 1, 1)
    assert rgb_to_y(red).item() == 81  # round(16 + 65.481)


def test_psnr_y_known_value():
    hr = torch.full((1, 3, 16, 16), 0.5)
    sr = hr.clone()
    sr[..., 0, 0, 0] = sr[..., 0, 0, 0] + 40 / 255  # moves Y of one pixel by round(40*0.25677)=10
    y_err = (rgb_to_y(sr) - rgb_to_y(hr)).abs().max().item()
    want = 10 * math.log10(255**2 / (y_err**2 / 256))
    assert psnr_y(sr, hr).item() == pytest.approx(want)
    # the same pixel cropped away: identical images, infinite PSNR
    assert math.isinf(psnr_y(sr, hr, crop=1).item())


def test_psnr_rgb_one_level():
    hr = torch.zeros(2, 3, 8, 8)
    sr = hr + 1 / 255
    assert psnr_rgb(sr, hr).tolist() == pytest.approx([20 * math.log10(255)] * 2)


def test_ssim_identical_and_degraded():
    g = torch.Generator().manual_seed(0)
    hr = quantize(torch.rand(2, 3, 32, 32, generator=g))
    assert ssim_y(hr, hr, crop=2).tolist() == pytest.approx([1.0, 1.0])
    noisy = quantize(hr + 0.1 * torch.randn(hr.shape, generator=g))
    s = ssim_y(noisy, hr, crop=2)
    assert s.shape == (2,) and (s < 0.99).all() and (s > 0).all()


def test_ssim_of_flat_images_is_the_luminance_term():
    # Flat images have no variance: SSIM = (2 mu1 mu2 + C1) / (mu1^2 + mu2^2 + C1),
    # C1 = (K1 * 255)^2 with K1 = 0.01 on the 8-bit Y scale.
    a, b = torch.full((3, 24, 24), 40 / 255), torch.full((3, 24, 24), 200 / 255)
    ya, yb = rgb_to_y(a)[0, 0].item(), rgb_to_y(b)[0, 0].item()
    c1 = (0.01 * 255) ** 2
    want = (2 * ya * yb + c1) / (ya**2 + yb**2 + c1)
    assert ssim_y(a, b).item() == pytest.approx(want, rel=1e-9)


def test_range_and_null_add_up_to_mse():
    op = BicubicDegradation(4)
    hr = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    sr = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    rng, null = range_null_mse(sr, hr, op)
    assert (rng + null).item() == pytest.approx((sr - hr).pow(2).mean().item())
    assert null > rng  # random error is mostly invisible to D at x4 (15/16 of dimensions)


def test_lr_psnr_of_a_consistent_image_is_high():
    op = BicubicDegradation(2)
    lr = quantize(torch.rand(1, 3, 8, 8))
    consistent = op.pinv(lr)
    assert lr_psnr(consistent, lr, op).item() > 100
    assert lr_psnr(torch.zeros(1, 3, 16, 16), lr, op).item() < 10


def test_image_metrics_quantises_sr():
    op = BicubicDegradation(2)
    hr = quantize(torch.rand(3, 16, 16))
    lr = quantize(op.down(hr))
    # an SR image off the 8-bit grid by less than half a level scores as HR itself
    m = image_metrics(hr + 0.4 / 255, hr, lr, op)
    assert math.isinf(m["psnr_y"]) and m["ssim_y"] == pytest.approx(1.0)
    assert set(m) >= {"psnr_y", "ssim_y", "lr_psnr", "range_mse", "null_mse", "psnr_rgb"}


def test_bad_inputs():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr_y(torch.rand(3, 8, 8), torch.rand(3, 8, 9))
    with pytest.raises(ValueError, match="RGB"):
        psnr_y(torch.rand(1, 8, 8), torch.rand(1, 8, 8))
    with pytest.raises(ValueError, match="crop"):
        psnr_y(torch.rand(3, 8, 8), torch.rand(3, 8, 8), crop=4)


def test_lr_psnr_inner_leaves_the_border_out():
    from srlib.metrics import lr_psnr
    from srlib.resize import BicubicDegradation

    op = BicubicDegradation(4)
    hr = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lr = op.down(hr)
    off = hr.clone()
    off[:, :4, :] += 0.2  # an error in the outer HR rows only
    whole, inner = lr_psnr(off, lr, op), lr_psnr(off, lr, op, crop=4)
    assert whole < 40 and inner > whole + 30  # the error reaches the first LR rows only
    assert lr_psnr(hr, lr, op, crop=4) == float("inf")
    # an LR image too small to keep anything inside its border: NaN, not an error
    from srlib.metrics import image_metrics

    tiny = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert math.isnan(image_metrics(tiny, tiny, op.down(tiny), op)["lr_psnr_inner"])
