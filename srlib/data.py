"""Images on disk -> uint8 tensors; evaluation pairs; the on-device training sampler.

Data sets are named three ways (see ``data/README.md``):

- ``default`` (alias ``embedded``): photographs bundled with scikit-image, split into a
  fixed train and test part with no content in common (``DEFAULT_SPLIT``);
- a folder path holding HR images;
- a name such as ``Set5``, resolved as ``data/<Name>`` in this project, then
  ``$SRLIB_DATA/<Name>``.

All images become ``uint8`` RGB tensors ``(3, H, W)``; conversion to float ``[0, 1]``
happens on the device that needs it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from srlib.metrics import quantize
from srlib.resize import BicubicDegradation

PROJECT_ROOT = Path(__file__).resolve().parents[1]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".gif")

# The embedded default data: files of skimage/data/, natural photographs only. Test
# images are colour photographs; no scene appears in both parts (motorcycle_right is
# the stereo twin of motorcycle_left and is left out; chelsea is skimage's "cat").
DEFAULT_SPLIT: dict[str, tuple[str, ...]] = {
    "train": (
        "rocket.jpg", "motorcycle_left.png", "hubble_deep_field.jpg", "retina.jpg",
        "ihc.png", "brick.png", "grass.png", "gravel.png", "camera.png", "coins.png",
    ),
    "test": ("astronaut.png", "chelsea.png", "coffee.png"),
}
DEFAULT_NAMES = ("default", "embedded")


def load_image(path: str | Path) -> torch.Tensor:
    """Read an image file as a ``uint8`` RGB tensor ``(3, H, W)``.

    Grayscale is replicated to RGB; an alpha channel is dropped (with a warning when
    it is not fully opaque); 16-bit images are rounded to 8 bits; float images (values
    in ``[0, 1]``) to 8 bits; palette images are expanded; CMYK and YCbCr images (JPEG,
    TIFF) are converted to RGB by Pillow, LAB and HSV ones refused; of an animated or
    multi-page file the first frame is used. A file that is not a readable image (an
    empty one said so), or a float image with NaN or infinite values, raises
    ``ValueError`` naming it.
    """
    import imageio.v3 as iio

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    a = _read_pillow_mode(path)
    if a is None:
        try:
            a = np.asarray(iio.imread(path))
        except Exception as err:  # imageio raises many types; all mean "not an image"
            raise ValueError(_not_an_image(path, err)) from None
    if a.ndim == 4 or (a.ndim == 3 and a.shape[-1] not in (1, 2, 3, 4)):
        a = a[0]  # first frame of an animation or a multi-page file
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 2, 3, 4) or min(a.shape[:2]) < 1:
        raise ValueError(f"{path}: unsupported image layout {a.shape}, expected H x W [x C]")
    a = _to_uint8(a, path)
    if a.shape[-1] in (2, 4):  # gray+alpha or RGBA
        if (a[..., -1] < 255).any():
            warnings.warn(f"{path}: alpha channel is not opaque; it is dropped", stacklevel=2)
        a = a[..., :-1]
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


# Pillow modes that imageio would read as RGB although they are not: CMYK (C, M, Y as R,
# G, B and K as alpha) and YCbCr are converted to RGB by Pillow; the others are refused.
_CONVERTED = ("CMYK", "YCbCr")
_REFUSED = ("LAB", "HSV")


def _read_pillow_mode(path: Path) -> np.ndarray | None:
    """A CMYK or YCbCr image as Pillow converts it to RGB, uint8 ``(H, W, 3)``; a LAB or
    HSV one refused (``ValueError`` naming the file and the mode); ``None`` for any other
    mode, or a file Pillow cannot open (imageio reads it, or says why not)."""
    from PIL import Image

    try:
        im = Image.open(path)
    except Exception:
        return None
    with im:
        if im.mode in _REFUSED:
            raise ValueError(f"{path}: {im.mode} image; expected RGB, grayscale, CMYK or "
                             "YCbCr (convert it to RGB first, e.g. with Pillow's ImageCms)")
        return np.asarray(im.convert("RGB")) if im.mode in _CONVERTED else None


def _not_an_image(path: Path, err: Exception) -> str:
    """What a file no reader could read is: empty, or not an image (the reader's own
    advice to install a plugin left out: the file is not a video)."""
    size = path.stat().st_size
    if size == 0:
        return f"{path}: an empty file (0 bytes), not an image"
    why = str(err).split("\n")[0]
    if "pip install" in str(err) or "plugin" in why.lower():
        why = "no image reader recognises its contents"
    return f"{path}: not an image ({size} bytes; {why})"


def _to_uint8(a: np.ndarray, path: Path) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if a.dtype == np.uint16:
        return np.floor(a.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).sum())
        raise ValueError(f"{path}: pixel values not finite (NaN or inf): {bad} of {a.size}; "
                         "expected floats in [0, 1]")
    if np.issubdtype(a.dtype, np.floating) and np.nanmin(a) >= 0 and np.nanmax(a) <= 1:
        return np.floor(a.astype(np.float64) * 255.0 + 0.5).astype(np.uint8)
    raise ValueError(
        f"{path}: unsupported pixel type {a.dtype} (range {a.min()}..{a.max()}); "
        "expected 8- or 16-bit integers, or floats in [0, 1]"
    )


def to_float(x: torch.Tensor) -> torch.Tensor:
    """``uint8`` -> float32 in ``[0, 1]``."""
    return x.float() / 255.0


def _skimage_data_dir() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


def resolve_dataset(name_or_path: str | Path) -> Path:
    """The folder of a named data set or a path; ``FileNotFoundError`` says where to put it."""
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        return p
    name = str(name_or_path)
    looked = [PROJECT_ROOT / "data" / name]
    env = os.environ.get("SRLIB_DATA")
    if env:
        looked.append(Path(env).expanduser() / name)
    for cand in looked:
        if cand.is_dir():
            return cand
    where = ", ".join(str(c) for c in looked)
    raise FileNotFoundError(
        f"data set {name!r} not found (looked in: {where}"
        f"{'' if env else '; SRLIB_DATA is not set'}). Put its HR images (PNG/JPEG) in "
        f"{PROJECT_ROOT / 'data' / name}/ or in $SRLIB_DATA/{name}/, or pass a folder path."
    )


def list_images(name_or_path: str | Path, split: str = "test") -> list[Path]:
    """Image files of a data set, sorted by name. ``split`` applies to ``default`` only.

    In a folder, entries named like images that are not regular files (folders, dangling
    links, symlink loops) are skipped with one warning naming them."""
    if str(name_or_path) in DEFAULT_NAMES:
        if split not in DEFAULT_SPLIT:
            raise ValueError(f"split must be one of {sorted(DEFAULT_SPLIT)}, got {split!r}")
        return [_skimage_data_dir() / f for f in DEFAULT_SPLIT[split]]
    folder = resolve_dataset(name_or_path)
    files, skipped = [], []
    for f in sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES):
        (files if f.is_file() else skipped).append(f)  # is_file follows good links only
    if skipped:
        warnings.warn(f"{folder}: not a regular file (a folder, a dangling link or a "
                      f"symlink loop), skipped: {', '.join(f.name for f in skipped)}",
                      stacklevel=2)
    if not files:
        raise FileNotFoundError(
            f"{folder}: no images found (expected files ending in {', '.join(IMAGE_SUFFIXES)})"
        )
    return files


def dataset_name(name_or_path: str | Path) -> str:
    """A short name for tables: ``default`` or the folder's name."""
    return "default" if str(name_or_path) in DEFAULT_NAMES else Path(name_or_path).name


