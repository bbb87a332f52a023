"""Training throughput of the generator step, against the machine's matmul peak.

    python benchmarks/train_throughput.py [--presets quick study esrgan] [--loss pixel]
        [--upsampler nearest] [--precision fp32 bf16] [--iters N] [--device cpu|cuda]

Per preset: HR patches per second of ``srlib.train.train`` itself (its measured
``its_per_second``: sample a batch on the device, forward, loss, backward, Adam step,
logging; evaluation excluded), on a throw-away run; the FLOPs of one iteration
counted from the layer shapes (multiply-adds x 2 of every convolution, forward; a
training iteration counted as 3 x forward, the usual backward = 2 x forward), the
achieved FLOP/s, and its share of a measured matmul peak of the same device (float32
on the CPU; bf16 on a GPU, where the step runs under bf16 autocast as in training), once
per ``--precision`` (``srlib.train``'s field: ``auto``, ``bf16`` or ``fp32``). ``HR
share``: the part of the FLOPs in convolutions whose output is at HR size (the tail after
the upsampler; all of ``pre``), against those at LR and intermediate sizes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from srlib.data import load_dataset
from srlib.models import PRESETS, build_generator, conv_flops
from srlib.train import Config, train


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, repeats: int = 10) -> float:
    """Achieved FLOP/s of an n x n matmul (the best of ``repeats``)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    best = float("inf")
    for _ in range(repeats + 2):
        sync()
        t0 = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=list(PRESETS))
    ap.add_argument("--loss", default="pixel")
    ap.add_argument("--upsampler", default="nearest")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--precision", nargs="+", default=["auto"],
                    help="srlib.train's precision, one row each: auto, bf16, fp32")
    ap.add_argument("--iters", type=int,
                    help="iterations (default: 30 quick and study, 3 esrgan on the CPU)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    peak_dtype = torch.bfloat16 if cuda else torch.float32
    peak = matmul_peak(dev, peak_dtype, n=8192 if cuda else 2048)
    name = torch.cuda.get_device_name(dev) if cuda else "cpu"
    print(f"device {name}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{peak_dtype} matmul peak {peak / 1e12:.3f} TFLOP/s")
    print(f"{'preset':8s} {'prec':>5s} {'batch':>5s} {'patch':>5s} {'it/s':>8s} "
          f"{'patches/s':>10s} {'GFLOP/it':>9s} {'HR share':>8s} {'TFLOP/s':>8s} "
          f"{'of peak':>8s}")
    with tempfile.TemporaryDirectory() as tmp:
        test = Path(tmp) / "test"  # one small image: evaluation is not what is measured
        test.mkdir()
        img = load_dataset("default", "test")[0][1][:, :64, :64].permute(1, 2, 0).numpy()
        Image.fromarray(img).save(test / "crop.png")
        for preset in args.presets:
            p = PRESETS[preset]
            iters = args.iters or (3 if preset == "esrgan" and not cuda else 30)
            g = build_generator(preset, args.scale, args.upsampler)
            lr = torch.rand(p["batch"], 3, p["patch"] // args.scale, p["patch"] // args.scale)
            forward = conv_flops(g, lr)
            flops, hr_share = 3 * forward, conv_flops(g, lr, hr_only=True) / forward
            for precision in args.precision:
                r = train(Config(loss=args.loss, upsampler=args.upsampler, preset=preset,
                                 iters=iters, scale=args.scale, precision=precision,
                                 out=f"{tmp}/{preset}-{precision}", test_data=[str(test)],
                                 device=args.device, progress=False, ckpt_every=10**9,
                                 eval_lpips=False, twins=[], val_every=0))
                its = r["its_per_second"]
                print(f"{preset:8s} {r['precision']:>5s} {p['batch']:5d} {p['patch']:5d} "
                      f"{its:8.2f} {its * p['batch']:10.1f} {flops / 1e9:9.1f} "
                      f"{hr_share:8.0%} {flops * its / 1e12:8.3f} {flops * its / peak:8.1%}")


if __name__ == "__main__":
    main()
