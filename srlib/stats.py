"""Paired comparisons with bootstrap confidence intervals, and the verdicts of hypotheses.

Statistics only: no file is read here. Every finding of the report is a paired difference
``a - b`` between two variants (or a variant and a baseline) over test images x seeds, with
a 95% percentile-bootstrap interval and whether it excludes zero. The input is the long
per-image table (``srlib.results.per_image_table``): one row per variant x seed x test set
x image, columns ``KEYS`` and the metrics.

The resampling (``paired_bootstrap``)
    The unit resampled is the test image: an image is drawn with replacement together with
    all of its seeds, and the statistic is the mean over every (image, seed) pair drawn.
    Images are the main source of variance (a hard image is hard under every seed and for
    every variant) and the same image appears under every seed, so the pairs of one image
    are not independent; resampling the pairs one by one would treat them as independent
    and give too narrow an interval. Seeds are few (1 in ``quick``, 3 in ``study``): a
    bootstrap over 1-3 seeds is degenerate or very coarse, so by default seeds are
    resampled as well only when there are at least ``MIN_SEEDS_TO_RESAMPLE`` of them; then
    images and seeds are drawn independently (the "pigeonhole" bootstrap of a crossed
    design, Owen 2007, which is slightly conservative). With images alone the interval is
    conditional on the trained models: it says how sure we are on the population of images
    like these, not how much a new training seed would move the result.

Baselines (``paired_difference``)
    A variant whose output does not depend on the seed (a closed-form baseline) may be
    stored under every seed, under some seeds only, or with no seed (NaN). It is paired on
    (dataset, image) and broadcast over the other variant's seeds. Such a variant is
    recognised from the table (no seed, or identical values under two or more seeds) or
    named in ``baselines``; name it where it was evaluated under one seed only. Two trained
    variants are paired on (dataset, seed, image); pairs present for one side only are left
    out (the counts say how many went in).

Hypotheses (``evaluate_hypothesis``, ``verdict_table``)
    Declared in the grid file (``srlib.grid.Hypothesis``): id, statement, variants ``a``
    and ``b``, metric, direction
    (``greater``: a > b in that metric; ``less``: a < b), optionally ``datasets`` and
    ``unequal_iters_ok`` (the grid's loader refuses two trained variants of unequal training
    length unless it is true; the report then says so). The verdict follows from the
    interval of ``a - b``: ``supported`` (it excludes 0 on the expected side),
    ``contradicted`` (it excludes 0 on the other side), ``inconclusive`` (it includes 0, or
    there is a single pair and so no interval), ``not tested`` (a variant or the metric is
    missing). ``b`` may be a number instead of a variant: a fixed value the claim is
    measured against (the challenge's 45 dB, a diversity of 0); the difference is then
    ``a - b`` per image, resampled as any other. No variant name is hard-coded here; the
    gains' baseline is an argument.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from srlib.metrics import metrics_where

if TYPE_CHECKING:
    from srlib.grid import Hypothesis

KEYS = ["variant", "seed", "dataset", "image"]  # the keys of a per-image row
GAIN_METRICS = metrics_where(source="gain")  # added by ``add_gains``
VERDICTS = ("supported", "contradicted", "inconclusive", "not tested")
MIN_SEEDS_TO_RESAMPLE = 5  # fewer seeds: images alone are resampled (see the module doc)
_SAME_TOL = 1e-9  # relative: values "identical" across seeds (a seed-independent variant)


# ---- the bootstrap -----------------------------------------------------------------------

@dataclass(frozen=True)
class Interval:
    """A mean with its percentile-bootstrap interval, in the unit of the metric (dB for
    PSNR and gains). ``n``: pairs (values) used; ``n_dropped``: NaN / infinite values left
    out; ``n_images``, ``n_seeds``: distinct images and seeds behind them (a
    seed-independent comparison counts 1 seed); ``degenerate``: fewer than two units to
    resample, so the interval is the point and excludes nothing."""

    mean: float
    low: float
    high: float
    n: int
    n_dropped: int = 0
    n_images: int = 0
    n_seeds: int = 0
    level: float = 0.95
    degenerate: bool = False

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies entirely above or below 0 (never for a degenerate
        or empty one)."""
        if self.degenerate or not (math.isfinite(self.low) and math.isfinite(self.high)):
            return False
        return self.low > 0 or self.high < 0

    def format(self, fmt: str = "{:.2f}") -> str:
        """``'mean [low, high]'``, e.g. ``'0.41 [0.22, 0.60]'``; a degenerate one is
        ``'mean (n=1)'``, an empty one ``'n/a'``."""
        return format_interval(self.mean, self.low, self.high, fmt,
                               degenerate=self.degenerate, n=self.n)


