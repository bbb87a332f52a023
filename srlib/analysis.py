"""Measurements and figures across runs: null-space examples, artifacts, spectra, curves.

Everything here reads run folders (written by ``srlib.train``, laid out by ``srlib.runs``)
or tensors, and returns numbers, tables or matplotlib figures; the notebooks only call
these. Images are ``(3, H, W)`` tensors: ``uint8`` as read from disk, float in ``[0, 1]``
otherwise. Run folders are ``srlib.runs.run_dir(root, variant, seed)``, and the notebooks'
``runs`` parameter is ``<root>/runs``, as the runner passes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from srlib.data import eval_pair
from srlib.metrics import metric, psnr_rgb, quantize
from srlib.resize import BicubicDegradation
from srlib.results import variant_kinds
from srlib.runs import VALIDATION, eval_dir, load_sr, run_dir, sample_dir


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
    total = power.sum()
    return float(power[grid].sum() / total) if total > 0 else 0.0  # sr == base: no energy


# Eight lines a panel at most, each distinct in colour and in dash: the page shows every
# curve figure faceted by family (``srlib.grid.family``), in chunks of ``LINES_PER_PANEL``.
LINES_PER_PANEL = 8
_STYLES = [(f"C{i}", ("-", "--", "-.", ":")[i % 4]) for i in range(LINES_PER_PANEL)]


def facets(names: list[str], families: dict[str, str] | None = None,
           per: int = LINES_PER_PANEL) -> list[tuple[str, list[str]]]:
    """``[(title, names), ...]``: ``names`` grouped by ``families`` (name -> family; in
    order of first appearance; all in one group without it), each group cut into chunks
    of at most ``per``; a title says the family and, when cut, which part."""
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault((families or {}).get(n, "runs"), []).append(n)
    out = []
    for fam, members in groups.items():
        chunks = [members[i:i + per] for i in range(0, len(members), per)]
        for k, chunk in enumerate(chunks):
            out.append((fam + (f" ({k + 1} of {len(chunks)})" if len(chunks) > 1 else ""),
                        chunk))
    return out


def _panel_grid(n: int, ncols: int = 2, height: float = 3.2):
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(12.5, height * nrows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _legend_outside(ax: plt.Axes) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def plot_losses(curves: dict[str, pd.DataFrame], columns: list[str] | None = None,
                title: str = "", families: dict[str, str] | None = None) -> plt.Figure:
    """Loss curves from ``losses.csv`` tables against iteration, log scale, each line
    distinct in colour and dash, legends outside the axes: for each run, each of
    ``columns`` (default ``total``) present in its table, in chunks of at most eight lines a
    panel (``facets``; by family with ``families``: variant -> family)."""
    lines = [(v, col) for v, df in curves.items() for col in columns or ["total"]
             if col in df.columns and df[col].notna().any()]
    label = {(v, c): c if len(curves) == 1 else (v if not columns else f"{v}: {c}")
             for v, c in lines}
    fam = {label[k]: (families or {}).get(k[0], "runs") for k in lines}
    groups = facets([label[k] for k in lines], fam if families else None)
    by_label = {label[k]: k for k in lines}
    fig, axes = _panel_grid(max(1, len(groups)))
    for ax, (name, members) in zip(axes, groups, strict=False):
        for lab, (color, ls) in zip(members, _STYLES, strict=False):
            v, col = by_label[lab]
            ax.plot(curves[v]["iter"], curves[v][col], label=lab, lw=1.1, color=color, ls=ls)
        ax.set_yscale("log")
        ax.set(xlabel="iteration", ylabel="loss", title=name if families else "")
        _legend_outside(ax)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def plot_discriminators(curves: dict[str, pd.DataFrame], families: dict[str, str] | None = None,
                        window: int = 10) -> plt.Figure | None:
    """The discriminator's loss of every adversarial run (``d_loss`` of ``losses.csv``),
    a running mean over ``window`` logged points, against iteration, one panel per family
    (``facets``); the dashed line is ``ln 2``, the relativistic (and vanilla, per term)
    loss of a critic that cannot tell SR from HR. ``None`` when no run has a critic."""
    adv = {n: df for n, df in curves.items()
           if "d_loss" in df.columns and pd.to_numeric(df["d_loss"], errors="coerce").notna().any()}
    if not adv:
        return None
    groups = facets(list(adv), families)
    fig, axes = _panel_grid(len(groups))
    for ax, (name, members) in zip(axes, groups, strict=True):
        for v, (color, ls) in zip(members, _STYLES, strict=False):
            d = pd.to_numeric(adv[v]["d_loss"], errors="coerce")
            ax.plot(adv[v]["iter"], d.rolling(window, min_periods=1).mean(), label=v, lw=1.1,
                    color=color, ls=ls)
        ax.axhline(np.log(2), ls="--", c="0.5", lw=1)
        ax.text(0.01, np.log(2), " ln 2 (chance)", transform=ax.get_yaxis_transform(),
                va="bottom", fontsize=8, color="0.4")
        ax.set(xlabel="iteration (of the run itself)",
               ylabel=f"critic loss (mean of {window})", title=name)
        _legend_outside(ax)
    return fig


def busiest_box(hr_u8: torch.Tensor, size: int, scale: int) -> tuple[int, int, int]:
    """``(top, left, k)`` of the ``k`` px square with the most gradient energy (the most
    textured place, where SR differs most), on a grid of multiples of ``scale``.

    ``hr_u8``: ``(3, H, W)``; ``size``: the wanted side in HR px, fitted to the image:
    ``k = min(size, H', W')`` with ``H', W'`` the sides mod-cropped to the scale (the
    evaluation pair's HR), rounded down to a multiple of ``scale``, so the box always
    lies inside that HR. ``ValueError`` for ``size < 1`` or a side under ``max(scale, 2)``
    px."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be an integer >= 1 (HR px), got {size!r}")
    h, w = hr_u8.shape[-2:]
    if min(h, w) < max(scale, 2):
        raise ValueError(f"hr_u8 of {h}x{w} px is too small for a crop box at x{scale} "
                         f"(each side needs at least {max(scale, 2)} px)")
    k = min(size, h - h % scale, w - w % scale)
    k -= k % scale
    y = hr_u8.float().mean(dim=0)
    energy = (y[1:, :-1] - y[:-1, :-1]).abs() + (y[:-1, 1:] - y[:-1, :-1]).abs()
    # the energy map is one px short of the image: a box as tall (wide) as the image is
    # pooled over all of it, at the one place it fits
    window = (min(k, h - 1), min(k, w - 1))
    pooled = torch.nn.functional.avg_pool2d(energy[None, None], window, stride=scale)[0, 0]
    idx = int(pooled.argmax())
    top, left = divmod(idx, pooled.shape[1])
    return top * scale, left * scale, k


