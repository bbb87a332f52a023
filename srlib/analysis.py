"""Measurements and figures across runs: null-space examples, artifacts, spectra, curves.

Everything here reads run folders (written by ``srlib.train``) or tensors, and returns
numbers or matplotlib figures; notebooks only call these.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from srlib.data import eval_pair, load_image, to_float
from srlib.metrics import quantize
from srlib.resize import BicubicDegradation


def null_perturbation(
    hr: torch.Tensor, op: BicubicDegradation, target_psnr: float = 20.0, seed: int = 0
) -> torch.Tensor:
    """A null-space image ``n`` (``D(n) = 0``) scaled so that PSNR(hr + n, hr) = target dB.

    ``hr``: ``(3, H, W)`` in ``[0, 1]``. ``hr + n`` is not clipped: clipping would move it
    out of the consistent set; show it clipped, measure it unclipped."""
    gen = torch.Generator().manual_seed(seed)
    _, null = op.split(torch.randn(hr.shape, generator=gen, dtype=torch.float64))
    rms = 10 ** (-target_psnr / 20)  # peak 1
    return (null * rms / null.pow(2).mean().sqrt()).to(hr.dtype)


def show_images(images: dict[str, torch.Tensor], ncols: int | None = None,
                size: float = 3.0) -> plt.Figure:
    """A row (or grid) of titled ``(3, H, W)`` images in ``[0, 1]`` (clipped for display)."""
    ncols = ncols or len(images)
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, img) in zip(axes.flat, images.items(), strict=False):
        ax.imshow(img.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy(), interpolation="nearest")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def load_sr(run: Path, dataset: str, image: str) -> torch.Tensor:
    """The saved 8-bit SR image of a run, ``(3, H, W)`` in ``[0, 1]``."""
    return to_float(load_image(Path(run) / "eval" / dataset / f"{image}.png"))


def artifact_panel(
    hr_u8: torch.Tensor, srs: dict[str, torch.Tensor], scale: int,
    box: tuple[int, int, int] = (0, 0, 96),
) -> dict[str, dict[str, torch.Tensor]]:
    """Per variant, the crops the artifact figure shows (all ``(3, k, k)``):

    ``sr``; ``lr_residual`` = ``D(SR) - LR`` (LR crop, upsampled by nearest, x10 + 0.5);
    ``null`` = null-space part of SR (x5 + 0.5). ``box`` = (top, left, size) in HR px,
    multiples of the scale; HR and bicubic appear as variants ``HR`` and ``bicubic``."""
    op = BicubicDegradation(scale)
    hr, lr = eval_pair(hr_u8, op)
    top, left, k = box
    crop = (slice(None), slice(top, top + k), slice(left, left + k))
    lr_crop = (slice(None), slice(top // scale, (top + k) // scale),
               slice(left // scale, (left + k) // scale))
    out = {}
    for name, sr in {"HR": hr, "bicubic": quantize(op.up(lr)), **srs}.items():
        res = (op.down(sr) - lr)[lr_crop]
        res = res.repeat_interleave(scale, -1).repeat_interleave(scale, -2)
        out[name] = {"sr": sr[crop], "lr_residual": 0.5 + 10 * res,
                     "null": 0.5 + 5 * op.split(sr)[1][crop]}
    return out


def residual_spectrum(sr: torch.Tensor, base: torch.Tensor) -> np.ndarray:
    """Log-magnitude 2-D spectrum (centred) of the luminance of ``sr - base``, ``(H, W)``."""
    diff = (sr - base).mean(dim=0).double()  # channel mean: periodic artifacts are grey
    mag = torch.fft.fftshift(torch.fft.fft2(diff - diff.mean())).abs()
    return torch.log10(mag + 1e-6).numpy()


def lr_grid_energy(sr: torch.Tensor, base: torch.Tensor, scale: int) -> float:
    """Share of the spectral energy of ``sr - base`` at the harmonics of the LR sampling
    frequency (``k H / s``, ``l W / s``, not both 0; +-1 bin): periodic tiling artifacts,
    such as those of pixel shuffle, concentrate energy there. ``(3, H, W)`` inputs."""
    diff = (sr - base).mean(dim=0).double()
    power = torch.fft.fft2(diff - diff.mean()).abs().pow(2)
    h, w = power.shape
    rows = torch.zeros(h, dtype=torch.bool)
    cols = torch.zeros(w, dtype=torch.bool)
    for k in range(scale):
        for d in (-1, 0, 1):
            rows[(round(k * h / scale) + d) % h] = True
            cols[(round(k * w / scale) + d) % w] = True
    near_dc_r = torch.zeros(h, dtype=torch.bool)
    near_dc_c = torch.zeros(w, dtype=torch.bool)
    near_dc_r[[0, 1, h - 1]] = True
    near_dc_c[[0, 1, w - 1]] = True
    grid = rows[:, None] & cols[None, :]
    grid &= ~(near_dc_r[:, None] & near_dc_c[None, :])
    return float(power[grid].sum() / power.sum())


def plot_losses(curves: dict[str, pd.DataFrame], columns: list[str] | None = None,
                title: str = "") -> plt.Figure:
    """Loss curves from ``losses.csv`` tables, log scale: for each run, each of
    ``columns`` (default ``total``) present in its table."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, df in curves.items():
        for col in columns or ["total"]:
            if col in df.columns and df[col].notna().any():
                label = col if len(curves) == 1 else (name if not columns else f"{name}: {col}")
                ax.plot(df["iter"], df[col], label=label, lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def busiest_box(hr_u8: torch.Tensor, size: int, scale: int) -> tuple[int, int, int]:
    """``(top, left, size)`` of the ``size`` px square with the most gradient energy (the
    most textured place, where SR differs most), on a grid of multiples of ``scale``."""
    y = hr_u8.float().mean(dim=0)
    energy = (y[1:, :-1] - y[:-1, :-1]).abs() + (y[:-1, 1:] - y[:-1, :-1]).abs()
    pooled = torch.nn.functional.avg_pool2d(energy[None, None], size, stride=scale)[0, 0]
    idx = int(pooled.argmax())
    top, left = divmod(idx, pooled.shape[1])
    return top * scale, left * scale, size
