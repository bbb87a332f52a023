"""From run folders to the report: the results table, its summary, and the findings.

``collect`` turns ``reports/runs/<variant>/seed<k>/metrics.json`` (and ``error.txt`` of
failed runs) into one row per variant x seed x test set: ``reports/results.csv``; a run
that is not done is one row with its status (failed, stale, interrupted, not run).
``summary_table`` gives, per test set and variant, the mean of each metric and its 95%
interval over test images x seeds (from ``per_image.csv``, through ``srlib.stats``; means
alone for older folders without it); ``format_table`` shows it. The findings come from the
hypotheses the grid declares (``hypothesis_verdicts``, ``hypothesis_sentence``): the paired
difference, its interval and the verdict; a hypothesis whose variants are missing is ``not
tested``, with the reason. No variant name, label or threshold is written here: the grid
names the variants, the kind column (baseline, trained, projected) orders them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from srlib import runs, stats

METRICS = ["psnr_y", "ssim_y", "lpips", "lr_psnr", "lr_psnr_ntire", "range_mse", "null_mse",
           "lr_psnr_raw", "clipped", "train_seconds"]
COLUMNS = ["variant", "kind", "loss", "upsampler", "seed", "dataset", "status", *METRICS,
           "null_gain_db", "range_gain_db", "lpips_kind", "iters", "iters_total", "device",
           "perc_backend", "error"]


def run_status(run: str | Path) -> tuple[str, str]:
    """``(status, why)`` of a run folder: ``done``; ``failed`` (``error.txt``: its last
    line); ``stale`` (a fine-tune whose source changed since); ``interrupted`` (started,
    resumable); ``not run`` (nothing there)."""
    run = Path(run)
    if (run / runs.ERROR).is_file():
        return "failed", error_line((run / runs.ERROR).read_text())
    if runs.is_finished(run):
        why = runs.is_stale(run)
        return ("stale", why) if why else ("done", "")
    if (run / runs.CONFIG).is_file() or (run / runs.CHECKPOINT).is_file():
        return "interrupted", "resumable: run the runner again"
    return "not run", ""


def error_line(error: object) -> str:
    """The last non-empty line of an error text; '' for none (NaN, as a CSV reads an
    empty cell, or an empty string)."""
    if not isinstance(error, str):
        return ""
    lines = [ln.strip() for ln in error.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def baseline_of(spec: dict | None, variant: str) -> str | None:
    """The closed-form baseline a grid variant is (``srlib.evaluate.BASELINES``), or
    ``None`` for a trained one. ``bicubic: {}`` (no loss) is the bicubic baseline, as grids
    wrote it before ``baseline:`` existed."""
    spec = spec or {}
    if "baseline" in spec:
        return spec["baseline"]
    return "bicubic" if variant == "bicubic" and "loss" not in spec else None


def variant_seeds(spec: dict | None, variant: str, seeds: list[int]) -> list[int]:
    """The seeds a variant runs with: a closed-form baseline does not depend on the seed
    (evaluated once, with the first); a variant's own ``seeds`` keeps those of ``seeds``
    it names (a sweep given fewer seeds than the grid); else all ``seeds``."""
    spec = spec or {}
    if baseline_of(spec, variant):
        return seeds[:1]
    if "seeds" in spec:
        return [s for s in seeds if s in spec["seeds"]]
    return list(seeds)


def total_iters(variants: dict[str, dict], defaults: dict, variant: str) -> int:
    """Iterations behind a variant's generator: its own, plus its sources' for a fine-tune."""
    spec = variants[variant] or {}
    if baseline_of(spec, variant):
        return 0
    own = int(spec.get("iters", defaults.get("iters", 1000)))
    src = spec.get("init_from")
    return own + (total_iters(variants, defaults, src) if src else 0)


def collect(root: Path, variants: dict[str, dict], seeds: list[int],
            defaults: dict | None = None) -> pd.DataFrame:
    """One row per variant x seed x test set, plus a ``<variant>+P`` row (kind
    ``projected``: the post-hoc projection of the same outputs) per trained run; a run that
    is not done is one row with its status and why. A closed-form baseline is evaluated
    once, with the first seed."""
    rows = []
    for variant, spec in variants.items():
        spec = spec or {}
        base = baseline_of(spec, variant)
        for seed in variant_seeds(spec, variant, seeds):
            rows += _run_rows(runs.run_dir(root, variant, seed), variant, spec, seed, base,
                              total_iters(variants, defaults or {}, variant))
    return pd.DataFrame(rows, columns=COLUMNS)


def _run_rows(d: Path, variant: str, spec: dict, seed: int, base: str | None,
              iters_total: int) -> list[dict]:
    row = {"variant": variant, "kind": "baseline" if base else "trained",
           "loss": base or spec.get("loss", ""), "upsampler": spec.get("upsampler", ""),
           "seed": seed}
    try:
        status, why = run_status(d)
        m = runs.read_metrics(d) if status == "done" else {}
    except ValueError as err:  # a damaged file: this run fails, not the table
        status, why = "failed", str(err)
    if status != "done":
        return [{**row, "dataset": "", "status": status, "error": why}]
    common = {"train_seconds": m.get("train_seconds", np.nan),
              "lpips_kind": m.get("lpips_kind", ""), "iters": m.get("iters"),
              "iters_total": iters_total, "device": m.get("device", ""),
              "perc_backend": m.get("perc_backend") or "", "error": ""}
    out = [{**row, "dataset": name, "status": "done",
            **{k: ds.get(k, np.nan) for k in METRICS[:-1]}, **common}
           for name, ds in m["datasets"].items()]
    for name, ds in (m.get("projected") or {}).items():
        out.append({**row, "variant": projected_name(variant), "kind": "projected", "dataset": name,
                    "status": "done", **{k: ds.get(k, np.nan) for k in METRICS[:-1]},
                    **common})
    return out


def collect_per_image(root: Path, results: pd.DataFrame, variants: dict[str, dict]
                      ) -> pd.DataFrame:
    """The long per-image table of every done run in ``results`` (``+P`` twins from
    ``projected/``), with ``null_gain_db`` / ``range_gain_db`` against the grid's ``pinv``
    baseline when it has one (else those columns are NaN)."""
    from srlib import stats

    done = results[results.status == "done"].drop_duplicates(["variant", "seed"])
    todo = []
    for _, r in done.iterrows():
        name = r.variant.removesuffix(projected_name("")) if r.kind == "projected" else r.variant
        d = runs.run_dir(root, name, int(r.seed))
        todo.append((r.variant, int(r.seed), d / runs.PROJECTED if r.kind == "projected" else d))
    table = stats.per_image_table(todo)
    pinv = [v for v, spec in variants.items() if baseline_of(spec, v) == "pinv"]
    if pinv and not table.empty and pinv[0] in set(table.variant):
        baselines = [v for v, spec in variants.items() if baseline_of(spec, v)]
        return stats.add_gains(table, baseline=pinv[0], baselines=baselines)
    return table.assign(null_gain_db=np.nan, range_gain_db=np.nan)


def add_gain_means(results: pd.DataFrame, per_image: pd.DataFrame) -> pd.DataFrame:
    """``results`` with the per-run means of ``null_gain_db`` and ``range_gain_db``."""
    if per_image.empty or "null_gain_db" not in per_image:
        return results
    means = per_image.groupby(["variant", "seed", "dataset"])[
        ["null_gain_db", "range_gain_db"]].mean().reset_index()
    out = results.drop(columns=["null_gain_db", "range_gain_db"]).merge(
        means, on=["variant", "seed", "dataset"], how="left")
    return out[COLUMNS]


# ---- the tables: mean [95% interval] per test set and variant ----------------------------

# the report table's metric columns: metric -> (heading, number format); LPIPS gets its kind
TABLE_METRICS = {"psnr_y": ("PSNR-Y (dB)", "{:.2f}"), "ssim_y": ("SSIM-Y", "{:.4f}"),
                 "lpips": ("LPIPS", "{:.3f}"), "lr_psnr": ("LR-PSNR (dB)", "{:.2f}"),
                 "null_gain_db": ("null-space gain (dB)", "{:.2f}"),
                 "range_gain_db": ("range gain (dB)", "{:.2f}")}
# every metric a hypothesis may name: (words, unit, number format)
METRIC_WORDS = {"psnr_y": ("PSNR-Y", "dB", "{:.2f}"), "ssim_y": ("SSIM-Y", "", "{:.4f}"),
                "lpips": ("LPIPS", "", "{:.3f}"), "lr_psnr": ("LR-PSNR", "dB", "{:.2f}"),
                "lr_psnr_raw": ("LR-PSNR before clipping and rounding", "dB", "{:.2f}"),
                "psnr_rgb": ("PSNR-RGB", "dB", "{:.2f}"),
                "clipped": ("share of raw values outside [0, 1]", "", "{:.4f}"),
                "range_mse": ("range MSE", "", "{:.2e}"),
                "null_mse": ("null-space MSE", "", "{:.2e}"),
                "null_gain_db": ("null-space gain", "dB", "{:.2f}"),
                "range_gain_db": ("range gain", "dB", "{:.2f}"),
                "lr_psnr_ntire": ("the challenge's LR-PSNR", "dB", "{:.2f}"),
                # a stochastic generator's K samples per image (samples.csv)
                "lr_psnr_mean": ("LR-PSNR, mean of the samples", "dB", "{:.2f}"),
                "lr_psnr_worst": ("LR-PSNR, worst sample", "dB", "{:.2f}"),
                "psnr_y_mean_image": ("PSNR-Y of the samples' mean", "dB", "{:.2f}"),
                "psnr_y_mean": ("PSNR-Y, mean of the samples", "dB", "{:.2f}"),
                "lr_psnr_ntire_mean": ("the challenge's LR-PSNR, mean of the samples", "dB",
                                       "{:.2f}"),
                "lr_psnr_ntire_worst": ("the challenge's LR-PSNR, worst sample", "dB", "{:.2f}"),
                "diversity": ("diversity score (the challenge's)", "%", "{:.2f}"),
                "lpips_global_best": ("LPIPS of the best sample", "", "{:.3f}"),
                "lpips_local_best": ("LPIPS, best sample per pixel", "", "{:.3f}"),
                "lpips_mean": ("LPIPS, mean of the samples", "", "{:.3f}")}
# metrics measured on RGB over the whole image (PSNR-Y and SSIM-Y: Y channel, border cropped)
WHOLE_IMAGE_RGB = ("range_mse", "null_mse", "null_gain_db", "range_gain_db")
RGB_NOTE = ("the range and null-space errors, and the gains computed from them, are RGB "
            "errors over the whole image, whereas PSNR-Y and SSIM-Y are on the Y channel with "
            "the border cropped")
KINDS = ("baseline", "trained", "projected")


def projected_name(variant: str) -> str:
    """The name of a trained variant's post-hoc projected twin, ``P(G(LR), LR)``."""
    return f"{variant}+P"


