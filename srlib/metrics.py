"""Image-quality metrics with the conventions of the SR literature.

Conventions (each is what published tables use; change one and numbers shift):

- Images are float tensors in ``[0, 1]``, ``(B, 3, H, W)`` or ``(3, H, W)``, RGB.
- SR output is clipped to ``[0, 1]`` and rounded to 8 bits before any metric, as if
  saved to PNG (:func:`quantize`, MATLAB's ``im2uint8`` rounding: half away from zero).
- PSNR-Y and SSIM-Y use the luma of MATLAB's ``rgb2ycbcr`` (ITU-R BT.601, studio
  swing): ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` with RGB in ``[0, 1]``, so Y is in
  ``[16, 235]``, rounded to integer levels as MATLAB's ``rgb2ycbcr`` returns for the
  uint8 images that the published evaluation scripts feed it. (BasicSR keeps Y in
  float; on Set5 x2 bicubic that reads 33.68 dB instead of the published 33.66.)
- ``crop`` pixels (the scale, by convention) are removed from every border first.
- PSNR peak is 255 on Y; SSIM is Wang et al.'s with an 11x11 Gaussian window
  (sigma 1.5), K1 = 0.01, K2 = 0.03, data range 255, averaged over the valid region,
  computed by scikit-image with those settings.
- LR-PSNR (consistency): PSNR in RGB, peak 1, between ``D(SR)`` and the quantised LR
  input; no crop. It is high when the SR image explains its input. ``image_metrics``
  also reports it for the raw network output (``lr_psnr_raw``, before clipping and
  rounding) and the share of raw values outside ``[0, 1]`` (``clipped``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from skimage.metrics import structural_similarity

from srlib.resize import BicubicDegradation

_Y_WEIGHTS = (65.481, 128.553, 24.966)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Clip to ``[0, 1]`` and round to the 8-bit grid (``k/255``), as a saved PNG."""
    return torch.floor(x.clamp(0.0, 1.0) * 255.0 + 0.5) / 255.0


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """MATLAB ``rgb2ycbcr`` luma of 8-bit RGB in ``[0, 1]``: ``(..., 3, H, W)`` ->
    ``(..., H, W)``, float64 integer levels in ``[16, 235]`` (rounded as MATLAB's uint8)."""
    _check(x, "x")
    w = torch.tensor(_Y_WEIGHTS, dtype=torch.float64, device=x.device)
    return torch.floor(16.0 + torch.einsum("...chw,c->...hw", x.double(), w) + 0.5)


def _check(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4) or x.shape[-3] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be an RGB tensor (B, 3, H, W) or (3, H, W), got {shape}")


def _crop(x: torch.Tensor, crop: int) -> torch.Tensor:
    if crop < 0:
        raise ValueError(f"crop must be >= 0, got {crop}")
    if crop == 0:
        return x
    if 2 * crop >= min(x.shape[-2:]):
        raise ValueError(f"crop {crop} leaves nothing of an image of size {tuple(x.shape[-2:])}")
    return x[..., crop:-crop, crop:-crop]


def _pair(a: torch.Tensor, b: torch.Tensor) -> None:
    _check(a, "sr")
    _check(b, "hr")
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: sr {tuple(a.shape)} vs hr {tuple(b.shape)}")


def _psnr(a: torch.Tensor, b: torch.Tensor, peak: float, dims: tuple[int, ...]) -> torch.Tensor:
    mse = (a.double() - b.double()).pow(2).mean(dim=dims)
    return 10.0 * torch.log10(peak**2 / mse)  # inf for identical images


def psnr_y(sr: torch.Tensor, hr: torch.Tensor, crop: int = 0) -> torch.Tensor:
    """PSNR (dB) on the Y channel, peak 255, ``crop`` px off each border.

    Returns ``(B,)`` for batched input, a scalar for ``(3, H, W)``."""
    _pair(sr, hr)
    ys, yh = _crop(rgb_to_y(sr), crop), _crop(rgb_to_y(hr), crop)
    return _psnr(ys, yh, 255.0, (-2, -1))


def psnr_rgb(x: torch.Tensor, y: torch.Tensor, crop: int = 0) -> torch.Tensor:
    """PSNR (dB) over the three RGB channels, peak 1 (images in ``[0, 1]``)."""
    _pair(x, y)
    return _psnr(_crop(x, crop), _crop(y, crop), 1.0, (-3, -2, -1))


