"""From run folders to the report: the results table, its summary, and the findings.

``collect`` turns ``reports/runs/<variant>/seed<k>/metrics.json`` (and ``error.txt`` of
failed runs) into one row per variant x seed x test set: ``reports/results.csv``; a run
that is not done is one row with its status (failed, stale, interrupted, not run).
``summary_table`` averages over seeds (mean and std); ``findings`` writes the sentences
of the report from those numbers only: every number, comparison and ranking in them is
computed here, and a hypothesis whose variants are missing is reported as not measured.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from srlib import runs

METRICS = ["psnr_y", "ssim_y", "lpips", "lr_psnr", "range_mse", "null_mse", "lr_psnr_raw",
           "clipped", "train_seconds"]
COLUMNS = ["variant", "loss", "upsampler", "seed", "dataset", "status", *METRICS,
           "lpips_kind", "iters", "device", "error"]
# what each metric's better direction is, for rankings
HIGHER_IS_BETTER = {"psnr_y": True, "ssim_y": True, "lpips": False, "lr_psnr": True,
                    "range_mse": False, "null_mse": False}


def stale_reason(run: str | Path) -> str | None:
    """Why a fine-tune's outputs no longer follow from its source, or ``None``.
    ``runs.is_stale`` compares the ``source.json`` it recorded; a run from before
    ``source.json`` existed is stale when its source's generator is newer than its own
    config (written when it started)."""
    run = Path(run)
    why = runs.is_stale(run)
    if why or runs.recorded_source(run) is not None or not (run / runs.CONFIG).is_file():
        return why
    src = runs.read_json(run / runs.CONFIG).get("init_from")
    if not src:
        return None
    gen = Path(src) / runs.GENERATOR
    if not gen.is_file():
        return f"its source {src} has no {runs.GENERATOR} (failed or removed)"
    if gen.stat().st_mtime > (run / runs.CONFIG).stat().st_mtime:
        return f"its source {src} was retrained after it"
    return None


def run_status(run: str | Path) -> tuple[str, str]:
    """``(status, why)`` of a run folder: ``done``; ``failed`` (``error.txt``: its last
    line); ``stale`` (a fine-tune whose source changed since); ``interrupted`` (started,
    resumable); ``not run`` (nothing there)."""
    run = Path(run)
    if (run / runs.ERROR).is_file():
        return "failed", error_line((run / runs.ERROR).read_text())
    if runs.is_finished(run):
        why = stale_reason(run)
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


def collect(root: Path, variants: dict[str, dict], seeds: list[int]) -> pd.DataFrame:
    """One row per variant x seed x test set; a run that is not done (failed, stale,
    interrupted, not run) is one row with its status and why."""
    rows = []
    for variant, spec in variants.items():
        for seed in seeds:
            d = runs.run_dir(root, variant, seed)
            base = {"variant": variant, "loss": (spec or {}).get("loss", variant),
                    "upsampler": (spec or {}).get("upsampler", ""), "seed": seed}
            try:
                status, why = run_status(d)
                m = runs.read_metrics(d) if status == "done" else {}
            except ValueError as err:  # a damaged file: this run fails, not the table
                status, why = "failed", str(err)
            if status != "done":
                rows.append({**base, "dataset": "", "status": status, "error": why})
                continue
            for name, ds in m["datasets"].items():
                rows.append({**base, "dataset": name, "status": "done",
                             **{k: ds.get(k, np.nan) for k in METRICS[:-1]},
                             "train_seconds": m.get("train_seconds", np.nan),
                             "lpips_kind": m.get("lpips_kind", ""), "iters": m.get("iters"),
                             "device": m.get("device", ""), "error": ""})
    return pd.DataFrame(rows, columns=COLUMNS)


def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per (dataset, variant), with the number of seeds."""
    done = results[results.status == "done"]
    if done.empty:
        return pd.DataFrame()
    g = done.groupby(["dataset", "variant"], sort=False)
    out = g[METRICS].agg(["mean", "std"])
    out.columns = [f"{m}_{s}" for m, s in out.columns]
    out["seeds"] = g.size()
    out["iters"] = g["iters"].first()
    out["loss"] = g["loss"].first()
    out["lpips_kind"] = g["lpips_kind"].first()
    return out.reset_index()