# ---- 01_manifold: the null space of D on a real image, the 2-D toy ------------------------

def null_space_example(hr_u8: torch.Tensor, scale: int, target_psnr: float = 20.0,
                       seed: int = 0) -> dict:
    """H1 on one image: two HR images with one LR image, and the range/null split of HR.

    ``hr_u8``: uint8 ``(3, H, W)`` (mod-cropped to a multiple of ``scale`` here). All in
    float64, unclipped and unrounded, so that ``D`` is exactly linear. Returns:

    - ``images``: title -> float32 ``(3, H, W)`` for display: HR; ``HR + n``; the LR image
      ``D(HR)`` enlarged by nearest; ``n`` (x2 + 0.5); the range part ``D^+ D HR``; the
      null part ``(I - D^+ D) HR`` (x2 + 0.5);
    - ``null_psnr_db``: PSNR of ``HR + n`` against HR (RGB, peak 1, dB), ``target_psnr``;
    - ``null_lr_max_abs_diff``: ``max |D(HR + n) - D(HR)|`` ([0, 1] units);
    - ``pinv_psnr_db``: PSNR of ``D^+ D HR`` against HR (dB): the error of the
      minimum-norm image a downsampled loss scores zero is HR's own null part;
    - ``null_dim_share``: the share of HR's dimensions in the null space, ``1 - 1/s^2``."""
    op = BicubicDegradation(scale)
    hr, _ = eval_pair(hr_u8, op)
    hr = hr.double()
    lr = op.down(hr)
    n = null_perturbation(hr, op, target_psnr, seed)
    other = hr + n
    rng, null = op.split(hr)
    psnr_other = float(psnr_rgb(other, hr))
    big_lr = lr.repeat_interleave(scale, -1).repeat_interleave(scale, -2)
    images = {"HR": hr, f"HR + n ({psnr_other:.1f} dB from HR)": other,
              f"D(HR) = D(HR + n), x{scale} nearest": big_lr, "n, x2 + 0.5": 0.5 + 2 * n,
              "range part D+ D HR": rng, "null part (I - D+ D) HR, x2 + 0.5": 0.5 + 2 * null}
    return {
        "images": {k: v.float() for k, v in images.items()},
        "null_psnr_db": psnr_other,
        "null_lr_max_abs_diff": float((op.down(other) - lr).abs().max()),
        "pinv_psnr_db": float(psnr_rgb(rng, hr)),
        "null_dim_share": 1 - lr.numel() / hr.numel(),
    }


def null_space_sentence(ex: dict) -> str:
    """What ``null_space_example`` measured, as one Markdown sentence (numbers only)."""
    return (f"`HR + n` is {ex['null_psnr_db']:.1f} dB from `HR` (RGB PSNR), yet `D(HR + n)` "
            f"differs from `D(HR)` by at most {ex['null_lr_max_abs_diff']:.1e} (float64, "
            f"images unclipped). The range part `D^+ D HR` alone is {ex['pinv_psnr_db']:.1f} dB "
            f"from HR; the null space holds {ex['null_dim_share']:.1%} of the image's "
            "dimensions.")


