"""Consistency after 8-bit saving: the plain projection ``P`` against the projection onto
the consistent images within [0, 1] (``project_box``), on Set14 images given a noisy SR
(bicubic x4 plus Gaussian noise, sd 0.15), so that many values leave [0, 1].

    SRLIB_DATA=../shared/datasets .venv/bin/python benchmarks/project_box.py [--images 6]

Prints per image: the share of P's values outside [0, 1], LR-PSNR after clipping and
rounding (ours and the challenge's) for both, Dykstra's rounds and its final distances."""

from __future__ import annotations

import argparse
import time

import torch

from srlib.data import eval_pair, load_dataset
from srlib.metrics import lr_psnr, quantize
from srlib.ntire import lr_psnr_ntire_float
from srlib.resize import BicubicDegradation


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--iters", type=int, default=300)
    a = ap.parse_args()
    op = BicubicDegradation(4)
    g = torch.Generator().manual_seed(0)
    for name, u8 in load_dataset("Set14", "test")[:a.images]:
        hr, lr = eval_pair(u8, op)
        sr = op.up(lr) + 0.15 * torch.randn(hr.shape, generator=g)
        plain = op.project(sr.double(), lr.double())
        t0 = time.perf_counter()
        boxed, info = op.project_box(sr, lr, iters=a.iters)
        seconds = time.perf_counter() - t0

        def saved(x: torch.Tensor, lr: torch.Tensor = lr, hr: torch.Tensor = hr) -> str:
            q = quantize(x.float())
            return f"{float(lr_psnr(q, lr, op)):.1f} / {lr_psnr_ntire_float(q, hr, 4):.1f} dB"

        outside = float(((plain < 0) | (plain > 1)).double().mean())
        print(f"{name:11s} P outside [0,1] {outside:5.1%}; saved LR-PSNR (ours / challenge's) "
              f"P {saved(plain)}, box {saved(boxed)}; {info['iters']} rounds, "
              f"{info['box_violation']:.1e} outside, |D x - LR| {info['lr_error']:.0e}, "
              f"{seconds:.2f} s")


if __name__ == "__main__":
    main()
