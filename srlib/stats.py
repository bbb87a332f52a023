"""Paired comparisons with bootstrap confidence intervals, and the verdicts of hypotheses.

Statistics only: no file is read here. Every finding of the report is a paired difference
``a - b`` between two variants (or a variant and a baseline) over test images x seeds, with
a 95% interval and whether it excludes zero. The input is the long
per-image table (``srlib.results.per_image_table``): one row per variant x seed x test set
x image, columns ``KEYS`` and the metrics.

The interval (``paired_bootstrap``)
    The unit resampled is the test image, drawn with replacement together with all of its
    seeds (a hard image is hard under every seed and for every variant, so the pairs of
    one image are not independent). With two or more training seeds, seeds are resampled
    too, independently of images: the two-way bootstrap of a crossed design (images x
    seeds; the "pigeonhole" bootstrap of Owen 2007, Ann. Appl. Stat. 1(2), which is
    slightly conservative), chosen over a hierarchical one because every seed sees the
    same images: seeds and images are crossed, not nested. Its variance, each factor's
    part corrected from the bootstrap's ``(k-1)/k`` to unbiased, is the squared standard
    error, and the interval is Student's t with Satterthwaite's degrees of freedom
    (Satterthwaite 1946, Biometrics Bulletin 2(6)) of the image and seed parts
    (``'two-way t'``): a percentile interval over 3 seeds cannot reach beyond the range of
    their 3 means, which holds the truth only 75% of the time when seeds dominate. In a
    simulation (30 images, 3 seeds; image, seed and interaction sd 1, 0.5, 0.5; 400
    studies; ``tests/test_stats.py``) it covers the truth in about 95% of studies, the
    images-only interval in about 70%; with 2 seeds, or seeds dominating, about 88-92%
    (Satterthwaite's approximation is rough at 1-2 degrees of freedom).
    With one seed (or a seed-independent comparison) images alone are resampled: a
    percentile interval from ``MIN_IMAGES_PERCENTILE`` images on, and below it (Set5 has
    5 images, 126 distinct resamples) the studentized interval, Student's t with ``n - 1``
    degrees of freedom on the images' standard error (``'t'``). Measured on 5 images
    (``benchmarks/small_sets.py``, 1000 simulated sets): on normal differences the
    percentile covers 84% at 0.62 times the t interval's width, t 95%, the bootstrap-t
    95% at 1.31 times t's width (a tenth of its resamples hold two distinct images, whose
    tiny standard errors stretch it, to absurd bounds on means of PSNR); on skewed
    (lognormal) ones t covers 81%, the bootstrap-t 89% at 1.72 times the width. BCa stays
    inside the resamples' range, as the percentile does. t is kept for its stable width;
    no interval is reliable on 5 images, which is why the main verdict is on the
    pooled test images of all sets.
    ``Interval.seed_means`` keeps each seed's mean, shown beside every interval; an
    interval over one seed is conditional on that training run (``Interval.one_run``).

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
    measured against (the challenge's 45 dB); the difference is then ``a - b`` per image,
    resampled as any other. With ``every``, the claim is about every test image: its
    statistic is the share of values (images x seeds) that meet the value, with Wilson's
    interval (``share_meeting``), supported only if all of them do; the note names the
    worst. ``b: noise-floor`` compares a score with its calibrated null image by image
    (``difference_from_floor``). Each hypothesis is tested first on the pooled test
    images of all its sets (``POOLED``, the main verdict), then on each set.

Multiple testing (``verdict_table``, ``procedure``)
    Within each column (pooled, or one set), the ``adjusted`` verdict that summaries use
    follows the grid's declared procedure: its primary hypotheses (``primary: N``) in a
    fixed sequence, each tested at the full level only while every one before it was
    supported (Maurer et al. 1995; the family-wise error is controlled without splitting
    alpha), the rest ``not reached``; Holm's step-down adjustment (``holm``) among the
    secondary ones. Without primaries every hypothesis is secondary: one Holm family. Beside
    the bootstrap, a pooled comparison over several seeds is also fitted as a linear mixed
    model (``srlib.mixed``); its columns are reported, its verdict is not used.
    No variant name is hard-coded here; the gains' baseline is
    an argument.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.stats import norm as normal
from scipy.stats import t as student_t

from srlib.metrics import metric as metric_of
from srlib.metrics import metrics_where
from srlib.mixed import MixedFit, fit_crossed

if TYPE_CHECKING:
    from srlib.grid import Hypothesis

KEYS = ["variant", "seed", "dataset", "image"]  # the keys of a per-image row
GAIN_METRICS = metrics_where(source="gain")  # added by ``add_gains``
VERDICTS = ("supported", "contradicted", "inconclusive", "not reached", "not tested")
TESTED = ("supported", "contradicted", "inconclusive")  # verdicts from an interval
MIN_IMAGES_PERCENTILE = 10  # fewer images (one seed): the studentized t interval
_SAME_TOL = 1e-9  # relative: values "identical" across seeds (a seed-independent variant)


# ---- the bootstrap -----------------------------------------------------------------------

@dataclass(frozen=True)
class Interval:
    """A mean with its 95% interval, in the unit of the metric (dB for PSNR and gains).

    ``n``: values used; ``n_dropped``: NaN / infinite values left out; ``n_images``,
    ``n_seeds``: distinct images and training seeds behind them (0 seeds: both sides are
    closed-form, nothing was trained); ``method``: ``'two-way t'``, ``'t'`` or
    ``'percentile'`` (module doc); ``seed_means``: the mean per seed, in seed order;
    ``p``: the two-sided p-value of "the mean is 0" under the same method (for Holm);
    ``df``: the t interval's degrees of freedom; ``degenerate``: fewer than two units to
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
    method: str = "percentile"
    seed_means: tuple[float, ...] = ()
    p: float = math.nan
    df: float = math.nan

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies entirely above or below 0 (never for a degenerate
        or empty one)."""
        if self.degenerate or not (math.isfinite(self.low) and math.isfinite(self.high)):
            return False
        return self.low > 0 or self.high < 0

    @property
    def one_run(self) -> bool:
        """True when one training run is behind it: the interval covers test images only."""
        return self.n_seeds == 1

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


def format_seed_means(seed_means: Iterable[float], fmt: str = "{:.2f}") -> str:
    """``'11.22 / 9.10 / 7.90'``: the per-seed means shown beside an interval."""
    return " / ".join(fmt.format(m) for m in seed_means)


def _codes(labels) -> tuple[np.ndarray, list]:
    """Integer codes 0..k-1 of any 1-D labels (NaN is a label of its own), and the labels
    in code order (sorted where they can be)."""
    s = pd.Series(np.asarray(labels, dtype=object))
    try:
        codes, uniques = pd.factorize(s, use_na_sentinel=False, sort=True)
    except TypeError:
        codes, uniques = pd.factorize(s, use_na_sentinel=False)
    return np.asarray(codes), list(uniques)


def _draw_counts(rng: np.random.Generator, k: int, b: int) -> np.ndarray:
    """``(b, k)`` float counts: how often each of k units is drawn in b resamples of k."""
    idx = rng.integers(0, k, size=(b, k)) + (np.arange(b) * k)[:, None]
    return np.bincount(idx.ravel(), minlength=b * k).reshape(b, k).astype(float)


def _draws(rng: np.random.Generator, k: int, n_boot: int, other: int = 0):
    """Count matrices of ``n_boot`` resamples of k units, in chunks of bounded memory."""
    step = max(1, 2_000_000 // (k + other))
    for start in range(0, n_boot, step):
        yield start, _draw_counts(rng, k, min(step, n_boot - start))


def _ratio_se(S: np.ndarray, C: np.ndarray) -> float:
    """Standard error of the ratio mean ``sum(S) / sum(C)`` over k clusters (totals ``S``,
    counts ``C``), by linearisation: the cluster means' standard error when each cluster
    holds one value."""
    k = S.size
    m = S.sum() / C.sum()
    return float(np.sqrt(((S - m * C) ** 2).sum() * k / (k - 1)) / C.sum())


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
    """The interval of the mean of paired differences ``diff`` (any unit), by the method of
    the module doc: ``'two-way t'`` when there are two or more seeds, else ``'t'`` below
    ``MIN_IMAGES_PERCENTILE`` images and ``'percentile'`` from there.

    ``clusters``: one label per value, the test image (resampled with all of its seeds);
    None resamples the values themselves. ``seeds``: one label per value, the training
    seed. ``resample_seeds`` False treats the seeds as fixed (the interval then covers the
    test images only; for comparisons). The point estimate is the plain mean (an image
    drawn twice counts twice). NaN and infinite values are dropped first (``n_dropped``).
    Deterministic given ``seed``; vectorised."""
    diff = np.asarray(diff, dtype=float).ravel()
    n_all = diff.size
    for what, labels in (("clusters", clusters), ("seeds", seeds)):
        if labels is not None and len(labels) != n_all:
            raise ValueError(f"{what}: {len(labels)} labels for {n_all} values")
    keep = np.isfinite(diff)
    x = diff[keep]
    n = x.size
    ccode, cl = (_codes(np.asarray(clusters, dtype=object)[keep]) if clusters is not None
                 else (np.arange(n), list(range(n))))
    scode, sd = (_codes(np.asarray(seeds, dtype=object)[keep]) if seeds is not None
                 else (np.zeros(n, dtype=int), [0] if n else []))
    n_cl, n_sd = len(cl), len(sd)
    counts = {"n": n, "n_dropped": n_all - n, "n_images": n_cl,
              "n_seeds": n_sd if seeds is not None else 0, "level": level}
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, degenerate=True, **counts)
    mean = float(x.mean())
    # sums and counts per (image, seed) cell: a resample's mean is a ratio of weighted sums
    S = np.zeros((n_cl, n_sd))
    C = np.zeros((n_cl, n_sd))
    np.add.at(S, (ccode, scode), x)
    np.add.at(C, (ccode, scode), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        counts["seed_means"] = tuple(float(v) for v in S.sum(0) / C.sum(0))
    two_way = n_sd >= 2 and resample_seeds is not False
    if n_cl < 2 and not two_way:
        return Interval(mean, mean, mean, degenerate=True, method="none", **counts)
    rng = np.random.default_rng(seed)
    alpha = (1.0 - level) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        if two_way:
            return _two_way_t(S, C, mean, rng, n_boot, alpha, counts)
        Si, Ci = S.sum(1), C.sum(1)
        if n_cl < MIN_IMAGES_PERCENTILE:
            return _small_t(Si, Ci, mean, alpha, counts)
        boot = np.empty(n_boot)
        for start, W in _draws(rng, n_cl, n_boot):
            boot[start:start + len(W)] = (W @ Si) / (W @ Ci)
    low, high = np.nanquantile(boot, [alpha, 1.0 - alpha])
    # the quantiles of a constant sample can differ from it in the last bit
    low, high = min(float(low), mean), max(float(high), mean)
    p = min(1.0, 2 * min(np.nanmean(boot <= 0), np.nanmean(boot >= 0)))
    return Interval(mean, low, high, method="percentile", p=float(p), **counts)


def _small_t(Si, Ci, mean, alpha, counts) -> Interval:
    """Few images, one seed: Student's t with ``n - 1`` degrees of freedom on the images'
    standard error (the studentized interval; module doc for why not the bootstrap-t)."""
    n = Si.size
    se = _ratio_se(Si, Ci)
    df = float(n - 1)
    if not se > 0:
        return Interval(mean, mean, mean, method="t", p=0.0 if mean else 1.0, df=df,
                        **counts)
    q = float(student_t.ppf(1.0 - alpha, df))
    p = float(2 * student_t.sf(abs(mean) / se, df))
    return Interval(mean, mean - q * se, mean + q * se, method="t", p=p, df=df, **counts)


def _two_way_t(S, C, mean, rng, n_boot, alpha, counts) -> Interval:
    """Images and seeds resampled independently (the pigeonhole bootstrap, Owen 2007); its
    variance, each factor's part corrected from ``(k-1)/k`` to unbiased, is the squared
    standard error, and Student's t with Satterthwaite's degrees of freedom gives the
    quantile (a percentile over 2-4 seeds cannot reach beyond their range)."""
    n_cl, n_sd = S.shape
    tot = np.empty(n_boot)
    img = np.empty(n_boot)
    sds = np.empty(n_boot)
    Si, Ci, Ss, Cs = S.sum(1), C.sum(1), S.sum(0), C.sum(0)
    for start, W in _draws(rng, n_cl, n_boot, n_sd):
        b = len(W)
        V = _draw_counts(rng, n_sd, b)
        sl = slice(start, start + b)
        tot[sl] = ((W @ S) * V).sum(1) / ((W @ C) * V).sum(1)
        img[sl] = (W @ Si) / (W @ Ci)
        sds[sl] = (V @ Ss) / (V @ Cs)
    v_tot, v_img, v_sd = (float(np.nanvar(a)) for a in (tot, img, sds))
    c_img = v_img * n_cl / (n_cl - 1) if n_cl > 1 else 0.0
    c_sd = v_sd * n_sd / (n_sd - 1)
    var = v_tot + (v_img / (n_cl - 1) if n_cl > 1 else 0.0) + v_sd / (n_sd - 1)
    den = (c_img ** 2 / (n_cl - 1) if n_cl > 1 else 0.0) + c_sd ** 2 / (n_sd - 1)
    df = var ** 2 / den if den > 0 else math.inf
    se = math.sqrt(var)
    if not se > 0:
        return Interval(mean, mean, mean, method="two-way t", p=0.0 if mean else 1.0,
                        df=df, **counts)
    q = float(student_t.ppf(1.0 - alpha, df))
    p = float(2 * student_t.sf(abs(mean) / se, df))
    return Interval(mean, mean - q * se, mean + q * se, method="two-way t", p=p, df=df,
                    **counts)


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
    """Rows ``dataset, seed, image, a, b`` of paired values (``seed`` is NaN when both sides
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
        m["seed"] = np.nan  # nothing trained
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


def _keys(rows: pd.DataFrame) -> np.ndarray:
    """One label per row: the test image, ``dataset\\x00image`` (pooled sets stay apart)."""
    return (rows["dataset"].astype(str) + "\x00" + rows["image"].astype(str)).to_numpy()


def _rows_of(per_image: pd.DataFrame, a: str, cols: list[str], dataset: str | None,
             baselines: Collection[str]) -> pd.DataFrame:
    """Variant ``a``'s rows (of ``dataset``, or pooled); a seed-independent variant once
    per image, with seed NaN (nothing trained)."""
    _check_columns(per_image, [*KEYS, *cols])
    t = per_image if dataset is None else per_image[per_image["dataset"] == dataset]
    rows = t[t["variant"] == a]
    if a in baselines or is_seed_independent(rows, cols):
        rows = _collapse(rows, cols).assign(seed=np.nan)
    return rows


def _boot(diff: np.ndarray, rows: pd.DataFrame, **boot) -> Interval:
    seeds = None if rows["seed"].isna().all() else rows["seed"].to_numpy()
    return paired_bootstrap(diff, clusters=_keys(rows), seeds=seeds, **boot)


def difference_from_value(
    per_image: pd.DataFrame, a: str, value: float, metric: str, dataset: str | None = None,
    *, baselines: Collection[str] = (), **boot,
) -> Interval:
    """Mean of ``metric(a) - value`` over variant ``a``'s rows (images x seeds; a
    seed-independent variant once per image), with its interval, resampled as in
    ``paired_difference``: a claim against a fixed value rather than another variant."""
    return _boot(*_value_diff(per_image, a, value, metric, dataset, baselines), **boot)


def _value_diff(per_image, a, value, metric, dataset, baselines):
    rows = _rows_of(per_image, a, [metric], dataset, baselines)
    return rows[metric].to_numpy(float) - float(value), rows


def difference_from_floor(
    per_image: pd.DataFrame, a: str, metric: str, floor: str, dataset: str | None = None,
    **boot,
) -> Interval:
    """Mean of ``metric(a) - floor(a)`` per row: a score against its own calibrated null
    (the column ``floor`` of the same rows, e.g. the diversity of null-space noise as strong
    as the variant's samples, ``srlib.ntire.noise_floor``)."""
    return _boot(*_floor_diff(per_image, a, metric, floor, dataset), **boot)


def _floor_diff(per_image, a, metric, floor, dataset):
    rows = _rows_of(per_image, a, [metric, floor], dataset, ())
    return (rows[metric] - rows[floor]).to_numpy(float), rows


@dataclass(frozen=True)
class Share:
    """The share of values that meet a fixed value, with its Wilson score interval (Wilson
    1927), for a claim about *every* test image: ``n`` values (images x seeds), ``meeting``
    of them meet it; ``worst``: the label of the value furthest on the wrong side (or the
    closest to failing), ``worst_value`` its value; ``n_images``, ``n_seeds`` as in
    ``Interval``."""

    share: float
    low: float
    high: float
    n: int
    meeting: int
    worst: str
    worst_value: float
    n_images: int = 0
    n_seeds: int = 0

    @property
    def every(self) -> bool:
        return self.n > 0 and self.meeting == self.n


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval of a proportion ``k / n`` (``(nan, nan)`` when n = 0)."""
    if n == 0:
        return math.nan, math.nan
    z = float(normal.ppf(0.5 + level / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def share_meeting(
    per_image: pd.DataFrame, a: str, value: float, metric: str, direction: str,
    dataset: str | None = None, *, baselines: Collection[str] = (), level: float = 0.95,
) -> Share:
    """How many of variant ``a``'s values (images x seeds; NaN left out) meet ``value``:
    at or above it for ``direction`` ``greater``, at or below for ``less``."""
    rows = _rows_of(per_image, a, [metric], dataset, baselines)
    v = rows[metric].to_numpy(float)
    ok = ~np.isnan(v)
    rows, v = rows[ok], v[ok]
    meets = v >= value if direction == "greater" else v <= value
    low, high = wilson_interval(int(meets.sum()), len(v), level)
    if not len(v):
        return Share(math.nan, low, high, 0, 0, "", math.nan)
    i = int(np.argmin(v) if direction == "greater" else np.argmax(v))
    r = rows.iloc[i]
    seed = "" if pd.isna(r["seed"]) else f" (seed {int(r['seed'])})"
    return Share(float(meets.mean()), low, high, len(v), int(meets.sum()),
                 f"{r['dataset']}/{r['image']}{seed}", float(v[i]),
                 n_images=int(pd.unique(_keys(rows)).size),
                 n_seeds=int(rows["seed"].nunique()))


def paired_difference(
    per_image: pd.DataFrame, a: str, b: str, metric: str, dataset: str | None = None, *,
    baselines: Collection[str] = (), **boot,
) -> Interval:
    """Mean of ``metric(a) - metric(b)`` (the metric's unit) over paired rows of the
    per-image table, with its interval (``paired_bootstrap``; ``boot`` goes there:
    ``n_boot``, ``level``, ``seed``, ``resample_seeds``).

    Pairing: on (dataset, seed, image) for two seed-dependent variants; a seed-independent
    variant (a baseline, recognised or named in ``baselines``, see the module doc) is paired
    on (dataset, image) and broadcast over the other's seeds. ``dataset`` None pools every
    test set (an image is then the pair (dataset, image)). The Interval's ``n_images`` and
    ``n_seeds`` count the distinct images and seeds that went in (0 seeds: both sides
    closed-form)."""
    return _boot(*_paired_diff(per_image, a, b, metric, dataset, baselines), **boot)


def _paired_diff(per_image, a, b, metric, dataset, baselines):
    p = _pairs(per_image, a, b, metric, dataset, baselines)
    return (p["a"] - p["b"]).to_numpy(), p


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


def _share_verdict(s: Share, h: Hypothesis) -> tuple[str, str]:
    if s.n == 0:
        return "not tested", "no values"
    side = "below" if h.direction == "greater" else "above"
    worst = f"worst: {s.worst} {metric_of(h.metric).fmt.format(s.worst_value)}"
    if s.every:
        return "supported", f"all {s.n} meet it; {worst}"
    return "contradicted", f"{s.n - s.meeting} of {s.n} {side} {h.b}; {worst}"


def _differences(h: Hypothesis, t: pd.DataFrame, ds: str | None,
                 baselines: Collection[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """The differences ``h`` tests (one per image x seed; NaN kept) and their rows
    (``dataset``, ``image``, ``seed``): ``a - b`` paired, ``a - value``, or ``a - floor``."""
    if h.floor:
        return _floor_diff(t, h.a, h.metric, h.floor, ds)
    if h.value is not None:
        return _value_diff(t, h.a, h.value, h.metric, ds, baselines)
    return _paired_diff(t, h.a, h.b, h.metric, ds, baselines)


def _one(h: Hypothesis, t: pd.DataFrame, ds: str | None, baselines: Collection[str],
         boot: dict) -> dict:
    """The test of ``h`` on the rows ``t`` (one set, or pooled when ``ds`` is None); pooled
    over two or more seeds, the mixed model too (``mixed``)."""
    if h.every:
        s = share_meeting(t, h.a, h.value, h.metric, h.direction, ds, baselines=baselines,
                          level=boot.get("level", 0.95))
        verdict, note = _share_verdict(s, h)
        return {"interval": None, "share": s, "verdict": verdict, "note": note,
                "mixed": None}
    diff, rows = _differences(h, t, ds, baselines)
    iv = _boot(diff, rows, **boot)
    verdict, note = _verdict(iv, h.direction)
    if iv.n_dropped:
        n_inf = int(np.isinf(diff).sum())
        dropped = [f"{iv.n_dropped - n_inf} NaN pair(s) dropped" if iv.n_dropped > n_inf
                   else "", f"{n_inf} infinite pair(s) dropped" if n_inf else ""]
        note = "; ".join(filter(None, [note, *dropped]))
    fit = None
    if ds is None and iv.n_seeds >= 2:
        fit = fit_crossed(diff, _keys(rows), rows["seed"].to_numpy())
    return {"interval": iv, "share": None, "verdict": verdict, "note": note, "mixed": fit}


def _missing(h: Hypothesis, t: pd.DataFrame) -> str:
    """Why ``h`` cannot be tested on the rows ``t`` ('' when it can)."""
    present = set(t["variant"])
    missing = [v for v in h.variants if v not in present]
    if missing:
        return "missing variant(s): " + ", ".join(f"'{v}'" for v in missing)
    for col in (h.metric, h.floor):
        if col and col not in t.columns:
            return f"metric '{col}' not in the table"
    empty = [v for v in h.variants if t.loc[t["variant"] == v, h.metric].isna().all()]
    if empty:
        return f"no '{h.metric}' values for " + ", ".join(f"'{v}'" for v in empty)
    return ""


POOLED = "pooled"  # the label of the main verdict, on the test images of all sets


def evaluate_hypothesis(h: Hypothesis, per_image: pd.DataFrame, *,
                        baselines: Collection[str] = (), **boot) -> dict[str, dict]:
    """``{POOLED or set: {"interval", "share", "verdict", "note"}}``: first the primary
    test, on the pooled test images of every set it can be tested on (an image is
    ``(set, image)``), then each of ``h.datasets`` (or every test set in the table). The
    test is the paired difference ``h.a - h.b`` in ``h.metric`` (``paired_difference``; a
    fixed value: ``difference_from_value``; ``noise-floor``: ``difference_from_floor``),
    or with ``h.every`` the share of values that meet ``h.value`` (``share_meeting``, in
    ``share``); ``not tested`` names the missing variant or metric in ``note``."""
    has = list(dict.fromkeys(per_image["dataset"])) if "dataset" in per_image else []
    out: dict[str, dict] = {}
    usable: list[str] = []
    for ds in list(h.datasets) or has or [""]:
        if ds not in has:
            out[ds] = {"interval": None, "share": None, "verdict": "not tested",
                       "note": f"no results on test set '{ds}'" if ds else "no results",
                       "mixed": None}
            continue
        t = per_image[per_image["dataset"] == ds]
        why = _missing(h, t)
        if why:
            out[ds] = {"interval": None, "share": None, "verdict": "not tested", "note": why,
                       "mixed": None}
            continue
        out[ds] = _one(h, t, ds, baselines, boot)
        usable.append(ds)
    if usable:
        pooled = _one(h, per_image[per_image["dataset"].isin(usable)], None, baselines, boot)
        left = [ds for ds in out if ds not in usable]
        if left:
            pooled["note"] = "; ".join(filter(None, [pooled["note"], "pooled over "
                                                     + ", ".join(usable) + " only"]))
    else:
        pooled = {"interval": None, "share": None, "verdict": "not tested",
                  "note": "not tested on any set", "mixed": None}
    return {POOLED: pooled, **out}


def hypothesis_fit(h: Hypothesis, per_image: pd.DataFrame, *,
                   baselines: Collection[str] = ()) -> MixedFit | None:
    """The mixed model (``srlib.mixed.fit_crossed``) of ``h``'s differences pooled over its
    test sets (``h.datasets``, or every set in the table); None for an ``every`` claim or
    where a variant or the metric is missing."""
    t = per_image[per_image["dataset"].isin(h.datasets)] if h.datasets else per_image
    if h.every or t.empty or _missing(h, t):
        return None
    diff, rows = _differences(h, t, None, baselines)
    return fit_crossed(diff, _keys(rows), rows["seed"].to_numpy())


def holm(p: Iterable[float], level: float = 0.95) -> list[bool]:
    """Holm's step-down rejections (Holm 1979) of hypotheses with p-values ``p`` at family
    error ``1 - level``: sorted ascending, the i-th (from 0) of m is rejected while
    ``p <= (1 - level) / (m - i)``. NaN p-values are not in the family (never rejected)."""
    p = list(p)
    idx = sorted((i for i, v in enumerate(p) if np.isfinite(v)), key=lambda i: p[i])
    m, alpha = len(idx), 1.0 - level
    out = [False] * len(p)
    for rank, i in enumerate(idx):
        if p[i] > alpha / (m - rank):
            break
        out[i] = True
    return out


VERDICT_COLUMNS = ["id", "dataset", "a", "b", "metric", "direction", "every", "mean", "low",
                   "high", "method", "seed_means", "n_seeds", "n_images", "p", "verdict",
                   "family", "order", "adjusted", "mean_mixed", "se_mixed", "df_mixed",
                   "p_mixed", "verdict_mixed", "note", "statement"]
PRIMARY, SECONDARY = "primary", "secondary"  # the families of the ``family`` column


def procedure(hypotheses: Iterable[Hypothesis]) -> str:
    """The multiple-testing procedure of a grid's hypotheses, in one sentence (the page and
    the README say it)."""
    prim = sorted((h for h in hypotheses if h.primary), key=lambda h: h.primary)
    if not prim:
        return ("Every hypothesis is in one family: Holm's adjustment across all of them, "
                "within each column (pooled, or one test set).")
    order = ", ".join(h.id for h in prim)
    return (f"The {len(prim)} primary hypotheses were tested in the declared order "
            f"{order}, each at 5% only if every one before it was supported (a fixed "
            "sequence); the others are secondary, with Holm's adjustment among them.")


def _mixed_verdict(fit, direction: str, level: float) -> str:
    if fit is None or not np.isfinite(fit.p):
        return ""
    if fit.p >= 1.0 - level:
        return "inconclusive"
    return "supported" if (fit.mean > 0) == (direction == "greater") else "contradicted"


def _row(h: Hypothesis, ds: str, r: dict, level: float) -> dict:
    iv, s, fit = r["interval"], r["share"], r["mixed"]
    row = {"id": h.id, "dataset": ds, "a": h.a, "b": h.b, "metric": h.metric,
           "direction": h.direction, "every": h.every, "verdict": r["verdict"],
           "family": PRIMARY if h.primary else SECONDARY,
           "order": h.primary or np.nan, "note": r["note"], "statement": h.statement}
    if iv is not None:
        row.update(mean=iv.mean, low=iv.low, high=iv.high, method=iv.method,
                   seed_means=format_seed_means(iv.seed_means, "{:.6g}"),
                   n_seeds=iv.n_seeds, n_images=iv.n_images, p=iv.p)
    elif s is not None:
        row.update(mean=s.share, low=s.low, high=s.high, method="wilson share",
                   seed_means="", n_seeds=s.n_seeds, n_images=s.n_images, p=np.nan)
    else:
        row.update(mean=np.nan, low=np.nan, high=np.nan, method="", seed_means="",
                   n_seeds=0, n_images=0, p=np.nan)
    row.update(mean_mixed=fit.mean if fit else np.nan, se_mixed=fit.se if fit else np.nan,
               df_mixed=fit.df if fit else np.nan, p_mixed=fit.p if fit else np.nan,
               verdict_mixed=_mixed_verdict(fit, h.direction, level))
    return row


def _fixed_sequence(v: pd.DataFrame, rows: pd.DataFrame) -> None:
    """The primaries of one column in their order: each keeps its verdict while every one
    before it was supported; after the first that is not, ``not reached``."""
    stop = ""
    for i in rows.sort_values("order").index:
        if stop:
            v.at[i, "adjusted"] = "not reached"
            v.at[i, "note"] = "; ".join(filter(None, [
                f"not reached: {stop} before it was not supported (unadjusted: "
                f"{v.at[i, 'verdict']})", v.at[i, "note"]]))
        elif v.at[i, "verdict"] != "supported":
            stop = v.at[i, "id"]


def verdict_table(hypotheses: Iterable[Hypothesis], per_image: pd.DataFrame, *,
                  baselines: Collection[str] = (), **boot) -> pd.DataFrame:
    """One row per hypothesis x (``POOLED``, then each test set) (``VERDICT_COLUMNS``): the
    mean of ``a - b`` and its interval in the metric's unit (with ``every``: the share of
    values meeting ``b`` and its Wilson interval), the method, the per-seed means
    (``'11.22 / 9.10 / 7.90'``), the seeds and images behind it, the p-value, the verdict,
    its ``family`` (``primary``, with its ``order``, or ``secondary``) and the ``adjusted``
    verdict of the declared procedure (``procedure``), within each column (pooled, or one
    set): the primaries in a fixed sequence (each at the full level while every one before
    it was supported, then ``not reached``), Holm's adjustment (``holm``) among the
    secondaries; an ``every`` claim is decided by its counterexample and keeps its verdict.
    Pooled over two or more seeds, the mixed model's estimate, standard error,
    Satterthwaite df, p-value and (unadjusted) verdict (``srlib.mixed``; NaN / '' elsewhere).
    Last, a note (what is missing, why inconclusive, the worst image)."""
    hypotheses = list(hypotheses)
    level = boot.get("level", 0.95)
    rows = [_row(h, ds, r, level) for h in hypotheses
            for ds, r in evaluate_hypothesis(h, per_image, baselines=baselines,
                                             **boot).items()]
    v = pd.DataFrame(rows, columns=VERDICT_COLUMNS)
    v["adjusted"] = v["verdict"]
    for _, g in v.groupby("dataset", sort=False):
        _fixed_sequence(v, g[g["family"] == PRIMARY])
        test = g[(g["family"] == SECONDARY) & ~g["every"].astype(bool)
                 & g["verdict"].isin(TESTED)]
        kept = holm(test["p"].to_numpy(float), level)
        for i, ok in zip(test.index, kept, strict=True):
            if not ok and v.at[i, "verdict"] != "inconclusive":
                v.at[i, "adjusted"] = "inconclusive"
    return v


# ---- two sweeps compared at equal distortion ----------------------------------------------

def matched_distortion(per_image: pd.DataFrame, front_a: list[str], front_b: list[str], *,
                       x: str = "psnr_y", y: str = "lpips", level: float | None = None,
                       n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> dict:
    """Two sweeps (each a list of variants, say a start and then growing adversarial
    weights) compared at the same distortion: each sweep's front is the polyline of its
    variants' means (``x``, ``y``) over every test image and seed, sorted by ``x``, and
    ``y`` is read off each front at ``x = level`` by linear interpolation (default
    ``level``: the middle of the ``x`` range both fronts span). Returns ``{"level",
    "a", "b", "mean"}`` (``mean``: a minus b there), its ``low`` / ``high`` (percentile
    interval of ``n_boot`` resamples of the test images and of the seeds, the same draw for
    every variant, so shared images and a shared start stay paired; in each resample
    ``x`` is shifted so that ``front_a[0]``, their start, keeps its mean), ``inside`` (the share
    of resamples in which both fronts still reach ``level``; the others are left out), and
    ``n_images`` / ``n_seeds``. Comparing two losses at the same weight compares them at
    different distortions; this compares them where they cost the same."""
    variants = list(dict.fromkeys([*front_a, *front_b]))
    rows = per_image[per_image.variant.isin(variants)]
    _check_columns(rows, ["variant", "seed", "dataset", "image", x, y])
    if rows.empty:
        raise ValueError(f"no per-image rows for the sweeps' variants {variants}")
    images = sorted(set(zip(rows.dataset, rows.image, strict=True)))
    seeds = sorted(rows.seed.dropna().unique())
    ii = {k: n for n, k in enumerate(images)}
    ss = {k: n for n, k in enumerate(seeds)}
    cube = np.full((2, len(variants), len(images), max(1, len(seeds))), np.nan)
    for r in rows.itertuples():
        s = ss.get(r.seed, 0) if r.seed == r.seed else slice(None)  # a baseline: every seed
        for m, col in enumerate((x, y)):
            cube[m, variants.index(r.variant), ii[(r.dataset, r.image)], s] = getattr(r, col)
    valid, filled = ~np.isnan(cube), np.nan_to_num(cube)

    def fronts(wi: np.ndarray, ws: np.ndarray) -> np.ndarray:
        """(B, 2, V) means of x and y for B weightings of images (B, I) and seeds (B, S)."""
        num = np.einsum("bi,bs,mvis->bmv", wi, ws, filled)
        return num / np.einsum("bi,bs,mvis->bmv", wi, ws, valid.astype(float))

    def read(means: np.ndarray, front: list[str], at: float) -> float:
        idx = [variants.index(v) for v in front]
        px, py = means[0, idx], means[1, idx]
        order = np.argsort(px)
        px, py = px[order], py[order]
        return float(np.interp(at, px, py)) if px[0] <= at <= px[-1] else np.nan

    full = fronts(np.ones((1, len(images))), np.ones((1, cube.shape[-1])))[0]
    spans = [full[0, [variants.index(v) for v in f]] for f in (front_a, front_b)]
    lo, hi = max(s.min() for s in spans), min(s.max() for s in spans)
    if lo > hi:
        raise ValueError(f"the two sweeps span no common {x}: {spans[0].min():.3f} to "
                         f"{spans[0].max():.3f} against {spans[1].min():.3f} to "
                         f"{spans[1].max():.3f}")
    level = (lo + hi) / 2 if level is None else level
    a, b = read(full, front_a, level), read(full, front_b, level)
    rng = np.random.default_rng(seed)
    wi = _draw_counts(rng, len(images), n_boot)
    ws = _draw_counts(rng, cube.shape[-1], n_boot)
    boot = fronts(wi, ws)
    # a resample of harder images moves every front left alike: x is read relative to
    # the first variant of front_a (the sweeps' shared start), so that the level stays
    # the same distance from it
    ref = variants.index(front_a[0])
    boot[:, 0, :] += (full[0, ref] - boot[:, 0, ref])[:, None]
    diffs = np.array([read(m, front_a, level) - read(m, front_b, level) for m in boot])
    ok = diffs[np.isfinite(diffs)]
    low, high = (np.quantile(ok, [alpha / 2, 1 - alpha / 2]) if len(ok) else (np.nan,) * 2)
    return {"level": float(level), "a": a, "b": b, "mean": a - b, "low": float(low),
            "high": float(high), "inside": len(ok) / n_boot, "n_images": len(images),
            "n_seeds": len(seeds)}