def plot_toy(gens: dict[str, torch.nn.Module], scores: dict[str, dict[str, float]],
             lr_value: float, n: int = 200) -> plt.Figure:
    """One panel per toy generator: the HR manifold (circle), the consistent line of one
    LR value ``y`` (``x1 + x2 = 2 y``), and ``n`` outputs ``G(y, z)``. The legend sits
    below the panels, outside the axes. ``scores``: ``srlib.toy.toy_scores`` per loss."""
    from srlib.toy import CENTRE, RADIUS, toy_outputs

    t = torch.linspace(0, 2 * torch.pi, 200)
    fig, axes = plt.subplots(1, len(gens), figsize=(4.2 * len(gens), 4.6), sharex=True,
                             sharey=True, squeeze=False, layout="constrained")
    for ax, (loss, g) in zip(axes[0], gens.items(), strict=True):
        ax.plot(CENTRE + RADIUS * torch.cos(t), CENTRE + RADIUS * torch.sin(t), c="0.6",
                label="HR manifold (circle)")
        ax.plot([2 * lr_value - 1.2, 1.2], [1.2, 2 * lr_value - 1.2], "--", c="C1", lw=1,
                label=f"consistent line x1 + x2 = 2y (y = {lr_value:.2f})")
        pts = toy_outputs(g, lr_value, n=n)
        ax.scatter(pts[:, 0], pts[:, 1], s=6, c="C0", label=f"G(y, z), {n} draws of z")
        ax.set_title(f"{loss}: off-manifold RMS {scores[loss]['manifold_rmse']:.3f}")
        ax.set(aspect="equal", xlim=(0, 1.1), ylim=(0, 1.1), xlabel="x1")
    axes[0, 0].set_ylabel("x2")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=8)
    return fig


def toy_table(scores: dict[str, dict[str, float]]) -> pd.DataFrame:
    """``srlib.toy.toy_scores`` per loss as a table (rows: losses; RMS values)."""
    return pd.DataFrame(scores).T.rename(columns={
        "consistency_rmse": "RMS of D(G) - y", "manifold_rmse": "RMS distance to manifold",
        "hr_rmse": "RMS distance to the true HR"}).round(4)


def toy_seed_table(study: pd.DataFrame) -> pd.DataFrame:
    """``srlib.toy.toy_study`` summarised per loss: mean and [min, max] over seeds of the
    spread along the consistent line, the share near the consistent points, and the
    consistency error after projection."""
    cols = {"line_mean": "position on line", "line_std": "spread on line",
            "near_points": "near a consistent point", "both_hit": "both points hit",
            "manifold_rmse": "RMS distance to manifold",
            "proj_consistency_rmse": "RMS of D(P(G)) - y"}
    g = study.groupby("loss", sort=False)[list(cols)]
    mean, low, high = g.mean(), g.min(), g.max()
    table = pd.DataFrame(index=mean.index)
    for c, head in cols.items():
        f = "{:.1e}" if c == "proj_consistency_rmse" else "{:.3f}"
        table[head] = [f"{f.format(m)} [{f.format(a)}, {f.format(b)}]"
                       for m, a, b in zip(mean[c], low[c], high[c], strict=True)]
    return table.assign(seeds=g.size())


# ---- 03_artifacts: the SR images of the runs, crops, spectra, range/null bars ------------

def run_folder(runs: str | Path, variant: str, seed: int) -> Path:
    """A run's folder from the runner's runs folder ``<root>/runs`` (``runs.run_dir``)."""
    runs = Path(runs)
    if runs.name != "runs":
        raise ValueError(f"{runs}: expected the runner's runs folder, <root>/runs; the run "
                         "folders are <root>/runs/<variant>/seed<k>")
    return run_dir(runs.parent, variant, seed)


@dataclass
class ArtifactInputs:
    """What the artifact notebook compares, read from the results table and run folders."""

    scale: int                       # the grid's scale s
    test_set: str                    # the grid's first test set, as ``load_dataset`` takes it
    dataset: str                     # its name in results.csv and in ``eval/<dataset>/``
    seed: int                        # the first seed with finished runs
    variants: list[str]              # trained variants with SR images at that seed
    images: dict[str, torch.Tensor]  # test images, name -> uint8 (3, H, W)
    image: str                       # the image the figures show
    srs: dict[str, torch.Tensor]     # variant -> SR of ``image``, float (3, H, W) in [0, 1]
    done: pd.DataFrame               # the finished rows of results.csv
    runs: Path                       # the runs folder, ``<root>/runs``