def format_table(summary: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The report's table for one data set: 'mean +- std' strings, LPIPS headed by kind."""
    s = summary[summary.dataset == dataset]
    kind = s.lpips_kind.iloc[0] if len(s) else "lpips"
    fmt = {"psnr_y": ("PSNR-Y (dB)", "{:.2f}"), "ssim_y": ("SSIM-Y", "{:.4f}"),
           "lpips": (f"LPIPS ({kind})", "{:.3f}"), "lr_psnr": ("LR-PSNR (dB)", "{:.2f}"),
           "lr_psnr_raw": ("LR-PSNR raw (dB)", "{:.2f}"), "clipped": ("clipped", "{:.1%}"),
           "range_mse": ("range MSE", "{:.2e}"), "null_mse": ("null MSE", "{:.2e}"),
           "train_seconds": ("train s", "{:.0f}")}
    table = pd.DataFrame({"variant": s.variant.values, "loss": s["loss"].values})
    for m, (head, f) in fmt.items():
        mean, std = s[f"{m}_mean"].values, s[f"{m}_std"].values
        table[head] = [f.format(a) + ("" if np.isnan(b) else f" ± {f.format(b)}")
                       for a, b in zip(mean, std, strict=True)]
    table["iters"] = s["iters"].values
    table["seeds"] = s.seeds.values
    return table


def _means(summary: pd.DataFrame, dataset: str) -> dict[str, dict[str, float]]:
    s = summary[summary.dataset == dataset].set_index("variant")
    return {v: {m: s.loc[v, f"{m}_mean"] for m in METRICS} | {"seeds": s.loc[v, "seeds"]}
            for v in s.index}


def _per_seed_holds(results: pd.DataFrame, dataset: str, a: str, b: str, test) -> str:
    """'in k of n seeds' for a claim about variants a and b tested per seed."""
    r = results[(results.status == "done") & (results.dataset == dataset)]
    pa, pb = r[r.variant == a].set_index("seed"), r[r.variant == b].set_index("seed")
    seeds = sorted(set(pa.index) & set(pb.index))
    k = sum(bool(test(pa.loc[s], pb.loc[s])) for s in seeds)
    return f"in {k} of {len(seeds)} seed{'s' if len(seeds) != 1 else ''}"


def findings(results: pd.DataFrame, dataset: str) -> list[str]:
    """Markdown sentences for one test set, each computed from ``results``."""
    summ = summary_table(results)
    if summ.empty:  # nothing finished (e.g. --only into a new folder): only the statuses
        return _not_done(results)
    m = _means(summ, dataset)
    out = []
    a, b = "down/pixelshuffle", "pixel/pixelshuffle"
    if a in m and b in m:
        dp = m[a]["psnr_y"] - m[b]["psnr_y"]
        ratio = m[a]["null_mse"] / m[b]["null_mse"]
        dl = m[a]["lr_psnr"] - m[b]["lr_psnr"]
        holds = _per_seed_holds(
            results, dataset, a, b,
            lambda x, y: (x.psnr_y <= y.psnr_y - 2 and x.null_mse >= 3 * y.null_mse
                          and x.lr_psnr >= y.lr_psnr))
        out.append(
            f"**The proposal's failure** (H2): `{a}` is {abs(dp):.2f} dB "
            f"{'below' if dp < 0 else 'above'} `{b}` in PSNR-Y, with {ratio:.1f} times its "
            f"null-space MSE, while its LR-PSNR is {abs(dl):.2f} dB "
            f"{'higher' if dl >= 0 else 'lower'} ({m[a]['lr_psnr']:.2f} vs "
            f"{m[b]['lr_psnr']:.2f} dB). The proposal's reported failure (at least 2 dB below, "
            f"at least "
            f"3 times the null MSE, LR-PSNR at least as high) holds {holds}."
            + (f" Before clipping to [0, 1] and rounding, the LR-PSNR of `{a}` is "
               f"{m[a]['lr_psnr_raw']:.2f} dB (`{b}`: {m[b]['lr_psnr_raw']:.2f} dB); "
               f"{m[a]['clipped']:.1%} of its raw values lie outside [0, 1] "
               f"(`{b}`: {m[b]['clipped']:.1%})."
               if not np.isnan(m[a]["lr_psnr_raw"]) else "")
        )
    downs = {v: x for v, x in m.items() if v.startswith("down/")}
    if len(downs) >= 2:
        order = sorted(downs, key=lambda v: downs[v]["null_mse"])
        parts = ", ".join(f"`{v}` {downs[v]['null_mse']:.2e}" for v in order)
        best = max(downs, key=lambda v: downs[v]["psnr_y"])
        out.append(
            f"**The upsampler** (H3), with `down` alone: null-space MSE from lowest to highest: "
            f"{parts}. The best PSNR-Y among them is `{best}` ({downs[best]['psnr_y']:.2f} dB)."
        )
    gan = [v for v in ("down+adv/pixelshuffle", "esrgan", "pixel/pixelshuffle") if v in m]
    if len(gan) >= 2:
        parts = "; ".join(f"`{v}` {m[v]['psnr_y']:.2f} dB / {m[v]['lpips']:.3f} / "
                          f"{m[v]['lr_psnr']:.2f} dB" for v in gan)
        best_p = min(gan, key=lambda v: m[v]["lpips"])
        out.append(
            f"**Adversarial fixes** (H4), PSNR-Y / LPIPS / LR-PSNR: {parts}. Lowest LPIPS: "
            f"`{best_p}`."
        )
    if "bicubic" in m:
        trained = {v: x for v, x in m.items() if v != "bicubic"}
        above = [v for v, x in trained.items() if x["psnr_y"] > m["bicubic"]["psnr_y"]]
        out.append(
            f"**Against bicubic** ({m['bicubic']['psnr_y']:.2f} dB PSNR-Y): "
            f"{len(above)} of {len(trained)} trained variants score higher"
            + (f" ({', '.join(f'`{v}`' for v in above)})." if above else ".")
        )
    iters = {v: int(x) for v, x in summ[summ.dataset == dataset].set_index("variant")["iters"]
             .items() if v != "bicubic"}
    if len(set(iters.values())) > 1:
        parts = ", ".join(f"`{v}` {n}" for v, n in iters.items())
        out.append(f"**Training length differs** between variants (iterations: {parts}); "
                   "compare those variants with that in mind.")
    out += _not_done(results)
    return out


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


# ---- the report page's own sentences and tables (04_report) ------------------------------

def grid_summary(results: pd.DataFrame, grid: dict) -> str:
    """One Markdown paragraph: the grid, its variants and seeds, scale, preset, data, and
    which perceptual distance the tables show (ST-LPIPS flagged as not comparable)."""
    done = results[results.status == "done"]
    seeds = sorted(int(s) for s in results.seed.unique())
    datasets = list(dict.fromkeys(done.dataset))
    kind = str(done.lpips_kind.iloc[0]) if len(done) else "none"
    d = grid.get("defaults", {})
    text = (f"Grid `{grid.get('name', '?')}`: {results.variant.nunique()} variants x "
            f"{len(seeds)} seed(s) ({', '.join(map(str, seeds))}), scale "
            f"x{d.get('scale', 4)}, preset `{d.get('preset', 'quick')}`, trained on "
            f"`{d.get('data', 'default')}`, tested on "
            f"{', '.join(f'`{x}`' for x in datasets) or 'nothing (no finished run)'}. "
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
    """One row per variant x seed: ``variant``, ``seed``, ``status`` and ``notebook``, an
    HTML link to the run's executed notebook (relative to ``reports``) where it exists,
    else empty. Text is HTML-escaped; render with ``to_html(escape=False, index=False)``."""
    import html

    from srlib.runs import run_dir

    reports = Path(reports)
    rows = []
    for _, r in results.drop_duplicates(["variant", "seed"]).iterrows():
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
        f"- wall time per stage: {stages or 'not recorded'} (this page's own stage not included)",
    ])


def page_findings(results: pd.DataFrame, reports: str | Path) -> list[str]:
    """Every finding sentence of the report page: H1 from ``manifold.json`` (when present),
    ``findings`` per test set (prefixed by its name when there are several), and the
    periodic-artifact sentence from ``artifacts.csv`` (when present)."""
    reports = Path(reports)
    lines = []
    if (reports / "manifold.json").is_file():
        lines.append(manifold_finding(json.loads((reports / "manifold.json").read_text())))
    done = results[results.status == "done"]
    datasets = list(dict.fromkeys(done.dataset))
    for d in datasets:
        lines += [f"*{d}*: {s}" if len(datasets) > 1 else s for s in findings(results, d)]
    if (reports / "artifacts.csv").is_file():
        lines.append(artifact_finding(pd.read_csv(reports / "artifacts.csv")))
    return lines
