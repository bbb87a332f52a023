"""The NTIRE 2021 "Learning the Super-Resolution Space" challenge's measures.

The challenge measures a stochastic SR method on ``K`` samples per image: their spread
(the diversity score) and the consistency of each with its input (LR-PSNR, at least
``THRESHOLD_DB`` = 45 dB for every sample). Both are here: how the samples are drawn and
the diversity score first, then LR-PSNR as the challenge's code computes it, which
differs from ours (``srlib.metrics.lr_psnr``) mostly by its rounding.

Samples and the diversity score
-------------------------------

A stochastic generator draws ``K`` samples per test image (``K = 10``, as the challenge),
sample ``i`` from a generator seeded with ``sample_seeds(K)[i]``, the same seeds for every
image and every variant, so that samples are reproducible and paired across variants.
A run with ``noise`` (``srlib.models.RRDBNet``'s noise input) is measured so by
``srlib.evaluate.evaluate_samples``: ``sample_stats``, ``diversity_score`` and the
challenge's LR-PSNR (``lr_psnr_ntire``, below) per image, into ``samples.csv`` and
``metrics.json``.

The challenge's diversity score (``measure.py`` of ``andreas128/NTIRE21_Learning_SR_Space``):
for each sample, the spatial LPIPS map against HR (AlexNet, v0.1, inputs scaled to
``[-1, 1]``, ``spatial=True``: each layer's map upsampled bilinearly to the image size and
summed; see ``srlib.lpips.LPIPS.spatial_map``). Then

- global: the best (lowest) whole-image LPIPS over the samples, where a sample's
  whole-image LPIPS is its map's mean, as the challenge takes it;
- local: per pixel, the lowest map value over the samples, averaged over the image;
- ``score = (global - local) / global * 100``.

Since the per-pixel minimum is at most any sample's map, ``local <= global``: the score is
0 when every sample is the same image (or one sample is best everywhere) and grows when
different samples are best in different places, i.e. when the samples differ where it
matters. It rewards spread, not quality; read it beside the LPIPS and LR-PSNR columns.

Ours differs from the challenge in the LPIPS network where the AlexNet trunk is absent
(``srlib.lpips.default_kind()`` falls back to ST-LPIPS; name the kind next to the
number), in cropping (the challenge crops GT to a multiple of 8; we use the evaluation
pair as given, mod-cropped to the scale) and in LR-PSNR (ours: ``D(SR)`` against the
quantised LR, ``srlib.metrics.lr_psnr``; the challenge's is ``lr_psnr_ntire``, below).

LR-PSNR as the challenge computes it
------------------------------------

The challenge's toolkit (``andreas128/NTIRE21_Learning_SR_Space``: ``measure.py`` and the
``imresize.py`` it imports, a NumPy port of MATLAB's ``imresize`` from
``fatheral/matlab_imresize``; the port was read in its copy by the same author in
``andreas128/SRFlow``, ``code/imresize.py``) scores the consistency of an SR image with
its input as follows (``measure.py``, function ``lpips_analysis``):

1. GT and SR are read from PNG with OpenCV as 8-bit colour, BGR reordered to RGB: uint8
   ``(H, W, 3)`` arrays (``imread``).
2. GT is cropped at the bottom and right to a multiple of **8** in both sides, whatever
   the scale (``gt[:(h//8)*8, :(w//8)*8]``); the SR is then cropped, also from the
   top-left corner, to the cropped GT's size (``sr[:h1, :w1]``).
3. Both are shrunk by ``1/scale`` with the port's ``imresize`` (``imgA_lr`` from SR,
   ``imgB_lr`` from GT). The challenge compares the two shrunk images with each other;
   the LR input given to the method does not take part.
4. ``imresize`` builds MATLAB's bicubic weights (Keys, a = -0.5, kernel widened by
   ``scale`` when shrinking, weights normalised per output pixel, symmetric padding,
   output size ``ceil(n/scale)``: its ``contributions``), then resizes **one axis at a
   time**, rows (height) first: the axis order is ``argsort`` of the two equal scales,
   i.e. ``[0, 1]``. Each pass (``imresizevec``) sums in float64 and, because its input
   is uint8, **clips to [0, 255], rounds with ``np.around`` and casts back to uint8**.
   So the height pass is quantised before the width pass sees it, and the result is
   quantised again. ``np.around`` rounds halves to even; with scales 2, 4 and 8 the
   weights are dyadic and exact ties (``k + 0.5``) do occur, so the rule matters.
5. ``skimage.metrics.peak_signal_noise_ratio(imgA_lr, imgB_lr)``: uint8 inputs, so the
   data range is 255; MSE is the mean over every value of the ``(h, w, 3)`` arrays in
   float64 (RGB, no colour conversion, no border crop); ``10 log10(255^2 / MSE)``.
   Identical images give ``inf`` (NumPy divides by zero, with a warning).

:func:`lr_psnr_ntire` reproduces those steps on uint8 tensors ``(3, H, W)`` with the
MATLAB-exact matrices of :mod:`srlib.resize` (``resize_matrix``, the matrices
``imresize`` applies) and the port's uint8 rounding between and after the passes.
Differences from the port: images smaller than the kernel (a side under ``4 * scale``
px after the crop) raise ``ValueError`` here, and an SR smaller than the cropped GT
raises ``ValueError`` where the challenge's PSNR would fail on mismatched shapes.

How it differs from ours (:func:`srlib.metrics.lr_psnr`):

- ours: ``PSNR(D(SR_q), LR)`` in float RGB, peak 1, with ``SR_q`` the 8-bit SR and
  ``LR = round(255 D(HR)) / 255`` the quantised input; ``D(SR_q)`` is **not** rounded,
  and ``D`` is one exact separable operator (no rounding between the axes);
- theirs: ``PSNR(Q(D_w Q(D_h SR_q)), Q(D_w Q(D_h GT)))`` at peak 255 (the same scale as
  ours at peak 1), where ``Q`` is clip + round-half-even to uint8; GT cropped to a
  multiple of 8 instead of ``scale``; the reference is the re-downscaled GT, rounded
  through two passes, rather than the LR rounded once (half up) from the exact ``D``.

Why they differ most near the challenge's 45 dB threshold: the challenge's reference is
not the LR the method was given but the GT downscaled again through two uint8 passes.
The LR was rounded once from the exact ``D(GT)``; the height pass's rounding shifts
``D(GT)`` by up to half a level (filtered by the width pass), and wherever ``D(GT)`` lies
near a half level the final rounding lands one level off the LR: on 9-17% of the values
of 48 x 40 crops of the embedded test images (x2, x4). A consistent SR, whose
downscaled values sit on the LR's levels, mostly comes back to the LR (0-3% off), so
the two sides disagree there. That is a floor of 0.08-0.18 level^2 on the MSE: an
exactly consistent SR scores 55-59 dB, where ours reads 60-72 dB once it is saved as 8
bits and > 300 dB before. (Rounded once, at the end only, the challenge's comparison
would read > 69 dB or inf.) For an inconsistent SR the extra MSE measured 0.15-0.36
level^2. Added to the ~32 level^2 of a 33 dB image it is invisible (< 0.05 dB); added
to ~2 level^2 (45 dB) it costs 0.3-0.7 dB; to ~0.65 level^2 (50 dB) 0.5-1.9 dB. The
difference is not one-sided: as theirs compares with the re-downscaled GT, the GT
itself scores ``inf`` there and 53-59 dB in ours (the LR's own rounding, and in
saturated regions its clipping, which ours sees and theirs applies to both sides).
Report both where a number meets the 45 dB threshold.
"""

