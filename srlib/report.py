"""The report's tables and sentences, from a result folder's tables (``srlib.results``).

``summary_table`` gives, per test set and variant, the mean of each metric of the main
table (``srlib.metrics.METRICS`` with ``table``) and its 95% interval over test images x
seeds (from ``per_image.csv``, through ``srlib.stats``); ``format_table`` shows it. The
evidence comes from the hypotheses the grid declares (``hypothesis_verdicts``): the
paired difference, its interval and the verdict, shown first as the grid author's own
``answer`` (``fill_answer``) or ``short_answer`` (one sentence per primary), then as
``answer`` (one sentence per question), ``verdict_matrix`` and ``hypothesis_table``; a
hypothesis whose variants are missing is ``not tested``, with the reason. ``power_lines``
sizes a study's seeds from a pilot (``--power``). No variant name,
label or threshold is written here: the grid names the variants, the kind column
(baseline, trained, projected) orders them. Every text that comes from a grid reaches the
page escaped (``code``, ``plain``).
"""

from __future__ import annotations

import argparse
import html
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from srlib import results as rs
from srlib import runs, stats, tables
from srlib.grid import Hypothesis, answer_fields, projected_name
from srlib.metrics import metric, metrics_where
from srlib.mixed import MAX_SEEDS, design_power, seeds_for_power
from srlib.results import variant_kinds


def table_metrics() -> list[str]:
    """The metric columns of the main table (``METRICS`` with ``table``), in order."""
    return [m for m in metrics_where(table=True) if metric(m).source != "samples"]


def sample_metrics() -> list[str]:
    """The columns of the sample table (``samples`` metrics with ``table``), in order."""
    return metrics_where(table=True, source="samples")

# ---- the tables: mean [95% interval] per test set and variant ----------------------------

# metrics measured on RGB over the whole image (PSNR-Y and SSIM-Y: Y channel, border cropped)
WHOLE_IMAGE_RGB = ("range_mse", "null_mse", "null_gain_db", "range_gain_db")
RGB_NOTE = ("the range and null-space errors, and the gains computed from them, are RGB "
            "errors over the whole image, whereas PSNR-Y and SSIM-Y are on the Y channel with "
            "the border cropped")


def code(name: object) -> str:
    """A name from a grid (variant, test set, loss) as Markdown code; one holding HTML's
    or Markdown's special characters as escaped inline HTML, so no grid text reaches the
    page as markup."""
    name = str(name)
    if any(c in name for c in "<>&`"):
        return f"<code>{html.escape(name)}</code>"
    return f"`{name}`"


def plain(words: object) -> str:
    """Free text from a grid (a statement, an id) with HTML's special characters escaped."""
    return html.escape(str(words), quote=False)


def variant_order(kinds: dict[str, str]) -> list[str]:
    """Baselines first, then each trained variant followed by its projected twin, then
    any other variant (each group in the order given)."""
    out = [v for v, k in kinds.items() if k == "baseline"]
    for v, k in kinds.items():
        if k == "trained":
            out += [v] + [projected_name(v, t) for t in runs.TWINS
                          if projected_name(v, t) in kinds]
    return out + [v for v in kinds if v not in out]


def iteration_labels(results: pd.DataFrame) -> dict[str, str]:
    """variant -> its training length as text, from its done rows: ``'2000'``, or for a
    fine-tune ``'<source's total> + <its own>'`` (``iters_total`` and ``iters``); ``'0'``
    for a baseline."""
    done = results[results.status == "done"]
    if done.empty:
        return {}
    own = pd.to_numeric(done["iters"], errors="coerce")
    total = pd.to_numeric(done["iters_total"], errors="coerce").fillna(own)
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


def summary_table(results: pd.DataFrame, per_image: pd.DataFrame | None, *,
                  baselines=(), **boot) -> pd.DataFrame:
    """One row per test set x variant with a done run, ordered as ``variant_order``:
    ``<m>_mean``, ``<m>_low``, ``<m>_high`` for each metric of ``table_metrics()`` present
    (its unit), ``n_images``, ``n_seeds``, ``kind``, ``iterations`` (``iteration_labels``) and
    ``lpips_kind``: means and 95% intervals over images x seeds of ``per_image``
    (``stats.summary_with_ci``; ``baselines`` are counted once per image, ``boot`` goes to
    the bootstrap)."""
    done = results[results.status == "done"]
    if done.empty or per_image is None or per_image.empty:
        return pd.DataFrame()
    t = per_image[per_image["variant"].isin(set(done["variant"]))]
    metrics = [m for m in table_metrics() if m in t]
    s = stats.summary_with_ci(t, metrics, baselines=baselines, **boot)
    kinds = variant_kinds(done)
    s["kind"] = s["variant"].map(kinds).fillna("trained")
    s["iterations"] = s["variant"].map(iteration_labels(done)).fillna("?")
    s["lpips_kind"] = s["dataset"].map(done.groupby("dataset", sort=False)["lpips_kind"]
                                       .first()).fillna("")
    rank = {v: i for i, v in enumerate(variant_order(kinds))}
    sets = {d: i for i, d in enumerate(dict.fromkeys(done["dataset"]))}
    key = s["dataset"].map(sets).fillna(len(sets)) * (len(rank) + 1) \
        + s["variant"].map(rank).fillna(len(rank))
    return s.iloc[np.argsort(key.to_numpy(), kind="stable")].reset_index(drop=True)


def _means(s: pd.DataFrame, m: str) -> list[str]:
    """The plain-mean cells of metric ``m`` in a summary (``summary_with_ci``), 'n/a'
    where not measured."""
    return [stats.format_interval(a, math.nan, math.nan, metric(m).fmt)
            for a in s[f"{m}_mean"]]