def variant_kinds(results: pd.DataFrame) -> dict[str, str]:
    """variant -> ``baseline`` | ``trained`` | ``projected``, in the table's order. From
    the ``kind`` column; older tables have none: a run of 0 iterations is a baseline,
    every other run trained."""
    if results.empty:
        return {}
    if "kind" in results:
        k = results.groupby("variant", sort=False)["kind"].first()
        return {v: x if x in KINDS else "trained" for v, x in k.items()}
    it = pd.to_numeric(results.get("iters", pd.Series(np.nan, index=results.index)),
                       errors="coerce").groupby(results["variant"], sort=False).max()
    return {v: "baseline" if n == 0 else "trained" for v, n in it.items()}


def variant_order(kinds: dict[str, str]) -> list[str]:
    """Baselines first, then each trained variant followed by its projected twin, then
    any other variant (each group in the order given)."""
    out = [v for v, k in kinds.items() if k == "baseline"]
    for v, k in kinds.items():
        if k == "trained":
            out += [v] + ([projected_name(v)] if projected_name(v) in kinds else [])
    return out + [v for v in kinds if v not in out]


def baseline_variants(results: pd.DataFrame, grid: dict | None = None) -> list[str]:
    """The seed-independent baselines: the grid's (``baseline_of``) when given, else the
    variants of kind ``baseline`` in ``results``."""
    if grid is not None:
        return [v for v, spec in grid.get("variants", {}).items() if baseline_of(spec, v)]
    return [v for v, k in variant_kinds(results).items() if k == "baseline"]


