"""The operator: MATLAB-exact bicubic, its pseudo-inverse, projection and split."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import keys_cubic

from srlib.data import eval_pair, load_dataset
from srlib.resize import BicubicDegradation, imresize, resize_matrix


def reference_resize_1d(x: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB imresize along the last axis, one output pixel at a time, float64.

    Written from the definition (not the vectorised code): each output pixel is a
    normalised sum over every input position within the kernel's reach, the position
    mirrored into the image by symmetric padding."""
    n = x.shape[-1]
    n_out = math.ceil(scale * n)
    stretch = min(scale, 1.0)  # antialias: kernel(stretch * d) * stretch when shrinking

    def mirror(k: int) -> int:  # 0-based, edge repeated: ..., 1, 0 | 0, 1, ... n-1 | n-1, ...
        while k < 0 or k >= n:
            k = -k - 1 if k < 0 else 2 * n - 1 - k
        return k

    out = np.zeros(x.shape[:-1] + (n_out,))
    for i in range(n_out):
        centre = (i + 0.5) / scale - 0.5  # 0-based input coordinate of output pixel i
        reach = 2.0 / stretch
        total, acc = 0.0, 0.0
        for k in range(math.floor(centre - reach) - 1, math.ceil(centre + reach) + 2):
            wk = stretch * keys_cubic(stretch * (centre - k))
            total += wk
            acc = acc + wk * x[..., mirror(k)]
        out[..., i] = acc / total
    return out


def reference_imresize(x: np.ndarray, scale: float) -> np.ndarray:
    rows = reference_resize_1d(np.swapaxes(x, -1, -2), scale)
    return reference_resize_1d(np.swapaxes(rows, -1, -2), scale)


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 1 / 8, 0.7, 2.0, 3.0, 4.0, 8.0, 1.5])
def test_imresize_matches_reference(scale):
    g = torch.Generator().manual_seed(0)
    size = (40, 35) if scale < 1 else (9, 7)
    x = torch.rand(2, 3, *size, generator=g, dtype=torch.float64)
    got = imresize(x, scale)
    want = reference_imresize(x.numpy(), scale)
    assert got.shape[-2:] == (math.ceil(size[0] * scale), math.ceil(size[1] * scale))
    np.testing.assert_allclose(got.numpy(), want, atol=1e-12)


@pytest.mark.parametrize("s", [2, 3, 4, 8])
def test_down_matches_torch_antialias_away_from_borders(s):
    # torch's antialiased bicubic uses the same a=-0.5 kernel; only borders differ.
    x = torch.rand(1, 3, 24 * s, 16 * s, dtype=torch.float64)
    ours = imresize(x, 1 / s)
    theirs = F.interpolate(x, scale_factor=1 / s, mode="bicubic", antialias=True)
    assert (ours - theirs)[..., 3:-3, 3:-3].abs().max() < 1e-12
    assert (ours - theirs).abs().max() > 1e-4  # and the borders do differ (symmetric pad)


def test_three_dim_input_and_dtypes():
    x = torch.rand(3, 16, 16)
    assert imresize(x, 0.5).shape == (3, 8, 8)
    assert imresize(x.half().float(), 2).dtype == torch.float32
    y = imresize(x.double(), 0.5)
    assert y.dtype == torch.float64
    torch.testing.assert_close(imresize(x, 0.5).double(), y, atol=1e-6, rtol=0)


def test_matrices_are_cached_per_dtype_and_device():
    a = resize_matrix(32, 0.25)
    assert a is resize_matrix(32, 0.25)
    assert resize_matrix(32, 0.25, torch.float64) is not a
    assert a.shape == (8, 32)
    torch.testing.assert_close(a.sum(1), torch.ones(8))


OPS = [BicubicDegradation(s) for s in (2, 3, 4, 8)]


@pytest.mark.parametrize("op", OPS, ids=lambda o: f"x{o.scale}")
def test_projection_is_consistent_on_random_images(op):
    s = op.scale
    g = torch.Generator().manual_seed(1)
    sr = torch.rand(2, 3, 8 * s, 6 * s, generator=g)
    lr = torch.rand(2, 3, 8, 6, generator=g)
    p = op.project(sr, lr)
    assert p.dtype == torch.float32
    assert (op.down(p) - lr).abs().max() < 1e-5


