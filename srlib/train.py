"""Train one variant (a loss spec x an upsampler), resumably, then evaluate it.

    python -m srlib.train --loss down --upsampler pixelshuffle --preset quick \\
        --iters 2000 --seed 0 --out reports/runs/down/pixelshuffle/seed0

A run folder holds ``config.json``, ``checkpoint.pt`` (every ``--ckpt-every`` iterations
and on SIGTERM / SIGINT, written atomically), ``losses.csv`` (each term every
``log_every`` iterations), then ``generator.pt``, ``metrics.json`` and ``eval/<set>/``
(per-image CSV, SR PNGs). Running the same command again resumes from the checkpoint; a
finished run returns its metrics; a different config in the same folder is refused.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from srlib.data import PatchSampler, dataset_name, load_dataset
from srlib.evaluate import evaluate_sets
from srlib.losses import Loss
from srlib.models import PRESETS, UNetDiscriminator, VGGDiscriminator, build_generator

# Config fields that may change between a run and its resumption: they do not change
# what is computed (or, for device, only its rounding).
RESUMABLE_CHANGES = {"out", "ckpt_every", "log_every", "device", "compile", "progress"}


@dataclass
class Config:
    """Everything a run depends on; ``None`` sizes come from the preset."""

    loss: str = "pixel"
    upsampler: str = "nearest"
    preset: str = "quick"
    iters: int = 1000
    seed: int = 0
    out: str = "runs/example"
    scale: int = 4
    data: str = "default"
    test_data: list[str] = field(default_factory=lambda: ["default"])
    batch: int | None = None
    patch: int | None = None
    lr: float | None = None
    nf: int | None = None
    nb: int | None = None
    gc: int | None = None
    d_nf: int | None = None
    discriminator: str = "vgg"  # or "unet"
    init_from: str | None = None
    ckpt_every: int = 500
    log_every: int = 10
    device: str = "auto"
    compile: bool = False
    progress: bool = True

    def resolved(self) -> Config:
        """A copy with the preset's sizes filled in, validated (``ValueError`` names the field)."""
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        c = dataclasses.replace(self, test_data=list(self.test_data))
        for k in ("batch", "patch", "lr", "nf", "nb", "gc", "d_nf"):
            if getattr(c, k) is None:
                setattr(c, k, PRESETS[c.preset][k])
        for k in ("iters", "batch", "patch", "nf", "nb", "gc", "d_nf", "ckpt_every", "log_every"):
            v = getattr(c, k)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{k} must be a positive integer, got {v!r}")
        if not (isinstance(c.lr, (int, float)) and 0 < c.lr < 1):
            raise ValueError(f"lr must be a number in (0, 1), got {c.lr!r}")
        if c.patch % c.scale:
            raise ValueError(f"patch {c.patch} must be a multiple of scale {c.scale}")
        if c.discriminator not in ("vgg", "unet"):
            raise ValueError(f"discriminator must be 'vgg' or 'unet', got {c.discriminator!r}")
        if c.device not in ("auto", "cpu", "cuda") and not c.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu or cuda, got {c.device!r}")
        if c.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {c.device!r} requested but CUDA is not available")
        return c


def _device(c: Config) -> torch.device:
    if c.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(c.device)


def save_atomic(obj, path: Path) -> None:
    """Write JSON (``.json``) or a torch object to a temporary file, then rename it."""
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".json":
        tmp.write_text(json.dumps(obj, indent=1, default=str))
    else:
        torch.save(obj, tmp)
    os.replace(tmp, path)


def config_differences(out: Path, c: Config) -> list[str]:
    """What differs (``'field: old -> new'``) between the run in ``out`` and the resolved
    config ``c``, ignoring the fields a resumed run may change."""
    old = json.loads((out / "config.json").read_text())
    new = dataclasses.asdict(c)
    return [f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in new
            if k not in RESUMABLE_CHANGES and old.get(k) != new[k]]


def _check_same_config(out: Path, c: Config) -> None:
    diff = config_differences(out, c)
    if diff:
        raise ValueError(
            f"{out} holds a run with another config ({'; '.join(diff)}); "
            "use another --out, or delete the folder to start over"
        )


