"""The report's tables and sentences, from a result folder's tables (``srlib.results``).

``summary_table`` gives, per test set and variant, the mean of each metric of the main
table (``srlib.metrics.METRICS`` with ``table``) and its 95% interval over test images x
seeds (from ``per_image.csv``, through ``srlib.stats``); ``format_table`` shows it. The
findings come from the hypotheses the grid declares (``hypothesis_verdicts``,
``hypothesis_sentence``): the paired difference, its interval and the verdict; a
hypothesis whose variants are missing is ``not tested``, with the reason. No variant name,
label or threshold is written here: the grid names the variants, the kind column
(baseline, trained, projected) orders them. Every text that comes from a grid reaches the
page escaped (``code``, ``plain``).
"""

from __future__ import annotations

import argparse
import html
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from srlib import results as rs
from srlib import runs, stats
from srlib.grid import Hypothesis, projected_name
from srlib.metrics import metric, metrics_where
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
            out += [v] + ([projected_name(v)] if projected_name(v) in kinds else [])
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


def _cells(s: pd.DataFrame, m: str) -> list[str]:
    """The ``'mean [low, high]'`` cells of metric ``m`` in a summary (``summary_with_ci``)."""
    return [stats.format_interval(a, lo, hi, metric(m).fmt) for a, lo, hi in
            zip(s[f"{m}_mean"], s[f"{m}_low"], s[f"{m}_high"], strict=True)]


