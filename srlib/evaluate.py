"""Evaluate a model on a data set with the literature's conventions.

    python -m srlib.evaluate --model bicubic --data Set5 --scale 4 [--json]

Per image: HR mod-cropped to a multiple of s, ``LR = quantize(D(HR))``, ``SR = model(LR)``
quantised to 8 bits, then PSNR-Y / SSIM-Y (crop s), LR-PSNR and the range / null-space
split of the error (see ``srlib.metrics``). Prints a per-image table and the mean; with
``--json``, one JSON object instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

import pandas as pd
import torch

from srlib.data import dataset_name, eval_pair, load_dataset
from srlib.metrics import image_metrics
from srlib.resize import BicubicDegradation

MODELS = ("bicubic",)

Upscaler = Callable[[torch.Tensor], torch.Tensor]  # LR (1, 3, h, w) -> SR (1, 3, sh, sw)


def evaluate(
    upscale: Upscaler, data: str, scale: int, split: str = "test", device: str = "cpu"
) -> pd.DataFrame:
    """One row per image: ``image`` and the metrics of ``srlib.metrics.image_metrics``."""
    op = BicubicDegradation(scale)
    rows = []
    for name, img in load_dataset(data, split=split):
        hr, lr = eval_pair(img.to(device), op)
        with torch.no_grad():
            sr = upscale(lr[None])[0]
        if sr.shape != hr.shape:
            raise ValueError(f"{name}: model output {tuple(sr.shape)} != HR {tuple(hr.shape)}")
        rows.append({"image": name, **image_metrics(sr, hr, lr, op)})
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame, data: str, scale: int, model: str) -> dict:
    """Means of a per-image table, with what produced them."""
    out = {k: float(table[k].mean()) for k in table.columns if k != "image"}
    out.update(n_images=len(table), scale=scale, dataset=dataset_name(data), model=model)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m srlib.evaluate", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--model", required=True, help=f"one of {', '.join(MODELS)}")
    ap.add_argument(
        "--data", default="default",
        help="'default', a name under data/ or $SRLIB_DATA, or a folder of HR images",
    )
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--split", default="test", help="split of the default data set")
    ap.add_argument("--json", action="store_true", help="print one JSON object of the means")
    args = ap.parse_args(argv)
    if args.model not in MODELS:
        ap.error(f"--model {args.model!r}: expected one of {', '.join(MODELS)}")
    if args.scale < 1:
        ap.error(f"--scale must be an integer >= 1, got {args.scale}")
    op = BicubicDegradation(args.scale)
    try:
        table = evaluate(op.up, args.data, args.scale, split=args.split)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result = summary(table, args.data, args.scale, args.model)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{args.model} x{args.scale} on {result['dataset']} ({len(table)} images)")
        means = pd.DataFrame([{"image": "mean", **table.mean(numeric_only=True).to_dict()}])
        fmt = {k: "{:.3e}".format for k in ("range_mse", "null_mse")}
        full = pd.concat([table, means])
        print(full.to_string(index=False, float_format="%.4f", formatters=fmt))
    return 0


if __name__ == "__main__":
    sys.exit(main())