@pytest.mark.parametrize("op", OPS, ids=lambda o: f"x{o.scale}")
def test_projection_is_consistent_on_a_real_image(op):
    _, img = load_dataset("default", "test")[0]
    hr, lr = eval_pair(img, op)
    sr = op.up(lr) + 0.05 * torch.randn_like(hr)  # some other image, far from consistent
    assert (op.down(sr) - lr).abs().max() > 1e-2
    assert (op.down(op.project(sr, lr)) - lr).abs().max() < 1e-5


@pytest.mark.parametrize("op", OPS, ids=lambda o: f"x{o.scale}")
def test_split_is_exact_and_orthogonal(op):
    s = op.scale
    x = torch.rand(2, 3, 8 * s, 7 * s, dtype=torch.float64)
    rng, null = op.split(x)
    torch.testing.assert_close(rng + null, x, atol=1e-12, rtol=0)
    inner = (rng * null).sum(dim=(-2, -1))
    assert inner.abs().max() < 1e-10 * x.pow(2).sum()
    assert op.down(null).abs().max() < 1e-12  # D cannot see the null part
    torch.testing.assert_close(op.down(rng), op.down(x), atol=1e-12, rtol=0)
    # Pythagoras: the HR error splits into what D sees and what it cannot.
    torch.testing.assert_close(x.pow(2).sum(), rng.pow(2).sum() + null.pow(2).sum())


def test_null_space_perturbation_keeps_lr():
    op = BicubicDegradation(4)
    hr = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    _, null = op.split(torch.randn_like(hr))
    assert (op.down(hr + null) - op.down(hr)).abs().max() < 1e-12
    assert null.pow(2).mean() > 0.5  # yet the image changed a lot


def test_pinv_is_least_norm_right_inverse():
    op = BicubicDegradation(3)
    lr = torch.rand(1, 3, 6, 5, dtype=torch.float64)
    hr = op.pinv(lr)
    torch.testing.assert_close(op.down(hr), lr, atol=1e-12, rtol=0)
    _, null = op.split(hr)
    assert null.abs().max() < 1e-12  # D^+ y lies in the range: no null component


@pytest.mark.parametrize("scale", [0.5, 0.7, 2.0, 1.5])
def test_imresize_gradcheck(scale):
    x = torch.rand(1, 2, 8, 9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: imresize(t, scale), (x,))


def test_operator_gradcheck():
    op = BicubicDegradation(2)
    sr = torch.rand(1, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    lr = torch.rand(1, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(op.project, (sr, lr))
    assert torch.autograd.gradcheck(lambda t: op.split(t)[1], (sr,))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    op = BicubicDegradation(4)
    x = torch.rand(2, 3, 64, 48)
    torch.testing.assert_close(op.down(x.cuda()).cpu(), op.down(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("bad", [0, -2, float("nan"), float("inf"), "4", None])
def test_bad_scale(bad):
    with pytest.raises(ValueError, match="scale"):
        imresize(torch.rand(1, 3, 16, 16), bad)


def test_bad_operator_scale():
    for bad in (0, 2.5, -1, True):
        with pytest.raises(ValueError, match="scale must be an integer"):
            BicubicDegradation(bad)


def test_bad_rank_and_dtype():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        imresize(torch.rand(16, 16), 0.5)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        imresize(torch.rand(1, 1, 1, 16, 16), 0.5)
    with pytest.raises(ValueError, match="float"):
        imresize(torch.zeros(3, 16, 16, dtype=torch.uint8), 0.5)


def test_too_small_for_the_kernel():
    with pytest.raises(ValueError, match="at least 16 px"):
        imresize(torch.rand(1, 3, 12, 64), 0.25)
    with pytest.raises(ValueError, match="at least 4 px"):
        imresize(torch.rand(1, 3, 3, 8), 2)


def test_hr_not_multiple_of_scale():
    with pytest.raises(ValueError, match="mod-crop"):
        BicubicDegradation(4).down(torch.rand(1, 3, 30, 32))


def test_project_shape_mismatch():
    op = BicubicDegradation(2)
    with pytest.raises(ValueError, match="expected"):
        op.project(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 7, 8))