def format_table(summary: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The report's table for one test set: ``variant``, ``kind``, one column per metric
    of ``summary_table`` as its plain mean (``'n/a'`` where not measured; headed by its
    ``heading``, LPIPS by its kind), ``images``, ``seeds`` and ``iterations`` (total; a
    fine-tune as source + own). No interval: over a few test images a variant's own
    interval spans every difference between variants (Set5's PSNR-Y: about 10 dB), which
    the paired differences of the hypotheses measure."""
    s = summary[summary.dataset == dataset] if len(summary) else summary
    table = pd.DataFrame({"variant": s.get("variant", pd.Series(dtype=object)).to_numpy(),
                          "kind": s.get("kind", pd.Series(dtype=object)).to_numpy()})
    kind = next((str(k) for k in s.get("lpips_kind", []) if isinstance(k, str) and k), "")
    for m in table_metrics():
        if f"{m}_mean" in s:
            head = f"LPIPS ({kind})" if m == "lpips" and kind else metric(m).heading
            table[head] = _means(s, m)
    table["images"] = ["" if pd.isna(n) else f"{n:.0f}" for n in s.get("n_images", [])]
    table["seeds"] = ["" if pd.isna(n) else f"{n:.0f}" for n in s.get("n_seeds", [])]
    table["iterations"] = s.get("iterations", pd.Series(dtype=object)).to_numpy()
    return table


def samples_table(per_image: pd.DataFrame | None, **boot) -> pd.DataFrame:
    """The K-sample statistics of the stochastic variants (rows of ``per_image`` with a
    ``diversity``), one row per test set x variant: each column of ``sample_metrics()`` as
    its mean over images x seeds (``stats.summary_with_ci``; no interval, as in
    ``format_table``), headed by its label, then ``images`` and ``seeds``. Empty when no
    variant drew samples."""
    if per_image is None or "diversity" not in per_image:
        return pd.DataFrame()
    t = per_image[per_image["diversity"].notna()]
    if t.empty:
        return pd.DataFrame()
    metrics = [m for m in sample_metrics() if m in t]
    s = stats.summary_with_ci(t, metrics, **boot)
    out = s[["dataset", "variant"]].rename(columns={"dataset": "test set"})
    for m in metrics:
        out[metric(m).label] = _means(s, m)
    out["images"], out["seeds"] = s["n_images"], s["n_seeds"]
    return out


def table_note(summary: pd.DataFrame) -> str:
    """One Markdown paragraph on what the tables' cells are (``summary_table``)."""
    parts = []
    if len(summary):
        parts.append("Each cell: the mean over test images x seeds (a seed-independent "
                     "baseline counts once per image). No interval: over a handful of test "
                     "images one variant's interval spans every difference between variants; "
                     "compare variants by the paired differences of the hypotheses above, "
                     "each with its 95% interval.")
    parts.append("The null-space and range gains are `10 log10` of the `D^+ LR` baseline's "
                 "error over the variant's, per image (dB; positive: less error than that "
                 f"baseline); {RGB_NOTE}.")
    return " ".join(parts)


# ---- findings: the declared hypotheses, then what the runs themselves say -----------------

def hypothesis_verdicts(hypotheses: list[Hypothesis], per_image: pd.DataFrame | None,
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
        return f"{code(name)}"
    return str(name)


def _expected(h: Hypothesis | pd.Series) -> str:
    more = "higher" if h.direction == "greater" else "lower"
    return f"{code(h.a)} {more} than {_side(h.b)}"


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
        names = ", ".join(f"{code(v)}" for v in both) or "none"
        out.append(f"**Consistency at the NTIRE 2021 threshold** on {code(dataset)} "
                   f"({THRESHOLD_DB:.0f} dB, mean LR-PSNR): on both our definition and the "
                   f"challenge's: {names}"
                   + (f"; on ours only: {', '.join(f'{code(v)}' for v in ours)}" if ours else "")
                   + ".")
    return out


def _length_finding(results: pd.DataFrame) -> list[str]:
    kinds = variant_kinds(results[results.status == "done"])
    its = {v: x for v, x in iteration_labels(results).items() if kinds.get(v) == "trained"}
    if len({_total(x) for x in its.values()}) <= 1:
        return []
    parts = ", ".join(f"{code(v)} {x}" for v, x in its.items())
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
        names = ", ".join(f"{code(v)}" for v in dict.fromkeys(g.variant))
        out.append(f"**Perceptual loss**: {names}: perceptual loss on {backend}.")
    return out


def _not_done(results: pd.DataFrame) -> list[str]:
    """One sentence per failed or stale run (with its error), one per other status
    listing its runs. Errors read from a CSV may be NaN: never assumed to be text."""
    rest = results[results.status != "done"].drop_duplicates(["variant", "seed"])
    out = []
    for _, r in rest[rest.status.isin(["failed", "stale"])].iterrows():
        why = runs.last_line(r.error)
        out.append(f"**{str(r.status).capitalize()}**: {code(r.variant)} seed {r.seed}"
                   + (f": {code(why)}" if why else "."))
    for status, group in rest[~rest.status.isin(["failed", "stale"])].groupby("status",
                                                                              sort=False):
        runs_ = ", ".join(f"{code(v)} seed {s}" for v, s in zip(group.variant, group.seed,
                                                             strict=True))
        out.append(f"**{str(status).capitalize()}**: {runs_}.")
    return out


# ---- the answer, the verdict matrix and the hypothesis table -----------------------------

ONE_RUN = "1 run: covers test images only"
VERDICT_COLOURS = {"supported": "#cde8cd", "contradicted": "#f3c9c4",
                   "inconclusive": "#eeeeee", "not reached": "#e3e3f3", "not tested": "#ffffff"}


def question_of(hid: str) -> str:
    """The question a hypothesis id answers: its prefix ``H<digits>`` (``H5a-esrgan``:
    ``H5``), or the id itself. The question's words are the grid's (``questions:``, and
    the statement of its first hypothesis), never a table of this module's."""
    m = re.match(r"H\d+", hid)
    return m.group(0) if m else hid


def claim(h: Hypothesis) -> str:
    """The short form of a statement: its words up to the first colon (or period)."""
    text = " ".join(h.statement.split())
    cut = min((i for i in (text.find(":"), text.find(". ")) if i > 0), default=len(text))
    return text[:cut].rstrip(".")


def runs_label(n_seeds: float) -> str:
    """How many training runs a comparison rests on, as every line that shows it says."""
    if not n_seeds or pd.isna(n_seeds):
        return "no training: covers test images only"
    return ONE_RUN if n_seeds == 1 else f"{n_seeds:.0f} runs: seeds resampled"


def cell_text(row: pd.Series) -> str:
    """A verdict row's evidence as text: ``'mean [low, high]'`` in its metric's format (a
    share for an ``every`` claim), or ``'n/a'``."""
    if row.verdict == "not tested" or pd.isna(row["mean"]):
        return "n/a"
    if row.every:
        return f"share {row['mean']:.2f} [{row.low:.2f}, {row.high:.2f}]"
    return stats.format_interval(row["mean"], row.low, row.high, metric(row.metric).fmt)


def reader_cell(row: pd.Series) -> str:
    """``cell_text`` for the page's tables: one decimal where a dB interval is wider than
    1 dB (its second decimal is noise)."""
    m = metric(row.metric)
    if (row.verdict == "not tested" or pd.isna(row["mean"]) or row.every or m.unit != "dB"
            or not row.high - row.low > 1):
        return cell_text(row)
    return stats.format_interval(row["mean"], row.low, row.high, "{:.1f}")


def seed_means_text(row: pd.Series) -> str:
    """The per-seed means of a verdict row in its metric's format (``'11.22 / 9.10 /
    7.90'``), or '' for fewer than two seeds."""
    # an "every" hypothesis has no per-seed means (it counts images): '' as well
    if not row.n_seeds or row.n_seeds < 2 or not isinstance(row.seed_means, str) \
            or not row.seed_means.strip():
        return ""
    fmt = metric(row.metric).fmt
    return " / ".join(fmt.format(float(x)) for x in row.seed_means.split(" / "))


def _comparison(h: Hypothesis) -> str:
    m = metric(h.metric)
    unit = f" ({m.unit})" if m.unit else ""
    if h.every:
        side = "at or above" if h.direction == "greater" else "at or below"
        return f"share of {m.words} values of {h.a} {side} {h.b}{unit}"
    b = "its noise floor" if h.floor else h.b
    sign = ">" if h.direction == "greater" else "<"
    return f"{m.words}{unit}: {h.a} minus {b}, expected {sign} 0"


def answer(hypotheses: list[Hypothesis], verdicts: pd.DataFrame) -> list[str]:
    """"The answer": one Markdown sentence per question (``question_of``; at most eight), from
    the pooled verdicts: the question's first hypothesis with its pooled interval, its
    verdict after the declared procedure (``stats.procedure``) and the runs behind it, then
    how the question's other hypotheses came out. A supported comparison on one run is said
    to be so and not counted as established."""
    pooled = verdicts[verdicts.dataset == stats.POOLED].set_index("id")
    groups: dict[str, list[Hypothesis]] = {}
    for h in hypotheses:
        groups.setdefault(question_of(h.id), []).append(h)
    out = []
    for q, hs in list(groups.items())[:8]:
        lead = pooled.loc[hs[0].id]
        verdict = lead.adjusted
        if verdict == "supported" and lead.n_seeds == 1:
            verdict = "supported on one run, not established"
        text = (f"**{plain(q)}** {plain(claim(hs[0]))} ({plain(hs[0].id)}): **{verdict}**; "
                f"{plain(_comparison(hs[0]))}: {cell_text(lead)}")
        if lead.verdict != "not tested":
            seeds = seed_means_text(lead)
            text += (f", pooled over {lead.n_images:.0f} images, {runs_label(lead.n_seeds)}"
                     + (f" (per seed {seeds})" if seeds else ""))
        text += "."
        if len(hs) > 1:
            rest = pooled.loc[[h.id for h in hs[1:]]]
            est = ((rest.adjusted == "supported") & (rest.n_seeds != 1)).sum()
            counts = rest.adjusted.value_counts()
            parts = [f"{counts.get(v, 0)} {v}" for v in stats.VERDICTS if counts.get(v, 0)]
            text += (f" Its other hypotheses ({len(rest)}), after adjustment: "
                     + ", ".join(parts) + f" ({est} of them supported on more than one run).")
        out.append(text)
    return out


def _leads(hypotheses: list[Hypothesis]) -> list[Hypothesis]:
    """The hypotheses a short answer speaks of: the primaries in their order, or without
    them the first hypothesis of each question (at most five)."""
    prim = sorted((h for h in hypotheses if h.primary), key=lambda h: h.primary)
    if prim:
        return prim
    first: dict[str, Hypothesis] = {}
    for h in hypotheses:
        first.setdefault(question_of(h.id), h)
    return list(first.values())[:5]


def short_answer(hypotheses: list[Hypothesis], verdicts: pd.DataFrame) -> list[str]:
    """One short Markdown sentence per primary hypothesis (``_leads``): its claim, its
    verdict after the declared procedure, the pooled difference with its interval and the
    runs behind it."""
    pooled = verdicts[verdicts.dataset == stats.POOLED].set_index("id")
    out = []
    for h in _leads(hypotheses):
        r = pooled.loc[h.id]
        m = metric(h.metric)
        verdict = r.adjusted + ("" if r.adjusted == r.verdict
                                else f" (unadjusted: {r.verdict})")
        text = f"**{plain(h.id)}** {plain(claim(h))}: **{verdict}**"
        if r.verdict != "not tested" and not h.every:
            b = "its noise floor" if h.floor else h.b
            text += (f", {m.words} {reader_cell(r)}{' ' + m.unit if m.unit else ''} "
                     f"({plain(h.a)} minus {plain(b)}, {runs_label(r.n_seeds)})")
        out.append(text + ".")
    return out


def _field(written: str, key: str, field: str, pooled: pd.DataFrame,
           results: pd.DataFrame | None) -> str:
    variant, at, dataset = key.rpartition("@")
    if at:
        if results is None:
            return "n/a"
        rows = results[(results.variant == variant) & (results.dataset == dataset)
                       & (results.status == "done")]
        v = rows[field].mean() if field in rows and len(rows) else math.nan
        return "n/a" if pd.isna(v) else metric(field).fmt.format(v)
    if key not in pooled.index:
        raise ValueError(f"answer: {written}: no verdict for hypothesis '{key}'")
    r = pooled.loc[key]
    fmt = metric(r.metric).fmt
    if field == "verdict":
        return str(r.adjusted)
    if field == "unadjusted":
        return str(r.verdict)
    if field == "interval":
        return cell_text(r)
    if field in ("seeds", "images"):
        n = r["n_seeds" if field == "seeds" else "n_images"]
        return "n/a" if pd.isna(n) else f"{n:.0f}"
    value = {"mean": r["mean"], "abs": abs(r["mean"]), "low": r.low, "high": r.high,
             "p": r.p, "p_mixed": r.p_mixed}[field]
    if pd.isna(value):
        return "n/a"
    return f"{value:.2g}" if field.startswith("p") else fmt.format(value)


def fill_answer(text: str, verdicts: pd.DataFrame, results: pd.DataFrame | None) -> str:
    """The grid's ``answer`` with each field (``srlib.grid.answer_fields``, checked when the
    grid was loaded) filled: a hypothesis's pooled verdict row (``{H2.mean}``,
    ``{H2.verdict}`` ...; numbers in the metric's format) or a variant's mean over its
    done runs on a set (``{pixel/nearest@Set5.psnr_y}``); ``n/a`` where nothing was
    measured."""
    pooled = verdicts[verdicts.dataset == stats.POOLED].set_index("id")
    for written, key, field in answer_fields(text):
        text = text.replace(written, _field(written, key, field, pooled, results), 1)
    return text


def method_flags(hypotheses: list[Hypothesis], verdicts: pd.DataFrame) -> list[str]:
    """One Markdown sentence per primary whose pooled verdict the mixed model would give
    otherwise (both unadjusted, at the same level); the bootstrap's stays the verdict."""
    pooled = verdicts[verdicts.dataset == stats.POOLED].set_index("id")
    out = []
    for h in _leads(hypotheses):
        r = pooled.loc[h.id]
        if h.primary and isinstance(r.verdict_mixed, str) and r.verdict_mixed \
                and r.verdict_mixed != r.verdict:
            out.append(f"**{plain(h.id)}: the two analyses disagree.** The bootstrap's "
                       f"interval says {r.verdict} (p = {r.p:.2g}); the mixed model says "
                       f"{r.verdict_mixed} (p = {r.p_mixed:.2g} on {r.df_mixed:.1f} "
                       "degrees of freedom). The verdict is the bootstrap's.")
    return out


def power_lines(folder: str | Path, grid_path: str | Path, power: float = 0.8,
                level: float = 0.95) -> list[str]:
    """For each primary hypothesis of ``grid_path`` (without primaries: every hypothesis
    tested on a mean), from ``folder``'s ``per_image.csv``: the mixed model's effect and
    variance components, and the seeds per side at which a study like this one reaches
    ``power`` at ``level`` (``srlib.mixed.seeds_for_power``)."""
    from srlib.grid import load_grid

    g = load_grid(grid_path)
    per_image = rs.read_per_image(folder)
    where = str(Path(folder) / rs.PER_IMAGE)
    check_verdict_inputs(g["hypotheses"], per_image, where)
    prim = [h for h in g["hypotheses"] if h.primary]
    hs = sorted(prim, key=lambda h: h.primary) or [h for h in g["hypotheses"] if not h.every]
    lines = [] if prim else [f"{grid_path} declares no primary hypothesis: every hypothesis "
                             "tested on a mean, each at the full level (Holm's adjustment "
                             "would ask more)."]
    for h in hs:
        fit = stats.hypothesis_fit(h, per_image, baselines=rs.baseline_variants(g))
        m = metric(h.metric)
        unit = f" {m.unit}" if m.unit else ""
        name = f"{h.id}" + (f" (primary {h.primary})" if h.primary else "")
        if fit is None or not np.isfinite(fit.mean):
            lines.append(f"{name}: not measured in {where} (a variant, or 2 seeds, missing)")
            continue
        k = seeds_for_power(fit, power, level)
        at = [design_power(fit.mean, fit.sd_image, fit.sd_seed, fit.sd_residual,
                           fit.n_images, n, level) for n in (fit.n_seeds, k or MAX_SEEDS)]
        need = (f"{k} seeds per side give {at[1]:.0%} power" if k else
                f"more than {MAX_SEEDS} seeds per side (power at {MAX_SEEDS}: {at[1]:.0%})")
        lines.append(
            f"{name}: effect {m.fmt.format(fit.mean)}{unit} (mixed model; p = {fit.p:.2g}); "
            f"sd image {m.fmt.format(fit.sd_image)}, seed {m.fmt.format(fit.sd_seed)}, "
            f"residual {m.fmt.format(fit.sd_residual)}{unit}, over {fit.n_images} images x "
            f"{fit.n_seeds} seeds; at {1 - level:.0%}: {need} (this design's: "
            f"{at[0]:.0%}).")
    return lines


def verdict_matrix(hypotheses: list[Hypothesis], verdicts: pd.DataFrame) -> str:
    """The verdict matrix as an HTML table: one row per hypothesis (id and claim), one
    column for the pooled test images and one per test set; each cell the mean and its
    interval (``reader_cell``), coloured by the adjusted verdict (``VERDICT_COLOURS``), a
    primary tagged with its place, hatched when it
    rests on one run, marked ``*`` where the unadjusted verdict differs. Every text is
    escaped."""
    sets = list(dict.fromkeys(verdicts.dataset))
    by = verdicts.set_index(["id", "dataset"])
    head = "".join(f"<th>{html.escape(str(d))}</th>" for d in sets)
    rows = []
    for h in hypotheses:
        cells = []
        for d in sets:
            if (h.id, d) not in by.index:
                cells.append("<td></td>")
                continue
            r = by.loc[(h.id, d)]
            style = f"background-color:{VERDICT_COLOURS.get(r.adjusted, '#fff')}"
            if r.n_seeds == 1:
                style += (";background-image:repeating-linear-gradient(135deg,transparent 0 6px,"
                          "rgba(0,0,0,.09) 6px 8px)")
            mark = " *" if r.adjusted != r.verdict else ""
            tip = html.escape(f"{r.adjusted} (unadjusted: {r.verdict}); "
                              f"{runs_label(r.n_seeds)}; {r.n_images:.0f} images"
                              + (f"; per seed: {seed_means_text(r)}" if r.n_seeds > 1 else "")
                              + (f"; {r.note}" if isinstance(r.note, str) and r.note else ""),
                              quote=True)
            cells.append(f'<td style="{style}" title="{tip}">'
                         f"{html.escape(reader_cell(r))}{mark}</td>")
        tag = f" <strong>P{h.primary}</strong>" if h.primary else ""
        rows.append(f"<tr><th>{html.escape(h.id)}{tag}</th><td>{html.escape(claim(h))}</td>"
                    + "".join(cells) + "</tr>")
    legend = " ".join(f'<span style="background:{c};padding:0 .4em;border:1px solid #ccc">'
                      f"{v}</span>" for v, c in VERDICT_COLOURS.items())
    return ("<style>table.verdicts td, table.verdicts th {text-align: left !important}</style>"
            '<table class="verdicts"><thead><tr><th>id</th><th>claim</th>' + head
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
            f"<p>{html.escape(stats.procedure(hypotheses))} Colour: the verdict after that "
            f"procedure, within each column ({legend}); "
            + ("<strong>P1</strong>, <strong>P2</strong> ...: the primaries in their order; "
               if any(h.primary for h in hypotheses) else "")
            + "hatched: one training run (the interval covers test images "
            "only); <code>*</code>: the unadjusted verdict differs (hover a cell for it, "
            "the per-seed means and the note).</p>")


def critic_summary(critic: pd.DataFrame | None) -> str:
    """One Markdown sentence on the critics' health (``srlib.results.critic_table``): how
    many runs with a discriminator meet the grid's criterion, and every run that misses it
    with its value; "" without a criterion or such a run."""
    if critic is None or critic.empty:
        return ""
    c = critic.iloc[0]
    rule = (f"the mean of {code(c.column)} over the last {float(c['last']):.0%} of its "
            f"iterations between {c.low:g} and {c.high:g}")
    miss = critic[~critic.healthy.astype(bool)]
    text = f"{len(critic) - len(miss)} of {len(critic)} runs with a critic meet the criterion "
    text += f"of a healthy critic ({rule})"
    if miss.empty:
        return text + "."
    named = ", ".join(f"{code(r.variant)} seed {int(r.seed)} ({r.value:.3f})"
                      for r in miss.itertuples())
    return text + f"; these miss it, and their results are reported as trained: {named}."


def critic_rows(critic: pd.DataFrame) -> pd.DataFrame:
    """The critic table as the page shows it: variant, seed, value, healthy or not."""
    return pd.DataFrame({"variant": critic.variant, "seed": critic.seed.astype(int),
                         "critic loss, end of the run": critic.value.map("{:.3f}".format),
                         "healthy": np.where(critic.healthy.astype(bool), "yes", "no")})


def front_comparison(per_image: pd.DataFrame, fronts: dict[str, list[list[str]]], *,
                     baselines: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Markdown sentences comparing the first two sweeps of ``fronts`` (name ->
    ``[[variant, label], ...]``) at each label they share (the same adversarial weight):
    the paired differences (first minus second, over every test image and seed, with 95%
    intervals, ``srlib.stats.paired_difference``) in PSNR-Y and LPIPS, and which sweep
    dominates there (better in both, both intervals excluding 0), if either."""
    if len(fronts) < 2 or per_image is None:
        return []
    (na, a), (nb, b) = list(fronts.items())[:2]
    b_at = {str(lab): v for v, lab in b}
    have = set(per_image.variant)
    out = []
    for va, lab in a:
        vb = b_at.get(str(lab))
        if vb is None or va not in have or vb not in have:
            continue
        d_psnr = stats.paired_difference(per_image, va, vb, "psnr_y", baselines=baselines)
        d_lpips = stats.paired_difference(per_image, va, vb, "lpips", baselines=baselines)
        if d_psnr.low > 0 and d_lpips.high < 0:
            who = f"{plain(na)} dominates"
        elif d_psnr.high < 0 and d_lpips.low > 0:
            who = f"{plain(nb)} dominates"
        else:
            who = "neither dominates (an interval includes 0, or each wins on one axis)"
        runs_ = f"{d_psnr.n_seeds} seed(s), {d_psnr.n_images} images"
        out.append(f"At {plain(lab)}, {code(va)} minus {code(vb)}: PSNR-Y "
                   f"{d_psnr.format()} dB, LPIPS {d_lpips.format('{:.3f}')} ({runs_}): {who}.")
    fa, fb = ([v for v, _ in f if v in have] for f in (a, b))
    if len(fa) > 1 and len(fb) > 1 and "lpips" in per_image:
        try:
            m = stats.matched_distortion(per_image, fa, fb)
        except ValueError as err:
            out.append(f"At equal PSNR-Y: not compared ({err}).")
        else:
            out.append(
                f"At equal PSNR-Y ({m['level']:.2f} dB, the middle of the range both fronts "
                f"span; each front interpolated), LPIPS of {plain(na)} minus {plain(nb)}: "
                f"{stats.format_interval(m['mean'], m['low'], m['high'], '{:.3f}')} "
                f"({m['n_seeds']} seed(s), {m['n_images']} images resampled; both fronts "
                f"reach that PSNR-Y in {m['inside']:.0%} of the resamples).")
    return out


def text_table(table: pd.DataFrame) -> str:
    """``table`` as HTML (escaped, no index) with its cells aligned left and at the top: the
    report's tables of sentences (the notebook's style right-aligns numbers)."""
    return ('<div class="text-table"><style>.text-table td, .text-table th '
            "{text-align: left !important; vertical-align: top}</style>"
            + table.to_html(index=False) + "</div>")


def hypothesis_table(hypotheses: list[Hypothesis], verdicts: pd.DataFrame) -> pd.DataFrame:
    """One row per hypothesis: id, the statement once, what is compared, then per column
    (pooled, each test set) the evidence (``cell_text``), the verdict (adjusted, and the
    unadjusted one where it differs), the runs and images behind it and the per-seed
    means; notes (the worst image of an ``every`` claim, what is missing) last. Plain text:
    render with ``to_html`` (which escapes)."""
    sets = list(dict.fromkeys(verdicts.dataset))
    by = verdicts.set_index(["id", "dataset"])
    rows = []
    for h in hypotheses:
        row = {"hypothesis": h.id, "statement": " ".join(h.statement.split()),
               "compared": _comparison(h)}
        notes = []
        for d in sets:
            if (h.id, d) not in by.index:
                row[d] = ""
                continue
            r = by.loc[(h.id, d)]
            verdict = r.adjusted + ("" if r.adjusted == r.verdict
                                    else f" (unadjusted: {r.verdict})")
            seeds = f"; per seed {seed_means_text(r)}" if r.n_seeds > 1 else ""
            row[d] = (f"{reader_cell(r)}: {verdict}; {r.n_images:.0f} images, "
                      f"{runs_label(r.n_seeds)}{seeds}")
            if isinstance(r.note, str) and r.note and not r.note.startswith("the 95%"):
                notes.append(f"{d}: {r.note}")
        row["notes"] = "; ".join(notes)
        rows.append(row)
    return pd.DataFrame(rows, columns=["hypothesis", "statement", "compared", *sets, "notes"])


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
    kinds = variant_kinds(results)
    n_p, n_b = (sum(k == "projected" and v.endswith(t) for v, k in kinds.items())
                for t in ("+P", "+B"))
    twins = "; ".join([*([f"{n_p} of them also evaluated projected, `+P`"] if n_p else []),
                       *([f"{n_b} projected within [0, 1], `+B`"] if n_b else [])])
    text = (f"Grid {code(grid.get('name', '?'))}: {trained} trained variant(s)"
            + (f" ({twins})" if twins else "")
            + f" and {base} closed-form baseline(s), {len(seeds)} seed(s) "
            f"({', '.join(map(str, seeds))}), scale x{d.get('scale', 4)}, preset "
            f"{code(d.get('preset', 'quick'))}, trained on {code(d.get('data', 'default'))}, "
            "tested on "
            f"{', '.join(f'{code(x)}' for x in datasets) or 'nothing (no finished run)'}; "
            f"{len(grid.get('hypotheses') or [])} declared hypothesis(es). "
            f"Perceptual distance: **{kind}**")
    if kind.startswith("stlpips"):
        text += (" (shift-tolerant LPIPS, used because the ImageNet trunk of standard LPIPS "
                 "is not on this machine; its values are not comparable with published LPIPS)")
    return text + "."


def manifold_finding(m: dict) -> str:
    """The H1 sentence from ``manifold.json`` (written by ``01_manifold``)."""
    toy = m["toy"]
    text = (f"**Ill-posedness** (H1): adding a null-space image to {code(m['image'])} moves it "
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
        where = f" ({code(artifacts.dataset.iloc[0])}, seed {artifacts.seed.iloc[0]})"
    return ("**Periodic artifacts**: share of the energy of `SR - bicubic` at the harmonics of "
            f"the LR sampling frequency{where}: "
            + (", ".join(f"{code(v)} {x:.1%}" for v, x in e.items()) or "no trained variant")
            + ".")


# Set5 x4 PSNR-Y as the papers report it, for scale: SRCNN (Dong et al., TPAMI 2016,
# Table 2: 30.48) and ESRGAN's PSNR-oriented RRDB network (Wang et al., ECCVW 2018,
# RRDB_PSNR_x4.pth: 32.73).
PUBLISHED_SET5_X4 = {"SRCNN": 30.48, "ESRGAN's RRDB_PSNR": 32.73}


def pixel_network(grid: dict) -> str | None:
    """The grid's first variant trained from scratch with the pixel loss alone."""
    for v, spec in grid["variants"].items():
        spec = {**grid["defaults"], **(spec or {})}
        if spec.get("loss") == "pixel" and not spec.get("init_from"):
            return v
    return None


def scale_lines(grid: dict, table: pd.DataFrame) -> list[str]:
    """How large this grid's generator is and where its pixel network stands: its
    parameters and FLOPs per LR pixel beside ESRGAN's generator, and its Set5 PSNR-Y
    (mean over seeds) beside the grid's closed-form baselines and the published SRCNN and
    RRDB_PSNR."""
    from srlib.models import PRESETS, generator_size

    v = pixel_network(grid)
    if v is None:
        return []
    spec = {**grid["defaults"], **grid["variants"][v]}
    preset, s = spec.get("preset", "quick"), int(spec.get("scale", 4))
    size = generator_size(preset, s, spec.get("upsampler", "nearest"),
                          **{k: spec[k] for k in ("nf", "nb", "gc") if k in spec})
    paper = max(PRESETS, key=lambda p: PRESETS[p]["nb"])  # ESRGAN's own: 23 RRDB blocks
    esrgan = generator_size(paper, 4)
    lines = [f"The generator of {code(v)} (preset {code(preset)}): "
             f"{size['params'] / 1e6:.2f} M parameters, {size['mflops_per_lr_pixel']:.2f} "
             f"MFLOPs per LR pixel; ESRGAN's generator (preset {code(paper)}): "
             f"{esrgan['params'] / 1e6:.2f} M and {esrgan['mflops_per_lr_pixel']:.1f}."]
    done = table[(table.status == "done") & (table.dataset == "Set5")]
    mean = done.groupby("variant").psnr_y.apply(lambda x: x.astype(float).mean())
    if v in mean:
        refs = [f"{code(b)} {mean[b]:.2f}" for b in rs.baseline_variants(grid) if b in mean]
        if s == 4:
            refs += [f"{k} {x:.2f} as published" for k, x in PUBLISHED_SET5_X4.items()]
        lines.append(f"{code(v)} on Set5 x{s}: PSNR-Y {mean[v]:.2f} dB"
                     + (f", beside {', '.join(refs)}" if refs else "") + ".")
    return lines


def page_title(grid: dict) -> str:
    """The page's heading: the grid's ``title``, else one naming the grid."""
    return grid.get("title") or f"The grid `{grid['name']}`: what its runs measured"


def shipped(reports: str | Path, paths: list[Path]) -> set[Path]:
    """Those of ``paths`` (files under ``reports``) that a reader of ``reports/index.html``
    finds beside it: files that exist, less, where the page is kept in git, those that
    git ignores (the committed study page is read from the repository, its runs are not
    in it). Outside a repository, or where the page itself is ignored, every file that
    exists."""
    reports = Path(reports)
    there = [p for p in paths if p.is_file()]
    if not there:
        return set()
    names = ["index.html", *(p.relative_to(reports).as_posix() for p in there)]
    try:
        done = subprocess.run(["git", "-C", str(reports), "check-ignore", "--stdin"],
                              input="\n".join(names), capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.SubprocessError):
        return set(there)
    ignored = set(done.stdout.splitlines()) if done.returncode in (0, 1) else set()
    if "index.html" in ignored:
        return set(there)
    return {p for p in there if p.relative_to(reports).as_posix() not in ignored}


def run_links(results: pd.DataFrame, reports: str | Path) -> pd.DataFrame:
    """One row per run (variant x seed; not the projected twins, which share their
    variant's run): ``variant``, ``seed``, ``status`` and ``notebook``, an HTML link to
    the run's executed notebook (relative to ``reports``) where a reader finds it beside
    the page (``shipped``), else its path as text, or empty where it does not exist.
    Text is HTML-escaped; render with ``to_html(escape=False, index=False)``."""
    from srlib.runs import run_dir

    reports = Path(reports)
    own = results[results["kind"] != "projected"] if "kind" in results else results
    own = own.drop_duplicates(["variant", "seed"])
    pages = [run_dir(reports, r.variant, int(r.seed)) / "train.html"
             for r in own.itertuples()]
    linked = shipped(reports, pages)
    rows = []
    for r, page in zip(own.itertuples(), pages, strict=True):
        href = html.escape(page.relative_to(reports).as_posix(), quote=True)
        cell = (f'<a href="{href}">{href}</a>' if page in linked
                else f"<code>{href}</code> (not kept with this page)" if page.is_file()
                else "")
        rows.append({"variant": html.escape(str(r.variant)), "seed": int(r.seed),
                     "status": html.escape(str(r.status)), "notebook": cell})
    return pd.DataFrame(rows, columns=["variant", "seed", "status", "notebook"])


RED = "- <span style='color:#b00020'>**{}**</span>"


def declared_lines(dec: dict | None) -> list[str]:
    """The provenance bullets of a grid's declaration (``srlib.results.declaration``): the
    first declaration, each extension and what it added, in red what changed instead."""
    if not dec:
        return []
    if "error" in dec:
        return [RED.format(f"Declared as {dec['path']} at {dec['commit']}, which cannot be "
                           f"checked: {dec['error']}.")]
    lines = [f"- declared: the grid as {code(dec['path'])} at commit {code(dec['commit'])} "
             f"({dec['date']}), before its runs"]
    for ext in dec.get("extensions", []):
        what = f"at commit {ext['commit']} ({ext['date']})"
        if ext["altered"]:
            lines.append(RED.format(f"Extended {what}, which also changed what was declared "
                                    f"before, in: {', '.join(ext['altered'])}."))
        else:
            lines.append(f"- extended {what.replace(ext['commit'], code(ext['commit']))}, "
                         f"before the runs it added: {', '.join(map(code, ext['added']))}; "
                         "nothing declared before it changed")
    if dec["changed"]:
        lines.append(RED.format(f"Changed since the last declaration in: "
                                f"{', '.join(dec['changed'])}."))
    else:
        lines.append("- its seeds, defaults, variants, hypotheses and critic are unchanged "
                     "since the last declaration (its prose may differ)")
    return lines


def invocation_lines(invocations: list[dict]) -> list[str]:
    """The provenance bullet of the runner invocations that wrote a result folder: the
    wall time each spent on its runs, and their sum (what training the grid took)."""
    if not invocations:
        return []
    total = sum(float(i.get("runs_seconds", 0)) for i in invocations)
    each = "; ".join(f"{code(i.get('commit', '?'))} {i.get('date', '?')}: "
                     f"{float(i.get('runs_seconds', 0)) / 60:.1f} min" for i in invocations)
    return [f"- wall time of the runs, over the {len(invocations)} invocation(s) of the runner "
            f"that wrote this folder: {total / 60:.0f} min ({each})"]


def provenance_text(prov: dict) -> str:
    """Markdown bullets from ``provenance.json``: commit, grid, date, device, packages and
    the wall time of each stage (s)."""
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in prov.get("stage_seconds", {}).items())
    commit = str(prov.get("commit", "?"))
    return "\n".join([
        f"- commit {code(commit)}, grid {code(prov.get('grid', '?'))}, "
        f"generated {prov.get('date', '?')}",
        *([RED.format("Built from a tree with uncommitted changes: this page is not what "
                      "any commit builds.")] if "uncommitted" in commit else []),
        *declared_lines(prov.get("declared")),
        f"- device: {prov.get('device', '?')}; Python {prov.get('python', '?')} on "
        f"{prov.get('platform', '?')}",
        "- packages: " + ", ".join(f"{k} {v}" for k, v in prov.get("packages", {}).items()),
        f"- wall time per stage: {stages or 'not recorded'} (this page's own stage not "
        "included; a rebuild that skips finished runs records only its own)",
        *invocation_lines(prov.get("invocations", [])),
        "- training time recorded by the runs, summed: "
        + (f"{prov['train_seconds_total'] / 60:.0f} min" if "train_seconds_total" in prov
           else "not recorded"),
    ])


def page_findings(results: pd.DataFrame, reports: str | Path) -> list[str]:
    """The sentences of what the runs report beside the hypotheses: H1's measurement from
    ``manifold.json`` (when present), the ``general_findings``, and the periodic-artifact
    sentence from ``artifacts.csv`` (when present)."""
    lines = []
    manifold = rs.read_manifold(reports)
    if manifold is not None:
        lines.append(manifold_finding(manifold))
    lines += general_findings(results)
    artifacts = rs.read_artifacts(reports)
    if artifacts is not None:
        lines.append(artifact_finding(artifacts))
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
    results = rs.read_results(folder)
    baselines = [v for v, k in variant_kinds(results).items() if k == "baseline"]
    summ = summary_table(results, rs.read_per_image(folder), baselines=baselines, **boot)
    if summ.empty:
        raise ValueError(f"{folder}: no done run with per-image results")
    pairs = []
    for c in columns:
        m, _, dataset = c.partition("@")
        if m not in table_metrics() or dataset not in set(summ["dataset"]):
            raise ValueError(f"column '{c}': expected METRIC@TESTSET, METRIC one of "
                             f"{', '.join(table_metrics())}, TESTSET one of "
                             f"{', '.join(dict.fromkeys(summ['dataset']))}")
        pairs.append((m, dataset))
    have = list(dict.fromkeys(summ["variant"]))
    unknown = [v for v in variants or [] if v not in have]
    if unknown:
        raise ValueError(f"variant(s) without a done run in {folder}: {', '.join(unknown)}; "
                         f"they are: {', '.join(have)}")
    head = ["variant", *(f"{metric(m).heading}, {d}" for m, d in pairs), "seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by = summ.set_index(["variant", "dataset"])
    for v in variants or have:
        cells = []
        for m, d in pairs:
            r = by.loc[(v, d)] if (v, d) in by.index else None
            cells.append("n/a" if r is None else stats.format_interval(
                r[f"{m}_mean"], r[f"{m}_low"], r[f"{m}_high"], metric(m).fmt))
        seeds = summ.loc[summ["variant"] == v, "n_seeds"].max()
        lines.append(f"| {code(v)} | " + " | ".join(cells) + f" | {seeds:.0f} |")
    commit = (rs.read_provenance(folder) or {}).get("commit", "?")
    lines += ["", f"Mean over test images x seeds [95% interval]; built from commit "
                  f"{code(commit)}."]
    return "\n".join(lines)


def check_verdict_inputs(hypotheses: list[Hypothesis], per_image: pd.DataFrame | None,
                         where: str, sets: list[str] | None = None) -> None:
    """Refuse, before any resampling, what ``verdicts`` cannot test: no per-image table, an
    unknown set in ``sets``, a hypothesis's set or metric (or its floor) that the table
    lacks; ``ValueError`` names the hypothesis, the field and what was expected. (A noise
    floor that a folder from before it lacks leaves that hypothesis ``not tested``.)"""
    if per_image is None:
        raise ValueError(f"{where}: no per-image results (per_image.csv)")
    have = list(dict.fromkeys(per_image["dataset"]))
    errors = [f"--sets: {tables.unknown('test set', d, have)}" for d in sets or []
              if d not in have]
    for h in hypotheses:
        errors += [f"hypothesis '{h.id}': datasets: {tables.unknown('test set', d, have)}"
                   for d in h.datasets if d not in have]
        if h.metric not in per_image.columns:
            errors.append(f"hypothesis '{h.id}': metric: '{h.metric}' is not a column of "
                          f"{where}; expected one of "
                          + ", ".join(c for c in per_image.columns if c not in stats.KEYS))
    if errors:
        raise ValueError("\n".join(errors))


def verdicts(folder: str | Path, grid_path: str | Path, sets: list[str] | None = None,
             **boot) -> pd.DataFrame:
    """``stats.verdict_table`` of the hypotheses of ``grid_path`` on ``folder``'s
    ``per_image.csv`` alone (no run folders needed): anyone can re-derive the verdicts of
    a committed study. ``sets``: only these test sets (and the pooled verdict over them)."""
    from srlib.grid import load_grid

    g = load_grid(grid_path)
    per_image = rs.read_per_image(folder)
    where = str(Path(folder) / rs.PER_IMAGE)
    check_verdict_inputs(g["hypotheses"], per_image, where, sets)
    if sets:
        per_image = per_image[per_image["dataset"].isin(sets)]
    return stats.verdict_table(g["hypotheses"], per_image,
                               baselines=rs.baseline_variants(g), **boot)


def main(argv: list[str] | None = None) -> int:
    """``python -m srlib.report FOLDER --columns psnr_y@Set5 ... [--variants ...]``: print
    ``headline_table`` (the README's table of the study); ``--verdicts GRID [--sets ...]``:
    print the verdict table (``verdicts``) as CSV."""
    ap = argparse.ArgumentParser(prog="python -m srlib.report",
                                 description="Print a result folder's headline table "
                                             "(Markdown) with 95% intervals, or its verdicts.")
    ap.add_argument("folder", help="a result folder, e.g. reports/study")
    ap.add_argument("--columns", nargs="+", metavar="METRIC@SET",
                    help=f"metric ({', '.join(table_metrics())}) @ test set, e.g. psnr_y@Set5")
    ap.add_argument("--variants", nargs="+", help="rows, in order (default: every variant)")
    ap.add_argument("--verdicts", metavar="GRID",
                    help="the grid whose hypotheses to test on FOLDER/per_image.csv alone; "
                         "prints verdicts.csv")
    ap.add_argument("--sets", nargs="+", metavar="SET", help="with --verdicts: only these sets")
    ap.add_argument("--power", metavar="GRID",
                    help="for each primary hypothesis of GRID: the variance components on "
                         "FOLDER (a pilot) and the seeds per side for 80%% power at 5%%")
    a = ap.parse_args(argv)
    if sum(map(bool, (a.columns, a.verdicts, a.power))) != 1:
        ap.error("give one of --columns (the headline table), --verdicts GRID or --power GRID")
    try:
        if a.power:
            print("\n".join(power_lines(a.folder, a.power)))
        elif a.verdicts:
            sys.stdout.write(verdicts(a.folder, a.verdicts, a.sets).to_csv(index=False))
        else:
            print(headline_table(a.folder, a.columns, a.variants))
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