def ssim_y(sr: torch.Tensor, hr: torch.Tensor, crop: int = 0) -> torch.Tensor:
    """SSIM on the Y channel (Gaussian window sigma 1.5, K1 0.01, K2 0.03, range 255)."""
    _pair(sr, hr)
    ys = _crop(rgb_to_y(sr), crop).detach().double().cpu().numpy()
    yh = _crop(rgb_to_y(hr), crop).detach().double().cpu().numpy()
    flat_s, flat_h = ys.reshape(-1, *ys.shape[-2:]), yh.reshape(-1, *yh.shape[-2:])
    vals = [
        structural_similarity(
            a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
            data_range=255.0, K1=0.01, K2=0.03,
        )
        for a, b in zip(flat_s, flat_h, strict=True)
    ]
    return torch.tensor(np.array(vals).reshape(ys.shape[:-2]), dtype=torch.float64)


def lr_psnr(sr: torch.Tensor, lr: torch.Tensor, op: BicubicDegradation,
            crop: int = 0) -> torch.Tensor:
    """Consistency: RGB PSNR (peak 1) between ``op.down(sr)`` and ``lr``, ``crop`` LR px off
    each border (``lr_psnr_inner``: the scale's worth, where the LR depends on padding)."""
    return psnr_rgb(op.down(sr), lr, crop=crop)