def format_table(summary: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The report's table for one test set: ``variant``, ``kind``, one column per metric
    of ``summary_table`` as ``'mean [low, high]'`` (``'n/a'`` where not measured; headed by
    its ``heading``, LPIPS by its kind), ``images``, ``seeds`` and ``iterations`` (total; a
    fine-tune as source + own)."""
    s = summary[summary.dataset == dataset] if len(summary) else summary
    table = pd.DataFrame({"variant": s.get("variant", pd.Series(dtype=object)).to_numpy(),
                          "kind": s.get("kind", pd.Series(dtype=object)).to_numpy()})
    kind = next((str(k) for k in s.get("lpips_kind", []) if isinstance(k, str) and k), "")
    for m in table_metrics():
        if f"{m}_mean" in s:
            head = f"LPIPS ({kind})" if m == "lpips" and kind else metric(m).heading
            table[head] = _cells(s, m)
    table["images"] = ["" if pd.isna(n) else f"{n:.0f}" for n in s.get("n_images", [])]
    table["seeds"] = ["" if pd.isna(n) else f"{n:.0f}" for n in s.get("n_seeds", [])]
    table["iterations"] = s.get("iterations", pd.Series(dtype=object)).to_numpy()
    return table


def samples_table(per_image: pd.DataFrame | None, **boot) -> pd.DataFrame:
    """The K-sample statistics of the stochastic variants (rows of ``per_image`` with a
    ``diversity``), one row per test set x variant: each column of ``sample_metrics()`` as
    ``'mean [low, high]'`` over images x seeds (``stats.summary_with_ci``), headed by its
    label, then ``images`` and ``seeds``. Empty when no variant drew samples."""
    if per_image is None or "diversity" not in per_image:
        return pd.DataFrame()
    t = per_image[per_image["diversity"].notna()]
    if t.empty:
        return pd.DataFrame()
    metrics = [m for m in sample_metrics() if m in t]
    s = stats.summary_with_ci(t, metrics, **boot)
    out = s[["dataset", "variant"]].rename(columns={"dataset": "test set"})
    for m in metrics:
        out[metric(m).label] = _cells(s, m)
    out["images"], out["seeds"] = s["n_images"], s["n_seeds"]
    return out


def table_note(summary: pd.DataFrame) -> str:
    """One Markdown paragraph on what the tables' cells are (``summary_table``)."""
    parts = []
    if len(summary):
        parts.append("Each cell: the mean over test images x seeds and its 95% interval "
                     "[low, high] (percentile bootstrap with the test image as the unit "
                     f"resampled, seeds too from {stats.MIN_SEEDS_TO_RESAMPLE} seeds on; a "
                     "seed-independent baseline counts once per image).")
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


def hypothesis_sentence(row: pd.Series, iterations: dict[str, str] | None = None,
                        unequal_ok: bool = False) -> str:
    """One finding from a row of ``hypothesis_verdicts``: the paired difference ``a - b``
    in its metric (its unit) with its 95% interval, the images and seeds behind it,
    whether the interval excludes 0, the expected direction and the verdict.
    ``iterations`` (``iteration_labels``): a sentence where a and b differ in training
    length (``unequal_ok``: the grid accepts it)."""
    m = metric(row.metric)
    words, unit, fmt = m.words, m.unit, m.fmt
    unit = f" {unit}" if unit else ""
    where = f" on {code(row.dataset)}" if row.dataset else ""
    head = f"**{plain(row.id)}**{where}: {words} of {code(row.a)} minus {_side(row.b)}"
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
        text += (f" {code(row.a)} and {code(row.b)} were trained for different numbers of "
                 f"iterations ({la} and {lb})" + ("; the grid accepts this for this hypothesis "
                                       "(`unequal_iters_ok`)." if unequal_ok else "."))
    return text


def hypothesis_findings(hypotheses: list[Hypothesis], verdicts: pd.DataFrame,
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


def findings(results: pd.DataFrame, dataset: str, verdicts: pd.DataFrame | None = None,
             hypotheses: list[Hypothesis] = ()) -> list[str]:
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
        why = runs.last_line(r.error)
        out.append(f"**{str(r.status).capitalize()}**: {code(r.variant)} seed {r.seed}"
                   + (f": {code(why)}" if why else "."))
    for status, group in rest[~rest.status.isin(["failed", "stale"])].groupby("status",
                                                                              sort=False):
        runs_ = ", ".join(f"{code(v)} seed {s}" for v, s in zip(group.variant, group.seed,
                                                             strict=True))
        out.append(f"**{str(status).capitalize()}**: {runs_}.")
    return out


def hypothesis_statements(hypotheses: list[Hypothesis]) -> str:
    """The grid's hypotheses in full, as Markdown bullets: id, what is compared, the
    metric and the expected direction, then the statement as the grid words it."""
    if not hypotheses:
        return ("The grid declares no hypothesis (`hypotheses:` in its file), so this page "
                "states no verdict.")
    lines = []
    for h in hypotheses:
        words = metric(h.metric).words
        sets = f", on {', '.join(f'{code(d)}' for d in h.datasets)}" if h.datasets else ""
        lines.append(f"- **{plain(h.id)}** ({words}: expected {_expected(h)}{sets}): "
                     f"{plain(h.statement)}")
    return "\n".join(lines)


def verdict_display(verdicts: pd.DataFrame) -> pd.DataFrame:
    """``hypothesis_verdicts`` for the page: hypothesis, statement, comparison, metric,
    test set, ``a - b`` as ``'mean [low, high]'`` (the metric's unit), images x seeds,
    verdict (with its note)."""
    rows = []
    for _, r in verdicts.iterrows():
        m = metric(r.metric)
        words, unit, fmt = m.words, m.unit, m.fmt
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
    text = (f"Grid {code(grid.get('name', '?'))}: {trained} trained variant(s)"
            + (f" ({twins} of them also evaluated projected, `+P`)" if twins else "")
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


def run_links(results: pd.DataFrame, reports: str | Path) -> pd.DataFrame:
    """One row per run (variant x seed; not the projected twins, which share their
    variant's run): ``variant``, ``seed``, ``status`` and ``notebook``, an HTML link to
    the run's executed notebook (relative to ``reports``) where it exists, else empty.
    Text is HTML-escaped; render with ``to_html(escape=False, index=False)``."""
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
        f"- commit {code(prov.get('commit', '?'))}, grid {code(prov.get('grid', '?'))}, "
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
                  hypotheses: list[Hypothesis] = ()) -> list[str]:
    """Every finding sentence of the report page: H1 from ``manifold.json`` (when present),
    one sentence per declared hypothesis x test set (``hypothesis_verdicts``), the
    ``general_findings``, and the periodic-artifact sentence from ``artifacts.csv`` (when
    present)."""
    lines = []
    manifold = rs.read_manifold(reports)
    if manifold is not None:
        lines.append(manifold_finding(manifold))
    if verdicts is not None:
        lines += hypothesis_findings(list(hypotheses), verdicts, results)
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


def main(argv: list[str] | None = None) -> int:
    """``python -m srlib.report FOLDER --columns psnr_y@Set5 ... [--variants ...]``: print
    ``headline_table`` (the README's table of the study)."""
    ap = argparse.ArgumentParser(prog="python -m srlib.report",
                                 description="Print a result folder's headline table "
                                             "(Markdown) with 95% intervals.")
    ap.add_argument("folder", help="a result folder, e.g. reports/study")
    ap.add_argument("--columns", nargs="+", required=True, metavar="METRIC@SET",
                    help=f"metric ({', '.join(table_metrics())}) @ test set, e.g. psnr_y@Set5")
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