def load_per_image(path: str | Path) -> pd.DataFrame | None:
    """``per_image.csv`` (``srlib.stats.per_image_table`` with the gains), or ``None`` where
    the folder has none (older result folders) or it is empty."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return None
    t = pd.read_csv(path, dtype={"image": str, "variant": str, "dataset": str})
    return None if t.empty else t


def iteration_labels(results: pd.DataFrame) -> dict[str, str]:
    """variant -> its training length as text, from its done rows: ``'2000'``, or for a
    fine-tune ``'<source's total> + <its own>'`` (``iters_total`` and ``iters``); ``'0'``
    for a baseline."""
    done = results[results.status == "done"]
    if done.empty:
        return {}
    own = pd.to_numeric(done["iters"], errors="coerce")
    total = pd.to_numeric(done["iters_total"], errors="coerce").fillna(own) \
        if "iters_total" in done else own
    g = pd.DataFrame({"variant": done["variant"], "own": own, "total": total}) \
        .groupby("variant", sort=False).first()
    out = {}
    for v, r in g.iterrows():
        if np.isnan(r.total):
            out[v] = "?"
        elif np.isnan(r.own) or r.own == r.total:
            out[v] = f"{r.total:.0f}"
        else:
            out[v] = f"{r.total - r.own:.0f} + {r.own:.0f}"
    return out


def _total(label: str) -> float:
    """The total iterations of an ``iteration_labels`` text (NaN for '?')."""
    try:
        return float(sum(int(x) for x in label.split(" + ")))
    except ValueError:
        return float("nan")


def summary_table(results: pd.DataFrame, per_image: pd.DataFrame | None = None, *,
                  baselines=(), **boot) -> pd.DataFrame:
    """One row per test set x variant with a done run, ordered as ``variant_order``:
    ``<m>_mean``, ``<m>_low``, ``<m>_high`` for each metric of ``TABLE_METRICS`` present
    (its unit: dB for PSNR and gains), ``n_images``, ``n_seeds``, ``kind``, ``iterations``
    (``iteration_labels``), ``lpips_kind`` and ``intervals``.

    From ``per_image`` (``per_image.csv``): means and 95% intervals over images x seeds
    (``stats.summary_with_ci``; ``baselines`` are counted once per image, ``boot`` goes to
    the bootstrap). A run the per-image table lacks (older folders have none): the mean
    over seeds of its means in ``results.csv``, no interval, ``n_images`` unknown."""
    done = results[results.status == "done"]
    if done.empty:
        return pd.DataFrame()
    parts = []
    if per_image is not None and not per_image.empty:
        t = per_image[per_image["variant"].isin(set(done["variant"]))]
        metrics = [m for m in TABLE_METRICS if m in t]
        parts.append(stats.summary_with_ci(t, metrics, baselines=baselines, **boot)
                     .assign(intervals=True))
    have = set(zip(parts[0]["dataset"], parts[0]["variant"], strict=True)) if parts else set()
    rest = done[[(d, v) not in have for d, v in zip(done["dataset"], done["variant"],
                                                    strict=True)]]
    if len(rest):
        parts.append(_summary_of_means(rest))
    s = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    kinds = variant_kinds(done)
    s["kind"] = s["variant"].map(kinds).fillna("trained")
    s["iterations"] = s["variant"].map(iteration_labels(done)).fillna("?")
    lk = done.groupby("dataset", sort=False)["lpips_kind"].first() if "lpips_kind" in done \
        else pd.Series(dtype=object)
    s["lpips_kind"] = s["dataset"].map(lk).fillna("")
    rank = {v: i for i, v in enumerate(variant_order(kinds))}
    sets = {d: i for i, d in enumerate(dict.fromkeys(done["dataset"]))}
    key = s["dataset"].map(sets).fillna(len(sets)) * (len(rank) + 1) \
        + s["variant"].map(rank).fillna(len(rank))
    return s.iloc[np.argsort(key.to_numpy(), kind="stable")].reset_index(drop=True)


def _summary_of_means(done: pd.DataFrame) -> pd.DataFrame:
    """``summary_table``'s columns from the done rows of ``results.csv``: the mean over
    seeds per (dataset, variant), no interval (``_low``, ``_high`` and ``n_images`` NaN)."""
    metrics = [m for m in TABLE_METRICS if m in done]
    g = done.groupby(["dataset", "variant"], sort=False)
    s = g[metrics].mean().reset_index()
    out = s[["dataset", "variant"]].copy()
    for m in metrics:
        out[f"{m}_mean"], out[f"{m}_low"], out[f"{m}_high"] = s[m], np.nan, np.nan
    out["n_images"] = np.nan
    out["n_seeds"] = g["seed"].nunique().to_numpy()
    return out.assign(intervals=False)


def format_table(summary: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The report's table for one test set: ``variant``, ``kind``, one column per metric
    of ``summary_table`` as ``'mean [low, high]'`` (the mean alone without intervals,
    ``'n/a'`` where not measured; LPIPS headed by its kind), ``images``, ``seeds`` and
    ``iterations`` (total; a fine-tune as source + own)."""
    s = summary[summary.dataset == dataset] if len(summary) else summary
    table = pd.DataFrame({"variant": s.get("variant", pd.Series(dtype=object)).to_numpy(),
                          "kind": s.get("kind", pd.Series(dtype=object)).to_numpy()})
    kind = next((str(k) for k in s.get("lpips_kind", []) if isinstance(k, str) and k), "")
    for m, (head, fmt) in TABLE_METRICS.items():
        if f"{m}_mean" not in s:
            continue
        head = f"LPIPS ({kind})" if m == "lpips" and kind else head
        table[head] = [stats.format_interval(a, lo, hi, fmt) for a, lo, hi in
                       zip(s[f"{m}_mean"], s[f"{m}_low"], s[f"{m}_high"], strict=True)]
    table["images"] = ["" if pd.isna(n) else f"{n:.0f}" for n in s.get("n_images", [])]
    table["seeds"] = ["" if pd.isna(n) else f"{n:.0f}" for n in s.get("n_seeds", [])]
    table["iterations"] = s.get("iterations", pd.Series(dtype=object)).to_numpy()
    return table