def load_dataset(name_or_path: str | Path, split: str = "test") -> list[tuple[str, torch.Tensor]]:
    """``[(image name, uint8 (3, H, W)), ...]`` of a data set."""
    return [(f.stem, load_image(f)) for f in list_images(name_or_path, split)]


def mod_crop(img: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop the bottom and right so that H and W are multiples of ``scale``."""
    h, w = img.shape[-2:]
    return img[..., : h - h % scale, : w - w % scale]


def min_eval_side(scale: int) -> int:
    """Smallest HR side (px) the evaluation accepts at ``scale``: the LR needs 4 px per
    side for the bicubic kernel, and after cropping ``scale`` px per border SSIM's 11 x 11
    Gaussian window must fit."""
    side = max(4 * scale, 11 + 2 * scale)
    return -(-side // scale) * scale  # a multiple of the scale (mod-crop keeps it)


def check_eval_size(img: torch.Tensor, path: str | Path, scale: int) -> None:
    """``ValueError`` naming the file when ``img`` (``(3, H, W)``) is too small to
    evaluate at ``scale``."""
    _check_eval_side(*img.shape[-2:], path, scale)


def _check_eval_side(h: int, w: int, path: str | Path, scale: int) -> None:
    need = min_eval_side(scale)
    if min(h, w) < need:
        raise ValueError(f"{path}: {h}x{w} px is too small to evaluate at x{scale} "
                         f"(each side needs at least {need} px)")


LPIPS_MIN_SIDE = 32  # srlib.lpips refuses smaller images


def image_size(path: str | Path) -> tuple[int, int]:
    """An image's ``(height, width)`` in px from its header, or from the whole file where
    Pillow cannot open it (the full reader then reads it, or says what it is)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except Exception:  # not for Pillow
        h, w = load_image(path).shape[-2:]
        return h, w


def check_test_images(data: str, scale: int, with_lpips: bool = True) -> None:
    """Every test image of ``data`` large enough to evaluate at ``scale`` (and, with LPIPS,
    at least ``LPIPS_MIN_SIDE`` px a side once mod-cropped), checked from the files'
    headers before anything trains; ``ValueError`` names the first file too small."""
    for path in list_images(data, "test"):
        h, w = image_size(path)
        _check_eval_side(h, w, path, scale)
        side = min(h - h % scale, w - w % scale)
        if with_lpips and side < LPIPS_MIN_SIDE:
            raise ValueError(f"{path}: {h}x{w} px is too small for LPIPS (each side needs at "
                             f"least {LPIPS_MIN_SIDE} px once cropped to a multiple of "
                             f"{scale}); set eval_lpips: false for this test set's variants")


def eval_pair(
    hr_u8: torch.Tensor, op: BicubicDegradation
) -> tuple[torch.Tensor, torch.Tensor]:
    """The evaluation convention: ``HR`` mod-cropped, ``LR = quantize(D(HR))``.

    Args: ``hr_u8`` uint8 ``(3, H, W)``. Returns float32 ``(hr, lr)`` in ``[0, 1]``,
    ``(3, H', W')`` and ``(3, H'/s, W'/s)``, on ``hr_u8``'s device. The LR is made by one
    path for every model, baseline and device: float64 on the CPU, then rounded to 8 bits
    (on a GPU, TF32 matmuls would change about 1% of the 8-bit LR values)."""
    hr = mod_crop(hr_u8, op.scale).cpu().double() / 255.0
    lr = quantize(op.down(hr))
    return hr.float().to(hr_u8.device), lr.float().to(hr_u8.device)


class PatchSampler:
    """Random HR/LR training patches, cut, augmented and degraded on the device.

    Every usable image lives once on ``device`` as uint8 in one flat buffer; a batch is
    a single gather of ``batch x 3 x patch x patch`` indices, then random horizontal
    flips and 90-degree rotations, then ``LR = quantize(D(HR))``: no per-patch Python.

    Args:
        images: uint8 ``(3, H, W)`` tensors (any device).
        patch: HR patch side in px, a multiple of ``scale``.
        scale, batch: integer SR factor and batch size.
        seed: seeds this sampler's own generator (reproducible, independent of torch's).
    Yields ``(hr, lr)`` float32 in ``[0, 1]``: ``(B, 3, patch, patch)``,
    ``(B, 3, patch/s, patch/s)``.
    """

    def __init__(
        self,
        images: list[torch.Tensor],
        patch: int,
        scale: int,
        batch: int,
        device: str | torch.device = "cpu",
        seed: int = 0,
        names: list[str] | None = None,
    ):
        if patch < 1 or patch % scale:
            raise ValueError(f"patch must be a positive multiple of scale {scale}, got {patch}")
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        names = names or [f"image {i}" for i in range(len(images))]
        keep = []
        for name, img in zip(names, images, strict=True):
            if min(img.shape[-2:]) < patch:
                warnings.warn(
                    f"{name}: {img.shape[-2]}x{img.shape[-1]} px is smaller than the patch "
                    f"({patch} px); skipped", stacklevel=2,
                )
            else:
                keep.append(img)
        if not keep:
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            raise ValueError(
                f"no training image is at least {patch}x{patch} px ({len(images)} given: "
                f"{shown}): use a smaller patch or larger images"
            )
        self.device = torch.device(device)
        self.op = BicubicDegradation(scale)
        self.patch, self.batch = patch, batch
        self.heights = torch.tensor([im.shape[-2] for im in keep], device=self.device)
        self.widths = torch.tensor([im.shape[-1] for im in keep], device=self.device)
        sizes = torch.tensor([im.numel() for im in keep])
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)[:-1]])
        self.offsets = self.offsets.to(self.device)
        self.buffer = torch.cat([im.reshape(-1) for im in keep]).to(self.device)
        self.gen = torch.Generator(device=self.device).manual_seed(seed)

    @property
    def n_images(self) -> int:
        return len(self.heights)

    def _uniform(self, n: int) -> torch.Tensor:
        return torch.rand(n, generator=self.gen, device=self.device)

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch ``(hr, lr)``; see the class docstring."""
        b, p, dev = self.batch, self.patch, self.device
        i = torch.randint(self.n_images, (b,), generator=self.gen, device=dev)
        h, w = self.heights[i], self.widths[i]
        y0 = (self._uniform(b) * (h - p + 1)).long()
        x0 = (self._uniform(b) * (w - p + 1)).long()
        ar = torch.arange(p, device=dev)
        ch = torch.arange(3, device=dev)
        idx = (
            self.offsets[i].view(b, 1, 1, 1)
            + ch.view(1, 3, 1, 1) * (h * w).view(b, 1, 1, 1)
            + (y0.view(b, 1) + ar).view(b, 1, p, 1) * w.view(b, 1, 1, 1)
            + (x0.view(b, 1) + ar).view(b, 1, 1, p)
        )
        hr = to_float(self.buffer[idx])  # (B, 3, p, p)
        flip = self._uniform(b) < 0.5
        hr = torch.where(flip.view(b, 1, 1, 1), hr.flip(-1), hr)
        k = (self._uniform(b) * 4).long()  # rot90 by k: transpose on odd k, then flips
        hr = torch.where((k % 2 == 1).view(b, 1, 1, 1), hr.transpose(-1, -2), hr)
        hr = torch.where((k >= 2).view(b, 1, 1, 1), hr.flip(-1, -2), hr)
        return hr, quantize(self.op.down(hr))