def format_interval(mean: float, low: float, high: float, fmt: str = "{:.2f}", *,
                    degenerate: bool = False, n: int | None = None) -> str:
    """``'mean [low, high]'`` for a table cell (``'n/a'`` when the mean is NaN)."""
    if mean is None or not np.isfinite(mean):
        return "n/a"
    if degenerate or not (np.isfinite(low) and np.isfinite(high)):
        return fmt.format(mean) + (f" (n={n})" if n is not None else "")
    return f"{fmt.format(mean)} [{fmt.format(low)}, {fmt.format(high)}]"


def _codes(labels) -> tuple[np.ndarray, int]:
    """Integer codes 0..k-1 of any 1-D labels (NaN is a label of its own)."""
    codes, uniques = pd.factorize(pd.Series(np.asarray(labels, dtype=object)),
                                  use_na_sentinel=False)
    return np.asarray(codes), len(uniques)


def _draw_counts(rng: np.random.Generator, k: int, b: int) -> np.ndarray:
    """``(b, k)`` float counts: how often each of k units is drawn in b resamples of k."""
    idx = rng.integers(0, k, size=(b, k)) + (np.arange(b) * k)[:, None]
    return np.bincount(idx.ravel(), minlength=b * k).reshape(b, k).astype(float)


def paired_bootstrap(
    diff: np.ndarray,
    *,
    clusters=None,
    seeds=None,
    resample_seeds: bool | None = None,
    n_boot: int = 10000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile-bootstrap interval of the mean of paired differences ``diff`` (any unit).

    ``clusters``: one label per value, the unit resampled (the test image, with all of its
    seeds); None resamples the values themselves. ``seeds``: one label per value, the
    training seed; seeds are resampled too (independently of images) when
    ``resample_seeds`` is True, or, when it is None, when there are at least
    ``MIN_SEEDS_TO_RESAMPLE`` of them. The statistic of a resample is the mean of every
    value it drew (an image drawn twice counts twice), so the point estimate is the plain
    mean. NaN and infinite values are dropped first (``n_dropped``). Deterministic given
    ``seed``; vectorised (counts matrices, in chunks of bounded memory).
    """
    diff = np.asarray(diff, dtype=float).ravel()
    n_all = diff.size
    for what, labels in (("clusters", clusters), ("seeds", seeds)):
        if labels is not None and len(labels) != n_all:
            raise ValueError(f"{what}: {len(labels)} labels for {n_all} values")
    keep = np.isfinite(diff)
    x = diff[keep]
    n = x.size
    ccode, n_cl = (_codes(np.asarray(clusters, dtype=object)[keep]) if clusters is not None
                   else (np.arange(n), n))
    scode, n_sd = _codes(np.asarray(seeds, dtype=object)[keep]) if seeds is not None else (
        np.zeros(n, dtype=int), 1 if n else 0)
    counts = {"n": n, "n_dropped": n_all - n, "n_images": n_cl,
              "n_seeds": n_sd if seeds is not None else 0, "level": level}
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, degenerate=True, **counts)
    mean = float(x.mean())
    by_seed = (n_sd >= MIN_SEEDS_TO_RESAMPLE if resample_seeds is None
               else bool(resample_seeds)) and n_sd >= 2
    if n_cl < 2 and not by_seed:
        return Interval(mean, mean, mean, degenerate=True, **counts)

    # sums and counts per (image, seed) cell: a resample's mean is a ratio of weighted sums
    S = np.zeros((n_cl, n_sd))
    C = np.zeros((n_cl, n_sd))
    np.add.at(S, (ccode, scode), x)
    np.add.at(C, (ccode, scode), 1.0)
    if not by_seed:
        S, C = S.sum(1, keepdims=True), C.sum(1, keepdims=True)
    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot)
    step = max(1, 2_000_000 // (n_cl + (n_sd if by_seed else 0)))
    with np.errstate(invalid="ignore", divide="ignore"):
        for start in range(0, n_boot, step):
            b = min(step, n_boot - start)
            W = _draw_counts(rng, n_cl, b)
            if by_seed:
                V = _draw_counts(rng, n_sd, b)
                num, den = ((W @ S) * V).sum(1), ((W @ C) * V).sum(1)
            else:
                num, den = W @ S[:, 0], W @ C[:, 0]
            boot[start:start + b] = num / den  # 0/0 (only empty cells drawn): NaN, ignored
    alpha = (1.0 - level) / 2.0
    low, high = np.nanquantile(boot, [alpha, 1.0 - alpha])
    # the quantiles of a constant sample can differ from it in the last bit
    low, high = min(float(low), mean), max(float(high), mean)
    return Interval(mean, low, high, **counts)


def _check_columns(per_image: pd.DataFrame, cols: Iterable[str]) -> None:
    missing = [c for c in cols if c not in per_image.columns]
    if missing:
        raise KeyError(f"per-image table lacks column(s) {', '.join(missing)}; it has "
                       f"{', '.join(map(str, per_image.columns))}")


def is_seed_independent(rows: pd.DataFrame, metrics: Iterable[str]) -> bool:
    """Whether one variant's rows do not depend on the seed: no seed at all (NaN), or two or
    more seeds whose values of every metric agree per (dataset, image) to 1e-9 (relative).
    One seed alone is not evidence: name such a baseline in ``baselines``."""
    seeds = rows["seed"].dropna().unique()
    if len(rows) and rows["seed"].isna().all():
        return True
    if len(seeds) < 2:
        return False
    g = rows.groupby(["dataset", "image"], sort=False)
    for m in metrics:
        hi, lo = g[m].max().to_numpy(float), g[m].min().to_numpy(float)
        ok = np.isnan(hi) | ((hi - lo) <= _SAME_TOL * np.maximum(1.0, np.abs(hi)))
        if not ok.all():
            return False
    return True


def _collapse(rows: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """One row per (dataset, image) of a seed-independent variant (its first value)."""
    return rows.groupby(["dataset", "image"], sort=False, as_index=False)[cols].first()


def _pairs(per_image: pd.DataFrame, a: str, b: str, metric: str, dataset: str | None,
           baselines: Collection[str]) -> pd.DataFrame:
    """Rows ``dataset, seed, image, a, b`` of paired values (``seed`` is 0 when both sides
    are seed-independent)."""
    _check_columns(per_image, [*KEYS, metric])
    t = per_image if dataset is None else per_image[per_image["dataset"] == dataset]
    ta, tb = t[t["variant"] == a], t[t["variant"] == b]
    for name, rows in ((a, ta), (b, tb)):
        dup = rows.duplicated(["dataset", "seed", "image"])
        if dup.any():
            r = rows[dup].iloc[0]
            raise ValueError(f"variant '{name}': several rows for dataset '{r['dataset']}', "
                             f"seed {r['seed']}, image '{r['image']}'")
    ind_a = a in baselines or is_seed_independent(ta, [metric])
    ind_b = b in baselines or is_seed_independent(tb, [metric])
    cols = ["dataset", "image"]
    if ind_a and ind_b:
        m = _collapse(ta, [metric]).merge(_collapse(tb, [metric]), on=cols,
                                          suffixes=("_a", "_b"), sort=False)
        m["seed"] = 0
    elif ind_a or ind_b:
        base, other = (ta, tb) if ind_a else (tb, ta)
        m = other[[*cols, "seed", metric]].merge(_collapse(base, [metric]), on=cols,
                                                 sort=False, suffixes=("_o", "_base"))
        x, y = m[f"{metric}_o"], m[f"{metric}_base"]
        m[f"{metric}_a"], m[f"{metric}_b"] = (y, x) if ind_a else (x, y)
    else:
        m = ta[[*cols, "seed", metric]].merge(tb[[*cols, "seed", metric]],
                                              on=[*cols, "seed"], suffixes=("_a", "_b"),
                                              sort=False)
    out = pd.DataFrame({"dataset": m["dataset"], "seed": m["seed"], "image": m["image"],
                        "a": m[f"{metric}_a"].astype(float),
                        "b": m[f"{metric}_b"].astype(float)})
    return out.reset_index(drop=True)


def difference_from_value(
    per_image: pd.DataFrame, a: str, value: float, metric: str, dataset: str | None = None,
    *, baselines: Collection[str] = (), **boot,
) -> Interval:
    """Mean of ``metric(a) - value`` over variant ``a``'s rows (images x seeds; a
    seed-independent variant once per image), with its bootstrap interval, resampled as in
    ``paired_difference``: a claim against a fixed value rather than another variant."""
    _check_columns(per_image, [*KEYS, metric])
    t = per_image if dataset is None else per_image[per_image["dataset"] == dataset]
    rows = t[t["variant"] == a]
    if a in baselines or is_seed_independent(rows, [metric]):
        rows = _collapse(rows, [metric]).assign(seed=0)
    clusters = (rows["dataset"].astype(str) + "\x00" + rows["image"].astype(str)).to_numpy()
    return paired_bootstrap(rows[metric].to_numpy(float) - float(value), clusters=clusters,
                            seeds=rows["seed"].to_numpy(), **boot)


def paired_difference(
    per_image: pd.DataFrame, a: str, b: str, metric: str, dataset: str | None = None, *,
    baselines: Collection[str] = (), **boot,
) -> Interval:
    """Mean of ``metric(a) - metric(b)`` (the metric's unit) over paired rows of the
    per-image table, with its bootstrap interval (``paired_bootstrap``; ``boot`` goes
    there: ``n_boot``, ``level``, ``seed``, ``resample_seeds``).

    Pairing: on (dataset, seed, image) for two seed-dependent variants; a seed-independent
    variant (a baseline, recognised or named in ``baselines``, see the module doc) is paired
    on (dataset, image) and broadcast over the other's seeds. ``dataset`` None pools every
    test set (an image is then the pair (dataset, image)). The Interval's ``n_images`` and
    ``n_seeds`` count the distinct images and seeds that went in."""
    p = _pairs(per_image, a, b, metric, dataset, baselines)
    clusters = (p["dataset"].astype(str) + "\x00" + p["image"].astype(str)).to_numpy()
    return paired_bootstrap((p["a"] - p["b"]).to_numpy(), clusters=clusters,
                            seeds=p["seed"].to_numpy(), **boot)


# ---- derived metrics ---------------------------------------------------------------------

def add_gains(per_image: pd.DataFrame, baseline: str, *,
              baselines: Collection[str] = ()) -> pd.DataFrame:
    """A copy with ``null_gain_db`` and ``range_gain_db`` (dB) per row:
    ``10 log10(null_mse(baseline) / null_mse(row))`` against the ``baseline`` variant's row
    (the grid's ``D^+ LR`` baseline, by whatever name it has there)
    of the same image (and seed, unless the baseline is seed-independent, as in
    ``paired_difference``); positive = less error than the baseline in that part. The
    baseline's own gains are exactly 0; rows without a baseline row get NaN."""
    _check_columns(per_image, [*KEYS, "null_mse", "range_mse"])
    out = per_image.copy()
    cols = ["null_mse", "range_mse"]
    base = out[out["variant"] == baseline]
    if base.empty:
        for c in GAIN_METRICS:
            out[c] = np.nan
        return out
    fixed = baseline in baselines or is_seed_independent(base, cols)
    on = ["dataset", "image"] if fixed else ["dataset", "seed", "image"]
    ref = (_collapse(base, cols) if fixed else base[on + cols]).rename(
        columns={c: f"{c}_base" for c in cols})
    m = out[on].merge(ref, on=on, how="left", sort=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        for c, g in zip(cols, GAIN_METRICS, strict=True):
            out[g] = 10.0 * np.log10(m[f"{c}_base"].to_numpy(float)
                                     / out[c].to_numpy(float))
    is_base = (out["variant"] == baseline).to_numpy()
    for g in GAIN_METRICS:
        out.loc[is_base & np.isfinite(out[g].to_numpy()), g] = 0.0
    return out


# ---- summaries ---------------------------------------------------------------------------

def summary_with_ci(
    per_image: pd.DataFrame, metrics: Iterable[str], by: Iterable[str] = ("dataset", "variant"),
    *, baselines: Collection[str] = (), **boot,
) -> pd.DataFrame:
    """Per group of ``by``: for each metric its mean and bootstrap interval over images x
    seeds (the resampling of ``paired_bootstrap``), as ``<m>_mean``, ``<m>_low``,
    ``<m>_high`` (the metric's unit); ``n_images``, ``n_seeds`` (1 for a seed-independent
    variant, whose values are taken once per image) and ``seed_independent``. Show a cell
    with ``format_interval(mean, low, high)``."""
    metrics, by = list(metrics), list(by)
    _check_columns(per_image, [*KEYS, *metrics, *by])
    rows = []
    for key, g in per_image.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        fixed = all(v in baselines or is_seed_independent(gv, metrics)
                    for v, gv in g.groupby("variant", sort=False))
        if fixed:
            g = (g.groupby(["variant", "dataset", "image"], sort=False, as_index=False)
                 [metrics].first())
            g["seed"] = 0
        clusters = (g["dataset"].astype(str) + "\x00" + g["image"].astype(str)).to_numpy()
        row = dict(zip(by, key, strict=True))
        for m in metrics:
            iv = paired_bootstrap(g[m].to_numpy(float), clusters=clusters,
                                  seeds=g["seed"].to_numpy(), **boot)
            row.update({f"{m}_mean": iv.mean, f"{m}_low": iv.low, f"{m}_high": iv.high})
        row.update(n_images=int(pd.unique(clusters).size),
                   n_seeds=int(g["seed"].nunique()), seed_independent=fixed)
        rows.append(row)
    cols = [*by, *(f"{m}_{s}" for m in metrics for s in ("mean", "low", "high")),
            "n_images", "n_seeds", "seed_independent"]
    return pd.DataFrame(rows, columns=cols)


# ---- hypotheses --------------------------------------------------------------------------

def _verdict(iv: Interval, direction: str) -> tuple[str, str]:
    if iv.n == 0:
        return "not tested", "no paired images"
    if iv.degenerate:
        return "inconclusive", f"{iv.n} pair(s) from {iv.n_images} image(s): no interval"
    if not iv.excludes_zero:
        return "inconclusive", f"the {iv.level:.0%} interval includes 0"
    up = iv.low > 0
    if up == (direction == "greater"):
        return "supported", ""
    return "contradicted", f"the {iv.level:.0%} interval excludes 0 on the other side"


def evaluate_hypothesis(h: Hypothesis, per_image: pd.DataFrame, *,
                        baselines: Collection[str] = (), **boot) -> dict[str, dict]:
    """``{dataset: {"interval": Interval | None, "verdict": str, "note": str}}`` for each of
    ``h.datasets`` (or every test set in the table; ``""`` when it has none): the paired
    difference ``h.a - h.b`` in ``h.metric`` (``paired_difference``, or
    ``difference_from_value`` when ``b`` is a number) and its verdict, ``not tested`` with
    the missing variant or metric named in ``note``."""
    has = set(per_image["dataset"]) if "dataset" in per_image else set()
    order = list(dict.fromkeys(per_image["dataset"])) if "dataset" in per_image else []
    out: dict[str, dict] = {}
    for ds in list(h.datasets) or order or [""]:
        if ds not in has:
            out[ds] = {"interval": None, "verdict": "not tested",
                       "note": f"no results on test set '{ds}'" if ds else "no results"}
            continue
        t = per_image[per_image["dataset"] == ds]
        present = set(t["variant"])
        missing = [v for v in h.variants if v not in present]
        if missing:
            out[ds] = {"interval": None, "verdict": "not tested",
                       "note": "missing variant(s): " + ", ".join(f"'{v}'" for v in missing)}
            continue
        if h.metric not in t.columns:
            out[ds] = {"interval": None, "verdict": "not tested",
                       "note": f"metric '{h.metric}' not in the table"}
            continue
        empty = [v for v in h.variants if t.loc[t["variant"] == v, h.metric].isna().all()]
        if empty:
            out[ds] = {"interval": None, "verdict": "not tested",
                       "note": f"no '{h.metric}' values for "
                               + ", ".join(f"'{v}'" for v in empty)}
            continue
        iv = (difference_from_value(t, h.a, h.value, h.metric, ds, baselines=baselines, **boot)
              if h.value is not None else
              paired_difference(t, h.a, h.b, h.metric, ds, baselines=baselines, **boot))
        verdict, note = _verdict(iv, h.direction)
        if iv.n_dropped:
            note = "; ".join(filter(None, [note, f"{iv.n_dropped} NaN pair(s) dropped"]))
        out[ds] = {"interval": iv, "verdict": verdict, "note": note}
    return out


VERDICT_COLUMNS = ["id", "statement", "a", "b", "metric", "direction", "dataset", "mean",
                   "low", "high", "n_images", "n_seeds", "verdict", "note"]


def verdict_table(hypotheses: Iterable[Hypothesis], per_image: pd.DataFrame, *,
                  baselines: Collection[str] = (), **boot) -> pd.DataFrame:
    """One row per hypothesis x test set (``VERDICT_COLUMNS``): the mean of ``a - b`` and
    its interval in the metric's unit, the images and seeds behind it, the verdict and a
    note (what is missing, why inconclusive)."""
    rows = []
    for h in hypotheses:
        for ds, r in evaluate_hypothesis(h, per_image, baselines=baselines, **boot).items():
            iv = r["interval"]
            rows.append({"id": h.id, "statement": h.statement, "a": h.a, "b": h.b,
                         "metric": h.metric, "direction": h.direction, "dataset": ds,
                         "mean": iv.mean if iv else np.nan, "low": iv.low if iv else np.nan,
                         "high": iv.high if iv else np.nan,
                         "n_images": iv.n_images if iv else 0,
                         "n_seeds": iv.n_seeds if iv else 0,
                         "verdict": r["verdict"], "note": r["note"]})
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)