def artifact_inputs(results: str | Path | pd.DataFrame, runs: str | Path,
                    grid: str | Path | dict, image: str = "") -> ArtifactInputs:
    """Everything ``03_artifacts`` needs, from ``results.csv``, the runs folder and the grid.

    The first test set of the grid, the first seed with finished runs, every finished
    trained variant (not the baselines, bicubic being drawn from LR by ``artifact_panel``,
    nor the projected twins) that saved its SR images, and ``image`` (default: the first
    test image)."""
    from srlib.data import dataset_name, load_dataset
    from srlib.results import read_results

    table = results if isinstance(results, pd.DataFrame) else read_results(Path(results).parent)
    if isinstance(grid, dict):
        g = grid
    else:
        from srlib.grid import load_grid

        g = load_grid(grid)
    sets = g["defaults"].get("test_data", ["default"])
    test_set = str(sets if isinstance(sets, str) else sets[0])
    dataset = dataset_name(test_set)
    done = table[table.status == "done"]
    if done.empty:
        raise ValueError(f"{results}: no finished run; nothing to compare")
    seed = int(done.seed.min())
    images = dict(load_dataset(test_set, split="test"))
    image = image or next(iter(images))
    if image not in images:
        raise ValueError(f"image {image!r} is not in {test_set}: one of {', '.join(images)}")
    at_seed = done[(done.seed == seed) & (done.dataset == dataset)].variant.unique()
    kinds = variant_kinds(done)
    variants = [v for v in at_seed if kinds.get(v) == "trained" and
                (eval_dir(run_folder(runs, v, seed), dataset) / f"{image}.png").is_file()]
    a = ArtifactInputs(scale=int(g["defaults"].get("scale", 4)), test_set=test_set,
                       dataset=dataset, seed=seed, variants=variants, images=images,
                       image=image, srs={}, done=done, runs=Path(runs))
    a.srs = variant_srs(a, image)
    return a


def variant_srs(a: ArtifactInputs, image: str) -> dict[str, torch.Tensor]:
    """The saved SR images of ``image``, variant -> float ``(3, H, W)`` in ``[0, 1]``."""
    return {v: load_sr(run_folder(a.runs, v, a.seed), a.dataset, image) for v in a.variants}


def lr_grid_energies(a: ArtifactInputs) -> pd.DataFrame:
    """``lr_grid_energy`` of ``SR - bicubic`` for every variant and test image: columns
    ``variant``, ``image``, ``lr_grid_energy`` (a share in [0, 1])."""
    op = BicubicDegradation(a.scale)
    rows = []
    for name, img in a.images.items():
        _, lr = eval_pair(img, op)
        bic = quantize(op.up(lr))
        for v, sr in variant_srs(a, name).items():
            rows.append({"variant": v, "image": name,
                         "lr_grid_energy": lr_grid_energy(sr, bic, a.scale)})
    return pd.DataFrame(rows, columns=["variant", "image", "lr_grid_energy"])


def artifact_summary(energy: pd.DataFrame, a: ArtifactInputs) -> pd.DataFrame:
    """Mean ``lr_grid_energy`` per variant over the test images, with the seed and data
    set it was measured on: the table ``artifacts.csv`` holds (index ``variant``)."""
    mean = energy.groupby("variant", sort=False).lr_grid_energy.mean()
    return mean.to_frame().assign(seed=a.seed, dataset=a.dataset)


def plot_artifact_crops(panel: dict[str, dict[str, torch.Tensor]], per_row: int = 2,
                        width: float = 14.0) -> plt.Figure:
    """The crops of ``artifact_panel``, ``per_row`` variants side by side (3 columns each:
    SR, ``D(SR) - LR``, null part), ``width`` inches wide: the width of a report page."""
    labels = {"sr": "SR", "lr_residual": "D(SR) - LR, x10", "null": "null part, x5"}
    ncols = 3 * per_row
    nrows = -(-len(panel) // per_row)
    side = width / ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, (side + 0.35) * nrows),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (name, parts) in enumerate(panel.items()):
        row, col = divmod(i, per_row)
        for j, (part, img) in enumerate(parts.items()):
            ax = axes[row, 3 * col + j]
            ax.imshow(img.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy(),
                      interpolation="nearest")
            ax.set_title(f"{name}\n{labels.get(part, part)}", fontsize=8)
    fig.tight_layout(pad=0.3, w_pad=0.2, h_pad=0.4)
    return fig


