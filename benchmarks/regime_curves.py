"""The regime sweep's runs as a table and curves: quality against training minutes.

    python benchmarks/regime_curves.py OUT [OUT ...] --png curves.png [--pinv 29.228]

Reads every run folder under ``OUT/runs`` (``regime_sweep.py`` writes them) and prints
one markdown row per run: its length, training minutes (``train_seconds``, measured as
the run trained, validation included), iterations per second, the evaluation's seconds
(from the times ``generator.pt`` and ``metrics.json`` were written), Set5 PSNR-Y (and
its difference to ``--pinv``), BSD68 PSNR-Y, Set5 LPIPS, raw LR-PSNR (before 8-bit
saving), the last held-out validation PSNR-Y and its gain over the last 20% of the
iterations (interpolated between validation points: the plateau criterion).

The figure: held-out PSNR-Y against training minutes for the runs with a pixel loss;
for those with a ``down`` loss, their own loss as an LR-PSNR, ``-10 log10(down MSE)`` of
the training batches (raw outputs, float32), against minutes.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def minutes_at(losses: pd.DataFrame, iters: pd.Series) -> np.ndarray:
    """Training minutes at ``iters``, interpolated from ``losses.csv``'s seconds."""
    return np.interp(iters, losses["iter"], losses["seconds"]) / 60


def summarise(run: Path) -> dict | None:
    if not (run / "metrics.json").is_file():
        return None
    m = json.loads((run / "metrics.json").read_text())
    c = m["config"]
    row = {"run": run.name, "loss": c["loss"], "upsampler": c["upsampler"], "skip": c["skip"],
           "iters": m["iters"], "train_min": m["train_seconds"] / 60,
           "it_s": m["its_per_second"], "precision": m.get("precision") or "fp32",
           "eval_s": (run / "metrics.json").stat().st_mtime
           - (run / "generator.pt").stat().st_mtime,
           "set5": m["datasets"]["Set5"]["psnr_y"],
           "bsd68": (m["datasets"].get("BSD68") or {}).get("psnr_y", math.nan),
           "lpips": m["datasets"]["Set5"].get("lpips") or math.nan,
           "lr_psnr_raw": m["datasets"]["Set5"].get("lr_psnr_raw", math.nan)}
    v = pd.read_csv(run / "validation.csv")
    row["val"] = v.psnr_y.iloc[-1]
    row["val_gain_last20"] = row["val"] - np.interp(0.8 * m["iters"], v["iter"], v.psnr_y)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outs", nargs="+", help="regime_sweep.py --out folders")
    ap.add_argument("--png", required=True, help="the figure's file")
    ap.add_argument("--pinv", type=float, default=None, help="pinv's Set5 PSNR-Y (dB)")
    ap.add_argument("--csv", default=None, help="also write the table here")
    a = ap.parse_args()
    folders = sorted(d for out in a.outs for d in (Path(out) / "runs").iterdir() if d.is_dir())
    rows = [r for r in map(summarise, folders) if r]
    table = pd.DataFrame(rows)
    if a.pinv is not None:
        table.insert(table.columns.get_loc("set5") + 1, "vs_pinv", table.set5 - a.pinv)
    if a.csv:
        table.to_csv(a.csv, index=False)
    print("| " + " | ".join(table.columns) + " |")
    print("|" + "---|" * len(table.columns))
    for r in table.itertuples(index=False):
        print("| " + " | ".join(f"{v:.3f}" if k == "lpips" else f"{v:.2f}"
                                if isinstance(v, float) else str(v)
                                for k, v in zip(table.columns, r, strict=True)) + " |")

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax in (ax1, ax2):
        ax.set_prop_cycle(color=plt.cm.tab20.colors)  # a colour per run
    for run in folders:
        if not (run / "losses.csv").is_file():
            continue
        losses = pd.read_csv(run / "losses.csv")
        if "down" in losses and "pixel" not in losses:
            ax2.plot(losses.seconds / 60, -10 * np.log10(losses["down"].rolling(10).mean()),
                     label=run.name, lw=1)
        elif (run / "validation.csv").is_file():
            v = pd.read_csv(run / "validation.csv")
            ax1.plot(minutes_at(losses, v["iter"]), v.psnr_y, marker=".", label=run.name)
    if a.pinv is not None:
        ax1.set_title(f"pixel loss: held-out PSNR-Y (Set5 pinv: {a.pinv:.2f} dB)")
    else:
        ax1.set_title("pixel loss: held-out PSNR-Y")
    ax1.set(xlabel="training minutes", ylabel="PSNR-Y (dB), 8 held-out Sun80 crops")
    ax2.set(title="down loss: its own loss as LR-PSNR (training batches, raw)",
            xlabel="training minutes", ylabel="-10 log10(down MSE) (dB)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(a.png, dpi=90)


if __name__ == "__main__":
    main()