SAMPLE_TABLE = ["lr_psnr_mean", "lr_psnr_worst", "lr_psnr_ntire_mean", "lr_psnr_ntire_worst",
                "diversity", "psnr_y_mean_image", "psnr_y_mean", "lpips_global_best"]


def samples_table(per_image: pd.DataFrame | None, **boot) -> pd.DataFrame:
    """The K-sample statistics of the stochastic variants (rows of ``per_image`` with a
    ``diversity``), one row per test set x variant: each column of ``SAMPLE_TABLE`` as
    ``'mean [low, high]'`` over images x seeds (``stats.summary_with_ci``), headed by its
    ``METRIC_WORDS``, then ``images`` and ``seeds``. Empty when no variant drew samples."""
    if per_image is None or "diversity" not in per_image:
        return pd.DataFrame()
    t = per_image[per_image["diversity"].notna()]
    if t.empty:
        return pd.DataFrame()
    metrics = [m for m in SAMPLE_TABLE if m in t]
    s = stats.summary_with_ci(t, metrics, **boot)
    out = s[["dataset", "variant"]].rename(columns={"dataset": "test set"})
    for m in metrics:
        words, unit, fmt = METRIC_WORDS[m]
        out[words + (f" ({unit})" if unit else "")] = [
            stats.format_interval(a, lo, hi, fmt) for a, lo, hi in
            zip(s[f"{m}_mean"], s[f"{m}_low"], s[f"{m}_high"], strict=True)]
    out["images"], out["seeds"] = s["n_images"], s["n_seeds"]
    return out


def table_note(summary: pd.DataFrame) -> str:
    """One Markdown paragraph on what the tables' cells are (``summary_table``)."""
    ci = summary["intervals"].astype(bool) if len(summary) else pd.Series(dtype=bool)
    means = "the mean over seeds of the runs' means in `results.csv`, without an interval"
    parts = []
    if ci.any():
        parts.append("Each cell: the mean over test images x seeds and its 95% interval "
                     "[low, high] (percentile bootstrap with the test image as the unit "
                     f"resampled, seeds too from {stats.MIN_SEEDS_TO_RESAMPLE} seeds on; a "
                     "seed-independent baseline counts once per image).")
    if not ci.any():
        parts.append(f"This result folder has no per-image table (`per_image.csv`): each cell "
                     f"is {means}.")
    elif not ci.all():
        lacking = ", ".join(f"`{v}`" for v in dict.fromkeys(summary.loc[~ci, "variant"]))
        parts.append(f"The per-image table (`per_image.csv`) lacks {lacking}: their cells "
                     f"are {means}.")
    parts.append("The null-space and range gains are `10 log10` of the `D^+ LR` baseline's "
                 "error over the variant's, per image (dB; positive: less error than that "
                 f"baseline); {RGB_NOTE}.")
    return " ".join(parts)


