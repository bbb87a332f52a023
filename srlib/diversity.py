"""Stochastic SR measured as the NTIRE 2021 "Learning the SR space" challenge measures it.

A stochastic generator draws ``K`` samples per test image (``K = 10``, as the challenge),
sample ``i`` from a generator seeded with ``sample_seeds(K)[i]``, the same seeds for every
image and every variant, so that samples are reproducible and paired across variants.
A run with ``noise`` (``srlib.models.RRDBNet``'s noise input) is measured so by
``srlib.evaluate.evaluate_samples``: ``sample_stats``, ``diversity_score`` and the
challenge's LR-PSNR (``srlib.ntire``) per image, into ``samples.csv`` and ``metrics.json``.

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
quantised LR, ``srlib.metrics.lr_psnr``; DESIGN section 3 describes the challenge's).
"""

from __future__ import annotations

import torch

from srlib.lpips import LPIPS
from srlib.metrics import lr_psnr, psnr_y, quantize
from srlib.resize import BicubicDegradation

DEFAULT_K = 10  # samples per image in the NTIRE 2021 challenge


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


def _check(samples: torch.Tensor, hr: torch.Tensor) -> None:
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
    _check(samples, hr)
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
    _check(samples, hr)
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