def plot_spectra(srs: dict[str, torch.Tensor], base: torch.Tensor, energy: dict[str, float],
                 ncols: int = 5, width: float = 14.0) -> plt.Figure:
    """``residual_spectrum(sr, base)`` per variant (log magnitude, centred), titled with its
    ``energy`` share at the LR-grid harmonics; ``width`` inches wide."""
    ncols = max(1, min(ncols, len(srs)))
    nrows = max(1, -(-len(srs) // ncols))
    side = width / ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, (side + 0.4) * nrows),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    if not srs:
        axes[0, 0].text(0.5, 0.5, "no trained variant with SR images", ha="center")
    for ax, (v, sr) in zip(axes.flat, srs.items(), strict=False):
        ax.imshow(residual_spectrum(sr, base), cmap="magma")
        ax.set_title(f"{v}\nLR-grid energy {energy[v]:.1%}", fontsize=8)
    fig.tight_layout(pad=0.3)
    return fig


def plot_range_null(results: pd.DataFrame, dataset: str) -> plt.Figure:
    """Bars of the range and null-space MSE per variant (mean over seeds, log scale) for
    one test set: the two parts of ``|SR - HR|^2`` (RGB, [0, 1] units). Legend outside the
    axes."""
    done = results[(results.status == "done") & (results.dataset == dataset)]
    means = done.groupby("variant", sort=False)[["range_mse", "null_mse"]].mean()
    fig, ax = plt.subplots(figsize=(14, 4), layout="constrained")
    means.rename(columns={"range_mse": "range part (what D sees)",
                          "null_mse": "null part (what D cannot see)"}).plot.bar(
        ax=ax, logy=True, rot=30, legend=False)
    ax.set(ylabel="MSE (RGB, [0, 1])", xlabel="",
           title=f"{dataset}: range and null-space parts of the error (mean over seeds)")
    fig.legend(loc="outside right upper", fontsize=8)  # beside the axes: it hides no bar
    return fig


# ---- 04_report: perception-distortion plane, training curves ----------------------------

def plot_perception_distortion(results: pd.DataFrame, dataset: str, lpips_kind: str = "lpips",
                               families: dict[str, str] | None = None) -> plt.Figure:
    """PSNR-Y (dB) against LPIPS (top row) and against LR-PSNR (bottom row) on ``dataset``,
    one column per family (``families``: variant -> family; a ``+P`` twin is drawn in its
    variant's column, as an arrow from the variant to it): one point per finished variant
    (its mean over seeds), labelled directly; the baselines in grey in every column, for
    reference. Axes are shared, so columns compare."""
    from srlib.grid import PROJECTED_SUFFIX, twin_source

    sub = results[(results.status == "done") & (results.dataset == dataset)]
    means = sub.groupby("variant", sort=False)[["psnr_y", "lpips", "lr_psnr"]].mean()
    kinds = variant_kinds(sub)
    fams = families or {}
    sources = [v for v in means.index if kinds.get(v) != "projected"]
    twins = {v: t for v in means.index if kinds.get(v) == "projected"
             and (t := twin_source(v, sources))}
    twin_of = {v: src for v, (src, suffix) in twins.items() if suffix == PROJECTED_SUFFIX}
    # other twins (+B) are points of their own, in their variant's column
    fams = {**{v: fams.get(src, "variants") for v, (src, _) in twins.items()
               if v not in twin_of}, **fams}
    own = [v for v in means.index if v not in twin_of]
    base = [v for v in own if kinds.get(v) == "baseline"]
    cols = [f for f in dict.fromkeys(fams.get(v, "variants") for v in own) if f]
    fig, axes = plt.subplots(2, len(cols), figsize=(12.5, 6.4), squeeze=False, sharex=True,
                             sharey="row", layout="constrained")
    for k, fam in enumerate(cols):
        members = [v for v in own if fams.get(v, "variants") == fam]
        for row, (y, label) in enumerate((("lpips", f"LPIPS ({lpips_kind}), lower is better"),
                                          ("lr_psnr", "LR-PSNR (dB), higher is better"))):
            ax = axes[row, k]
            if fam != "baselines":
                ax.scatter(means.loc[base, "psnr_y"], means.loc[base, y], color="0.7", s=18)
            for i, v in enumerate(members):
                color = f"C{i % 10}"
                x0, y0 = means.loc[v, "psnr_y"], means.loc[v, y]
                ax.scatter([x0], [y0], color=color, s=26, zorder=3)
                ax.annotate(v, (x0, y0), xytext=(3, 3), textcoords="offset points",
                            fontsize=8, color=color)
                twin = projected_name_of(v, twin_of)
                if twin:
                    ax.annotate("", xy=(means.loc[twin, "psnr_y"], means.loc[twin, y]),
                                xytext=(x0, y0), arrowprops={"arrowstyle": "->", "lw": 0.8,
                                                             "color": color})
            ax.set_title(fam if row == 0 else "", fontsize=10)
            if k == 0:
                ax.set_ylabel(label, fontsize=9)
            if row == 1:
                ax.set_xlabel("PSNR-Y (dB)", fontsize=9)
    fig.suptitle(f"{dataset}: each variant's mean over seeds; arrows: the same outputs "
                 "projected (+P); grey: the closed-form baselines", fontsize=10)
    return fig


def plot_fronts(summary: pd.DataFrame, fronts: dict[str, list[list[str]]],
                lpips_kind: str) -> plt.Figure:
    """The adversarial sweeps on the perception-distortion plane: PSNR-Y (dB) against
    LPIPS, each point a variant's mean over every test image and seed with its 95%
    interval on both axes (``summary``: ``srlib.stats.summary_with_ci`` of ``psnr_y`` and
    ``lpips`` by variant), each sweep of ``fronts`` (name -> ``[[variant, label], ...]``,
    in the order of its weights) a line through its points, each point labelled. Better is
    to the right (fidelity) and down (perceptual distance); a sweep whose line lies right of
    and below another's dominates it there. Variants without a row are left out."""
    s = summary.set_index("variant")
    fig, ax = plt.subplots(figsize=(8.5, 5.2), layout="constrained")
    for (name, members), (color, ls) in zip(fronts.items(), _STYLES, strict=False):
        pts = [(v, lab) for v, lab in members if v in s.index]
        if not pts:
            continue
        x = s.loc[[v for v, _ in pts], "psnr_y_mean"].to_numpy(float)
        y = s.loc[[v for v, _ in pts], "lpips_mean"].to_numpy(float)
        xe = np.abs(s.loc[[v for v, _ in pts], ["psnr_y_low", "psnr_y_high"]].to_numpy(float).T
                    - x)
        ye = np.abs(s.loc[[v for v, _ in pts], ["lpips_low", "lpips_high"]].to_numpy(float).T
                    - y)
        ax.errorbar(x, y, xerr=xe, yerr=ye, color=color, ls=ls, marker="o", ms=4, lw=1.2,
                    elinewidth=0.7, capsize=2, label=name)
        for (_, lab), xi, yi in zip(pts, x, y, strict=True):
            if lab:
                ax.annotate(str(lab), (xi, yi), xytext=(4, 4), textcoords="offset points",
                            fontsize=8, color=color)
    ax.set(xlabel="PSNR-Y (dB), higher is better",
           ylabel=f"LPIPS ({lpips_kind}), lower is better",
           title="The adversarial sweeps: mean over every test image and seed, 95% intervals")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    else:
        ax.text(0.5, 0.5, "no run of these sweeps has finished", ha="center", va="center",
                transform=ax.transAxes)
    return fig


def projected_name_of(variant: str, twin_of: dict[str, str]) -> str | None:
    """The ``+P`` twin of ``variant`` among ``twin_of`` (twin -> variant), or None."""
    return next((t for t, v in twin_of.items() if v == variant), None)


def load_loss_curves(runs: str | Path, variants: list[str], seed: int) -> dict[str, pd.DataFrame]:
    """``losses.csv`` of each variant's run at ``seed`` (variants without one are left out):
    variant -> table with ``iter``, ``total`` and each loss term."""
    curves = {}
    for v in variants:
        f = run_folder(runs, v, seed) / "losses.csv"
        if f.is_file():
            curves[v] = pd.read_csv(f)
    return curves



# ---- 04_report: validation curves (``validation.csv`` of each run) ------------------------

def axis_label(name: str) -> str:
    """A metric's axis label from ``srlib.metrics.METRICS``: ``'PSNR-Y (dB), higher is
    better'``."""
    m = metric(name)
    return m.label + (f", {m.better} is better" if m.better else "")


VALIDATION_PANELS = {**{m: axis_label(m) for m in ("null_gain_db", "lr_psnr")},
                     # METRICS' words are a sentence's; an axis needs them short
                     "null_corr": "null-space part: correlation\nwith the run's start"}


def load_validation(runs: str | Path, variants: list[str], seeds: list[int],
                    how: str = "first") -> dict[str, pd.DataFrame]:
    """``validation.csv`` of each variant's runs (columns ``iter``, ``psnr_y``,
    ``lr_psnr``, ``null_gain_db``, ``range_gain_db``; dB), logged on fixed validation crops
    during training: ``how="first"`` the first of ``seeds`` that has one, ``"mean"`` the
    mean over the seeds that have one, per iteration. Variants without any are left out;
    each table gets ``seeds``, how many runs went in."""
    if how not in ("first", "mean"):
        raise ValueError(f"how must be 'first' or 'mean', got {how!r}")
    out = {}
    for v in variants:
        tables = [pd.read_csv(f) for s in seeds
                  if (f := run_folder(runs, v, s) / VALIDATION).is_file()]
        tables = [t for t in tables if len(t) and "iter" in t]
        if not tables:
            continue
        if how == "first":
            tables = tables[:1]
        t = pd.concat(tables).groupby("iter", as_index=False).mean(numeric_only=True)
        out[v] = t.assign(seeds=len(tables))
    return out


def plot_validation(curves: dict[str, pd.DataFrame], families: dict[str, str] | None = None,
                    panels: dict[str, str] | None = None) -> plt.Figure:
    """One row per family (``facets``: at most 8 lines, distinct in colour and dash), one
    column per metric of ``panels`` (default: null-space gain and LR-PSNR, dB, and the
    null-space part's correlation with its start, ``null_corr``), against the
    training iteration, one line per variant of ``curves`` (``load_validation``); each
    row's legend right of its last panel, outside the axes."""
    panels = panels or VALIDATION_PANELS
    groups = facets(list(curves), families) or [("no run logged validation.csv", [])]
    fig, axes = plt.subplots(len(groups), len(panels), figsize=(4.2 * len(panels) + 4,
                                                               3.0 * len(groups)),
                             squeeze=False, layout="constrained")
    for row, (name, members) in zip(axes, groups, strict=True):
        for ax, (col, label) in zip(row, panels.items(), strict=True):
            for v, (color, ls) in zip(members, _STYLES, strict=False):
                t = curves[v]
                if col in t and t[col].notna().any():
                    ax.plot(t["iter"], t[col], lw=1.1, color=color, ls=ls, label=v)
            ax.set(xlabel="iteration", ylabel=label, title=name)
            if col in ("null_gain_db", "null_corr"):  # D^+ LR; nothing of the start left
                ax.axhline(0, color="0.5", lw=0.8, ls="--")
        handles, labels = [], []
        for ax in row:  # a variant with a value in one panel only is named too
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        if handles:
            row[-1].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                           fontsize=8, frameon=False)
    if not curves:
        axes[0, 0].text(0.5, 0.5, "no run logged validation.csv (val_every: 0)",
                        ha="center", va="center", transform=axes[0, 0].transAxes)
    return fig