# ---- findings: the declared hypotheses, then what the runs themselves say -----------------

def hypothesis_verdicts(hypotheses: list[stats.Hypothesis], per_image: pd.DataFrame | None,
                        *, baselines=(), **boot) -> pd.DataFrame:
    """``stats.verdict_table`` of the grid's hypotheses on ``per_image.csv`` (one row per
    hypothesis x test set); without a per-image table, each is ``not tested`` and says
    why."""
    if per_image is None or per_image.empty:
        v = stats.verdict_table(hypotheses, pd.DataFrame(columns=stats.KEYS))
        v["note"] = "no per-image results (per_image.csv) in this result folder"
        return v
    return stats.verdict_table(hypotheses, per_image, baselines=baselines, **boot)


def _side(name: str) -> str:
    """A hypothesis side as Markdown: a variant in code style, a fixed value as a number."""
    try:
        float(name)
    except ValueError:
        return f"`{name}`"
    return str(name)


def _expected(h: stats.Hypothesis | pd.Series) -> str:
    more = "higher" if h.direction == "greater" else "lower"
    return f"`{h.a}` {more} than {_side(h.b)}"


def hypothesis_sentence(row: pd.Series, iterations: dict[str, str] | None = None,
                        unequal_ok: bool = False) -> str:
    """One finding from a row of ``hypothesis_verdicts``: the paired difference ``a - b``
    in its metric (its unit) with its 95% interval, the images and seeds behind it,
    whether the interval excludes 0, the expected direction and the verdict.
    ``iterations`` (``iteration_labels``): a sentence where a and b differ in training
    length (``unequal_ok``: the grid accepts it)."""
    words, unit, fmt = METRIC_WORDS.get(row.metric, (row.metric, "", "{:.4g}"))
    unit = f" {unit}" if unit else ""
    where = f" on `{row.dataset}`" if row.dataset else ""
    head = f"**{row.id}**{where}: {words} of `{row.a}` minus {_side(row.b)}"
    if row.verdict == "not tested":
        return f"{head}: not tested ({row.note})."
    no_interval = "no interval" in str(row.note)
    n = (f"{row.n_images:.0f} image{'s' * (row.n_images != 1)} x {row.n_seeds:.0f} "
         f"seed{'s' * (row.n_seeds != 1)}")
    if no_interval:
        text = f"{head}: {fmt.format(row['mean'])}{unit} over {n}; no interval"
    else:
        text = (f"{head}: {fmt.format(row['mean'])}{unit}, 95% interval "
                f"[{fmt.format(row.low)}, {fmt.format(row.high)}], over {n}; the interval "
                f"{'excludes' if row.verdict in ('supported', 'contradicted') else 'includes'}"
                " 0")
    notes = [x for x in str(row.note).split("; ") if x and not x.startswith("the 95%")]
    text += (f". Expected: {_expected(row)}. Verdict: **{row.verdict}**"
             + (f" ({'; '.join(notes)})" if notes else "") + ".")
    its = iterations or {}
    la, lb = its.get(row.a, "?"), its.get(row.b, "?")
    if "?" not in (la, lb) and "0" not in (la, lb) and _total(la) != _total(lb):
        text += (f" `{row.a}` and `{row.b}` were trained for different numbers of iterations "
                 f"({la} and {lb})" + ("; the grid accepts this for this hypothesis "
                                       "(`unequal_iters_ok`)." if unequal_ok else "."))
    return text


def hypothesis_findings(hypotheses: list[stats.Hypothesis], verdicts: pd.DataFrame,
                        results: pd.DataFrame, dataset: str | None = None) -> list[str]:
    """``hypothesis_sentence`` for every row of ``verdicts`` (of ``dataset`` only, when
    given; rows without a test set always), in the order of the grid's hypotheses; then,
    where one of them is measured in range or null-space errors, one note that those are
    RGB errors over the whole image while PSNR-Y is cropped."""
    ok = {h.id: h.unequal_iters_ok for h in hypotheses}
    its = iteration_labels(results)
    rows = verdicts if dataset is None else verdicts[verdicts.dataset.isin([dataset, ""])]
    out = [hypothesis_sentence(r, its, ok.get(r.id, False)) for _, r in rows.iterrows()]
    if rows.metric.isin(WHOLE_IMAGE_RGB).any():
        out.append(f"**Note**: {RGB_NOTE[0].upper()}{RGB_NOTE[1:]}.")
    return out


def general_findings(results: pd.DataFrame) -> list[str]:
    """The sentences that name no hypothesis: training lengths that differ, the perceptual
    loss's backend, and the runs that are not done."""
    return [*_length_finding(results), *_perc_finding(results), *_threshold_finding(results),
            *_not_done(results)]


