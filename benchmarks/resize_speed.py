"""Time the bicubic operator: ``down`` x4 on a batch of 16 x 3 x 256 x 256 float32.

    python benchmarks/resize_speed.py [--batch 16] [--size 256] [--scale 4] [--repeats 20]

Compares ``srlib.resize`` (two matmuls with cached MATLAB matrices) with
(a) BasicSR's ``imresize`` (``basicsr/utils/matlab_functions.py`` of the basicsr 1.4.2
    sdist, the MATLAB-compatible resize SR researchers use; fetched once with
    ``pip download`` into ``benchmarks/.cache`` and loaded as a single module file,
    never installed; skipped with a message where it cannot be had), and
(b) ``torch.nn.functional.interpolate(mode='bicubic', antialias=True)``, inexact at the
    borders, the speed reference.
Prints medians, ratios, and throughput in bytes moved (input + output) per second; on a
CUDA device, the same for (ours) and (b) there.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from srlib.resize import BicubicDegradation

CACHE = Path(__file__).resolve().parent / ".cache"
BASICSR = "basicsr==1.4.2"
MEMBER = "basicsr-1.4.2/basicsr/utils/matlab_functions.py"


def load_basicsr_matlab_functions():
    """BasicSR's matlab_functions module, or None with a printed reason."""
    path = CACHE / "basicsr_1.4.2_matlab_functions.py"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        try:
            # --no-build-isolation: pip only reads the sdist's metadata, with this env's torch
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                 "--no-build-isolation", BASICSR, "-d", str(CACHE)],
                check=True, timeout=300, capture_output=True,
            )
            with tarfile.open(CACHE / "basicsr-1.4.2.tar.gz") as tar:
                path.write_bytes(tar.extractfile(MEMBER).read())
        except (subprocess.SubprocessError, OSError, KeyError, tarfile.TarError) as err:
            print(f"(a) BasicSR skipped: could not fetch {BASICSR} ({type(err).__name__})")
            return None
    spec = importlib.util.spec_from_file_location("basicsr_matlab_functions", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def median_seconds(fn, repeats: int, sync=lambda: None) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    fn()  # warm-up: builds and caches the matrices, allocator, kernels
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    op = BicubicDegradation(args.scale)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    moved = x.numel() * 4 * (1 + 1 / args.scale**2)  # bytes read + written, float32
    print(f"down x{args.scale} of {tuple(x.shape)} float32; torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")

    def interp(t):
        return F.interpolate(t, scale_factor=1 / args.scale, mode="bicubic", antialias=True)

    rows = [("srlib (matmul)", median_seconds(lambda: op.down(x), args.repeats))]
    rows.append(("(b) F.interpolate antialias", median_seconds(lambda: interp(x), args.repeats)))
    basicsr = load_basicsr_matlab_functions()
    if basicsr is not None:
        def run_basicsr():
            return torch.stack([basicsr.imresize(img, 1 / args.scale) for img in x])

        diff = (run_basicsr() - op.down(x)).abs().max().item()
        verdict = "agree" if diff < 1e-5 else "DISAGREE"
        print(f"max |srlib - BasicSR| = {diff:.2e} ({verdict} to 1e-5)")
        slow = median_seconds(run_basicsr, max(3, args.repeats // 5))
        rows.append(("(a) BasicSR imresize", slow))
    ours = rows[0][1]
    print(f"{'CPU':32s} {'median ms':>10s} {'GB/s':>8s} {'time / srlib':>13s}")
    for name, sec in rows:
        print(f"{name:32s} {sec * 1e3:10.2f} {moved / sec / 1e9:8.2f} {sec / ours:12.1f}x")

    if torch.cuda.is_available():
        xg = x.cuda()
        sync = torch.cuda.synchronize
        gpu = [
            ("srlib (matmul)", median_seconds(lambda: op.down(xg), args.repeats * 5, sync)),
            ("(b) F.interpolate antialias",
             median_seconds(lambda: interp(xg), args.repeats * 5, sync)),
        ]
        print(f"{'GPU ' + torch.cuda.get_device_name():32s} {'median ms':>10s} {'GB/s':>8s}")
        for name, sec in gpu:
            print(f"{name:32s} {sec * 1e3:10.3f} {moved / sec / 1e9:8.1f}")


if __name__ == "__main__":
    main()