# ---- 04_report: samples of a noise-input generator, the consistency trade-off ------------

def load_samples(run: str | Path, dataset: str, image: str) -> list[torch.Tensor]:
    """The saved samples of one image (``eval/<dataset>/samples/<image>/<i>.png``, in the
    order of ``i``), float ``(3, H, W)`` in ``[0, 1]``; ``[]`` when the run drew none."""
    from srlib.data import load_image, to_float

    folder = sample_dir(run, dataset, image)
    files = [f for f in folder.glob("*.png") if f.stem.isdigit()] if folder.is_dir() else []
    return [to_float(load_image(f)) for f in sorted(files, key=lambda f: int(f.stem))]


def plot_samples(run: str | Path, dataset: str, image: str, hr_u8: torch.Tensor, scale: int,
                 box: tuple[int, int, int] | None = None,
                 max_samples: int = 8) -> plt.Figure | None:
    """One crop (``box``, default ``busiest_box(hr_u8, 96, scale)``) of up to ``max_samples``
    of a run's saved samples of ``image``, then the per-pixel standard deviation over all
    its samples (mean over channels, [0, 1] units, its maximum in the title), then the
    null-space part of HR on the same crop (``0.5 + 5 * null``): where the samples differ should be
    where HR's null part has detail. ``None`` when the run saved no samples."""
    samples = load_samples(run, dataset, image)
    if not samples:
        return None
    top, left, size = box or busiest_box(hr_u8, 96, scale)
    sl = (slice(None), slice(top, top + size), slice(left, left + size))
    hr, _ = eval_pair(hr_u8, BicubicDegradation(scale))
    null = BicubicDegradation(scale).split(hr.double())[1].float()
    std = torch.stack([s[sl] for s in samples]).std(dim=0, unbiased=False).mean(dim=0)
    shown = samples[:max_samples]
    n = len(shown) + 2
    rows = 1 if n <= 7 else 2
    cols = -(-n // rows)
    # about two screen pixels per image pixel of a 96 px crop: enough to see texture,
    # small enough to keep a self-contained page light
    fig, axes = plt.subplots(rows, cols, figsize=(9, 9 / cols * rows + 0.6), squeeze=False,
                             layout="constrained")
    flat = list(axes.flat)
    for i, (ax, s) in enumerate(zip(flat, shown, strict=False)):
        ax.imshow(s[sl].clamp(0, 1).permute(1, 2, 0).numpy())
        ax.set_title(f"sample {i}", fontsize=9)
    ax = flat[len(shown)]
    ax.imshow(std.numpy(), cmap="viridis", vmin=0)
    # the scale in the title: a colour bar would widen its column in every row
    ax.set_title(f"std of {len(samples)} samples\n(dark 0, yellow {std.max().item():.3f})",
                 fontsize=9)
    ax = flat[len(shown) + 1]
    ax.imshow((0.5 + 5 * null[sl]).clamp(0, 1).permute(1, 2, 0).numpy())
    ax.set_title("null part of HR, x5", fontsize=9)
    for ax in flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in flat[n:]:
        ax.axis("off")
    return fig


TRADEOFF_PANELS = {m: axis_label(m) for m in ("psnr_y", "lpips", "lr_psnr")}


def plot_tradeoff(results: pd.DataFrame, sweep: list[list[str]],
                  dataset: str) -> plt.Figure | None:
    """PSNR-Y, LPIPS and LR-PSNR (means over seeds of the finished runs on ``dataset``)
    against the weight of the consistency term: ``sweep`` is ``[[variant, label], ...]`` in
    the order of the x axis (categorical; variants not done are left out). ``None`` when
    fewer than 2 of them are done."""
    done = results[(results.status == "done") & (results.dataset == dataset)]
    means = done.groupby("variant")[list(TRADEOFF_PANELS)].mean(numeric_only=True)
    pts = [(str(label), means.loc[v]) for v, label in sweep if v in means.index]
    if len(pts) < 2:
        return None
    x = np.arange(len(pts))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), layout="constrained")
    for ax, (col, label) in zip(axes, TRADEOFF_PANELS.items(), strict=True):
        ax.plot(x, [m[col] for _, m in pts], marker="o", lw=1.2)
        ax.set_xticks(x, [lab for lab, _ in pts])
        ax.set(xlabel="weight of down", ylabel=label)
    fig.suptitle(f"{dataset}: PSNR-Y, LPIPS and LR-PSNR against the weight of down (mean "
                 "over seeds)", fontsize=10)
    return fig