def _threshold_finding(results: pd.DataFrame) -> list[str]:
    """Which variants meet the NTIRE 2021 challenge's consistency threshold, on our LR-PSNR
    and on the challenge's (mean over images and seeds, per test set)."""
    from srlib.ntire import THRESHOLD_DB

    done = results[results.status == "done"]
    if done.empty or "lr_psnr_ntire" not in done or done.lr_psnr_ntire.isna().all():
        return []
    out = []
    for dataset, g in done.groupby("dataset", sort=False):
        means = g.groupby("variant", sort=False)[["lr_psnr", "lr_psnr_ntire"]].mean()
        both = [v for v, r in means.iterrows()
                if r.lr_psnr >= THRESHOLD_DB and r.lr_psnr_ntire >= THRESHOLD_DB]
        ours = [v for v, r in means.iterrows()
                if r.lr_psnr >= THRESHOLD_DB and not r.lr_psnr_ntire >= THRESHOLD_DB]
        names = ", ".join(f"`{v}`" for v in both) or "none"
        out.append(f"**Consistency at the NTIRE 2021 threshold** on `{dataset}` "
                   f"({THRESHOLD_DB:.0f} dB, mean LR-PSNR): on both our definition and the "
                   f"challenge's: {names}"
                   + (f"; on ours only: {', '.join(f'`{v}`' for v in ours)}" if ours else "")
                   + ".")
    return out


def _length_finding(results: pd.DataFrame) -> list[str]:
    kinds = variant_kinds(results[results.status == "done"])
    its = {v: x for v, x in iteration_labels(results).items() if kinds.get(v) == "trained"}
    if len({_total(x) for x in its.values()}) <= 1:
        return []
    parts = ", ".join(f"`{v}` {x}" for v, x in its.items())
    return [f"**Training length differs** between the trained variants (iterations; a "
            f"fine-tune as its source's + its own: {parts}); a hypothesis comparing two of "
            "them says so."]


def _perc_finding(results: pd.DataFrame) -> list[str]:
    if "perc_backend" not in results:
        return []
    done = results[(results.status == "done") & results.perc_backend.map(
        lambda x: isinstance(x, str) and x.strip() not in ("", "None"))]
    out = []
    for backend, g in done.groupby("perc_backend", sort=False):
        names = ", ".join(f"`{v}`" for v in dict.fromkeys(g.variant))
        out.append(f"**Perceptual loss**: {names}: perceptual loss on {backend}.")
    return out


def findings(results: pd.DataFrame, dataset: str, verdicts: pd.DataFrame | None = None,
             hypotheses: list[stats.Hypothesis] = ()) -> list[str]:
    """Markdown sentences for one test set: the hypotheses' findings there (from
    ``hypothesis_verdicts``), then ``general_findings``."""
    own = [] if verdicts is None else hypothesis_findings(list(hypotheses), verdicts,
                                                          results, dataset)
    return own + general_findings(results)


def _not_done(results: pd.DataFrame) -> list[str]:
    """One sentence per failed or stale run (with its error), one per other status
    listing its runs. Errors read from a CSV may be NaN: never assumed to be text."""
    rest = results[results.status != "done"].drop_duplicates(["variant", "seed"])
    out = []
    for _, r in rest[rest.status.isin(["failed", "stale"])].iterrows():
        why = error_line(r.error)
        out.append(f"**{str(r.status).capitalize()}**: `{r.variant}` seed {r.seed}"
                   + (f": `{why}`" if why else "."))
    for status, group in rest[~rest.status.isin(["failed", "stale"])].groupby("status",
                                                                              sort=False):
        runs_ = ", ".join(f"`{v}` seed {s}" for v, s in zip(group.variant, group.seed,
                                                             strict=True))
        out.append(f"**{str(status).capitalize()}**: {runs_}.")
    return out


def hypothesis_statements(hypotheses: list[stats.Hypothesis]) -> str:
    """The grid's hypotheses in full, as Markdown bullets: id, what is compared, the
    metric and the expected direction, then the statement as the grid words it."""
    if not hypotheses:
        return ("The grid declares no hypothesis (`hypotheses:` in its file), so this page "
                "states no verdict.")
    lines = []
    for h in hypotheses:
        words = METRIC_WORDS.get(h.metric, (h.metric,))[0]
        sets = f", on {', '.join(f'`{d}`' for d in h.datasets)}" if h.datasets else ""
        lines.append(f"- **{h.id}** ({words}: expected {_expected(h)}{sets}): {h.statement}")
    return "\n".join(lines)


def verdict_display(verdicts: pd.DataFrame) -> pd.DataFrame:
    """``hypothesis_verdicts`` for the page: hypothesis, statement, comparison, metric,
    test set, ``a - b`` as ``'mean [low, high]'`` (the metric's unit), images x seeds,
    verdict (with its note)."""
    rows = []
    for _, r in verdicts.iterrows():
        words, unit, fmt = METRIC_WORDS.get(r.metric, (r.metric, "", "{:.4g}"))
        rows.append({
            "hypothesis": r.id, "statement": r.statement, "comparison": f"{r.a} - {r.b}",
            "metric": words + (f" ({unit})" if unit else "")
            + (", expected > 0" if r.direction == "greater" else ", expected < 0"),
            "test set": r.dataset,
            "a - b: mean [95% interval]": stats.format_interval(r["mean"], r.low, r.high, fmt),
            "images x seeds": f"{r.n_images:.0f} x {r.n_seeds:.0f}",
            "verdict": r.verdict + (f" ({r.note})" if r.note else "")})
    return pd.DataFrame(rows, columns=["hypothesis", "statement", "comparison", "metric",
                                       "test set", "a - b: mean [95% interval]",
                                       "images x seeds", "verdict"])


