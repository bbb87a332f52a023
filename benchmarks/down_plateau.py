"""Where a `down` network's consistency stops: raw LR-PSNR of trained runs, several ways.

    python benchmarks/down_plateau.py RUN [RUN ...] [--batches 8]

For each finished run folder, prints one markdown row of raw LR-PSNR (dB, RGB, peak 1;
``srlib.metrics.lr_psnr`` of the network's output before clipping and rounding):

- ``Set5``: the study's figure, the mean over the five images; ``Set5 in8``: the same
  with 8 LR pixels off each border (where the LR depends on the padding);
- ``worst``: Set5's worst image, its LR-PSNR, the share of its LR error that is
  low-frequency (the error's 8 x 8 LR-pixel block means: a colour or brightness shift
  rather than detail) and its largest mean error in one colour channel, in 8-bit levels;
- ``patches``: ``--batches`` training batches drawn as the run's own sampler draws them
  (its data set, holdout, patch, batch; a fixed seed);
- ``loss, last 500``: the run's own ``down`` term over its last 500 iterations in
  ``losses.csv``, as an LR-PSNR (the raw weights, on the batches they were stepped on).

The generator scored is the run's ``generator.pt`` (the moving average where the run has
``ema_decay``): ``patches`` against ``loss, last 500`` compares the average with the raw
weights it averages, on the same kind of batch.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from srlib import runs
from srlib.data import PatchSampler, list_images, load_image
from srlib.evaluate import eval_pairs
from srlib.metrics import lr_psnr
from srlib.resize import BicubicDegradation
from srlib.train import split_holdout


def db(mse: float) -> float:
    return -10 * math.log10(mse)


@torch.no_grad()
def row(run: Path, g: torch.nn.Module, label: str, batches: int) -> dict:
    c = runs.read_config(run)
    op = BicubicDegradation(c["scale"])
    whole, inner, worst = [], [], None
    for name, _, lr in eval_pairs("Set5", op):
        sr = g(lr[None]).float()
        whole.append(float(lr_psnr(sr, lr[None], op)))
        inner.append(float(lr_psnr(sr, lr[None], op, crop=8)))
        err = (op.down(sr) - lr[None])[0]  # (3, h, w)
        low = F.avg_pool2d(err[None], 8)[0]
        if worst is None or whole[-1] < worst[1]:
            worst = (name, whole[-1], float(low.pow(2).mean() / err.pow(2).mean()),
                     float(err.mean((1, 2)).abs().max() * 255))
    paths, _ = split_holdout(list_images(c["data"], "train"), c["holdout"])
    sampler = PatchSampler([load_image(p) for p in paths], c["patch"], c["scale"],
                           c["batch"], "cpu", seed=12345)
    mse = []
    for _ in range(batches):
        _, lr = sampler.sample()
        mse.append(float((op.down(g(lr).float()) - lr).pow(2).mean()))
    losses = pd.read_csv(run / "losses.csv")
    tail = losses[losses["iter"] > losses["iter"].max() - 500]["down"].mean()
    return {"run": label, "precision": runs.read_metrics(run).get("precision", "?"),
            "ema": str(c.get("ema_decay") or 0),
            "Set5": np.mean(whole), "Set5 in8": np.mean(inner),
            "worst": f"{worst[0]} {worst[1]:.1f} (low-freq. {worst[2]:.0%}, "
                     f"shift {worst[3]:.1f}/255)",
            "patches": db(np.mean(mse)), "loss, last 500": db(tail)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished run folders with a down loss")
    ap.add_argument("--batches", type=int, default=8, help="training batches to score")
    args = ap.parse_args()
    rows = [row(r, runs.load_generator(r), str(r), args.batches) for r in args.runs]
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{r[k]:.2f}" if isinstance(r[k], float) else str(r[k])
                                for k in cols) + " |")


if __name__ == "__main__":
    main()
