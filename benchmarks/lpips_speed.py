"""Time LPIPS per kind on a batch of 16 x 3 x 256 x 256, and its peak memory.

    python benchmarks/lpips_speed.py [--batch 16] [--size 256] [--repeats 3] [--kinds ...]

Per kind: median seconds of the metric (``no_grad``) and of forward + backward to the
inputs (LPIPS as a loss), and peak memory: on the CPU the growth of the process's peak
resident set over the inputs alone (each kind in a fresh process), on CUDA
``max_memory_allocated``. ``lpips-*`` kinds without their ImageNet trunk on disk are
timed with a random trunk written to a temporary ``TORCH_HOME`` (speed does not depend
on the weights; the output says so).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from resize_speed import median_seconds  # this folder: the one timing loop of the benchmarks

from srlib import lpips


def _random_trunk_home(net: str) -> str:
    home = tempfile.mkdtemp(prefix="lpips-bench-")
    features, _, _ = (lpips._alexnet(False) if net == "alex" else lpips.vgg_trunk(16))
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    folder = Path(home) / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(state, folder / lpips.TRUNK_FILES[net])
    return home


def measure(kind: str, batch: int, size: int, repeats: int, device: str) -> dict:
    """Run in a fresh process: time and peak memory of one kind."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=g).to(device)
    y = torch.rand(batch, 3, size, size, generator=g).to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    m = lpips.load(kind, device)

    def metric():
        with torch.no_grad():
            return m(x, y)

    def loss():
        xg = x.clone().requires_grad_(True)
        m(xg, y).sum().backward()
        return xg.grad

    out = {"kind": kind, "device": device}
    for name, fn in (("metric_s", metric), ("loss_s", loss)):
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        out[name] = median_seconds(fn, repeats, sync)
        if device == "cuda":
            out[name.replace("_s", "_peak_mib")] = torch.cuda.max_memory_allocated() / 2**20
    if device == "cpu":
        out["peak_mib"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--kinds", nargs="+", default=list(lpips.KINDS))
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:  # one kind, one process: a clean peak-memory reading
        print(json.dumps(measure(args.kinds[0], args.batch, args.size, args.repeats, args.device)))
        return
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    shape = f"{args.batch} x 3 x {args.size} x {args.size}"
    print(f"LPIPS on {shape} pairs; torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    for device in devices:
        print(f"{'kind':14s} {'device':6s} {'metric s':>9s} {'metric+grad s':>14s} "
              f"{'peak MiB':>9s}  note")
        for kind in args.kinds:
            env, note = dict(os.environ), ""
            if kind.startswith("lpips") and not lpips.available(kind):
                env["TORCH_HOME"] = _random_trunk_home(kind.split("-")[1])
                note = "random trunk (ImageNet trunk not on this machine)"
            cmd = [sys.executable, __file__, "--child", "--kinds", kind, "--device", device,
                   "--batch", str(args.batch), "--size", str(args.size),
                   "--repeats", str(args.repeats)]
            r = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True,
                                          text=True).stdout.strip().splitlines()[-1])
            peak = r.get("peak_mib", r.get("loss_peak_mib"))
            print(f"{kind:14s} {device:6s} {r['metric_s']:9.3f} {r['loss_s']:14.3f} "
                  f"{peak:9.0f}  {note}")


if __name__ == "__main__":
    main()