# ---- the report page's own sentences and tables (04_report) ------------------------------

def grid_summary(results: pd.DataFrame, grid: dict) -> str:
    """One Markdown paragraph: the grid, its variants by kind and seeds, scale, preset,
    data, its declared hypotheses, and which perceptual distance the tables show (ST-LPIPS
    flagged as not comparable)."""
    done = results[results.status == "done"]
    seeds = sorted(int(s) for s in results.seed.dropna().unique())
    datasets = list(dict.fromkeys(done.dataset))
    kind = str(done.lpips_kind.iloc[0]) if len(done) else "none"
    d = grid.get("defaults", {})
    counts = pd.Series(variant_kinds(results)).value_counts()
    trained, base = int(counts.get("trained", 0)), int(counts.get("baseline", 0))
    twins = int(counts.get("projected", 0))
    text = (f"Grid `{grid.get('name', '?')}`: {trained} trained variant(s)"
            + (f" ({twins} of them also evaluated projected, `+P`)" if twins else "")
            + f" and {base} closed-form baseline(s), {len(seeds)} seed(s) "
            f"({', '.join(map(str, seeds))}), scale x{d.get('scale', 4)}, preset "
            f"`{d.get('preset', 'quick')}`, trained on `{d.get('data', 'default')}`, tested on "
            f"{', '.join(f'`{x}`' for x in datasets) or 'nothing (no finished run)'}; "
            f"{len(grid.get('hypotheses') or [])} declared hypothesis(es). "
            f"Perceptual distance: **{kind}**")
    if kind.startswith("stlpips"):
        text += (" (shift-tolerant LPIPS, used because the ImageNet trunk of standard LPIPS "
                 "is not on this machine; its values are not comparable with published LPIPS)")
    return text + "."


def manifold_finding(m: dict) -> str:
    """The H1 sentence from ``manifold.json`` (written by ``01_manifold``)."""
    toy = m["toy"]
    text = (f"**Ill-posedness** (H1): adding a null-space image to `{m['image']}` moves it "
            f"{m['null_psnr_db']:.1f} dB (PSNR) away, yet changes its LR image by at most "
            f"{m['null_lr_max_abs_diff']:.1e}.")
    if "pinv_psnr_db" in m:
        text += (f" The minimum-norm consistent image `D^+ D HR` is {m['pinv_psnr_db']:.1f} dB "
                 "from HR: the part of HR its LR image does not determine.")
    parts = []
    if "mse" in toy:
        parts.append(f"MSE training lands {toy['mse']['manifold_rmse']:.3f} off the manifold "
                     "(RMS)")
    if "down" in toy:
        parts.append(f"the downsampled loss is consistent to "
                     f"{toy['down']['consistency_rmse']:.1e} and lands "
                     f"{toy['down']['manifold_rmse']:.3f} off it")
    if "down+adv" in toy:
        parts.append(f"with an adversarial term, outputs land "
                     f"{toy['down+adv']['manifold_rmse']:.3f} off it (consistency "
                     f"{toy['down+adv']['consistency_rmse']:.1e})")
    if parts:
        text += f" In the 2-D toy ({m.get('toy_steps', '?')} steps), " + "; ".join(parts) + "."
    return text


def artifact_finding(artifacts: pd.DataFrame) -> str:
    """The periodic-artifact sentence from ``artifacts.csv`` (written by ``03_artifacts``):
    the share of the energy of ``SR - bicubic`` at the LR-grid harmonics, highest first."""
    e = artifacts.set_index("variant").lr_grid_energy.sort_values(ascending=False)
    where = ""
    if "dataset" in artifacts and "seed" in artifacts and len(artifacts):
        where = f" (`{artifacts.dataset.iloc[0]}`, seed {artifacts.seed.iloc[0]})"
    return ("**Periodic artifacts**: share of the energy of `SR - bicubic` at the harmonics of "
            f"the LR sampling frequency{where}: "
            + (", ".join(f"`{v}` {x:.1%}" for v, x in e.items()) or "no trained variant")
            + ".")


def run_links(results: pd.DataFrame, reports: str | Path) -> pd.DataFrame:
    """One row per run (variant x seed; not the projected twins, which share their
    variant's run): ``variant``, ``seed``, ``status`` and ``notebook``, an HTML link to
    the run's executed notebook (relative to ``reports``) where it exists, else empty.
    Text is HTML-escaped; render with ``to_html(escape=False, index=False)``."""
    import html

    from srlib.runs import run_dir

    reports = Path(reports)
    rows = []
    own = results[results["kind"] != "projected"] if "kind" in results else results
    for _, r in own.drop_duplicates(["variant", "seed"]).iterrows():
        page = run_dir(reports, r.variant, int(r.seed)) / "train.html"
        href = html.escape(page.relative_to(reports).as_posix(), quote=True)
        rows.append({"variant": html.escape(str(r.variant)), "seed": int(r.seed),
                     "status": html.escape(str(r.status)),
                     "notebook": f'<a href="{href}">{href}</a>' if page.is_file() else ""})
    return pd.DataFrame(rows, columns=["variant", "seed", "status", "notebook"])


