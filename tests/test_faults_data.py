"""Faults a hostile user found in reading images: each test names the input that used to
fail."""

import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from srlib.data import load_image


def _rgb(h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth colour image, uint8 (H, W, 3): JPEG keeps it within a few levels."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (h + w - 2)],
                    axis=-1).astype(np.uint8)


def _save(path, a: np.ndarray) -> None:
    Image.fromarray(a).save(path)


# ---- load_image: CMYK, non-finite floats ------------------------------------------------

def test_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    rgb = _rgb()
    Image.fromarray(rgb).convert("CMYK").save(path, quality=95)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "alpha channel" warning: K is not alpha
        x = load_image(path)
    with Image.open(path) as im:
        assert im.mode == "CMYK"
        ref = np.asarray(im.convert("RGB"))
    got = x.permute(1, 2, 0).numpy()
    assert x.dtype == torch.uint8 and x.shape == (3, 48, 64)
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1
    assert np.abs(got.astype(int) - rgb.astype(int)).mean() < 4  # the colours, not inverted


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_float_tiff_with_non_finite_pixels_is_refused(tmp_path, bad):
    tifffile = pytest.importorskip("tifffile")
    a = np.full((16, 16, 3), 0.5, dtype=np.float32)
    a[3, 4, 1] = bad
    path = tmp_path / "bad.tif"
    tifffile.imwrite(path, a)
    with pytest.raises(ValueError, match=r"bad\.tif: .*not finite.*1 of 768"):
        load_image(path)


def test_finite_float_tiff_still_reads(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    a = np.linspace(0, 1, 16 * 16 * 3, dtype=np.float32).reshape(16, 16, 3)
    tifffile.imwrite(tmp_path / "ok.tif", a)
    x = load_image(tmp_path / "ok.tif")
    assert torch.equal(x, torch.from_numpy(
        np.floor(a.astype(np.float64) * 255 + 0.5).astype(np.uint8).transpose(2, 0, 1)))
