"""Evaluate a model on a data set with the literature's conventions.

    python -m srlib.evaluate --model bicubic --data Set5 --scale 4 [--json]
    python -m srlib.evaluate --model reports/runs/down/pixelshuffle/seed0 --data Set5
    python -m srlib.evaluate --model RUN_WITH_NOISE --data Set5 --samples 10 --out samples/
    python -m srlib.evaluate --model RRDB_ESRGAN_x4.pth --data Set5 --save-sr sr/
    python -m srlib.evaluate --model RUN --data Set5 --lr Set5_LRx4/ --twin +P

Per image: HR mod-cropped to a multiple of s, ``LR = quantize(D(HR))``, ``SR = model(LR)``
quantised to 8 bits, then PSNR-Y / SSIM-Y (crop s), LR-PSNR, the range / null-space split
of the error (see ``srlib.metrics``) and, with ``--lpips KIND``, LPIPS. A trained run is
given by its folder (``srlib.train`` writes it), with its own scale (a ``--scale`` that
differs is refused); a published x4 RRDBNet by its ``.pth`` file (ESRGAN's or BasicSR's key
names, ``params_ema`` preferred; nf, nb, gc read from it: ``load_published``). ``--lr DIR``
takes the LR images from ``DIR`` instead (one per HR image, of the same name, exactly the
mod-cropped HR size / s, read as they are: no resampling); LR-PSNR then compares with them.
``--twin +P`` / ``+B`` measures the model's post-hoc twin (``runs.TWINS``: its outputs
projected onto the images consistent with their LR, ``+B`` within ``[0, 1]``), as the
runner does for a trained variant. ``--save-sr DIR`` writes each SR image as measured
(8-bit PNG) to ``DIR/<set>/<image>.png``. Prints a per-image table and the mean;
with ``--json``, one strict JSON object of the means instead: PSNR of an exact
reconstruction is infinite (bicubic of a flat image, say), and a mean that is not finite
shows as ``null``, named on stderr (the table prints ``inf``).

A stochastic generator (a run with ``noise``) is evaluated here on its sample 0 (its
eval-mode output, ``srlib.models``); ``evaluate_samples`` draws its ``K`` samples per image
with the fixed seeds of ``srlib.ntire.sample_seeds`` and measures them as the NTIRE
2021 challenge does (``srlib.train`` calls it for runs with ``noise``; on the command line,
``--samples K --out FOLDER``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from srlib import lpips, runs
from srlib.data import (
    DEFAULT_NAMES,
    check_eval_size,
    dataset_name,
    eval_pair,
    image_size,
    list_images,
    load_image,
    resolve_dataset,
    to_float,
)
from srlib.metrics import (
    image_metrics,
    lr_psnr,
    psnr_y,
    quantize,
    range_null_mse,
    raw_metrics,
)
from srlib.ntire import (
    DEFAULT_K,
    diversity_score,
    lr_psnr_ntire_float,
    noise_floor,
    sample_seeds,
    sample_stats,
)
from srlib.resize import BicubicDegradation

Upscaler = Callable[[torch.Tensor], torch.Tensor]  # LR (1, 3, h, w) -> SR (1, 3, sh, sw)


# Closed-form baselines: name -> (the operator -> LR to SR function). No training.
BASELINES: dict[str, Callable[[BicubicDegradation], Upscaler]] = {
    "bicubic": lambda op: op.up,  # MATLAB bicubic upsampling of LR
    "pinv": lambda op: op.pinv,  # D^+ LR: the least-norm image with D(SR) = LR
}


def rounding_of(upscale: Upscaler | str) -> str:
    """How the outputs of ``upscale`` (a generator, or a consistency name of
    ``srlib.models.CONSISTENCY``) are saved as 8 bits: ``consistent``
    (``BicubicDegradation.round_consistent``: the rounding error pushed into the null space
    of D) with ``consistency: project-box``, whose outputs are consistent and in ``[0, 1]``
    so that only rounding could break consistency; ``plain`` (clip and round,
    ``srlib.metrics.quantize``, the literature's convention) for every other."""
    name = upscale if isinstance(upscale, str) else getattr(upscale, "consistency", None)
    return "consistent" if name == "project-box" else "plain"


def save_u8(sr: torch.Tensor, lr: torch.Tensor, op: BicubicDegradation, rounding: str
            ) -> torch.Tensor | None:
    """The 8-bit image saved for ``sr`` ``(3, H, W)`` with ``rounding`` (``rounding_of``),
    float32 on the 8-bit grid; ``None`` for plain rounding (the metrics quantise)."""
    if rounding == "plain":
        return None
    return op.round_consistent(sr, lr).float()


def evaluate(
    upscale: Upscaler,
    data: str,
    scale: int,
    split: str = "test",
    device: str | torch.device = "cpu",
    lpips_model: lpips.LPIPS | None = None,
    save_dir: Path | None = None,
    twins: dict[str, Path | None] | None = None,
    lr_dir: str | Path | None = None,
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """One row per image: ``image`` and the metrics of ``srlib.metrics.image_metrics``,
    plus ``lpips`` when ``lpips_model`` is given; SR PNGs go to ``save_dir`` if given.

    ``twins`` (suffix of ``runs.TWINS`` -> folder, or None to save nothing): the same model
    also evaluated after its twin's consistency is applied to its raw output (post hoc,
    same weights; ``+P``: ``P(SR, LR) = SR + D^+(LR - D SR)``; ``+B``: the projection within
    ``[0, 1]``, saved with consistent rounding), its PNGs saved in the folder; returns
    ``(table, {suffix: twin's table})``. ``lr_dir``: the given LR images instead of
    ``quantize(D(HR))`` (``eval_pairs``); the LR metrics and the twins' projections then
    use them (``lr_psnr_ntire`` stays the challenge's, from HR)."""
    from srlib.models import CONSISTENCY

    op = BicubicDegradation(scale)
    pairs = eval_pairs(data, op, split, device, lr_dir)  # names and LR sizes checked here
    rounding = rounding_of(upscale)
    twins = twins or {}
    for folder in (save_dir, *twins.values()):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
    rows, rows_t = [], {t: [] for t in twins}
    for name, hr, lr in pairs:
        with torch.no_grad():
            sr = upscale(lr[None])[0].float()
        if sr.shape != hr.shape:
            raise ValueError(f"{name}: model output {tuple(sr.shape)} != HR {tuple(hr.shape)}")
        rows.append(_image_row(name, sr, hr, lr, op, lpips_model, save_dir,
                               save_u8(sr, lr, op, rounding)))
        for t, folder in twins.items():
            consistency = runs.TWINS[t][0]
            with torch.no_grad():
                sr_t = CONSISTENCY[consistency](op, sr[None], lr[None])[0]
            rows_t[t].append(_image_row(name, sr_t, hr, lr, op, lpips_model, folder,
                                        save_u8(sr_t, lr, op, rounding_of(consistency))))
    return pd.DataFrame(rows), {t: pd.DataFrame(r) for t, r in rows_t.items()}


Pair = tuple[str, torch.Tensor, torch.Tensor]  # (image name, HR (3, H, W), LR (3, H/s, W/s))


def eval_pairs(data: str, op: BicubicDegradation, split: str = "test",
               device: str | torch.device = "cpu", lr_dir: str | Path | None = None
               ) -> Iterator[Pair]:
    """``(name, hr, lr)`` per image of ``data``, float32 in ``[0, 1]`` on ``device``, loaded
    one at a time: HR mod-cropped, ``LR = quantize(D(HR))`` (``eval_pair``) or, with
    ``lr_dir``, the image of the same name there as read (8 bits / 255, no resampling).
    The names and the LR sizes are checked before this returns (``match_lr``)."""
    paths = list_images(data, split=split)
    given = match_lr(paths, lr_dir, op.scale) if lr_dir is not None else {}
    return _pairs(paths, given, op, device)


def _pairs(paths: list[Path], given: dict[str, Path], op: BicubicDegradation,
           device: str | torch.device) -> Iterator[Pair]:
    for path in paths:
        img = load_image(path)
        check_eval_size(img, path, op.scale)
        hr, lr = eval_pair(img.to(device), op)  # one HR path for both; a given LR replaces lr
        if path.stem in given:
            lr_u8 = load_image(given[path.stem])
            _check_lr_size(given[path.stem], lr_u8.shape[-2:], path, img.shape[-2:], op.scale)
            lr = to_float(lr_u8).to(device)
        yield path.stem, hr, lr


def match_lr(hr_paths: list[Path], lr_dir: str | Path, scale: int) -> dict[str, Path]:
    """``--lr``: the given LR image of each HR image, ``{name: LR file}``, matched by file
    name without its suffix (``baby.png`` for ``baby.bmp``); each LR image's size, read
    from its header, must be the HR size mod-cropped to a multiple of ``scale``, divided by
    ``scale``. ``ValueError`` lists the names without a partner, or shared by two files of
    one side, or names the LR file and both sizes."""
    lr_dir = Path(lr_dir)
    if not lr_dir.is_dir():
        raise ValueError(f"--lr {lr_dir}: not a folder; expected a folder of LR images, one "
                         "per HR image, named as it")
    lr_paths = list_images(lr_dir.absolute())  # absolute: never a data set's name
    for side, paths in (("HR", hr_paths), ("LR", lr_paths)):
        twice = sorted(n for n, k in Counter(p.stem for p in paths).items() if k > 1)
        if twice:
            raise ValueError(f"--lr {lr_dir}: {side} images share a name ("
                             f"{_names(twice)}: {paths[0].parent}); expected one per name")
    hr_by, lr_by = {p.stem: p for p in hr_paths}, {p.stem: p for p in lr_paths}
    alone = [(what, [n for n in mine if n not in other]) for what, mine, other in
             (("no LR image for", hr_by, lr_by), ("no HR image for", lr_by, hr_by))]
    if any(names for _, names in alone):
        why = "; ".join(f"{what} {_names(names)}" for what, names in alone if names)
        raise ValueError(f"--lr {lr_dir}: its images do not match the HR images of "
                         f"{hr_paths[0].parent} by name: {why}; expected one LR image per "
                         "HR image, of the same name (baby.png for baby.png)")
    for name, hr in hr_by.items():
        _check_lr_size(lr_by[name], image_size(lr_by[name]), hr, image_size(hr), scale)
    return lr_by


def _names(names: list[str], n: int = 10) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _check_lr_size(lr_path: Path, lr_hw: tuple[int, int], hr_path: Path,
                   hr_hw: tuple[int, int], scale: int) -> None:
    """``ValueError`` naming the LR file and both sizes when the LR image is not exactly
    the mod-cropped HR size / ``scale``."""
    (h, w), (lh, lw) = hr_hw, lr_hw
    want = (h // scale, w // scale)
    if (lh, lw) != want:
        raise ValueError(f"{lr_path}: LR image of {lh}x{lw} px, expected {want[0]}x{want[1]} "
                         f"px: its HR image {hr_path} is {h}x{w} px, {want[0] * scale}x"
                         f"{want[1] * scale} once mod-cropped to a multiple of {scale}, "
                         f"divided by {scale}")


def _image_row(name: str, sr: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor,
               op: BicubicDegradation, lpips_model: lpips.LPIPS | None,
               save_dir: Path | None, saved: torch.Tensor | None = None) -> dict:
    """The metrics of the raw output ``sr`` as saved: ``saved`` (8 bits), or plainly
    rounded when None."""
    out = quantize(sr if saved is None else saved)
    row = {"image": name, **image_metrics(sr if saved is None else out, hr, lr, op),
           # the network's own output, before the rounding that saved it
           **(raw_metrics(sr, lr, op) if saved is not None else {}),
           # the challenge's LR-PSNR (srlib.ntire), beside ours (lr_psnr)
           "lr_psnr_ntire": lr_psnr_ntire_float(out.cpu(), hr.cpu(), op.scale)}
    if lpips_model is not None:
        with torch.no_grad():
            row["lpips"] = float(lpips_model(out[None], hr[None]))
    if save_dir is not None:
        runs.write_png(save_dir / f"{name}.png", out)
    return row


# ---- a closed-form baseline as a run folder ----------------------------------------------

def baseline_done(d: Path, config: dict) -> bool:
    """Whether the baseline's folder ``d`` holds its evaluation of ``config`` already; its
    own path (``out``) aside, so that a result folder moved or copied whole keeps it."""
    def same(c: dict) -> dict:
        return {k: v for k, v in c.items() if k != "out"}

    return (runs.is_finished(d) and not (d / runs.ERROR).is_file()
            and same(runs.read_json(d / runs.CONFIG)) == same(config))


def baseline_run(d: Path, config: dict) -> None:
    """A closed-form baseline (``config`` from ``srlib.grid.baseline_config``) as the run folder
    ``d``: evaluated, not trained, ``metrics.json`` in the runs' schema."""
    name, scale, test_data = config["loss"], config["scale"], config["test_data"]
    with runs.locked(d, "run folder"):
        runs.clear(d)
        per_set, kind, _ = evaluate_sets(BASELINES[name](BicubicDegradation(scale)),
                                         test_data, scale, d, model=name,
                                         with_lpips=config.get("eval_lpips", True))
        runs.write_json(d / runs.CONFIG, config)
        runs.write_metrics(d, per_set, lpips_kind=kind, config=config,
                           first_set=dataset_name(test_data[0]), iters=0, device="cpu")


class Validation:
    """Fixed centre crops of held-out images, evaluated during training (for curves only,
    never for model selection): PSNR-Y (crop s), LR-PSNR, the null-space and range gains
    against ``D^+ LR`` in dB (``srlib.metrics.range_null_mse``), each the mean over the
    crops, and ``null_corr``: how much of the null-space part of the output at the run's
    start is still there (``null_correlation``; NaN until ``set_reference``).

    Args:
        paths: the image files (each checked for its size).
        crop: the crop side in HR px (smaller images give smaller crops), a multiple of s.
    """

    def __init__(self, paths: list[Path], scale: int, crop: int,
                 device: str | torch.device = "cpu"):
        self.op = BicubicDegradation(scale)
        self.pairs, self.pinv = [], []
        self.reference: list[torch.Tensor] | None = None
        for path in paths:
            img = load_image(path)
            check_eval_size(img, path, scale)
            h, w = img.shape[-2:]
            k = min(crop, h - h % scale, w - w % scale)
            top, left = (h - k) // 2, (w - k) // 2
            hr, lr = eval_pair(img[:, top:top + k, left:left + k], self.op)
            self.pairs.append((hr.to(device), lr.to(device)))
            pinv = quantize(self.op.pinv(lr.double()).float())  # as evaluated: 8 bits
            rng, null = range_null_mse(pinv, hr, self.op)
            self.pinv.append((float(rng), float(null)))

    def _outputs(self, g: torch.nn.Module) -> list[torch.Tensor]:
        """``g``'s raw outputs (float32, unquantised) on the crops, in eval mode (a noise
        generator: its sample 0)."""
        was_training = g.training
        g.eval()
        out = [g(lr[None])[0].float() for _, lr in self.pairs]
        g.train(was_training)
        return out

    def _null_part(self, raw: torch.Tensor) -> torch.Tensor:
        return self.op.split(raw.double())[1]

    @torch.no_grad()
    def set_reference(self, g: torch.nn.Module) -> None:
        """Keep the null-space parts of ``g``'s outputs now (at the run's start) as the
        reference of ``null_corr``."""
        self.reference = [self._null_part(raw).cpu() for raw in self._outputs(g)]

    @torch.no_grad()
    def __call__(self, g: torch.nn.Module) -> dict[str, float]:
        rows, corrs = [], []
        for i, raw in enumerate(self._outputs(g)):
            (hr, lr), (pinv_range, pinv_null) = self.pairs[i], self.pinv[i]
            sr = quantize(raw)
            rng, null = range_null_mse(sr, hr, self.op)
            rows.append([float(psnr_y(sr, hr, crop=self.op.scale)),
                         float(lr_psnr(sr, lr, self.op)),
                         10 * math.log10(pinv_null / max(float(null), 1e-20)),
                         10 * math.log10(pinv_range / max(float(rng), 1e-20))])
            if self.reference is not None:
                part = self._null_part(raw)
                corrs.append(null_correlation(self.reference[i].to(part.device), part))
        corr = float(np.mean(corrs)) if corrs else float("nan")
        means = np.mean(rows, axis=0)
        return dict(zip(("psnr_y", "lr_psnr", "null_gain_db", "range_gain_db"),
                        means.tolist(), strict=True)) | {"null_corr": corr}


def null_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson's correlation, over all pixels and channels, of two null-space parts ``(3,
    H, W)`` (``BicubicDegradation.split``): 1 when the part at the start is still all there
    (the downsampled loss's gradient, ``2 D^T (D SR - LR)``, lies in the range of ``D^T``,
    so the null-space part moves only through the network's shared weights), 0 when
    nothing of it is left. NaN when either is constant."""
    a, b = a.double().flatten(), b.double().flatten()
    a, b = a - a.mean(), b - b.mean()
    den = float(a.norm() * b.norm())
    return float(a @ b) / den if den > 0 else float("nan")


def summary(table: pd.DataFrame, data: str, scale: int, model: str) -> dict:
    """Means of a per-image table, with what produced them."""
    out = {k: float(table[k].mean()) for k in table.columns if k != "image"}
    out.update(n_images=len(table), scale=scale, dataset=dataset_name(data), model=model)
    return out


def evaluate_sets(
    upscale: Upscaler, test_data: list[str], scale: int, out: Path,
    device: str | torch.device = "cpu", lpips_kind: str | None = None, model: str = "",
    twins: list[str] | tuple[str, ...] = (), with_lpips: bool = True,
) -> tuple[dict[str, dict], str, dict[str, dict[str, dict]]]:
    """Evaluate on each test set into ``out/eval/<set>/`` (per-image CSV and SR PNGs) and
    each post-hoc twin of ``twins`` (suffixes of ``runs.TWINS``) into
    ``out/<its folder>/eval/<set>/``; returns ``({set: summary}, lpips kind, {suffix: {set:
    summary}})``. LPIPS: ``lpips_kind`` or the default; none with ``with_lpips`` False."""
    kind = lpips_kind or lpips.default_kind()
    metric = lpips.load(kind, device) if with_lpips else None
    per_set: dict[str, dict] = {}
    per_twin: dict[str, dict[str, dict]] = {t: {} for t in twins}
    for data in test_data:
        name = dataset_name(data)
        where = runs.eval_dir(out, name)
        folders = {t: runs.eval_dir(out / runs.TWINS[t][1], name) for t in twins}
        table, tables = evaluate(upscale, data, scale, device=device, lpips_model=metric,
                                 save_dir=where, twins=folders)
        runs.write_text(where / runs.PER_IMAGE, table.to_csv(index=False))
        per_set[name] = summary(table, data, scale, model)
        for t, table_t in tables.items():
            runs.write_text(folders[t] / runs.PER_IMAGE, table_t.to_csv(index=False))
            per_twin[t][name] = summary(table_t, data, scale, f"{model} {t}")
    return per_set, kind, per_twin


def _require_noise(g: torch.nn.Module) -> None:
    if not getattr(g, "noise", 0):
        raise ValueError("samples need a generator with a noise input (config field noise "
                         f"> 0); this one has noise={getattr(g, 'noise', 0)!r}")


@torch.no_grad()
def draw_samples(g: torch.nn.Module, lr: torch.Tensor, k: int = DEFAULT_K) -> torch.Tensor:
    """``k`` samples ``(k, 3, sH, sW)`` (float32, unquantised) of a generator with a noise
    input for one LR image ``(3, h, w)``: sample ``i`` with the noise of
    ``g.sample_noise(lr, seed)`` for the ``i``-th of ``sample_seeds(k)``. Sample 0 is
    ``g(lr)`` in eval mode. ``ValueError`` for a generator without a noise input."""
    _require_noise(g)
    x = lr[None]
    return torch.cat([g(x, g.sample_noise(x, seed)).float() for seed in sample_seeds(k)])


def _sample_row(name: str, samples: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor,
                op: BicubicDegradation, metric: lpips.LPIPS, save_dir: Path) -> dict:
    """The K-sample statistics of one image (``srlib.ntire``: ``sample_stats``, the
    diversity score, and in ``lr_psnr_ntire_*`` the challenge's LR-PSNR), its samples saved
    as ``save_dir/<name>/<i>.png``."""
    (save_dir / name).mkdir(parents=True, exist_ok=True)
    for i, sr in enumerate(samples):
        runs.write_png(save_dir / name / f"{i}.png", sr)
    ntire = [lr_psnr_ntire_float(sr, hr, op.scale) for sr in samples]
    div = diversity_score(samples, hr, metric)
    return {"image": name, **sample_stats(samples, hr, lr, op),
            **noise_floor(samples, hr, lr, op, metric),
            "lr_psnr_ntire_mean": float(np.mean(ntire)), "lr_psnr_ntire_worst": min(ntire),
            "diversity": div["score"], "lpips_global_best": div["global_best"],
            "lpips_local_best": div["local_best"], "lpips_mean": div["lpips_mean"]}


def evaluate_samples(
    g: torch.nn.Module, test_data: list[str], scale: int, out: Path, k: int = DEFAULT_K,
    device: str | torch.device = "cpu", lpips_kind: str | None = None, model: str = "",
    lr_dir: str | Path | None = None,
) -> dict[str, dict]:
    """Draw ``k`` samples per test image from ``g`` (a generator with a noise input, in
    eval mode; ``draw_samples``), save them under ``out/eval/<set>/samples/<image>/<i>.png``
    and their statistics, one row per image, in ``out/eval/<set>/samples.csv``: LR-PSNR
    (ours) mean and worst over the samples, the challenge's LR-PSNR mean and worst, PSNR-Y
    of the samples' mean image and the mean PSNR-Y, the diversity score (percent) and its
    LPIPS terms. Returns ``{set: means over the images}`` with ``n_samples`` and
    ``lpips_kind``. ``lr_dir``: the given LR images of a single test set (``eval_pairs``).
    ``ValueError`` when ``k < 1``, ``g`` has no noise input, or ``lr_dir`` comes with
    several test sets."""
    sample_seeds(k)  # validates k before any work
    _require_noise(g)
    if lr_dir is not None and len(test_data) != 1:
        raise ValueError(f"given LR images ({lr_dir}) are one test set's; got {len(test_data)} "
                         "test sets")
    kind = lpips_kind or lpips.default_kind()
    metric = lpips.load(kind, device)
    op = BicubicDegradation(scale)
    rounding = rounding_of(g)
    per_set = {}
    for data in test_data:
        name = dataset_name(data)
        where = runs.eval_dir(out, name)
        rows = []
        for image, hr, lr in eval_pairs(data, op, "test", device, lr_dir):
            samples = draw_samples(g, lr, k)
            if rounding == "consistent":  # each sample as it is saved
                samples = torch.stack([save_u8(x, lr, op, rounding) for x in samples])
            rows.append(_sample_row(image, samples, hr, lr, op, metric, where / runs.SAMPLES))
        table = pd.DataFrame(rows)
        runs.write_text(where / runs.SAMPLES_CSV, table.to_csv(index=False))
        per_set[name] = summary(table, data, scale, model) | {"n_samples": k,
                                                               "lpips_kind": kind}
    return per_set


def load_upscaler(model: str, scale: int | None, device: str | torch.device
                  ) -> tuple[Upscaler, int, dict]:
    """``--model`` -> (LR to SR function, its scale, what was read of it): a baseline's name
    (``BASELINES``, at ``scale``, 4 when None; ``{}``), a run folder (``{}``) or a published
    RRDBNet checkpoint file (``load_published``: ``{"layout", "nf", "nb", "gc"}``). A run
    has its own scale and a checkpoint is x4: a ``scale`` given (not None) that differs is a
    ``ValueError`` naming both."""
    if model in BASELINES:
        scale = 4 if scale is None else scale
        return BASELINES[model](BicubicDegradation(scale)), scale, {}
    path = Path(model)
    if path.is_dir():
        g = runs.load_generator(path, device)
        if scale is not None and scale != g.scale:
            raise ValueError(f"--scale {scale} disagrees with the run {path}, trained at "
                             f"x{g.scale} (scale in its {runs.CONFIG}); drop --scale or pass "
                             f"--scale {g.scale}")
        return g, g.scale, {}
    if scale is not None and scale != 4:  # refused before the file is read
        raise ValueError(f"--scale {scale} disagrees with the checkpoint {path}: published "
                         "RRDBNet checkpoints (ESRGAN's, BasicSR's) are loaded at x4 only; "
                         "drop --scale or pass --scale 4")
    g, about = load_published(path, device)
    return g, 4, about


def load_published(path: str | Path, device: str | torch.device = "cpu"
                   ) -> tuple[torch.nn.Module, dict]:
    """A published x4 RRDBNet checkpoint file (ESRGAN's or BasicSR's ``.pth``,
    ``srlib.models.rrdbnet_from_published``) as a generator in eval mode on ``device``, and
    what was read of it, ``{"layout", "nf", "nb", "gc"}``. Loaded as data only
    (``weights_only``): a pickled object, which loading would run, is refused, not run.
    ``FileNotFoundError`` or ``ValueError`` names the file and what was expected."""
    from srlib.models import rrdbnet_from_published

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; expected a published RRDBNet "
                                "checkpoint (.pth)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a foreign or damaged file
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        why = (f"it holds the Python object {found[1]}, which loading would run" if found
               else f"{type(err).__name__}: {(str(err).strip() or 'no details').splitlines()[0]}")
        raise ValueError(f"{path} is not a PyTorch state dict that loads as data ({why}); "
                         "expected a published RRDBNet checkpoint, a dict of tensors as "
                         "torch.save(model.state_dict(), path) writes it") from None
    try:
        g, about = rrdbnet_from_published(state)
    except ValueError as err:
        raise ValueError(f"{path} {err}") from None
    return g.to(device), about


def finite_or_null(x, name: str = "") -> tuple[object, list[str]]:
    """``x`` (nested dicts and lists of numbers) with every NaN or infinite float as
    ``None``, for strict JSON, and the dotted names of those values."""
    if isinstance(x, dict):
        pairs = [(k, finite_or_null(v, f"{name}.{k}" if name else str(k))) for k, v in x.items()]
        return {k: v for k, (v, _) in pairs}, [n for _, (_, names) in pairs for n in names]
    if isinstance(x, list):
        items = [finite_or_null(v, f"{name}[{i}]") for i, v in enumerate(x)]
        return [v for v, _ in items], [n for _, names in items for n in names]
    if isinstance(x, float) and not math.isfinite(x):
        return None, [name]
    return x, []


DEVICES = "cpu, cuda, cuda:N, mps, auto"


def resolve_device(name: str) -> str:
    """A ``--device`` value -> the torch device name it stands for: ``cpu``; ``cuda`` or
    ``cuda:N`` (``N`` a GPU index, 0 to the count - 1); ``mps``; ``auto``, ``cuda`` when
    available, else ``cpu`` (as ``srlib.train``'s ``auto``). ``ValueError`` names the
    value and what is expected, or says that the device is absent on this machine."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return name
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError("--device 'mps' requested but MPS is not available on this "
                             "machine; expected one of cpu, auto")
        return name
    index = name[len("cuda:"):] if name.startswith("cuda:") else ""
    if name != "cuda" and not (index.isascii() and index.isdigit()):
        raise ValueError(f"--device {name!r}: expected one of {DEVICES} (N a GPU index)")
    if not torch.cuda.is_available():
        raise ValueError(f"--device {name!r} requested but CUDA is not available on this "
                         "machine; expected one of cpu, auto")
    count = torch.cuda.device_count()
    if index and int(index) >= count:
        raise ValueError(f"--device {name!r}: this machine has {count} CUDA device(s), "
                         f"cuda:0 to cuda:{count - 1}")
    return name


MODELS = (f"one of {', '.join(BASELINES)} or the folder of a trained run, or a published x4 "
          "RRDBNet checkpoint (a .pth file of ESRGAN's or BasicSR's)")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m srlib.evaluate", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--model", required=True,
                    help=f"{MODELS}; of a checkpoint, nf, nb and gc are read from its shapes "
                         "and BasicSR's params_ema is preferred to its params")
    ap.add_argument(
        "--data", default="default",
        help="'default', a name under data/ or $SRLIB_DATA, or a folder of HR images",
    )
    ap.add_argument("--scale", type=int, default=None,
                    help="SR factor of a baseline (default: 4); a run has its own and a "
                         "checkpoint is x4: a --scale that differs is refused")
    ap.add_argument("--split", default="test", help="split of the default data set")
    ap.add_argument("--lr", default=None, metavar="DIR",
                    help="take the LR images from DIR instead of LR = quantize(D(HR)): one "
                         "per HR image, of the same name (any image suffix), exactly the "
                         "mod-cropped HR size / scale, read as they are (no resampling); "
                         "LR-PSNR then compares with them")
    ap.add_argument("--twin", default=None, choices=list(runs.TWINS),
                    help="measure the post-hoc twin instead (as the runner does for a trained "
                         "variant): +P, the outputs projected onto the images consistent with "
                         "their LR, P(SR, LR) = SR + D^+(LR - D SR); +B, the projection within "
                         "[0, 1], saved with consistent rounding")
    ap.add_argument("--save-sr", default=None, metavar="DIR",
                    help="write each SR image as measured (8-bit PNG) to DIR/<set>/<image>.png")
    ap.add_argument("--lpips", default=None, metavar="KIND",
                    help=f"add LPIPS of this kind ({', '.join(lpips.KINDS)}, or 'default')")
    ap.add_argument("--device", default="cpu", help=f"one of {DEVICES} (default: cpu)")
    ap.add_argument("--samples", type=int, default=0, metavar="K",
                    help="a run with a noise input: also draw K samples per image (the NTIRE "
                         "2021 challenge draws 10) and measure them; they go under --out")
    ap.add_argument("--out", default=None,
                    help="with --samples: the folder for eval/<set>/samples.csv and the PNGs")
    ap.add_argument("--json", action="store_true",
                    help="print one JSON object of the means (strict JSON: a mean that is not "
                         "finite, e.g. the PSNR of an exact reconstruction, is null)")
    return ap


def _check_args(ap: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """The checks that need no image or model, before any work (``ap.error``: exit code 2,
    on the first that fails); returns the device."""
    if args.samples < 0 or (args.samples and not args.out):
        ap.error(f"--samples {args.samples}: expected K >= 1 samples per image, with --out "
                 "naming where to save them (0, the default: none)")
    if args.twin and args.samples:
        ap.error(f"--twin {args.twin} with --samples: the samples are measured as the "
                 "generator draws them, without a twin; run them without --twin")
    if args.model not in BASELINES and not Path(args.model).exists():
        ap.error(f"--model {args.model!r}: no such file or folder; expected {MODELS}")
    if args.scale is not None and args.scale < 1:
        ap.error(f"--scale must be an integer >= 1, got {args.scale}")
    if args.lr is not None and not Path(args.lr).is_dir():
        ap.error(f"--lr {args.lr!r}: not a folder; expected a folder of LR images, one per "
                 "HR image, named as it")
    try:
        device = resolve_device(args.device)
        for folder, flag in ((args.out, "--out"), (args.save_sr, "--save-sr")):
            if folder is not None:  # checked before evaluating: a bad name fails now, not after
                runs.check_writable_folder(folder, flag)
        if args.save_sr is not None:
            _check_not_inputs(Path(args.save_sr) / dataset_name(args.data), args)
    except ValueError as err:
        ap.error(str(err))
    return device


def _check_not_inputs(target: Path, args: argparse.Namespace) -> None:
    """``ValueError`` when ``--save-sr``'s folder for the set is the folder of the HR or LR
    images: the SR PNGs, named as they are, would overwrite them."""
    inputs = [Path(args.lr)] if args.lr is not None else []
    if args.data not in DEFAULT_NAMES:
        with contextlib.suppress(FileNotFoundError):  # the evaluation says so, as without
            inputs.append(resolve_dataset(args.data))
    for folder in inputs:
        if target.resolve() == folder.resolve():
            raise ValueError(f"--save-sr {args.save_sr}: the SR images would go to {target}, "
                             "the folder of the input images, and overwrite them; name "
                             "another folder")


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    device = _check_args(ap, args)
    save = Path(args.save_sr) / dataset_name(args.data) if args.save_sr is not None else None
    try:
        upscale, scale, about = load_upscaler(args.model, args.scale, device)
        kind = lpips.default_kind() if args.lpips == "default" else args.lpips
        metric = lpips.load(kind, device) if kind else None
        # a twin's images are what is measured (and saved); the model's own, without one
        table, tables = evaluate(upscale, args.data, scale, split=args.split, device=device,
                                 lpips_model=metric, save_dir=None if args.twin else save,
                                 twins={args.twin: save} if args.twin else None,
                                 lr_dir=args.lr)
        table = tables[args.twin] if args.twin else table
        samples = evaluate_samples(upscale, [args.data], scale, Path(args.out), args.samples,
                                   device, kind, args.model, args.lr) if args.samples else {}
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    model = f"{args.model} {args.twin}" if args.twin else args.model
    result = summary(table, args.data, scale, model)
    extras = {"lpips_kind": kind, "lr_dir": args.lr, "checkpoint": about,
              "sr_dir": str(save) if save else None,
              "samples": next(iter(samples.values()), None)}
    result |= {k: v for k, v in extras.items() if v}  # those that apply
    if args.json:
        strict, nulls = finite_or_null(result)
        if nulls:
            print("note: PSNR of an exact reconstruction is infinite; JSON shows null for a "
                  f"mean that is not finite: {', '.join(nulls)}", file=sys.stderr)
        print(json.dumps(strict, indent=1, allow_nan=False))
    else:
        _print_table(table, result)
        for name, means in samples.items():
            print(f"{args.samples} samples per image on {name} (saved under {args.out}): "
                  + ", ".join(f"{k} = {v:.4g}" for k, v in means.items()
                              if isinstance(v, float)))
    return 0


def _print_table(table: pd.DataFrame, result: dict) -> None:
    """The per-image table and its mean, after a line saying what was measured."""
    about = result.get("checkpoint")
    print(f"{result['model']} x{result['scale']} on {result['dataset']} ({len(table)} images)"
          + (f"; lpips = {result['lpips_kind']}" if "lpips_kind" in result else "")
          + (f"; {about['layout']} checkpoint, nf={about['nf']} nb={about['nb']} "
             f"gc={about['gc']}" if about else "")
          + (f"; LR from {result['lr_dir']}" if "lr_dir" in result else ""))
    means = pd.DataFrame([{"image": "mean", **table.mean(numeric_only=True).to_dict()}])
    fmt = {k: "{:.3e}".format for k in ("range_mse", "null_mse")}
    full = pd.concat([table, means])
    print(full.to_string(index=False, float_format="%.4f", formatters=fmt))
    if "sr_dir" in result:
        print(f"SR images saved in {result['sr_dir']}/")


if __name__ == "__main__":
    sys.exit(main())
