"""Image loading, data set resolution, the default split, evaluation pairs, the sampler."""

import warnings

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from srlib import data
from srlib.data import (
    DEFAULT_SPLIT,
    PatchSampler,
    eval_pair,
    list_images,
    load_dataset,
    load_image,
    mod_crop,
    resolve_dataset,
)
from srlib.metrics import quantize
from srlib.resize import BicubicDegradation

RGB = (np.arange(20 * 24 * 3) % 251).astype(np.uint8).reshape(20, 24, 3)


def test_rgb_png_roundtrip(tmp_path):
    Image.fromarray(RGB).save(tmp_path / "a.png")
    x = load_image(tmp_path / "a.png")
    assert x.dtype == torch.uint8 and x.shape == (3, 20, 24)
    assert np.array_equal(x.permute(1, 2, 0).numpy(), RGB)


def test_grayscale_is_replicated(tmp_path):
    Image.fromarray(RGB[..., 0]).save(tmp_path / "g.png")
    x = load_image(tmp_path / "g.png")
    assert x.shape == (3, 20, 24) and torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    assert np.array_equal(x[0].numpy(), RGB[..., 0])


def test_bilevel_palette_and_gif(tmp_path):
    Image.fromarray(RGB[..., 0] > 100).save(tmp_path / "b.png")
    assert set(load_image(tmp_path / "b.png").unique().tolist()) == {0, 255}
    Image.fromarray(RGB).convert("P").save(tmp_path / "p.png")
    Image.fromarray(RGB).save(tmp_path / "a.gif")
    for name in ("p.png", "a.gif"):
        x = load_image(tmp_path / name)
        assert x.shape == (3, 20, 24) and x.dtype == torch.uint8