# ---- the key figure: one crop through the study's main variants ----------------------------

def key_variants(results: pd.DataFrame, grid: dict, named: list[str]) -> list[tuple[str, str]]:
    """``[(variant, why), ...]`` for the key figure: the closed-form baselines, the
    ``named`` variants that finished (the grid's choice: the pixel network, the proposal's
    network, ...), then the best projected variant (highest mean PSNR-Y over every test
    image, ``srlib.grid.family`` ``projected``, ``+P`` twins included) and the best
    adversarial one (lowest mean LPIPS), each unless already shown."""
    from srlib.grid import family

    done = results[results.status == "done"]
    means = done.groupby("variant", sort=False)[["psnr_y", "lpips"]].mean()
    kinds = variant_kinds(done)
    out = [(v, "closed form") for v in means.index if kinds.get(v) == "baseline"]
    out += [(v, "") for v in named if v in means.index and v not in dict(out)]
    fam = {v: family(grid, v) for v in means.index}
    for which, col, best in (("projected", "psnr_y", "idxmax"), ("adversarial", "lpips", "idxmin")):
        pool = means.loc[[v for v in means.index if fam[v] == which], col].dropna()
        if len(pool):
            v = getattr(pool, best)()
            why = f"best {which} ({'highest PSNR-Y' if col == 'psnr_y' else 'lowest LPIPS'})"
            if v not in dict(out):
                out.append((v, why))
    return out