from __future__ import annotations

import math

import torch

from srlib.lpips import LPIPS
from srlib.metrics import lr_psnr, psnr_y, quantize
from srlib.resize import BicubicDegradation, resize_matrix

DEFAULT_K = 10  # samples per image in the NTIRE 2021 challenge
# The challenge's consistency requirement: every sample's LR-PSNR at least this (dB).
THRESHOLD_DB = 45.0
GT_MULTIPLE = 8  # the challenge crops GT to a multiple of 8 px, whatever the scale
PEAK = 255.0  # skimage's data range for uint8 images


# ---- samples and the diversity score ---------------------------------------------------

def sample_seeds(k: int = DEFAULT_K, base: int = 0) -> list[int]:
    """The fixed seeds of ``k`` samples: ``base, base + 1, ..., base + k - 1``.

    Sample ``i`` of every test image is drawn with ``torch.Generator().manual_seed(seed)``
    for the ``i``-th seed, so a rerun saves the same samples and two variants are compared
    on the same noise. Change ``base`` to draw a disjoint set."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if isinstance(base, bool) or not isinstance(base, int) or base < 0:
        raise ValueError(f"base must be an integer >= 0, got {base!r}")
    return list(range(base, base + k))


def _check_samples(samples: torch.Tensor, hr: torch.Tensor) -> None:
    if not isinstance(samples, torch.Tensor) or samples.dim() != 4 or samples.shape[1] != 3:
        shape = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples)
        raise ValueError(f"samples must have shape (K, 3, H, W), got {shape}")
    if not isinstance(hr, torch.Tensor) or hr.shape != samples.shape[1:]:
        shape = tuple(hr.shape) if isinstance(hr, torch.Tensor) else type(hr)
        raise ValueError(f"hr must have shape {tuple(samples.shape[1:])} (3, H, W), got {shape}")


@torch.no_grad()
def diversity_score(samples: torch.Tensor, hr: torch.Tensor, metric: LPIPS) -> dict[str, float]:
    """The challenge's diversity score of ``samples`` ``(K, 3, H, W)`` against ``hr``
    ``(3, H, W)``, both in ``[0, 1]``, with the LPIPS network ``metric`` (module doc).

    Samples are quantised here (clip + 8 bits, as saved PNGs). Returns ``global_best``,
    ``local_best``, ``score`` (percent; NaN if some sample equals HR, global = 0) and
    ``lpips_mean`` (the mean of the samples' whole-image LPIPS, the challenge's
    ``LPIPS_mean``). One sample at a time through the network, so large images fit."""
    _check_samples(samples, hr)
    samples = quantize(samples)
    ref = hr[None].to(samples.dtype)
    maps = torch.cat([metric.spatial_map(s[None], ref)[:, 0] for s in samples]).double()
    per_sample = maps.mean(dim=(1, 2))  # (K,) whole-image LPIPS, as the challenge takes it
    global_best = per_sample.min().item()
    local_best = maps.min(dim=0).values.mean().item()
    score = (global_best - local_best) / global_best * 100 if global_best > 0 else float("nan")
    return {
        "global_best": global_best,
        "local_best": local_best,
        "score": score,
        "lpips_mean": per_sample.mean().item(),
    }


@torch.no_grad()
def sample_stats(
    samples: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor, op: BicubicDegradation
) -> dict[str, float]:
    """Distortion statistics of ``K`` samples ``(K, 3, H, W)`` of one image, each quantised
    (clip + 8 bits) first, against its evaluation pair ``hr`` ``(3, H, W)``, ``lr``.

    ``lr_psnr_mean``, ``lr_psnr_worst``: mean and minimum over samples of our LR-PSNR
    (``srlib.metrics.lr_psnr``; the challenge asks for at least 45 dB worst).
    ``psnr_y_mean_image``: PSNR-Y (crop = scale) of the samples' mean, quantised: what
    averaging the samples would give, an MSE-like estimate. ``psnr_y_mean``: mean over
    samples of their PSNR-Y."""
    _check_samples(samples, hr)
    q = quantize(samples)
    k, s = q.shape[0], op.scale
    lr_psnrs = lr_psnr(q, lr.expand(k, *lr.shape), op)
    psnrs = psnr_y(q, hr.expand_as(q), crop=s)
    return {
        "lr_psnr_mean": lr_psnrs.mean().item(),
        "lr_psnr_worst": lr_psnrs.min().item(),
        "psnr_y_mean_image": psnr_y(quantize(q.mean(dim=0)), hr, crop=s).item(),
        "psnr_y_mean": psnrs.mean().item(),
    }


@torch.no_grad()
def noise_floor(samples: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor,
                op: BicubicDegradation, metric: LPIPS) -> dict[str, float]:
    """The diversity score that invisible, perfectly consistent noise already reaches: the
    calibrated null of a diversity claim (a score above 0 alone says nothing).

    From ``samples`` ``(K, 3, H, W)`` in ``[0, 1]`` (quantised here), the per-pixel standard
    deviation ``sigma`` over the K samples; then K images ``D^+ LR + null(sigma * z_k)``,
    ``z_k`` standard Gaussian noise drawn with ``sample_seeds(K)`` (reproducible), ``null``
    the null-space part (``op.split``): noise as strong as the variant's own spread, pixel
    by pixel, that ``D`` cannot see. Returns ``diversity_floor``, their ``diversity_score``
    (percent; 0 when the samples are identical), and ``sample_std``, the mean of
    ``sigma`` in grey levels (0-255)."""
    _check_samples(samples, hr)
    q = quantize(samples).double()
    sigma = q.std(dim=0, unbiased=False)  # (3, H, W), [0, 1] units
    base = op.pinv(lr.double())
    floor = []
    for seed in sample_seeds(q.shape[0]):
        # drawn on the CPU (the same z on every device), then moved to the samples' device
        z = torch.randn(sigma.shape, generator=torch.Generator().manual_seed(seed),
                        dtype=torch.float64).to(sigma.device)
        floor.append(base + op.split(sigma * z)[1])
    score = diversity_score(torch.stack(floor).to(samples.dtype), hr, metric)["score"]
    return {"diversity_floor": score, "sample_std": 255.0 * sigma.mean().item()}


# ---- LR-PSNR as the challenge computes it ------------------------------------------------


def _check_u8(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype != torch.uint8:
        raise ValueError(f"{name} must be a uint8 tensor, got dtype {x.dtype}")
    if x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(f"{name} must be an RGB image (3, H, W), got shape {tuple(x.shape)}")


def _check_scale(scale: int) -> int:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}")
    return scale


def _round_u8(x: torch.Tensor) -> torch.Tensor:
    """The port's uint8 output of one pass: clip to [0, 255], round half to even
    (``np.around``), kept as float64 integer levels (the cast to uint8 is then exact)."""
    return torch.round(x.clamp(0.0, 255.0))


def downscale_u8(x: torch.Tensor, scale: int) -> torch.Tensor:
    """The port's ``imresize(img_u8, 1/scale)``: ``(3, H, W)`` uint8 -> ``(3, h, w)``
    float64 integer levels in ``[0, 255]``, ``h = ceil(H/scale)``.

    Height pass, rounded to uint8; then width pass, rounded to uint8 (the port's axis
    order and its per-pass conversion back to uint8)."""
    _check_u8(x, "x")
    s = 1.0 / _check_scale(scale)
    h, w = x.shape[-2:]
    dev = x.device
    a_h = resize_matrix(h, s, torch.float64, dev)
    a_w = resize_matrix(w, s, torch.float64, dev)
    rows = _round_u8(a_h @ x.double())  # pass 1: dim 0 of the (H, W, 3) array
    return _round_u8(rows @ a_w.transpose(0, 1))  # pass 2: dim 1


def crop_gt(gt_u8: torch.Tensor) -> torch.Tensor:
    """The challenge's GT crop: bottom and right, to a multiple of 8 px per side."""
    h, w = gt_u8.shape[-2:]
    h8, w8 = (h // GT_MULTIPLE) * GT_MULTIPLE, (w // GT_MULTIPLE) * GT_MULTIPLE
    if h8 == 0 or w8 == 0:
        raise ValueError(f"gt of size {h}x{w} has no {GT_MULTIPLE}x{GT_MULTIPLE} part to keep")
    return gt_u8[..., :h8, :w8]


def lr_psnr_ntire(sr_u8: torch.Tensor, gt_u8: torch.Tensor, scale: int) -> float:
    """LR-PSNR (dB) of the NTIRE 2021 Learning-the-SR-Space challenge.

    Args:
        sr_u8: the SR image as saved, uint8 ``(3, H', W')``, at least as large as the
            cropped GT (larger is cropped at the bottom and right, as the challenge does).
        gt_u8: the ground-truth HR image, uint8 ``(3, H, W)``, uncropped: it is cut to
            ``(8 * (H // 8), 8 * (W // 8))`` here. For the challenge's exact number pass
            the original GT, not one already mod-cropped to the scale (the same thing
            for scales 2, 4, 8, not for 3).
        scale: the integer SR factor (4 and 8 in the challenge).
    Returns:
        ``10 log10(255^2 / MSE)`` between the port-downscaled SR and GT, RGB, no border
        crop; ``inf`` when the two downscaled images are identical.

    It differs from :func:`srlib.metrics.lr_psnr` (see the module docstring): both
    sides are rounded to uint8 after each of the two resize passes and compared with
    each other, not ``D(SR)`` unrounded against the LR input; the rounding sets a floor
    on the MSE that costs up to ~1.5 dB near 45-50 dB and nothing visible near 33 dB.
    """
    _check_u8(sr_u8, "sr_u8")
    _check_u8(gt_u8, "gt_u8")
    scale = _check_scale(scale)
    gt = crop_gt(gt_u8)  # measure.py: GT cut to (h//8)*8 x (w//8)*8, before the loop
    h1, w1 = gt.shape[-2:]
    if sr_u8.shape[-2] < h1 or sr_u8.shape[-1] < w1:
        raise ValueError(
            f"sr of size {tuple(sr_u8.shape[-2:])} is smaller than the cropped gt "
            f"{(h1, w1)}: the challenge compares the top-left {h1}x{w1} px of both"
        )
    sr = sr_u8[..., :h1, :w1]  # measure.py: each sample cut to the cropped GT's size
    a = downscale_u8(sr, scale)  # measure.py: imgA_lr, imresize of the SR by 1/scale
    b = downscale_u8(gt.to(sr.device), scale)  # measure.py: imgB_lr, the same on the GT
    # skimage's PSNR of two uint8 images: data range 255, MSE over all (h, w, 3) values
    mse = float((a - b).pow(2).mean())
    if mse == 0.0:
        return math.inf  # skimage divides by zero: inf
    return 10.0 * math.log10(PEAK**2 / mse)


def _check_float(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [0, 1]")


def _float_to_u8(x: torch.Tensor, name: str) -> torch.Tensor:
    """Float ``[0, 1]`` on the 8-bit grid (an 8-bit image read as float) -> uint8."""
    _check_float(x, name)
    levels = x.double() * 255.0
    if x.numel():
        off = float((levels - levels.round()).abs().max())
        if off > 1e-3 or float(levels.min()) < -1e-3 or float(levels.max()) > 255.001:
            raise ValueError(
                f"{name} must be an 8-bit image in [0, 1] (values k/255); it is off the "
                f"8-bit grid by up to {off:.3g} levels or outside [0, 1]"
            )
    return levels.round().clamp(0, 255).to(torch.uint8)


def lr_psnr_ntire_float(sr: torch.Tensor, hr: torch.Tensor, scale: int) -> float:
    """:func:`lr_psnr_ntire` for the evaluation pipeline's float images.

    ``sr``: float ``(3, H, W)``, any range; it is clipped and rounded to 8 bits as a
    saved PNG (:func:`srlib.metrics.quantize`, half up) before the challenge's steps.
    ``hr``: float ``(3, H, W)`` in ``[0, 1]`` on the 8-bit grid (``ValueError`` if not).
    """
    _check_float(sr, "sr")
    sr_u8 = _float_to_u8(quantize(sr), "sr")
    hr_u8 = _float_to_u8(hr, "hr")
    return lr_psnr_ntire(sr_u8, hr_u8, scale)