def test_alpha_dropped_with_warning_only_when_not_opaque(tmp_path):
    rgba = np.concatenate([RGB, np.full((20, 24, 1), 255, np.uint8)], axis=-1)
    Image.fromarray(rgba).save(tmp_path / "opaque.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(load_image(tmp_path / "opaque.png").permute(1, 2, 0).numpy(), RGB)
    rgba[0, 0, 3] = 10
    Image.fromarray(rgba).save(tmp_path / "t.png")
    with pytest.warns(UserWarning, match="t.png: alpha"):
        assert load_image(tmp_path / "t.png").shape == (3, 20, 24)
    Image.fromarray(RGB).convert("LA").save(tmp_path / "la.png")
    assert load_image(tmp_path / "la.png").shape == (3, 20, 24)


def test_sixteen_bit_and_float(tmp_path):
    g16 = (RGB[..., 0].astype(np.uint16) * 257)
    iio.imwrite(tmp_path / "g16.png", g16)
    assert np.array_equal(load_image(tmp_path / "g16.png")[0].numpy(), RGB[..., 0])
    tifffile.imwrite(tmp_path / "c16.tif", RGB.astype(np.uint16) * 257, photometric="rgb")
    assert np.array_equal(load_image(tmp_path / "c16.tif").permute(1, 2, 0).numpy(), RGB)
    tifffile.imwrite(tmp_path / "f.tif", RGB.astype(np.float32) / 255, photometric="rgb")
    assert np.array_equal(load_image(tmp_path / "f.tif").permute(1, 2, 0).numpy(), RGB)
    tifffile.imwrite(tmp_path / "big.tif", RGB.astype(np.float32), photometric="rgb")
    with pytest.raises(ValueError, match="big.tif: unsupported pixel type"):
        load_image(tmp_path / "big.tif")


def test_not_an_image(tmp_path):
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(ValueError, match="notes.png: not an image") as e:
        load_image(tmp_path / "notes.png")
    assert "pip install" not in str(e.value) and "pyav" not in str(e.value)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.png: an empty file \(0 bytes\), not an image"):
        load_image(tmp_path / "empty.png")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_image(tmp_path / "missing.png")


def test_default_split_is_disjoint_and_present():
    train, test = set(DEFAULT_SPLIT["train"]), set(DEFAULT_SPLIT["test"])
    assert not train & test
    assert "motorcycle_right.png" not in train | test  # stereo twin of motorcycle_left
    for split in ("train", "test"):
        for f in list_images("default", split):
            assert f.is_file(), f
    imgs = load_dataset("default", "test")
    assert [n for n, _ in imgs] == ["astronaut", "chelsea", "coffee"]
    # no test image appears in the training part, not even resized: compare 8x8 thumbnails
    thumbs = {n: torch.nn.functional.adaptive_avg_pool2d(x.float()[None], 8) for n, x in imgs}
    for name, x in load_dataset("default", "train"):
        t = torch.nn.functional.adaptive_avg_pool2d(x.float()[None], 8)
        for tn, tt in thumbs.items():
            assert (t - tt).abs().mean() > 5, (name, tn)


def test_dataset_resolution(tmp_path, monkeypatch):
    (tmp_path / "Mine").mkdir()
    Image.fromarray(RGB).save(tmp_path / "Mine" / "b.png")
    Image.fromarray(RGB).save(tmp_path / "Mine" / "a.PNG")
    (tmp_path / "Mine" / "readme.txt").write_text("not an image")
    assert [f.name for f in list_images(tmp_path / "Mine")] == ["a.PNG", "b.png"]
    monkeypatch.setenv("SRLIB_DATA", str(tmp_path))
    assert resolve_dataset("Mine") == tmp_path / "Mine"
    with pytest.raises(FileNotFoundError, match=r"'Nope' not found.*\$SRLIB_DATA/Nope"):
        resolve_dataset("Nope")
    monkeypatch.delenv("SRLIB_DATA")
    with pytest.raises(FileNotFoundError, match="SRLIB_DATA is not set"):
        resolve_dataset("Mine")
    (tmp_path / "Empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images found"):
        list_images(tmp_path / "Empty")
    with pytest.raises(ValueError, match="split"):
        list_images("default", "val")


def test_data_folder_of_the_project(tmp_path, monkeypatch):
    (tmp_path / "data" / "Local").mkdir(parents=True)
    monkeypatch.setattr(data, "PROJECT_ROOT", tmp_path)
    assert resolve_dataset("Local") == tmp_path / "data" / "Local"


def test_eval_pair_mod_crops_and_quantises():
    op = BicubicDegradation(3)
    img = torch.randint(0, 256, (3, 50, 47), dtype=torch.uint8)
    hr, lr = eval_pair(img, op)
    assert hr.shape == (3, 48, 45) and lr.shape == (3, 16, 15)
    assert torch.equal(hr, mod_crop(img, 3).float() / 255)
    assert torch.equal(lr, quantize(lr))  # on the 8-bit grid
    assert (lr - op.down(hr)).abs().max() <= 0.5 / 255 + 1e-7


def _dihedral(x: torch.Tensor) -> list[torch.Tensor]:
    out = []
    for k in range(4):
        r = torch.rot90(x, k, (-2, -1))
        out += [r, r.flip(-1)]
    return out


def test_sampler_patches_are_augmented_crops():
    img = torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8)
    s = PatchSampler([img], patch=16, scale=4, batch=64, seed=3)
    hr, lr = s.sample()
    assert hr.shape == (64, 3, 16, 16) and lr.shape == (64, 3, 4, 4)
    assert hr.dtype == torch.float32 and torch.equal(lr, quantize(lr))
    torch.testing.assert_close(lr, quantize(BicubicDegradation(4).down(hr)))
    crops = torch.stack(
        [t for y in range(25) for x in range(35) for t in _dihedral(img[:, y : y + 16, x : x + 16])]
    ).float() / 255
    seen = set()
    for p in hr:
        match = ((crops - p).abs().amax(dim=(1, 2, 3)) == 0).nonzero()
        assert len(match) > 0, "a patch that is no augmented crop of the image"
        seen.add(int(match[0]) % 8)
    assert len(seen) >= 6  # the augmentations are used


def test_sampler_is_seeded_and_skips_small_images():
    imgs = [torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8) for _ in range(3)]
    small = torch.zeros(3, 10, 64, dtype=torch.uint8)
    with pytest.warns(UserWarning, match="tiny: .* smaller than the patch"):
        a = PatchSampler([*imgs, small], 32, 2, 8, seed=5, names=["a", "b", "c", "tiny"])
    b = PatchSampler(imgs, 32, 2, 8, seed=5)
    assert a.n_images == 3
    for _ in range(3):
        assert torch.equal(a.sample()[0], b.sample()[0])
    c = PatchSampler(imgs, 32, 2, 8, seed=6)
    assert not torch.equal(b.sample()[0], c.sample()[0])


def test_sampler_bad_input():
    img = torch.zeros(3, 20, 20, dtype=torch.uint8)
    with pytest.raises(ValueError, match="no training image is at least 32x32"), \
            pytest.warns(UserWarning):
        PatchSampler([img], 32, 4, 2)
    with pytest.raises(ValueError, match="multiple of scale 4"):
        PatchSampler([img], 18, 4, 2)
    with pytest.raises(ValueError, match="batch"):
        PatchSampler([img], 8, 4, 0)
