"""Faults a hostile user found in reading images, listing folders, the evaluation CLI and
the artifact crop: each test names the input that used to fail."""

import json
import math
import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from srlib.analysis import busiest_box
from srlib.data import list_images, load_dataset, load_image
from srlib.evaluate import main


def _rgb(h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth colour image, uint8 (H, W, 3): JPEG keeps it within a few levels."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (h + w - 2)],
                    axis=-1).astype(np.uint8)


def _save(path, a: np.ndarray) -> None:
    Image.fromarray(a).save(path)


def _strict_json(text: str):
    def refuse(constant: str):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


# ---- load_image: CMYK, non-finite floats ------------------------------------------------

def test_ycbcr_is_converted_and_lab_refused(tmp_path):
    """Pillow's YCbCr and LAB TIFFs: imageio alone reads their three channels as R, G, B."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    ycc = Image.fromarray(rgb).convert("YCbCr")
    ycc.save(tmp_path / "ycc.tif")
    with Image.open(tmp_path / "ycc.tif") as im:
        assert im.mode == "YCbCr"
    got = load_image(tmp_path / "ycc.tif").permute(1, 2, 0).numpy().astype(int)
    assert np.abs(got - np.asarray(ycc.convert("RGB")).astype(int)).max() == 0
    assert np.abs(got - rgb.astype(int)).mean() < 2  # YCbCr's own rounding, not a swap
    Image.fromarray(rgb).convert("LAB").save(tmp_path / "lab.tif")
    with pytest.raises(ValueError, match=r"lab.tif: LAB image; expected RGB, grayscale"):
        load_image(tmp_path / "lab.tif")


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
    tifffile.imwrite(path, a, photometric="rgb")
    with pytest.raises(ValueError, match=r"bad\.tif: .*not finite.*1 of 768"):
        load_image(path)


def test_finite_float_tiff_still_reads(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    a = np.linspace(0, 1, 16 * 16 * 3, dtype=np.float32).reshape(16, 16, 3)
    tifffile.imwrite(tmp_path / "ok.tif", a, photometric="rgb")
    x = load_image(tmp_path / "ok.tif")
    assert torch.equal(x, torch.from_numpy(
        np.floor(a.astype(np.float64) * 255 + 0.5).astype(np.uint8).transpose(2, 0, 1)))


# ---- data folders: entries that are not regular files -----------------------------------

def test_folder_named_like_an_image_is_skipped_with_a_warning(tmp_path):
    _save(tmp_path / "a.png", _rgb())
    (tmp_path / "x.png").mkdir()
    with pytest.warns(UserWarning, match=r"symlink loop\), skipped: x\.png$"):
        files = list_images(tmp_path)
    assert [f.name for f in files] == ["a.png"]


def test_symlink_loops_and_dangling_links_are_skipped_in_one_warning(tmp_path):
    _save(tmp_path / "a.png", _rgb())
    _save(tmp_path / "b.jpg", _rgb())
    os.symlink("loop.png", tmp_path / "loop.png")  # points at itself
    os.symlink("cyc2.png", tmp_path / "cyc1.png")  # a cycle of two
    os.symlink("cyc1.png", tmp_path / "cyc2.png")
    os.symlink("gone.png", tmp_path / "dangling.png")
    os.symlink("a.png", tmp_path / "link.png")  # a good link is an image like any other
    with pytest.warns(UserWarning) as caught:
        data = load_dataset(tmp_path)
    assert [name for name, _ in data] == ["a", "b", "link"]
    msgs = [str(w.message) for w in caught]
    assert len(msgs) == 1
    assert msgs[0] == (f"{tmp_path}: not a regular file (a folder, a dangling link or a "
                       "symlink loop), skipped: cyc1.png, cyc2.png, dangling.png, loop.png")


def test_regular_folder_lists_without_a_warning(tmp_path):
    _save(tmp_path / "a.png", _rgb())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [f.name for f in list_images(tmp_path)] == ["a.png"]


def test_folder_of_only_non_files_still_says_no_images(tmp_path):
    (tmp_path / "x.png").mkdir()
    with pytest.warns(UserWarning, match="x.png"), pytest.raises(FileNotFoundError,
                                                                  match="no images found"):
        list_images(tmp_path)


# ---- python -m srlib.evaluate: --device, --json -----------------------------------------

def test_cli_device_cuda_without_cuda(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_:
        main(["--model", "bicubic", "--device", "cuda"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--device 'cuda'" in err and "CUDA is not available" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("bad", ["nonsense", "cuda:x", "cuda:-1", ""])
def test_cli_device_nonsense(capsys, bad):
    with pytest.raises(SystemExit) as exit_:
        main(["--model", "bicubic", "--device", bad])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"--device {bad!r}" in err and "expected one of cpu, cuda, cuda:N, mps, auto" in err


def test_cli_device_cpu_and_auto_run(capsys, tmp_path):
    _save(tmp_path / "a.png", _rgb(32, 32))
    for dev in ("cpu", "auto"):
        assert main(["--model", "bicubic", "--data", str(tmp_path), "--device", dev,
                     "--json"]) == 0
        assert _strict_json(capsys.readouterr().out)["n_images"] == 1


def test_cli_json_is_strict_with_a_flat_image(capsys, tmp_path):
    _save(tmp_path / "a.png", _rgb(32, 32))
    _save(tmp_path / "flat.png", np.full((32, 32, 3), 128, dtype=np.uint8))
    assert main(["--model", "bicubic", "--data", str(tmp_path), "--scale", "4", "--json"]) == 0
    captured = capsys.readouterr()
    result = _strict_json(captured.out)
    assert result["psnr_y"] is None and result["psnr_rgb"] is None  # bicubic is exact there
    assert result["ssim_y"] is not None and result["n_images"] == 2
    assert "PSNR of an exact reconstruction is infinite; JSON shows null" in captured.err
    assert "psnr_y" in captured.err


def test_cli_json_of_finite_means_is_unchanged(capsys, tmp_path):
    _save(tmp_path / "a.png", _rgb(64, 64))
    assert main(["--model", "bicubic", "--data", str(tmp_path), "--json"]) == 0
    captured = capsys.readouterr()
    result = _strict_json(captured.out)
    assert all(v is not None for v in result.values()) and captured.err == ""


# ---- the artifact notebook's crop box ---------------------------------------------------

def test_busiest_box_fits_a_96_px_image_at_the_default_crop():
    img = torch.from_numpy(_rgb(96, 96).transpose(2, 0, 1).copy())
    assert busiest_box(img, 96, 4) == (0, 0, 96)
    top, left, k = busiest_box(img[:, :90, :70], 96, 4)  # min(crop, H, W), a multiple of 4
    assert k == 68 and top % 4 == left % 4 == 0 and top + k <= 88 and left + k <= 68
    top, left, k = busiest_box(img[:, :, :50], 32, 4)
    assert k == 32 and top % 4 == left % 4 == 0 and top + k <= 96 and left + k <= 48


def test_busiest_box_bad_input():
    img = torch.zeros(3, 3, 40, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"3x40 px .* x4"):
        busiest_box(img, 96, 4)
    with pytest.raises(ValueError, match="size must be"):
        busiest_box(torch.zeros(3, 40, 40, dtype=torch.uint8), 0, 4)