def key_srs(a: ArtifactInputs, variants: list[str], image: str | None = None
            ) -> dict[str, torch.Tensor]:
    """The saved 8-bit SR of ``image`` (default ``a.image``) for each of ``variants`` at
    ``a.seed``: a trained run's ``eval/``, a ``+P`` twin's ``projected/eval/``; closed-form
    baselines computed (``D^+ LR`` for ``pinv``, MATLAB bicubic for ``bicubic``, by their
    ``baseline`` kind)."""
    from srlib.grid import twin_source
    from srlib.runs import TWINS

    image = image or a.image
    op = BicubicDegradation(a.scale)
    _, lr = eval_pair(a.images[image], op)
    out = {}
    kinds = variant_kinds(a.done)
    for v in variants:
        kind = kinds.get(v)
        twin = twin_source(v, [k for k, x in kinds.items() if x == "trained"])
        if kind == "baseline":
            loss = a.done.loc[a.done.variant == v, "loss"].iloc[0]
            out[v] = quantize(op.pinv(lr) if loss == "pinv" else op.up(lr))
        elif kind == "projected" and twin:
            out[v] = load_sr(run_folder(a.runs, twin[0], a.seed) / TWINS[twin[1]][1],
                             a.dataset, image)
        else:
            out[v] = load_sr(run_folder(a.runs, v, a.seed), a.dataset, image)
    return out


def image_label(row: pd.Series | None) -> str:
    """A method's numbers on one image: PSNR-Y, LPIPS where it was measured, LR-PSNR."""
    if row is None:
        return "not evaluated"
    parts = [f"PSNR-Y {row.psnr_y:.2f} dB"]
    if math.isfinite(float(row.get("lpips", float("nan")))):
        parts.append(f"LPIPS {row.lpips:.3f}")
    return " | ".join([*parts, f"LR {row.lr_psnr:.1f} dB"])


def plot_key_figure(a: ArtifactInputs, chosen: list[tuple[str, str]], per_image: pd.DataFrame,
                    boxes: dict[str, tuple[int, int, int]]) -> plt.Figure:
    """The same HR crop of each image of ``boxes`` (image -> top, left, size) through HR
    and each of ``chosen`` (``key_variants``): one column per method, three rows per
    image: the crop, labelled with that method's numbers on that image at ``a.seed`` (from
    ``per_image``, the results' own; LPIPS only where measured); its range part
    ``D^+ D x``, what the downsampled loss constrains; its null-space part
    ``(I - D^+ D) x`` (x5, grey = 0), what it cannot see."""
    op = BicubicDegradation(a.scale)
    names = ["HR", *(v for v, _ in chosen)]
    why = dict(chosen)
    fig, axes = plt.subplots(3 * len(boxes), len(names), squeeze=False, layout="constrained",
                             figsize=(2.1 * len(names), 2.25 * 3 * len(boxes)))
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for i, (image, (top, left, k)) in enumerate(boxes.items()):
        hr = eval_pair(a.images[image], op)[0]
        imgs = {"HR": hr, **key_srs(a, names[1:], image)}
        rows = per_image[(per_image.dataset == a.dataset) & (per_image.image == image)]
        for j, name in enumerate(names):
            rng, null = (p[0] for p in op.split(imgs[name].double()[None]))
            parts = (imgs[name].double(), rng, 0.5 + 5 * null)
            for r, part in enumerate(parts):
                ax = axes[3 * i + r, j]
                crop = part[:, top:top + k, left:left + k].clamp(0, 1).permute(1, 2, 0)
                ax.imshow(crop.float().numpy(), interpolation="nearest")
                if j == 0:
                    ax.set_ylabel([f"{image}\nthe crop", "range part",
                                   "null-space part x5"][r], fontsize=8)
            got = rows[(rows.variant == name) & ((rows.seed == a.seed) | rows.seed.isna())]
            label = ("HR" if name == "HR" else
                     f"{name}\n{image_label(got.iloc[0] if len(got) else None)}")
            if i == 0 and why.get(name):
                label += f"\n{why[name]}"
            axes[3 * i, j].set_title(label, fontsize=7)
    fig.suptitle(f"{a.dataset}, seed {a.seed}: the same crop through each method, its range "
                 "part and its null-space part", fontsize=10)
    return fig
