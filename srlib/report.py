"""From run folders to the report: the results table, its summary, and the findings.

``collect`` turns ``reports/runs/<variant>/seed<k>/metrics.json`` (and ``error.txt`` of
failed runs) into one row per variant x seed x test set: ``reports/results.csv``.
``summary_table`` averages over seeds (mean and std); ``findings`` writes the sentences
of the report from those numbers only: every number, comparison and ranking in them is
computed here, and a hypothesis whose variants are missing is reported as not measured.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

METRICS = ["psnr_y", "ssim_y", "lpips", "lr_psnr", "range_mse", "null_mse", "lr_psnr_raw",
           "clipped", "train_seconds"]
COLUMNS = ["variant", "loss", "upsampler", "seed", "dataset", "status", *METRICS,
           "lpips_kind", "iters", "device", "error"]
# what each metric's better direction is, for rankings
HIGHER_IS_BETTER = {"psnr_y": True, "ssim_y": True, "lpips": False, "lr_psnr": True,
                    "range_mse": False, "null_mse": False}


def run_dir(root: Path, variant: str, seed: int) -> Path:
    """Where the runner puts a run: ``<root>/runs/<variant>/seed<k>``."""
    return Path(root) / "runs" / variant / f"seed{seed}"


def collect(root: Path, variants: dict[str, dict], seeds: list[int]) -> pd.DataFrame:
    """One row per variant x seed x test set (failed and missing runs: one row each)."""
    rows = []
    for variant, spec in variants.items():
        for seed in seeds:
            d = run_dir(root, variant, seed)
            base = {"variant": variant, "loss": spec.get("loss", variant),
                    "upsampler": spec.get("upsampler", ""), "seed": seed}
            err = d / "error.txt"  # written on failure, removed when a run starts anew
            if (d / "metrics.json").is_file() and not err.is_file():
                m = json.loads((d / "metrics.json").read_text())
                for name, ds in m["datasets"].items():
                    rows.append({**base, "dataset": name, "status": "done",
                                 **{k: ds.get(k, np.nan) for k in METRICS[:-1]},
                                 "train_seconds": m["train_seconds"],
                                 "lpips_kind": m["lpips_kind"], "iters": m["iters"],
                                 "device": m["device"], "error": ""})
            else:
                status = "failed" if err.is_file() else "missing"
                rows.append({**base, "dataset": "", "status": status,
                             "error": err.read_text().strip()[-2000:] if err.is_file() else ""})
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
            f"**The seed's failure** (H2): `{a}` is {abs(dp):.2f} dB "
            f"{'below' if dp < 0 else 'above'} `{b}` in PSNR-Y, with {ratio:.1f} times its "
            f"null-space MSE, while its LR-PSNR is {abs(dl):.2f} dB "
            f"{'higher' if dl >= 0 else 'lower'} ({m[a]['lr_psnr']:.2f} vs "
            f"{m[b]['lr_psnr']:.2f} dB). The seed's finding (at least 2 dB below, at least "
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
    failed = results[results.status != "done"]
    for _, r in failed.iterrows():
        out.append(f"**{r.status.capitalize()}**: `{r.variant}` seed {r.seed}"
                   + (f": `{r.error.splitlines()[-1]}`" if r.error else "."))
    return out
