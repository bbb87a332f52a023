"""Where a `down` network's consistency stops: raw LR-PSNR of trained runs, three ways.

    python benchmarks/down_plateau.py RUN [RUN ...] [--data Sun80] [--batches 8]

For each finished run folder, prints one markdown row of raw LR-PSNR (dB, RGB, peak 1;
``srlib.metrics.lr_psnr`` of the network's output before clipping and rounding):

- on Set5 (the study's figure), over the whole image and with 4 and 8 LR pixels off each
  border (where the LR depends on the padding);
- on training patches: ``--batches`` batches drawn as the run's own sampler draws them
  (its data set, holdout, patch, batch; a fixed seed), whole and with 4 LR px off;
- the run's own training loss over its last 500 iterations, as an LR-PSNR
  (``-10 log10`` of the mean ``down`` term of ``losses.csv``: the raw weights, not the
  moving average, on the batches they were stepped on);
- the same Set5 figure with the network run under bfloat16 autocast (inference only).

The saved generator is the run's exponential moving average (EMA) when ``ema_decay`` is
set. Comparing a run with its ``--ema-decay 0`` twin (same seed, same data order) tells
whether the average, rather than the loss or the precision, sets the plateau.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from srlib import runs
from srlib.data import PatchSampler, list_images, load_image
from srlib.evaluate import eval_pairs
from srlib.metrics import psnr_rgb
from srlib.resize import BicubicDegradation
from srlib.train import split_holdout


def lr_psnr_db(mse: float) -> float:
    return -10 * math.log10(mse)


@torch.no_grad()
def row(run: Path, batches: int) -> dict:
    c = runs.read_config(run)
    g = runs.load_generator(run)
    op = BicubicDegradation(c["scale"])
    whole, in4, in8, bf16 = [], [], [], []
    for _, _, lr in eval_pairs("Set5", op):
        sr = g(lr[None]).float()
        down = op.down(sr)
        whole.append(float(psnr_rgb(down, lr[None])))
        in4.append(float(psnr_rgb(down, lr[None], crop=4)))
        in8.append(float(psnr_rgb(down, lr[None], crop=8)))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            sr16 = g(lr[None]).float()
        bf16.append(float(psnr_rgb(op.down(sr16), lr[None])))
    paths, _ = split_holdout(list_images(c["data"], "train"), c["holdout"])
    sampler = PatchSampler([load_image(p) for p in paths], c["patch"], c["scale"],
                           c["batch"], "cpu", seed=12345)
    mse, inner = [], []
    for _ in range(batches):
        hr, lr = sampler.sample()
        down = op.down(g(lr).float())
        mse.append(float((down - lr).pow(2).mean()))
        inner.append(float(psnr_rgb(down, lr, crop=4).mean()))
    losses = pd.read_csv(run / "losses.csv")
    tail = losses[losses["iter"] > losses["iter"].max() - 500]["down"].mean()
    return {"run": str(run), "precision": runs.read_metrics(run).get("precision"),
            "ema": str(c.get("ema_decay") or 0),
            "Set5": np.mean(whole), "Set5 in4": np.mean(in4), "Set5 in8": np.mean(in8),
            "patches": lr_psnr_db(np.mean(mse)), "patches in4": np.mean(inner),
            "loss, last 500": lr_psnr_db(tail), "Set5 bf16": np.mean(bf16)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished run folders with a down loss")
    ap.add_argument("--batches", type=int, default=8, help="training batches to score")
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = [row(r, args.batches) for r in args.runs]
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{r[k]:.2f}" if isinstance(r[k], float) else str(r[k])
                                for k in cols) + " |")


if __name__ == "__main__":
    main()