def provenance_text(prov: dict) -> str:
    """Markdown bullets from ``provenance.json``: commit, grid, date, device, packages and
    the wall time of each stage (s)."""
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in prov.get("stage_seconds", {}).items())
    return "\n".join([
        f"- commit `{prov.get('commit', '?')}`, grid `{prov.get('grid', '?')}`, "
        f"generated {prov.get('date', '?')}",
        f"- device: {prov.get('device', '?')}; Python {prov.get('python', '?')} on "
        f"{prov.get('platform', '?')}",
        "- packages: " + ", ".join(f"{k} {v}" for k, v in prov.get("packages", {}).items()),
        f"- wall time per stage: {stages or 'not recorded'} (this page's own stage not "
        "included; a rebuild that skips finished runs records only its own)",
        "- training time recorded by the runs, summed: "
        + (f"{prov['train_seconds_total'] / 60:.0f} min" if "train_seconds_total" in prov
           else "not recorded"),
    ])


def page_findings(results: pd.DataFrame, reports: str | Path,
                  verdicts: pd.DataFrame | None = None,
                  hypotheses: list[stats.Hypothesis] = ()) -> list[str]:
    """Every finding sentence of the report page: H1 from ``manifold.json`` (when present),
    one sentence per declared hypothesis x test set (``hypothesis_verdicts``), the
    ``general_findings``, and the periodic-artifact sentence from ``artifacts.csv`` (when
    present)."""
    reports = Path(reports)
    lines = []
    if (reports / "manifold.json").is_file():
        lines.append(manifold_finding(json.loads((reports / "manifold.json").read_text())))
    if verdicts is not None:
        lines += hypothesis_findings(list(hypotheses), verdicts, results)
    lines += general_findings(results)
    if (reports / "artifacts.csv").is_file():
        lines.append(artifact_finding(pd.read_csv(reports / "artifacts.csv")))
    return lines


# ---- the README's headline table ---------------------------------------------------------

def headline_table(folder: str | Path, columns: list[str], variants: list[str] | None = None,
                   **boot) -> str:
    """A Markdown table from a result folder (``results.csv``, ``per_image.csv``,
    ``provenance.json``): one row per variant (``variants``, in that order; default: every
    variant with a done run), one column per ``metric@testset`` of ``columns``, each cell
    ``'mean [low, high]'`` over images x seeds (``summary_table``), then the seeds; under
    it, the commit the folder was built from. ``ValueError`` names an unknown metric, test
    set or variant."""
    folder = Path(folder)
    results = pd.read_csv(folder / "results.csv", keep_default_na=False, na_values=[""])
    per_image = load_per_image(folder / "per_image.csv")
    summ = summary_table(results, per_image, baselines=baseline_variants(results), **boot)
    pairs = []
    for c in columns:
        metric, _, dataset = c.partition("@")
        if metric not in TABLE_METRICS or dataset not in set(summ["dataset"]):
            raise ValueError(f"column '{c}': expected METRIC@TESTSET, METRIC one of "
                             f"{', '.join(TABLE_METRICS)}, TESTSET one of "
                             f"{', '.join(dict.fromkeys(summ['dataset']))}")
        pairs.append((metric, dataset))
    have = list(dict.fromkeys(summ["variant"]))
    unknown = [v for v in variants or [] if v not in have]
    if unknown:
        raise ValueError(f"variant(s) without a done run in {folder}: {', '.join(unknown)}; "
                         f"they are: {', '.join(have)}")
    head = ["variant", *(f"{TABLE_METRICS[m][0]}, {d}" for m, d in pairs), "seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by = summ.set_index(["variant", "dataset"])
    for v in variants or have:
        cells = []
        for m, d in pairs:
            r = by.loc[(v, d)] if (v, d) in by.index else None
            cells.append("n/a" if r is None else stats.format_interval(
                r[f"{m}_mean"], r[f"{m}_low"], r[f"{m}_high"], TABLE_METRICS[m][1]))
        seeds = summ.loc[summ["variant"] == v, "n_seeds"].max()
        lines.append(f"| `{v}` | " + " | ".join(cells) + f" | {seeds:.0f} |")
    prov = folder / "provenance.json"
    commit = json.loads(prov.read_text()).get("commit", "?") if prov.is_file() else "?"
    lines += ["", f"Mean over test images x seeds [95% interval]; built from commit "
                  f"`{commit}`."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m srlib.report FOLDER --columns psnr_y@Set5 ... [--variants ...]``: print
    ``headline_table`` (the README's table of the study)."""
    ap = argparse.ArgumentParser(prog="python -m srlib.report",
                                 description="Print a result folder's headline table "
                                             "(Markdown) with 95% intervals.")
    ap.add_argument("folder", help="a result folder, e.g. reports/study")
    ap.add_argument("--columns", nargs="+", required=True, metavar="METRIC@SET",
                    help=f"metric ({', '.join(TABLE_METRICS)}) @ test set, e.g. psnr_y@Set5")
    ap.add_argument("--variants", nargs="+", help="rows, in order (default: every variant)")
    a = ap.parse_args(argv)
    try:
        print(headline_table(a.folder, a.columns, a.variants))
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