def range_null_mse(
    sr: torch.Tensor, hr: torch.Tensor, op: BicubicDegradation
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean squared range and null-space parts of ``sr - hr`` (RGB, ``[0, 1]`` units).

    The two add up to the RGB MSE exactly: the part a downsampled-space loss controls
    and the part it leaves free."""
    _pair(sr, hr)
    rng, null = op.split(sr.double() - hr.double())
    dims = (-3, -2, -1)
    return rng.pow(2).mean(dim=dims), null.pow(2).mean(dim=dims)


def raw_metrics(sr: torch.Tensor, lr: torch.Tensor, op: BicubicDegradation
                ) -> dict[str, float]:
    """Of the raw output ``sr`` ``(3, H, W)``, before clipping and rounding: how consistent
    the network's own output is, and how much of it the valid range cuts off (clipping can
    undo consistency)."""
    return {"lr_psnr_raw": float(lr_psnr(sr, lr, op)),
            "clipped": float(((sr < 0) | (sr > 1)).float().mean())}


def image_metrics(
    sr: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor, op: BicubicDegradation
) -> dict[str, float]:
    """All distortion metrics of one ``(3, H, W)`` SR image against its HR and LR.

    ``sr`` is quantised here (clip + 8 bits) so that no caller can forget it (a no-op on
    an image already on the 8-bit grid); ``hr`` and ``lr`` are the 8-bit images of the
    evaluation pair; crop = the scale."""
    raw = sr
    sr = quantize(sr)
    s = op.scale
    rng, null = range_null_mse(sr, hr, op)
    return {
        **raw_metrics(raw, lr, op),
        "psnr_y": float(psnr_y(sr, hr, crop=s)),
        "ssim_y": float(ssim_y(sr, hr, crop=s)),
        "psnr_rgb": float(psnr_rgb(sr, hr, crop=s)),
        "lr_psnr": float(lr_psnr(sr, lr, op)),
        # NaN where the LR image is too small to keep anything inside its border
        "lr_psnr_inner": (float(lr_psnr(sr, lr, op, crop=s)) if min(lr.shape[-2:]) > 2 * s
                          else float("nan")),
        "range_mse": float(rng),
        "null_mse": float(null),
    }


# ---- the table of metrics ------------------------------------------------------------------

@dataclass(frozen=True)
class Metric:
    """One measured quantity, as every table, sentence and check of the project shows it.

    ``words``: how a sentence names it; ``unit``: ``'dB'``, ``'%'`` or ``''``; ``fmt``: its
    number format; ``better``: ``'higher'``, ``'lower'`` or ``''`` (no better side);
    ``source``: where a per-image value comes from: ``'image'`` (``image_metrics``, a run's
    ``eval/<set>/per_image.csv``), ``'gain'`` (computed against the ``pinv`` baseline by
    ``srlib.stats.add_gains``), ``'samples'`` (a stochastic generator's K samples,
    ``eval/<set>/samples.csv``), ``'validation'`` (``validation.csv`` only); ``results``:
    a column of ``results.csv`` (the run's mean);
    ``table``: a column of the report's main table, headed ``heading`` (of its sample
    table, for a ``samples`` metric); ``validation``:
    logged during training in ``validation.csv``; ``floor``: the column of its calibrated
    null (what null-space noise as strong as the samples scores), which a hypothesis's
    ``b: noise-floor`` compares with."""

    words: str
    unit: str
    fmt: str
    better: str
    source: str
    results: bool = False
    table: bool = False
    validation: bool = False
    heading: str = ""
    floor: str = ""

    @property
    def label(self) -> str:
        """``words (unit)``, as an axis or a column is labelled."""
        return self.words + (f" ({self.unit})" if self.unit else "")


# Every metric, in the order of the columns of ``results.csv`` and of the report's tables.
# A new metric is its function (in ``image_metrics`` or ``srlib.evaluate``) plus one entry.
METRICS: dict[str, Metric] = {
    "psnr_y": Metric("PSNR-Y", "dB", "{:.2f}", "higher", "image", results=True, table=True,
                     validation=True, heading="PSNR-Y (dB)"),
    "ssim_y": Metric("SSIM-Y", "", "{:.4f}", "higher", "image", results=True, table=True,
                     heading="SSIM-Y"),
    "lpips": Metric("LPIPS", "", "{:.3f}", "lower", "image", results=True, table=True,
                    heading="LPIPS"),
    "lr_psnr": Metric("LR-PSNR", "dB", "{:.2f}", "higher", "image", results=True, table=True,
                      validation=True, heading="LR-PSNR (dB)"),
    "lr_psnr_inner": Metric("LR-PSNR without the outer s LR pixels", "dB", "{:.2f}", "higher",
                            "image", table=True, heading="LR-PSNR inner (dB)"),
    "lr_psnr_ntire": Metric("the challenge's LR-PSNR", "dB", "{:.2f}", "higher", "image",
                            results=True),
    "range_mse": Metric("range MSE", "", "{:.2e}", "lower", "image", results=True),
    "null_mse": Metric("null-space MSE", "", "{:.2e}", "lower", "image", results=True),
    "lr_psnr_raw": Metric("LR-PSNR before clipping and rounding", "dB", "{:.2f}", "higher",
                          "image", results=True),
    "clipped": Metric("share of raw values outside [0, 1]", "", "{:.4f}", "lower", "image",
                      results=True),
    "psnr_rgb": Metric("PSNR-RGB", "dB", "{:.2f}", "higher", "image"),
    "null_gain_db": Metric("null-space gain", "dB", "{:.2f}", "higher", "gain", table=True,
                           validation=True, heading="null-space gain (dB)"),
    "range_gain_db": Metric("range gain", "dB", "{:.2f}", "higher", "gain", table=True,
                            validation=True, heading="range gain (dB)"),
    # logged during training only (validation.csv): the mechanism behind H2/H3
    "null_corr": Metric("correlation of the output's null-space part with its part at the "
                        "run's start", "", "{:.3f}", "", "validation", validation=True),
    # a stochastic generator's K samples per image; ``table``: in the report's sample table
    "lr_psnr_mean": Metric("LR-PSNR, mean of the samples", "dB", "{:.2f}", "higher",
                           "samples", table=True),
    "lr_psnr_worst": Metric("LR-PSNR, worst sample", "dB", "{:.2f}", "higher", "samples",
                            table=True),
    "lr_psnr_ntire_mean": Metric("the challenge's LR-PSNR, mean of the samples", "dB",
                                 "{:.2f}", "higher", "samples", table=True),
    "lr_psnr_ntire_worst": Metric("the challenge's LR-PSNR, worst sample", "dB", "{:.2f}",
                                  "higher", "samples", table=True),
    "diversity": Metric("diversity score (the challenge's)", "%", "{:.2f}", "higher",
                        "samples", table=True, floor="diversity_floor"),
    "diversity_floor": Metric("diversity score of null-space noise as strong as the samples",
                              "%", "{:.2f}", "", "samples", table=True,
                              heading="noise floor (%)"),
    "sample_std": Metric("per-pixel standard deviation of the samples", "grey levels",
                         "{:.2f}", "", "samples", table=True, heading="sample std (grey)"),
    "psnr_y_mean_image": Metric("PSNR-Y of the samples' mean", "dB", "{:.2f}", "higher",
                                "samples", table=True),
    "psnr_y_mean": Metric("PSNR-Y, mean of the samples", "dB", "{:.2f}", "higher", "samples",
                          table=True),
    "lpips_global_best": Metric("LPIPS of the best sample", "", "{:.3f}", "lower", "samples",
                                table=True),
    "lpips_local_best": Metric("LPIPS, best sample per pixel", "", "{:.3f}", "lower",
                               "samples"),
    "lpips_mean": Metric("LPIPS, mean of the samples", "", "{:.3f}", "lower", "samples"),
}


def metrics_where(**flags: object) -> list[str]:
    """The names of ``METRICS`` whose fields equal ``flags``, in table order, e.g.
    ``metrics_where(table=True)`` or ``metrics_where(source="samples")``."""
    return [n for n, m in METRICS.items() if all(getattr(m, k) == v for k, v in flags.items())]


def metric(name: str) -> Metric:
    """``METRICS[name]``; a name outside it (a column a user added to a table) reads as
    itself, without unit, in a general format."""
    return METRICS.get(name) or Metric(name, "", "{:.4g}", "", "")
