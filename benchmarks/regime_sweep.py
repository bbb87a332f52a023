"""Tune the study's training regime (96 px HR patches) before the study is sized.

    python benchmarks/regime_sweep.py --data-root ../shared/datasets --device cuda \\
        --parallel 12 --out /tmp/sweep

Runs ``python -m srlib.train`` as subprocesses, ``--parallel`` at a time, each with one
CPU thread, in two phases; a fine-tune starts once its source has finished:

1. Pixel networks (``pixel`` / nearest) on 96 px HR patches (24 px LR at x4): the batch,
   the learning rate and the generator's size, validated on the last 8 Sun80 images held
   out of training (``holdout: 8``, ``val_data: holdout``; Set14 stays a test set). Also
   ``down`` / pixel shuffle, ``down`` / nearest and the torch-bicubic loss operator at
   this patch size, for what the study will see.
2. Adversarial fine-tunes of the reference pixel network: ``down + w adv`` and ``pixel +
   w adv`` at the same ``w``, under several critic regimes (the critic's learning rate,
   R1, the spectrally normalised U-Net critic). The health criterion read here: the mean
   critic loss over the last quarter of the fine-tune, against ln 2 = 0.69 for chance.

Prints one table (the final Set5 metrics of each run, the last validation PSNR-Y and
the critic's last-quarter loss) and writes ``sweep.csv``, ``validation.csv`` (every
run's curve) and ``critic.csv`` (the critic's loss per logged iteration) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from srlib.train import cli_args

PATCH = 96
FT = {"iters": 800, "learning_rate": 1e-4, "d_warmup": 160}
REGIMES = {  # critic regime -> extra fields of the fine-tune
    "vgg": {},
    "vgg-dlr0.1": {"d_learning_rate": 1e-5},
    "vgg-r1": {"r1": 10.0},
    "unet": {"discriminator": "unet"},
    "unet-r1": {"discriminator": "unet", "r1": 10.0},
}


def jobs(iters: int, ft_iters: int) -> list[dict]:
    """The runs: ``name``, ``fields`` (srlib.train's), ``after`` (a source's name)."""
    base = {"loss": "pixel", "upsampler": "nearest", "patch": PATCH, "batch": 2,
            "learning_rate": 1e-3, "iters": iters}
    out = [{"name": "ref", "fields": base}]
    for batch, lr in ((2, 5e-4), (2, 2e-3), (4, 1e-3), (4, 2e-3), (8, 2e-3)):
        out.append({"name": f"b{batch}-lr{lr:g}", "fields": base | {"batch": batch,
                                                                    "learning_rate": lr}})
    for nf, nb, gc in ((64, 1, 32), (32, 2, 16), (48, 2, 24)):
        out.append({"name": f"nf{nf}-nb{nb}", "fields": base | {"nf": nf, "nb": nb, "gc": gc}})
    out.append({"name": "ref-x3", "fields": base | {"iters": 3 * iters}})
    for name, f in (("down-ps", {"loss": "down", "upsampler": "pixelshuffle"}),
                    ("down-nearest", {"loss": "down"}),
                    ("down-torch", {"loss": "down", "loss_operator": "torch-bicubic"})):
        out.append({"name": name, "fields": base | f})
    for regime, extra in REGIMES.items():
        for fam in ("down", "pixel"):
            for w in (1e-4, 1e-3, 1e-2):
                out.append({"name": f"ft-{fam}+{w:g}adv-{regime}", "after": "ref",
                            "fields": base | FT | {"iters": ft_iters, "loss": f"{fam}+{w:g}*adv"}
                            | extra})
    return out


WEIGHTS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)  # the study's sweep of the adversarial weight


def jobs_study(iters: int, ft_iters: int) -> list[dict]:
    """``--set study``: the study's own fine-tune regime checked before it runs: the U-Net
    critic at width 16 (32 at one weight, for comparison), ``ft_iters`` iterations (a
    fifth of them the critic alone), both sweeps over ``WEIGHTS``; and the stochastic
    generator (noise at three depths, project-box, adversarial term, with and without the
    mode-seeking term, two noise amplitudes), sampled 10 times per Set5 image."""
    base = {"loss": "pixel", "upsampler": "nearest", "patch": PATCH, "batch": 2,
            "learning_rate": 5e-4, "iters": iters}
    ft = base | {"iters": ft_iters, "learning_rate": 1e-4, "d_warmup": ft_iters // 5,
                 "discriminator": "unet", "d_nf": 16}
    out = [{"name": "ref", "fields": base}]
    for fam in ("down", "pixel"):
        for w in WEIGHTS:
            out.append({"name": f"ft-{fam}+{w:g}adv", "after": "ref",
                        "fields": ft | {"loss": f"{fam}+{w:g}*adv"}})
        out.append({"name": f"ft-{fam}+0.001adv-dnf32", "after": "ref",
                    "fields": ft | {"loss": f"{fam}+0.001*adv", "d_nf": 32}})
    noise = ft | {"consistency": "project-box", "noise": 4, "noise_at": ["first", "body", "hr"],
                  "eval_samples": 10}
    for std in (1.0, 3.0):
        for loss in ("0.005*adv", "0.005*adv+0.1*ms"):
            tag = "ms" if "ms" in loss else "adv"
            out.append({"name": f"noise-{tag}-std{std:g}", "after": "ref",
                        "fields": noise | {"loss": loss, "noise_std": std}})
    return out


def jobs_noise(iters: int, ft_iters: int) -> list[dict]:
    """``--set noise``: the stochastic generator retuned after the study's pilot (the ms term
    at 0.01 drove samples 60 grey levels apart, outside the box): the mode-seeking term
    smaller, and DSGAN's capped term (``ds``) at three weights, with the project-box
    gradient that never pushes outside the box and the noise convs at a twentieth of
    their default init; noise_std 1, and 3 for one of them."""
    ref = jobs_study(iters, ft_iters)[0]
    ft = ref["fields"] | {"iters": ft_iters, "learning_rate": 1e-4, "d_warmup": ft_iters // 5,
                          "discriminator": "unet", "d_nf": 16, "consistency": "project-box",
                          "noise": 4, "noise_at": ["first", "body", "hr"], "eval_samples": 10}
    out = [ref]
    for name, loss, std in (("adv", "0.001*adv", 1.0),
                            ("ms0.001", "0.001*adv+0.001*ms", 1.0),
                            ("ds0.01", "0.001*adv+0.01*ds", 1.0),
                            ("ds0.1", "0.001*adv+0.1*ds", 1.0),
                            ("ds1", "0.001*adv+1*ds", 1.0),
                            ("ds0.1-std3", "0.001*adv+0.1*ds", 3.0)):
        out.append({"name": f"noise-{name}", "after": "ref",
                    "fields": ft | {"loss": loss, "noise_std": std}})
    return out


def jobs_cpu(iters: int, _ft_iters: int) -> list[dict]:
    """``--set cpu``: a regime in which the networks learn on the 2-core CPU, batch 8 of
    96 px HR patches (the regime issue's probe, 24 000 patches in 3000 iterations). Phase 1
    (what the code had): the global skip (pinv, bicubic, none), batch against patch at
    equal HR pixels per iteration, the learning rate, the length (2x), and the ``down``
    networks with and without the skip."""
    base = {"loss": "pixel", "upsampler": "nearest", "skip": "pinv", "patch": PATCH,
            "batch": 8, "learning_rate": 5e-4, "iters": iters}
    down = base | {"loss": "down"}
    return [
        {"name": "px-pinv", "fields": base},
        {"name": "px-pinv-x2", "fields": base | {"iters": 2 * iters}},
        {"name": "px-none", "fields": base | {"skip": "none"}},
        {"name": "px-bicubic", "fields": base | {"skip": "bicubic"}},
        {"name": "px-pinv-b32p48", "fields": base | {"batch": 32, "patch": 48}},
        {"name": "px-pinv-lr1e-3", "fields": base | {"learning_rate": 1e-3}},
        {"name": "down-ps-none", "fields": down | {"upsampler": "pixelshuffle",
                                                   "skip": "none"}},
        {"name": "down-ps-pinv", "fields": down | {"upsampler": "pixelshuffle"}},
        {"name": "down-nearest-pinv", "fields": down},
        {"name": "down-nearest-none", "fields": down | {"skip": "none"}},
    ]


def jobs_preset(iters: int, _ft_iters: int) -> list[dict]:
    """``--set preset``: phase 2 of the CPU regime, on the ``study`` preset (pinv skip,
    batch 8 of 96 px, cosine schedule, EMA 0.999, bf16 autocast where the CPU has it), one
    change per run: bf16 against float32 on two seeds, without the EMA, the step schedule,
    a higher learning rate, a deeper body, smaller patches at equal HR pixels per
    iteration; and every ``down`` network of the study on it (with the skip, and pixel
    shuffle without)."""
    base = {"preset": "study", "loss": "pixel", "upsampler": "nearest", "iters": iters,
            "test_data": ["Set5", "BSD68"], "eval_lpips": True, "twins": []}
    down = base | {"loss": "down", "test_data": ["Set5"], "eval_lpips": False}
    # in the order they run: the preset's targets first, then the down networks
    out = [{"name": "s-px", "fields": base},
           {"name": "s-px-seed1", "fields": base | {"seed": 1}},
           {"name": "s-px-fp32", "fields": base | {"precision": "fp32"}}]
    out.append({"name": "s-down-pixelshuffle", "fields": down | {"upsampler": "pixelshuffle"}})
    out.append({"name": "s-down-pixelshuffle-none", "fields": down | {
        "upsampler": "pixelshuffle", "skip": "none"}})
    for ups in ("nearest", "pixelshuffle-icnr", "deconv", "pre"):
        out.append({"name": f"s-down-{ups}", "fields": down | {"upsampler": ups}})
    # twice the length (at 3000 iterations BSD68 stayed below pinv + 0.6 dB), two seeds,
    # and the learning rate doubled
    for name, f in (("x2", {}), ("x2-seed1", {"seed": 1}), ("x2-lr1e-3", {"learning_rate": 1e-3}),
                    ("x2-lr1e-3-seed1", {"learning_rate": 1e-3, "seed": 1}),
                    ("x2-lr1e-3-step", {"learning_rate": 1e-3, "schedule": "step"})):
        out.append({"name": f"s-px-{name}", "fields": base | {"iters": 2 * iters} | f})
    for name, f in (("noema", {"ema_decay": 0.0}), ("step", {"schedule": "step"}),
                    ("nb3", {"nb": 3})):
        out.append({"name": f"s-px-{name}", "fields": base | {"test_data": ["Set5"]} | f})
    out += [{"name": "s-px-fp32-seed1", "fields": base | {"precision": "fp32", "seed": 1}},
            {"name": "s-px-b32p48", "fields": base | {"test_data": ["Set5"], "batch": 32,
                                                      "patch": 48}}]
    return out


PLANS = {"regime": jobs, "study": jobs_study, "noise": jobs_noise, "cpu": jobs_cpu,
         "preset": jobs_preset}


def command(job: dict, root: Path, device: str) -> list[str]:
    f = {"data": "Sun80", "test_data": ["Set5"], "holdout": 8, "val_data": "holdout",
         "val_crop": 192, "val_images": 8, "val_every": max(job["fields"]["iters"] // 8, 1),
         "ckpt_every": 100000, "log_every": 20, "device": device, "progress": False,
         "out": str(root / job["name"])} | job["fields"]
    if job.get("after"):
        f["init_from"] = str(root / job["after"])
    return [sys.executable, "-m", "srlib.train", *cli_args(f)]


def summarise(job: dict, root: Path, seconds: float) -> dict:
    d = root / job["name"]
    row = {"run": job["name"], "seconds": round(seconds, 1)}
    if (d / "metrics.json").is_file():
        m = json.loads((d / "metrics.json").read_text())
        row |= {k: m.get(k) for k in ("psnr_y", "lpips", "lr_psnr", "lr_psnr_raw",
                                      "lr_psnr_ntire", "lr_psnr_inner", "its_per_second",
                                      "train_seconds", "precision")}
        for name, per in (m.get("datasets") or {}).items():
            if name != "Set5":
                row[f"psnr_y_{name}"] = per.get("psnr_y")
        first = next(iter((m.get("samples") or {}).values()), None)
        if first:
            row |= {k: first.get(k) for k in ("diversity", "diversity_floor", "sample_std",
                                              "lr_psnr_ntire_mean", "lr_psnr_ntire_worst")}
    if (d / "validation.csv").is_file():
        v = pd.read_csv(d / "validation.csv")
        row |= {"val_psnr_y": v.psnr_y.iloc[-1], "val_null_corr": v.null_corr.iloc[-1]}
    if (d / "losses.csv").is_file():
        loss = pd.read_csv(d / "losses.csv")
        if "d_loss" in loss and loss.d_loss.notna().any():
            last = loss[loss.iter > 0.75 * loss.iter.max()]
            row["critic_last_quarter"] = float(last.d_loss.mean())
    return row


def schedule(todo: list[dict], runs_dir: Path, a: argparse.Namespace, env: dict,
             out: Path) -> list[dict]:
    """Run ``todo``, ``a.parallel`` at a time, a fine-tune after its source; one summary
    row per run, ``sweep.csv`` rewritten as each finishes."""
    running: dict[str, tuple[subprocess.Popen, float, dict]] = {}
    done: dict[str, bool] = {}
    rows: list[dict] = []
    t0 = time.time()
    while todo or running:
        if a.deadline and time.time() - t0 > a.deadline:
            rows += [{"run": j["name"], "rc": "not started"} for j in todo]
            todo = []
            for p, _, _ in running.values():
                p.terminate()
        for name, (p, start, job) in list(running.items()):
            if p.poll() is None:
                continue
            del running[name]
            done[name] = p.returncode == 0
            rows.append(summarise(job, runs_dir, time.time() - start) | {"rc": p.returncode})
            print(f"[{time.time() - t0:6.0f}s] {name}: rc {p.returncode}", flush=True)
            pd.DataFrame(rows).to_csv(out / "sweep.csv", index=False)
        for job in [j for j in todo if not j.get("after") or j["after"] in done]:
            if len(running) >= a.parallel:
                break
            todo.remove(job)
            if job.get("after") and not done[job["after"]]:
                rows.append({"run": job["name"], "rc": "source failed"})
                continue
            log = open(runs_dir / f"{job['name']}.log", "w")  # noqa: SIM115
            running[job["name"]] = (subprocess.Popen(command(job, runs_dir, a.device),
                                                     stdout=log, stderr=subprocess.STDOUT,
                                                     env=env), time.time(), job)
        time.sleep(1)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3000)
    ap.add_argument("--ft-iters", type=int, default=800)
    ap.add_argument("--set", choices=tuple(PLANS), default="regime",
                    help="regime: the first sweep; study: the study's fine-tunes checked; "
                         "noise: the stochastic generator retuned; cpu, preset: a regime "
                         "that learns on the 2-core CPU (phases 1 and 2)")
    ap.add_argument("--only", nargs="*", help="run only these names (and their sources)")
    ap.add_argument("--out", default="/tmp/sweep", help="the tables' folder")
    ap.add_argument("--runs", default=None, help="the run folders (default: OUT/runs)")
    ap.add_argument("--deadline", type=float, default=None,
                    help="seconds: then start nothing more, stop the running (SIGTERM) and "
                         "write the tables")
    a = ap.parse_args()
    out = Path(a.out)
    runs_dir = Path(a.runs) if a.runs else out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"SRLIB_DATA": str(Path(a.data_root).resolve()), "OMP_NUM_THREADS": "1",
                        "PYTHONPATH": os.pathsep.join(
                            filter(None, [str(Path(__file__).resolve().parents[1]),
                                          os.environ.get("PYTHONPATH")]))}
    plan = PLANS[a.set]
    todo = plan(a.iters, a.ft_iters)
    if a.only:
        keep = set(a.only) | {j.get("after") for j in todo if j["name"] in a.only}
        todo = [j for j in todo if j["name"] in keep]
    rows = schedule(todo, runs_dir, a, env, out)
    curves, critic = [], []
    for job in plan(a.iters, a.ft_iters):
        d = runs_dir / job["name"]
        if (d / "validation.csv").is_file():
            curves.append(pd.read_csv(d / "validation.csv").assign(run=job["name"]))
        if (d / "losses.csv").is_file() and job.get("after"):
            log = pd.read_csv(d / "losses.csv")
            critic.append(log[[c for c in ("iter", "d_loss", "adv", "ms") if c in log]]
                          .assign(run=job["name"]))
    if curves:
        pd.concat(curves).to_csv(out / "validation.csv", index=False)
    if critic:
        pd.concat(critic).to_csv(out / "critic.csv", index=False)
    table = pd.DataFrame(rows)
    table.to_csv(out / "sweep.csv", index=False)
    with pd.option_context("display.width", 250, "display.max_rows", 200,
                           "display.max_columns", 20):
        print(table.round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