def load_generator(run: Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The trained generator of a finished run folder, in eval mode on ``device``."""
    cfg_path, weights = run / "config.json", run / "generator.pt"
    if not cfg_path.is_file() or not weights.is_file():
        raise FileNotFoundError(f"{run}: not a finished run (needs config.json and generator.pt)")
    c = Config(**json.loads(cfg_path.read_text()))
    g = build_generator(c.preset, c.scale, c.upsampler, nf=c.nf, nb=c.nb, gc=c.gc)
    g.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return g.to(device).eval()


def _check_init_from(run: Path, c: Config) -> None:
    if not (run / "generator.pt").is_file():
        raise FileNotFoundError(f"init_from {run}: not a finished run (no generator.pt)")
    src = json.loads((run / "config.json").read_text())
    arch = ("scale", "upsampler", "nf", "nb", "gc")
    diff = [f"{k} {src.get(k)!r} vs {getattr(c, k)!r}" for k in arch if src.get(k) != getattr(c, k)]
    if diff:
        raise ValueError(f"init_from {run}: its generator differs ({'; '.join(diff)})")


class Interrupted(Exception):
    """Training stopped by SIGTERM / SIGINT after saving a checkpoint."""


def train(config: Config) -> dict:
    """Train (or resume, or return a finished run's results); returns ``metrics.json``."""
    c = config.resolved()
    out = Path(c.out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "config.json").exists():
        _check_same_config(out, c)
    if (out / "metrics.json").exists():
        return json.loads((out / "metrics.json").read_text())
    if c.init_from:
        _check_init_from(Path(c.init_from), c)
    save_atomic(dataclasses.asdict(c), out / "config.json")
    dev = _device(c)
    cuda = dev.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

    # Data, models, loss, optimisers: all seeded, so the same config gives the same run.
    images = load_dataset(c.data, split="train")
    sampler = PatchSampler([im for _, im in images], c.patch, c.scale, c.batch, dev, c.seed,
                           names=[n for n, _ in images])
    torch.manual_seed(c.seed)
    g = build_generator(c.preset, c.scale, c.upsampler, nf=c.nf, nb=c.nb, gc=c.gc).to(dev)
    if c.init_from:
        g.load_state_dict(load_generator(Path(c.init_from)).state_dict())
    loss = Loss(c.loss, sampler.op).to(dev)
    d = None
    if loss.needs_discriminator:
        d = VGGDiscriminator(c.patch, c.d_nf) if c.discriminator == "vgg" else \
            UNetDiscriminator(c.d_nf)
        d = d.to(dev)
    if cuda:
        g, d = (m.to(memory_format=torch.channels_last) if m is not None else m for m in (g, d))
    adam = {"betas": (0.9, 0.99), "fused": cuda}
    opt_g = torch.optim.Adam(g.parameters(), lr=c.lr, **adam)
    opt_d = torch.optim.Adam(d.parameters(), lr=c.lr, **adam) if d is not None else None
    milestones = [c.iters // 2, c.iters * 3 // 4]  # halve the learning rate twice
    sched = [torch.optim.lr_scheduler.MultiStepLR(o, milestones, 0.5) for o in (opt_g, opt_d) if o]
    step_g = torch.compile(g) if c.compile else g

    start, train_seconds, resumed_from = 0, 0.0, None
    ckpt = out / "checkpoint.pt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location=dev, weights_only=False)
        g.load_state_dict(state["g"])
        opt_g.load_state_dict(state["opt_g"])
        if d is not None:
            d.load_state_dict(state["d"])
            opt_d.load_state_dict(state["opt_d"])
        for s, st in zip(sched, state["sched"], strict=True):
            s.load_state_dict(st)
        sampler.gen.set_state(state["sampler_rng"].to(sampler.gen.get_state().device))
        start, train_seconds = state["iter"], state["train_seconds"]
        resumed_from = start

    def save(it: int) -> None:
        save_atomic({
            "iter": it, "train_seconds": train_seconds, "g": g.state_dict(),
            "opt_g": opt_g.state_dict(), "d": d.state_dict() if d is not None else None,
            "opt_d": opt_d.state_dict() if opt_d is not None else None,
            "sched": [s.state_dict() for s in sched], "sampler_rng": sampler.gen.get_state(),
        }, ckpt)

    log_path = out / "losses.csv"
    columns = ["iter", "total", *[t.name for t in loss.terms], "d_loss", "lr", "seconds"]
    rows = [r for r in _read_csv(log_path) if int(r["iter"]) <= start]  # drop unsaved tail
    with open(log_path, "w", newline="") as f:
        csv.DictWriter(f, columns).writeheader()
        csv.DictWriter(f, columns).writerows(rows)

    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    handlers = _install(on_signal)
    autocast = torch.autocast("cuda", torch.bfloat16, enabled=cuda)
    bar = tqdm(range(start, c.iters), initial=start, total=c.iters, disable=not c.progress,
               desc=f"{c.loss} / {c.upsampler}", unit="it")
    it, t0, t_session = start, time.perf_counter(), time.perf_counter()
    try:
        g.train()
        for it in bar:
            # ---- the training step ---------------------------------------------------
            hr, lr = sampler.sample()
            if cuda:
                hr, lr = (x.contiguous(memory_format=torch.channels_last) for x in (hr, lr))
            with autocast:
                sr = step_g(lr)
            sr = sr.float()  # losses in float32: D(SR) vs LR needs the precision
            d_real = d_fake = None
            if d is not None:
                d.requires_grad_(False)  # D is a fixed critic during G's step
                with autocast:
                    d_real, d_fake = d(hr).detach().float(), d(sr).float()
            total, terms = loss(sr, hr, lr, d_real, d_fake)
            if not torch.isfinite(total):
                raise FloatingPointError(
                    f"loss became {total.item()} at iteration {it + 1} "
                    f"({', '.join(f'{k}={float(v):.4g}' for k, v in terms.items())}); "
                    f"the last good checkpoint is kept in {ckpt}"
                )
            opt_g.zero_grad(set_to_none=True)
            total.backward()
            opt_g.step()
            d_loss = None
            if d is not None:
                d.requires_grad_(True)
                with autocast:
                    d_real, d_fake = d(hr).float(), d(sr.detach()).float()
                d_loss = loss.discriminator(d_real, d_fake)
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
            for s in sched:
                s.step()
            # ---- bookkeeping ---------------------------------------------------------
            done = it + 1
            if done % c.log_every == 0 or done == c.iters:
                row = {"iter": done, "total": total.item(), "lr": sched[0].get_last_lr()[0],
                       "d_loss": d_loss.item() if d_loss is not None else "",
                       "seconds": round(train_seconds + time.perf_counter() - t0, 3),
                       **{k: float(v) for k, v in terms.items()}}
                _append_csv(log_path, columns, row)
                bar.set_postfix({k: f"{float(v):.4g}" for k, v in terms.items()})
            if done % c.ckpt_every == 0 or done == c.iters or stop["signal"]:
                train_seconds += time.perf_counter() - t0
                save(done)
                t0 = time.perf_counter()
            if stop["signal"]:
                raise Interrupted(
                    f"stopped by signal {stop['signal']} at iteration {done}; checkpoint "
                    f"saved in {ckpt}: run the same command to resume"
                )
        session_iters = c.iters - start
        session_seconds = time.perf_counter() - t_session
    finally:
        bar.close()
        _restore(handlers)

    # ---- evaluation on the test sets, with the literature's conventions ---------------
    save_atomic(g.state_dict(), out / "generator.pt")
    g.eval()
    per_set, kind = evaluate_sets(g, c.test_data, c.scale, out, dev,
                                  model=f"{c.loss} / {c.upsampler}")
    results = {
        **per_set[dataset_name(c.test_data[0])],
        "lpips_kind": kind,
        "datasets": per_set,
        "iters": c.iters,
        "train_seconds": train_seconds,
        "its_per_second": session_iters / session_seconds if session_iters else None,
        "device": torch.cuda.get_device_name(dev) if cuda else "cpu",
        "resumed_from_iter": resumed_from,
        "perc_backend": loss.perc_backend,
        "torch": torch.__version__,
        "config": dataclasses.asdict(c),
    }
    save_atomic(results, out / "metrics.json")
    ckpt.unlink(missing_ok=True)  # generator.pt holds the result; optimiser state is done
    return results


def _read_csv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _append_csv(path: Path, columns: list[str], row: dict) -> None:
    with open(path, "a", newline="") as f:
        csv.DictWriter(f, columns).writerow(row)


def _install(handler) -> dict:
    """Route SIGTERM / SIGINT to ``handler`` where possible (main thread only)."""
    old = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            old[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread (some notebook front ends)
            pass
    return old


def _restore(old: dict) -> None:
    for sig, h in old.items():
        signal.signal(sig, h)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m srlib.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loss", required=True, help="loss spec, e.g. 'down', 'down+0.005*adv'")
    ap.add_argument("--upsampler", required=True,
                    help="pixelshuffle, nearest, deconv or pre")
    ap.add_argument("--preset", default="quick", help=f"one of {', '.join(PRESETS)}")
    ap.add_argument("--iters", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="run folder")
    ap.add_argument("--ckpt-every", type=int, default=500)
    ap.add_argument("--data", default="default", help="training data: 'default', name or folder")
    ap.add_argument("--test-data", nargs="+", default=["default"], help="evaluation sets")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--patch", type=int, help="HR patch side in px")
    ap.add_argument("--lr", type=float, help="learning rate")
    ap.add_argument("--discriminator", default="vgg", help="vgg or unet (for adv losses)")
    ap.add_argument("--init-from", metavar="RUN_DIR", help="start from a finished run's generator")
    ap.add_argument("--compile", action="store_true", help="torch.compile the generator")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    config = Config(
        loss=a.loss, upsampler=a.upsampler, preset=a.preset, iters=a.iters, seed=a.seed,
        out=a.out, ckpt_every=a.ckpt_every, data=a.data, test_data=a.test_data, scale=a.scale,
        device=a.device, batch=a.batch, patch=a.patch, lr=a.lr, discriminator=a.discriminator,
        init_from=a.init_from, compile=a.compile, progress=not a.no_progress,
    )
    try:
        results = train(config)
    except Interrupted as err:
        print(f"\n{err}", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FloatingPointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    keys = ("psnr_y", "ssim_y", "lpips", "lr_psnr", "range_mse", "null_mse")
    print(json.dumps({k: results[k] for k in keys} | {"lpips_kind": results["lpips_kind"],
                                                      "out": str(config.out)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
