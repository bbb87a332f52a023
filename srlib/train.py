"""Train one variant (a loss spec x an upsampler), resumably, then evaluate it.

    python -m srlib.train --loss down --upsampler pixelshuffle --iters 2000 --seed 0 \\
        --out reports/runs/down/pixelshuffle/seed0

Every field of ``Config`` is a flag (``python -m srlib.train --help``), with the same
default. The run folder's layout is ``srlib.runs``'s. Running the same command again
resumes from the checkpoint (SIGTERM / SIGINT / SIGUSR2 save one); a finished run returns its
metrics; a different config in the same folder is refused with the differences.

The file reads top to bottom: ``Config`` (what a run depends on), ``train_step`` (one
optimisation step, one screen), then ``train`` (checks, set-up, resume, loop,
evaluation) and the CLI.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import dataclasses
import errno
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from srlib import distributed, runs
from srlib.data import PatchSampler, check_test_images, dataset_name, list_images, load_image
from srlib.evaluate import Validation, evaluate_samples, evaluate_sets
from srlib.losses import LOSS_OPERATORS, Loss, loss_operator, parse_spec
from srlib.metrics import metrics_where
from srlib.models import (
    GENERATOR_FIELDS,
    PRESETS,
    UPSAMPLERS,
    Knob,
    UNetDiscriminator,
    VGGDiscriminator,
    build_generator,
    default_skip,
)
from srlib.ntire import DEFAULT_K

# name -> (HR patch side, width) -> discriminator
DISCRIMINATORS = {
    "vgg": lambda patch, nf: VGGDiscriminator(patch, nf),  # ESRGAN's, one logit per patch
    "unet": lambda _patch, nf: UNetDiscriminator(nf),  # Real-ESRGAN's, one logit per pixel
}
# Config fields that may change between a run and its resumption: they do not change
# what is computed (or, for device, only its rounding).
RESUMABLE_CHANGES = runs.RESUMABLE_CHANGES
# OSError numbers of a full disk (or a full quota): the run stops with a clear message.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
VAL_COLUMNS = ["iter", *metrics_where(validation=True)]  # validation.csv
HOLDOUT = "holdout"  # val_data: the training images held out (Config.holdout)
SEED_MAX = 2**64 - 1  # the largest seed torch.manual_seed accepts
SCHEDULES = ("step", "cosine")  # learning_rate_at
PRECISIONS = ("auto", "bf16", "fp32")  # autocast of the networks in training (precision_of)


def _f(default, help: str, **check):  # noqa: A002 - argparse's word
    """A Config field: its default, its help text (the CLI is generated from these) and
    what it accepts, ``check``: ``choices=``, ``least=`` (``most=``) or ``ok=`` (with
    ``expected=``), as ``models.Knob`` takes them; none: anything."""
    return _field(Knob(default, help, **check))


def _g(name: str):
    """A Config field that is the generator's field ``name``: its default, help and check
    are its entry of ``models.GENERATOR_FIELDS``."""
    return _field(GENERATOR_FIELDS[name])


def _field(knob: Knob):
    meta = {"help": knob.help, "knob": knob}
    if isinstance(knob.default, list):
        return field(default_factory=lambda: list(knob.default), metadata=meta)
    return field(default=knob.default, metadata=meta)


def _is_device(v) -> bool:
    return isinstance(v, str) and (v in ("auto", "cpu", "cuda") or v.startswith("cuda:"))


def _is_rate(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1


def _is_decay(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1


def _is_weight(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < float("inf")


def _is_twins(v) -> bool:
    return isinstance(v, list) and len(set(v)) == len(v) and all(t in runs.TWINS for t in v)


def _is_sets(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(d, str) and d for d in v)


@dataclass
class Config:
    """Everything a run depends on, as plain data; ``None`` sizes come from the preset.

    Each field declares what it accepts (``_f``; the generator's fields, ``_g``, take
    theirs from ``models.GENERATOR_FIELDS``); ``resolved`` checks them all, then what
    ties fields together (a patch a multiple of the scale, ...). A new field is its line
    here (and what reads it); a new generator field, its entry in the table, its use in
    ``RRDBNet`` and its ``_g`` line here."""

    loss: str = _f("pixel", "loss spec: [weight*][criterion:]name joined by '+', e.g. "
                            "'down', 'down+0.005*adv', '0.01*l1:pixel+perc+0.005*adv'")
    loss_operator: str = _f("matlab", "the operator D' the loss's down term applies to SR: "
                                      f"one of {', '.join(LOSS_OPERATORS)} (the data and the "
                                      "evaluation keep MATLAB's D)", choices=LOSS_OPERATORS)
    upsampler: str = _g("upsampler")
    skip: str | None = _g("skip")
    consistency: str = _g("consistency")
    noise: int = _g("noise")
    noise_at: list[str] = _g("noise_at")
    noise_std: float = _g("noise_std")
    twins: list[str] = _f(["+P"], "post-hoc twins of an unprojected generator's outputs, "
                                 "evaluated from the same weights: +P (P(SR, LR)), +B (the "
                                 "projection within [0, 1], saved with consistent rounding)",
                          ok=_is_twins, expected=f"a list of distinct twins from "
                                                  f"{', '.join(runs.TWINS)} (may be empty)")
    eval_lpips: bool = _f(True, "measure LPIPS at evaluation (false: its column stays empty, "
                                "for runs that no hypothesis or figure reads it of; it is "
                                "most of the evaluation's time on a CPU)")
    eval_samples: int = _f(DEFAULT_K, "with noise: samples drawn per test image at evaluation "
                                      "(K >= 1, fixed seeds 0..K-1; the NTIRE 2021 challenge "
                                      "draws 10)", least=1,
                           expected="a positive integer (K >= 1 samples per test image)")
    preset: str = _f("quick", "the regime: model and batch sizes, learning rate and its "
                              "schedule, iterations, EMA, skip; one of "
                              f"{', '.join(PRESETS)} (srlib.models.PRESETS); each of its "
                              "fields stays a flag of its own", choices=PRESETS)
    iters: int | None = _f(None, "training iterations (generator steps) (preset's)", least=1)
    seed: int = _f(0, "random seed: weights, batches, discriminator", least=0, most=SEED_MAX)
    out: str = _f("runs/example", "run folder (created; resumed if it holds this config)")
    scale: int = _g("scale")
    data: str = _f("default", "training images: 'default' (embedded), a name under data/ "
                              "or $SRLIB_DATA, or a folder")
    test_data: list[str] = _f(["default"], "evaluation sets (names or folders)", ok=_is_sets,
                              expected="a non-empty list of set names or folders (or one, "
                                       "as a string)")
    batch: int | None = _f(None, "patches per batch (default: the preset's)", least=1)
    patch: int | None = _f(None, "HR patch side in px, a multiple of scale (preset's)",
                           least=1)
    learning_rate: float | None = _f(None, "Adam learning rate at the start of the schedule "
                                           "(preset's)", ok=_is_rate,
                                     expected="a number in (0, 1)")
    schedule: str | None = _f(None, "learning-rate schedule: step (halved at 50%% and 75%% of "
                                    "the iterations) or cosine (from learning_rate down to 0 "
                                    "at the last iteration) (preset's)", choices=SCHEDULES)
    ema_decay: float | None = _f(None, "decay of an exponential moving average of the "
                                       "generator's weights (BasicSR's ema_decay, e.g. 0.999), "
                                       "warmed up as (1+n)/(10+n) over the first updates; the "
                                       "average is what is validated, saved and evaluated; "
                                       "0: none (preset's)", ok=_is_decay,
                                 expected="a number in [0, 1) (0: no EMA)")
    precision: str = _f("auto", "autocast of the networks in training: auto (bfloat16 where "
                                "the device supports it: CUDA, or a CPU with AVX512-BF16 or "
                                "AMX; float32 elsewhere), bf16 (refused where unsupported) or "
                                "fp32; losses, D, the skips and evaluation stay float32",
                        choices=PRECISIONS)
    nf: int | None = _g("nf")
    nb: int | None = _g("nb")
    gc: int | None = _g("gc")
    d_nf: int | None = _f(None, "discriminator width (preset's)", least=1)
    discriminator: str = _f("vgg", f"for adv losses: one of {', '.join(DISCRIMINATORS)}",
                            choices=DISCRIMINATORS)
    d_warmup: int = _f(0, "for adv losses: the first this many iterations train the "
                          "discriminator alone (the generator is frozen)", least=0)
    d_learning_rate: float | None = _f(None, "for adv losses: the critic's Adam learning rate "
                                             "(default: learning_rate), on the same schedule",
                                       ok=_is_rate, expected="a number in (0, 1)")
    r1: float = _f(0.0, "for adv losses: weight gamma of the R1 penalty (Mescheder et al. "
                        "2018), gamma/2 E||grad D(HR)||^2 added to the critic's loss; 0: none",
                   ok=_is_weight, expected="a finite number >= 0")
    init_from: str | None = _f(None, "start from the generator of this finished run folder")
    val_every: int = _f(0, "evaluate the validation crops every this many iterations "
                           "(0: never); logged to validation.csv", least=0)
    holdout: int = _f(0, "training images held out: the last this many of data (by name) "
                         "are not trained on; val_data 'holdout' validates on them", least=0)
    val_data: str | None = _f(None, "validation images: 'holdout' (the held-out training "
                                    "images), a set, or None (the first test set); centre "
                                    "crops, for curves only, never for selection")
    val_crop: int = _f(96, "validation crop side in HR px, a multiple of scale", least=1)
    val_images: int = _f(8, "validation crops: the first this many images of val_data",
                         least=1)
    ckpt_every: int = _f(500, "checkpoint every this many iterations (and on SIGTERM)",
                         least=1)
    log_every: int = _f(10, "log the loss terms every this many iterations", least=1)
    device: str = _f("auto", "auto, cpu, cuda or cuda:N", ok=_is_device,
                     expected="auto, cpu, cuda or cuda:N")
    compile: bool = _f(False, "torch.compile the generator")
    progress: bool = _f(True, "show a progress bar")

    def resolved(self) -> Config:
        """A copy with the preset's sizes and the upsampler's skip filled in, validated:
        ``ValueError`` names the field, the value and what was expected."""
        _knob("preset").check("preset", self.preset)  # its sizes fill the None fields
        c = dataclasses.replace(self, test_data=_as_list(self.test_data))
        for k in PRESETS[c.preset]:
            setattr(c, k, preset_value(vars(c), k))
        if c.skip is None and c.upsampler in UPSAMPLERS:
            c.skip = default_skip(c.upsampler)
        if c.d_learning_rate is None:
            c.d_learning_rate = c.learning_rate
        for f in dataclasses.fields(c):
            f.metadata["knob"].check(f.name, getattr(c, f.name))
        _check("val_data", c.val_data, c.val_data != HOLDOUT or c.holdout > 0,
               "a set name or folder: 'holdout' needs holdout >= 1 held-out training images")
        # what ties fields together
        for k in ("patch", "val_crop"):
            _check(k, getattr(c, k), getattr(c, k) % c.scale == 0,
                   f"a multiple of scale {c.scale}")
        if c.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {c.device!r} requested but CUDA is not available")
        _check_set_names(c.test_data)
        parse_spec(c.loss)  # raises with the grammar and the choices
        return c


def preset_value(fields: dict, name: str):
    """The value of the Config field ``name`` for a run given ``fields`` (a grid's defaults
    and a variant's, say): given, else the preset's, else Config's default."""
    if fields.get(name) is not None:
        return fields[name]
    preset = fields.get("preset") or _knob("preset").default
    if name in PRESETS.get(preset, {}):
        return PRESETS[preset][name]
    return _knob(name).default


def learning_rate_at(c: Config, it: int, peak: float) -> float:
    """The learning rate of iteration ``it`` (0-based) of the resolved config ``c`` whose
    schedule starts at ``peak``: ``step`` halves it at 50% and 75% of ``c.iters``
    (ESRGAN's milestones, scaled); ``cosine`` follows half a cosine from ``peak`` at 0 to 0
    at ``c.iters`` (SGDR without restarts, as BasicSR's CosineAnnealingRestartLR)."""
    if c.schedule == "step":
        return peak * 0.5 ** ((it >= c.iters // 2) + (it >= c.iters * 3 // 4))
    return peak * 0.5 * (1 + math.cos(math.pi * it / c.iters))


def bf16_supported(dev: torch.device) -> bool:
    """Whether bfloat16 autocast runs natively on ``dev``: a CUDA GPU with bf16, or a CPU
    with AVX512-BF16 or AMX (oneDNN's check; elsewhere the CPU would emulate it, slower
    than float32)."""
    if dev.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return dev.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def precision_of(c: Config, dev: torch.device) -> str:
    """``bf16`` or ``fp32``: what ``c.precision`` means on ``dev``; ``ValueError`` for
    bf16 where it is not supported."""
    if c.precision == "fp32":
        return "fp32"
    if bf16_supported(dev):
        return "bf16"
    if c.precision == "bf16":
        where = "this CPU has neither AVX512-BF16 nor AMX" if dev.type == "cpu" else \
            f"{dev} has no bfloat16 support"
        raise ValueError(f"precision 'bf16': {where}; use precision auto (float32 here) or "
                         "fp32")
    return "fp32"


def _knob(name: str) -> Knob:
    """What the Config field ``name`` accepts."""
    return next(f.metadata["knob"] for f in dataclasses.fields(Config) if f.name == name)


def _as_list(test_data):
    """``test_data`` as a list: a string is one set (``test_data: Set5`` in a grid), not
    its characters; anything else but a list or tuple is left for the check to refuse."""
    if isinstance(test_data, str):
        return [test_data]
    return list(test_data) if isinstance(test_data, (list, tuple)) else test_data


def _check_set_names(test_data: list[str]) -> None:
    """Refuse two test sets of one name (``a/SetX``, ``b/SetX``): their results would
    share one entry of ``metrics.json`` and one ``eval/`` folder."""
    seen: dict[str, str] = {}
    for d in test_data:
        name = dataset_name(d)
        if name in seen:
            raise ValueError(f"two test sets are named {name}: {seen[name]}, {d}; rename "
                             "one folder")
        seen[name] = d


def _check(name: str, value, ok: bool, expected: str) -> None:
    if not ok:
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def config_differences(out: Path, c: Config) -> list[str]:
    """What differs (``'field: old -> new'``) between the run in ``out`` and the resolved
    config ``c``, ignoring the fields a resumed run may change."""
    old = runs.read_config(out)
    new = dataclasses.asdict(c)
    # init_from relative to the run: a result folder moved or copied whole keeps its runs
    for cfg in (old, new):
        if cfg.get("init_from") and cfg.get("out"):
            cfg["init_from"] = os.path.relpath(cfg["init_from"], cfg["out"])
    # a field the run's config.json lacks (a run from before it) differs: never resumed
    return [f"{k}: {old.get(k, '(absent)')!r} -> {new[k]!r}" for k in new
            if k not in RESUMABLE_CHANGES and old.get(k, "(absent)") != new[k]]


def check_inputs(c: Config) -> None:
    """Everything a run reads, checked before anything is written: the run folder, every
    data set, the run it starts from. Warns when no loss term ties SR to its input."""
    runs.check_writable_folder(c.out)
    precision_of(c, _device(c))
    split_holdout(list_images(c.data, "train"), c.holdout)
    for d in c.test_data:  # every test image large enough for its evaluation
        check_test_images(d, c.scale, c.eval_lpips)
    if c.val_data not in (None, HOLDOUT):
        list_images(c.val_data, "test")
    if c.init_from:
        src = Path(c.init_from)
        if not (src / runs.CONFIG).is_file():
            raise FileNotFoundError(f"init_from {src}: not a finished run (no {runs.CONFIG})")
        if not (src / runs.GENERATOR).is_file():
            raise FileNotFoundError(f"init_from {src}: its {runs.GENERATOR} is missing (not "
                                    "trained yet, failed or deleted): run its command again "
                                    "to train it, then this one")
        old = runs.read_config(src)
        # each generator field equal, or as its entry's fine_tune allows (consistency,
        # noise from a deterministic source); a field missing: its default
        diff = [f"{k} {old.get(k, knob.default)!r} vs {getattr(c, k)!r}"
                for k, knob in GENERATOR_FIELDS.items()
                if not knob.fine_tune(old.get(k, knob.default), getattr(c, k))]
        if diff:
            raise ValueError(f"init_from {src}: its generator differs ({'; '.join(diff)})")
    _warn_about_loss(c)
    _warn_about_noise(c)


def split_holdout(paths: list[Path], holdout: int) -> tuple[list[Path], list[Path]]:
    """``(train, held out)``: the last ``holdout`` of ``paths`` (sorted by name, as
    ``list_images`` gives them) are held out; ``ValueError`` when no training image is
    left."""
    if holdout >= len(paths):
        raise ValueError(f"holdout {holdout}: the training set has {len(paths)} images "
                         f"({paths[0].parent if paths else '?'}); hold out fewer, so that "
                         "some are left to train on")
    return paths[:len(paths) - holdout], paths[len(paths) - holdout:]


def _warn_about_loss(c: Config) -> None:
    """Warn when nothing ties SR to its input (projection does), when ``down`` is zero by
    construction (projection with the data's own D) and when ``loss_operator`` is unused."""
    names = {t.name for t in parse_spec(c.loss)}
    projected = c.consistency != "none"  # every consistency entry makes D(SR) == LR
    if not names & {"pixel", "down", "perc"} and not projected:
        warnings.warn(f"loss {c.loss!r} has no pixel, down or perc term: nothing ties the "
                      "output to its input, only the discriminator guides it", stacklevel=3)
    if "down" in names and projected and c.loss_operator == "matlab":
        warnings.warn(f"loss {c.loss!r} with consistency 'project': the down term is zero by "
                      "construction (D(SR) == LR) and contributes nothing", stacklevel=3)
    if "down" not in names and c.loss_operator != "matlab":
        warnings.warn(f"loss_operator {c.loss_operator!r} is unused: loss {c.loss!r} has no "
                      "down term", stacklevel=3)


def _warn_about_noise(c: Config) -> None:
    """Refuse the ``ms`` and ``ds`` terms without a noise input (it needs two samples); warn when a
    noise input is trained without an adversarial term (an MSE-type loss is lowest at the
    conditional mean: the generator learns to ignore z) and when
    ``eval_samples`` is set for a generator without noise (it is ignored)."""
    paired = {t.name for t in parse_spec(c.loss)} & {"ms", "ds"}
    if paired and not c.noise:
        raise ValueError(f"loss {c.loss!r}: the {' and '.join(sorted(paired))} term compares "
                         "two samples of one input; it needs a generator with noise (noise > 0)")
    if c.noise and "adv" not in {t.name for t in parse_spec(c.loss)}:
        warnings.warn(f"noise {c.noise} with loss {c.loss!r}: without an adv term, pixel, down "
                      "and perc losses are lowest when the generator ignores its noise, so "
                      "its samples will barely differ", stacklevel=3)
    if not c.noise and c.eval_samples != DEFAULT_K:
        warnings.warn(f"eval_samples {c.eval_samples} is unused: noise is 0 (a deterministic "
                      "generator has one output per image)", stacklevel=3)


# ---- one optimisation step ------------------------------------------------------------

@dataclass
class Nets:
    """The networks of a run and their optimisers (``d``, ``opt_d`` are ``None`` when the
    loss has no adversarial term). ``forward_g`` is ``g`` or its compiled version; ``ema``
    the moving average of ``g``'s weights (``ema_decay`` > 0), else ``None``."""

    g: nn.Module
    opt_g: torch.optim.Optimizer
    d: nn.Module | None = None
    opt_d: torch.optim.Optimizer | None = None
    forward_g: nn.Module | None = None
    world: distributed.World = field(default_factory=distributed.World)  # torchrun's ranks
    ema: nn.Module | None = None

    @property
    def result(self) -> nn.Module:
        """The generator a run validates, saves and evaluates: the EMA where there is one."""
        return self.g if self.ema is None else self.ema


@torch.no_grad()
def update_ema(ema: nn.Module, g: nn.Module, decay: float, updates: int) -> None:
    """One step of the moving average, ``ema = d * ema + (1 - d) * g`` for every weight,
    with ``d = min(decay, (1 + n) / (10 + n))`` after ``n = updates`` earlier updates (the
    warm-up of TensorFlow's ExponentialMovingAverage: a short run's average is not held
    at its random start); buffers are copied."""
    d = min(decay, (1 + updates) / (10 + updates))
    for e, p in zip(ema.parameters(), g.parameters(), strict=True):
        e.lerp_(p.detach(), 1 - d)
    for e, b in zip(ema.buffers(), g.buffers(), strict=True):
        e.copy_(b)


def train_step(nets: Nets, loss: Loss, hr: torch.Tensor, lr: torch.Tensor,
               autocast: contextlib.AbstractContextManager, update_g: bool = True,
               r1: float = 0.0
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor | None]:
    """One step of the generator (unless ``update_g`` is False: the discriminator's
    warm-up), then one of the discriminator (if any), with the R1 penalty
    ``r1 / 2 * E||grad D(HR)||^2`` when ``r1 > 0``.

    ``hr``: ``(B, 3, H, W)``, ``lr``: ``(B, 3, H/s, W/s)`` (the low-resolution input),
    both in ``[0, 1]``. Returns the generator's total loss, its terms (unweighted,
    detached) and the discriminator's loss without the penalty (or ``None``): the
    critic's health is read from it. Raises ``FloatingPointError`` before any weight
    changes when the loss is not finite."""
    g, d = nets.g, nets.d
    forward = g if nets.forward_g is None else nets.forward_g
    pair = None
    with torch.set_grad_enabled(update_g):
        with autocast:
            if loss.needs_pair:  # two noises for one batch (ms, ds): z drawn here, not in g
                z1, z2 = g.sample_noise(lr), g.sample_noise(lr)
                sr, other = forward(lr, z1), forward(lr, z2)
                pair = (other.float(), (z1 - z2).abs().mean())
            else:
                sr = forward(lr)
        sr = sr.float()  # losses in float32: D(SR) vs LR needs the precision
        d_real = d_fake = None
        if d is not None:
            d.requires_grad_(False)  # the critic is fixed during the generator's step
            with autocast:
                d_real, d_fake = d(hr).detach().float(), d(sr).float()
        total, terms = loss(sr, hr, lr, d_real, d_fake, pair)
    if not torch.isfinite(total):
        values = ", ".join(f"{k}={float(v):.4g}" for k, v in terms.items())
        raise FloatingPointError(f"loss became {total.item()} ({values})")
    if update_g:
        nets.opt_g.zero_grad(set_to_none=True)
        total.backward()
        distributed.average_gradients(g, nets.world)  # the whole batch's (one rank: no-op)
        nets.opt_g.step()
    if d is None:
        return total.detach(), terms, None
    d.requires_grad_(True)
    real = hr.detach().requires_grad_(r1 > 0)
    with autocast:
        d_real, d_fake = d(real).float(), d(sr.detach()).float()
    d_loss = loss.discriminator(d_real, d_fake)
    penalty = 0.0
    if r1 > 0:  # R1: the critic's gradient at real images, in float32 (create_graph)
        grad, = torch.autograd.grad(d_real.sum(), real, create_graph=True)
        penalty = 0.5 * r1 * grad.float().pow(2).sum(dim=(1, 2, 3)).mean()
    nets.opt_d.zero_grad(set_to_none=True)
    (d_loss + penalty).backward()
    distributed.average_gradients(d, nets.world)
    nets.opt_d.step()
    return total.detach(), terms, d_loss.detach()


# ---- the run: set-up, resume, loop, evaluation -----------------------------------------

class Interrupted(Exception):
    """Training stopped by SIGTERM / SIGINT / SIGUSR2 after saving a checkpoint."""


class NoSpace(OSError):
    """A write of the run found no space left (disk or quota); what was written before,
    the checkpoint included, is intact."""


def _device(c: Config) -> torch.device:
    if c.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(c.device)


def _build(c: Config, loss: Loss, dev: torch.device) -> Nets:
    """Seeded networks and optimisers of a run (channels-last: faster convolutions on the
    GPU and, under oneDNN, the CPU)."""
    torch.manual_seed(c.seed)
    g = build_generator(c.preset, **{k: getattr(c, k) for k in GENERATOR_FIELDS}).to(dev)
    if c.init_from:
        src = runs.load_generator(c.init_from).state_dict()
        # A deterministic source into a noise generator: all but conv_noise (checked alike)
        missing, unexpected = g.load_state_dict(src, strict=False)
        if unexpected or any(not k.startswith("conv_noise") for k in missing):
            raise ValueError(f"init_from {c.init_from}: its generator does not fit "
                             f"(missing {missing}, unexpected {unexpected})")
    d = None
    if loss.needs_discriminator:
        d = DISCRIMINATORS[c.discriminator](c.patch, c.d_nf).to(dev)
    g = g.to(memory_format=torch.channels_last)
    d = d.to(memory_format=torch.channels_last) if d is not None else None
    adam = {"betas": (0.9, 0.99), "fused": dev.type == "cuda"}
    ema = copy.deepcopy(g).requires_grad_(False) if c.ema_decay else None
    return Nets(g, torch.optim.Adam(g.parameters(), lr=c.learning_rate, **adam), d,
                torch.optim.Adam(d.parameters(), lr=c.d_learning_rate, **adam) if d else None,
                torch.compile(g) if c.compile else g, ema=ema)


def _set_learning_rates(c: Config, nets: Nets, it: int) -> float:
    """Set both optimisers' learning rates for iteration ``it``; returns the generator's."""
    for opt, peak in ((nets.opt_g, c.learning_rate), (nets.opt_d, c.d_learning_rate)):
        if opt is not None:
            for group in opt.param_groups:
                group["lr"] = learning_rate_at(c, it, peak)
    return nets.opt_g.param_groups[0]["lr"]


def _state(it: int, seconds: float, nets: Nets, sampler: PatchSampler) -> dict:
    """A checkpoint: the learning rate is a function of ``iter`` (``learning_rate_at``)."""
    state = {"iter": it, "train_seconds": seconds, "g": nets.g.state_dict(),
             "opt_g": nets.opt_g.state_dict(),
             "d": nets.d.state_dict() if nets.d is not None else None,
             "opt_d": nets.opt_d.state_dict() if nets.opt_d is not None else None,
             "g_ema": nets.ema.state_dict() if nets.ema is not None else None,
             "sampler_rng": sampler.gen.get_state()}
    if getattr(nets.g, "noise", 0):  # z is drawn from torch's global generator in training
        state["torch_rng"] = torch.get_rng_state()
        if sampler.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(sampler.device)
    return state


def _restore(state: dict, nets: Nets, sampler: PatchSampler, path: Path) -> None:
    """Continue from the checkpoint ``state`` (read from ``path``); one of another model
    (another size, keys missing, ...) raises ``ValueError`` naming ``path``."""
    why = _misfit(state, nets)
    if why is None:
        try:
            _load_state(state, nets, sampler)
        except (KeyError, ValueError, RuntimeError, TypeError) as err:
            why = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0]}"
    if why:
        raise ValueError(f"{path} was written by a different model ({why}): delete it to "
                         "restart the run from iteration 0")


def _misfit(state: dict, nets: Nets) -> str | None:
    """How the networks of a checkpoint do not fit ``nets``, or ``None``."""
    if "g" not in state:
        return "no generator weights"
    for name, net, key in (("generator", nets.g, "g"), ("discriminator", nets.d, "d"),
                           ("EMA generator", nets.ema, "g_ema")):
        if (net is None) != (state.get(key) is None):
            return f"{name} in the file: {'no' if state.get(key) is None else 'yes'}, " \
                   f"in this config: {'no' if net is None else 'yes'}"
        why = runs.state_mismatch(net, state[key]) if net else None
        if why:
            return f"{name}: {why}"
    return None


def _load_state(state: dict, nets: Nets, sampler: PatchSampler) -> None:
    nets.g.load_state_dict(state["g"])
    nets.opt_g.load_state_dict(state["opt_g"])
    if nets.d is not None:
        nets.d.load_state_dict(state["d"])
        nets.opt_d.load_state_dict(state["opt_d"])
    if nets.ema is not None:
        nets.ema.load_state_dict(state["g_ema"])
    sampler.gen.set_state(state["sampler_rng"].to(sampler.gen.get_state().device))
    # Checkpoints without them (noise 0, or older) drew nothing from torch's generator.
    if "torch_rng" in state:
        torch.set_rng_state(state["torch_rng"].cpu())
    if "cuda_rng" in state and sampler.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"].cpu(), sampler.device)


_USR2 = (signal.SIGUSR2,) if hasattr(signal, "SIGUSR2") else ()  # not on Windows


@contextlib.contextmanager
def _signals_to(flag: dict):
    """Route SIGTERM / SIGINT / SIGUSR2 to ``flag['signal']`` (main thread only) for the
    block. SIGUSR2 is the signal SLURM sends, through submitit, before a preemption or the
    time limit (``srlib.slurm``); its default action would kill the kernel unsaved."""
    old = {}
    for sig in (signal.SIGTERM, signal.SIGINT, *_USR2):
        # ValueError: not the main thread (some notebook front ends): no handler then
        with contextlib.suppress(ValueError):
            old[sig] = signal.signal(sig, lambda signum, _frame: flag.update(signal=signum))
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _start_log(path: Path, columns: list[str], upto: int) -> None:
    """``losses.csv`` with the rows up to iteration ``upto`` (a resumed run drops the rows
    logged after its checkpoint)."""
    rows = []
    if path.exists():  # a row cut short (a full disk while appending) is dropped
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f)
                    if None not in r.values() and int(r["iter"]) <= upto]
    text = io.StringIO()
    w = csv.DictWriter(text, columns, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    runs.write_text(path, text.getvalue())


def _append_log(path: Path, columns: list[str], row: dict) -> None:
    with open(path, "a", newline="") as f:
        csv.DictWriter(f, columns).writerow(row)


def train(config: Config) -> dict:
    """Train (or resume, or return a finished run's results); returns ``metrics.json``."""
    c = config.resolved()
    check_inputs(c)
    w = distributed.world()
    distributed.check_batch(c.batch, w)
    out = Path(c.out)
    # under torchrun rank 0 holds the folder; the other ranks only read its checkpoint
    with runs.locked(out, "run folder") if w.main else contextlib.nullcontext():
        if (out / runs.CONFIG).exists():
            diff = config_differences(out, c)
            if diff:
                raise ValueError(f"{out} holds a run with another config ({'; '.join(diff)}); "
                                 "use another --out, or delete the folder to start over")
        if runs.is_finished(out):
            stale = runs.is_stale(out)
            if not stale:
                return runs.read_metrics(out)
            print(f"note: {out} is stale ({stale}): training it again")
            if w.main:  # the other ranks train from scratch too: no checkpoint is left
                runs.clear(out)
        try:
            return _run(c, out, w)
        except OSError as err:
            if err.errno not in NO_SPACE:
                raise
            raise NoSpace(_no_space(out, err)) from None


def train_on(config: Config, ranks: int = 1) -> dict:
    """``train`` on ``ranks`` processes of this machine (a grid variant's ``gpus``): one
    is ``train`` here; N is torchrun's engine (``python -m torch.distributed.run
    --standalone --nproc-per-node N -m srlib.train``), one rank per visible GPU (gloo on
    the CPU). Its output goes to ``<out>/torchrun.log``; SIGTERM, SIGINT and SIGUSR2 are
    passed on as SIGTERM (torchrun relays it to the ranks, which checkpoint and stop:
    ``Interrupted`` here). Returns rank 0's ``metrics.json``."""
    if ranks == 1:
        return train(config)
    c = config.resolved()
    check_inputs(c)
    distributed.check_batch(c.batch, distributed.World(size=ranks))
    out = Path(c.out)
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={ranks}", "-m", "srlib.train",
           *cli_args(dataclasses.asdict(c))]
    # each rank's share of this process's threads (a job's CPUs, a CPU run's cores)
    threads = int(os.environ.get("OMP_NUM_THREADS") or torch.get_num_threads())
    env = os.environ | {"OMP_NUM_THREADS": str(max(1, threads // ranks))}
    flag: dict = {"signal": None}
    log_path = out / "torchrun.log"
    start = log_path.stat().st_size if log_path.exists() else 0  # this attempt's lines only

    def usr2_ignored() -> None:
        # torchrun has no SIGUSR2 handler (SLURM sends it to the whole job): ignored there
        # and inherited so by the ranks, which set their own (_signals_to)
        if _USR2:
            signal.signal(signal.SIGUSR2, signal.SIG_IGN)

    with open(log_path, "ab") as log, _signals_to(flag):
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                preexec_fn=usr2_ignored)
        told = False
        while proc.poll() is None:
            if flag["signal"] and not told:  # once: torchrun relays it to the ranks
                told = True
                proc.send_signal(signal.SIGTERM)
            time.sleep(0.2)
    if proc.returncode == 0 and runs.is_finished(out):
        return runs.read_metrics(out)
    with open(log_path, "rb") as f:
        f.seek(start)
        tail = f.read().decode(errors="replace").strip().splitlines()[-15:]
    if flag["signal"] or any("Interrupted" in ln or "stopped by signal" in ln for ln in tail):
        raise Interrupted(f"stopped by signal {flag['signal'] or 'SIGTERM'}; checkpoint in "
                          f"{out / runs.CHECKPOINT}: run the same command to resume")
    raise RuntimeError(f"torchrun with {ranks} ranks exited with {proc.returncode}; the end "
                       f"of {out / 'torchrun.log'}:\n" + "\n".join(tail))


def cli_args(fields: dict) -> list[str]:
    """``python -m srlib.train``'s arguments for a mapping of ``Config`` fields (e.g.
    ``dataclasses.asdict(config)``; ``argument_parser`` reads them back to the same
    values). A field that is None is left out: its default."""
    args = []
    for name, v in fields.items():
        flag = "--" + name.replace("_", "-")
        if v is None:
            continue
        if isinstance(v, bool):
            args.append(flag if v else "--no-" + flag[2:])
        elif isinstance(v, list):
            args += [flag, *map(str, v)]
        else:
            args += [flag, str(v)]
    return args


def _no_space(out: Path, err: OSError) -> str:
    """What to do when a write of the run in ``out`` found its disk (or quota) full."""
    where = out  # the run's own files; another's (a cache, say) is named by its folder
    if err.filename and not Path(err.filename).resolve().is_relative_to(out.resolve()):
        where = Path(err.filename).parent
    ckpt = out / runs.CHECKPOINT
    then = "it resumes from its checkpoint, which is intact" if ckpt.is_file() \
        else "it starts again: no checkpoint was written yet"
    return f"no space left on {where}; free space and run the same command ({then})"


@dataclass
class Session:
    """What the loop of one run works with: the config, its folder and the built objects."""

    c: Config
    out: Path
    dev: torch.device
    sampler: PatchSampler
    loss: Loss
    nets: Nets
    precision: str = "fp32"  # what c.precision means on dev (precision_of)
    start: int = 0
    train_seconds: float = 0.0
    val: Validation | None = None
    source: dict | None = None  # a fine-tune's source.json, written with config.json
    recorded: bool = False  # whether this session wrote config.json (and source.json)

    @property
    def ckpt(self) -> Path:
        return self.out / runs.CHECKPOINT


def _run(c: Config, out: Path, w: distributed.World) -> dict:
    """Set up, resume, train and evaluate the validated config ``c`` in ``out``; under
    torchrun, as rank ``w.rank`` of the run (``srlib.distributed``)."""
    state = runs.load_checkpoint(out / runs.CHECKPOINT) if (out / runs.CHECKPOINT).exists() \
        else None
    dev = distributed.device(w, _device(c))
    distributed.start(w, dev)
    try:
        return _run_ranked(c, out, w, dev, state)
    finally:
        distributed.stop(w)


def _run_ranked(c: Config, out: Path, w: distributed.World, dev: torch.device,
                state: dict | None) -> dict:
    if dev.type == "cuda":
        # TF32 for the convolutions only: D, D^+ and the skips are matmuls, which stay in
        # full float32 (and the projection of consistency: project runs in float64).
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.matmul.allow_tf32 = False
    paths, held = split_holdout(list_images(c.data, "train"), c.holdout)
    sampler = PatchSampler([load_image(p) for p in paths], c.patch, c.scale, c.batch, dev,
                           c.seed, names=[str(p) for p in paths])
    # The loss's operator D' (loss_operator); the sampler's D (MATLAB's) makes the LR.
    loss = Loss(c.loss, loss_operator(c.loss_operator, c.scale)).to(dev)
    nets = _build(c, loss, dev)
    nets.world = w
    run = Session(c, out, dev, sampler, loss, nets, precision_of(c, dev))
    if c.val_every and w.main:
        val_paths = held if c.val_data == HOLDOUT else \
            list_images(c.val_data or c.test_data[0], "test")
        run.val = Validation(val_paths[:c.val_images], c.scale, c.val_crop, dev)
    if state is not None:
        _restore(state, nets, sampler, run.ckpt)
        run.start, run.train_seconds = state["iter"], state["train_seconds"]
    if w.on:  # rank 0's weights everywhere; each rank its own noise stream (z)
        for net in (nets.g, nets.d, nets.ema):
            if net is not None:
                distributed.same_weights(net, w)
        torch.manual_seed(c.seed + 7919 * w.rank + run.start)
    if run.val is not None:  # null_corr's reference: the outputs at the run's start
        if state is None:
            run.val.set_reference(nets.g)
        elif state.get("val_reference") is not None:
            run.val.reference = state["val_reference"]
    if c.init_from:
        run.source = _source(c, out, resumed=state is not None)
    session_seconds = _loop(run)
    if not w.main:  # rank 0 evaluates and writes the results
        return {}
    return _finish(run, session_seconds)


def _source(c: Config, out: Path, resumed: bool) -> dict:
    """A fine-tune's ``source.json``: its source run, relative to ``out`` (a result folder
    moved or copied whole stays valid), and the hash of its generator; a resumed run whose
    source was retrained since it started is refused."""
    now = runs.generator_hash(c.init_from)
    old = runs.recorded_source(out)
    if resumed and old is not None and old["generator_sha256"] != now:
        raise ValueError(f"{out}: its source {c.init_from} was retrained since this run "
                         f"started; delete {out / runs.CHECKPOINT} to restart from the new "
                         "source")
    return {"run": os.path.relpath(c.init_from, out), "generator_sha256": now}


def _loop(run: Session) -> float:
    """Train from ``run.start`` to ``c.iters``: log, validate, checkpoint, stop on a signal.
    Returns the seconds this session trained."""
    c, nets = run.c, run.nets
    log_path, val_path = run.out / runs.LOSSES, run.out / runs.VALIDATION
    columns = ["iter", "total", *[t.name for t in run.loss.terms], "d_loss", "learning_rate",
               "seconds"]
    w = nets.world
    if w.main:
        _start_log(log_path, columns, run.start)
    if run.val is not None:
        _start_log(val_path, VAL_COLUMNS, run.start)
    stop: dict = {"signal": None}
    autocast = torch.autocast(run.dev.type, torch.bfloat16, enabled=run.precision == "bf16")
    bar = tqdm(range(run.start, c.iters), initial=run.start, total=c.iters,
               disable=not (c.progress and w.main), desc=f"{c.loss} / {c.upsampler}",
               unit="it")
    t0 = t_session = time.perf_counter()
    with _signals_to(stop), contextlib.closing(bar):
        nets.g.train()
        for it in bar:
            hr, lr = (distributed.share(x, w) for x in run.sampler.sample())  # whole batch
            hr, lr = (x.contiguous(memory_format=torch.channels_last) for x in (hr, lr))
            learning_rate = _set_learning_rates(c, nets, it)
            total, terms, d_loss = _step(run, it, hr, lr, autocast)
            if nets.ema is not None and it >= c.d_warmup:  # the generator stepped
                update_ema(nets.ema, nets.g, c.ema_decay, it - c.d_warmup)
            done = it + 1
            if done % c.log_every == 0 or done == c.iters:
                # the whole batch's means (under torchrun, over the ranks); rank 0 writes
                terms = distributed.mean({"total": total, **terms} | (
                    {"d_loss": d_loss} if d_loss is not None else {}), w)
                total, d_loss = terms.pop("total"), terms.pop("d_loss", None)
                if w.main:
                    _append_log(log_path, columns, {
                        "iter": done, "total": total.item(),
                        "learning_rate": learning_rate,
                        "d_loss": d_loss.item() if d_loss is not None else "",
                        "seconds": round(run.train_seconds + time.perf_counter() - t0, 3),
                        **{k: float(v) for k, v in terms.items()}})
                    bar.set_postfix({k: f"{float(v):.4g}" for k, v in terms.items()})
            if run.val is not None and (done % c.val_every == 0 or done == c.iters):
                _append_log(val_path, VAL_COLUMNS, {"iter": done, **run.val(nets.result)})
            stopping = distributed.any_rank(bool(stop["signal"]), w, run.dev)
            if done % c.ckpt_every == 0 or done == c.iters or stopping:
                run.train_seconds += time.perf_counter() - t0
                if w.main:
                    _checkpoint(run, done)
                t0 = time.perf_counter()
            if stopping:
                stop["signal"] = stop["signal"] or "on another rank"
                raise Interrupted(f"stopped by signal {stop['signal']} at iteration {done}; "
                                  f"checkpoint saved in {run.ckpt}: run the same command to "
                                  "resume")
    return time.perf_counter() - t_session


def _record(run: Session) -> None:
    """Write ``config.json`` and a fine-tune's ``source.json`` (a stale one of an earlier
    attempt without ``init_from`` removed)."""
    runs.write_json(run.out / runs.CONFIG, dataclasses.asdict(run.c))
    if run.source is not None:
        runs.write_json(run.out / runs.SOURCE, run.source)
    else:
        (run.out / runs.SOURCE).unlink(missing_ok=True)
    run.recorded = True


def _checkpoint(run: Session, done: int) -> None:
    """Save the checkpoint of iteration ``done``. The session's first also writes
    ``config.json`` (just before it): a run that fails before its first checkpoint (at
    its first step, say) leaves no config that would refuse the corrected command."""
    first = not run.recorded
    if first:
        _record(run)
    try:
        runs.write_torch(run.ckpt, _state(done, run.train_seconds, run.nets, run.sampler) | {
            "val_reference": run.val.reference if run.val is not None else None})
    except BaseException:
        if first and not run.ckpt.exists():
            (run.out / runs.CONFIG).unlink(missing_ok=True)
        raise


def _step(run: Session, it: int, hr: torch.Tensor, lr: torch.Tensor,
          autocast: contextlib.AbstractContextManager
          ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor | None]:
    """``train_step`` at iteration ``it`` (0-based), its failures said in the run's terms:
    a non-finite loss names the iteration and the checkpoint kept, a generator that
    ``torch.compile`` cannot compile here (no C++ compiler, ...) names ``--compile``."""
    try:
        return train_step(run.nets, run.loss, hr, lr, autocast, update_g=it >= run.c.d_warmup,
                          r1=run.c.r1)
    except FloatingPointError as err:
        raise FloatingPointError(f"at iteration {it + 1}: {err}; the last good checkpoint is "
                                 f"kept in {run.ckpt}") from None
    except RuntimeError as err:
        if not (run.c.compile and isinstance(err, torch._dynamo.exc.BackendCompilerFailed)):
            raise
        why = next((ln for ln in str(err).splitlines() if ln.strip()), type(err).__name__)
        raise ValueError(f"--compile: torch.compile cannot compile the generator on this "
                         f"machine ({why}); run without --compile") from None


def _finish(run: Session, session_seconds: float) -> dict:
    """Save the generator, evaluate it on the test sets with the literature's conventions,
    write ``metrics.json`` and drop the checkpoint."""
    c, dev = run.c, run.dev
    if not run.recorded:  # resumed at its last iteration: no checkpoint written this session
        _record(run)
    g = run.nets.result  # the EMA generator where there is one
    runs.write_torch(run.out / runs.GENERATOR, g.state_dict())
    g.eval()
    t0 = time.perf_counter()
    per_set, kind, twins = evaluate_sets(g, c.test_data, c.scale, run.out, dev,
                                         model=f"{c.loss} / {c.upsampler}",
                                         with_lpips=c.eval_lpips,
                                         # a generator consistent by construction: no twin
                                         twins=c.twins if c.consistency == "none" else [])
    samples = None
    if c.noise:  # K samples per image, fixed seeds; sample 0 is the output evaluated above
        samples = evaluate_samples(g, c.test_data, c.scale, run.out, c.eval_samples,
                                   dev, lpips_kind=kind, model=f"{c.loss} / {c.upsampler}")
    session_iters = c.iters - run.start
    results = runs.write_metrics(
        run.out, per_set, lpips_kind=kind, config=dataclasses.asdict(c),
        first_set=dataset_name(c.test_data[0]), iters=c.iters,
        train_seconds=run.train_seconds,
        its_per_second=session_iters / session_seconds if session_iters else None,
        eval_seconds=time.perf_counter() - t0,
        device=torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        precision=run.precision,
        resumed_from_iter=run.start or None, perc_backend=run.loss.perc_backend,
        twins=twins, samples=samples)
    run.ckpt.unlink(missing_ok=True)  # generator.pt holds the result; optimiser state is done
    return results


# ---- the command line, generated from Config ---------------------------------------------

def _arg_type(name: str):
    """(type, nargs) of a Config field, from its annotation."""
    hint = typing.get_type_hints(Config)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = args[0]
    if typing.get_origin(hint) is list:
        return typing.get_args(hint)[0], "*"  # "--twins" alone: none
    return hint, None


def argument_parser() -> argparse.ArgumentParser:
    """One flag per ``Config`` field (``--test-data`` for ``test_data``), with its help and
    default; booleans as ``--flag / --no-flag``."""
    ap = argparse.ArgumentParser(prog="python -m srlib.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(Config):
        flag = "--" + f.name.replace("_", "-")
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING \
            else f.default
        typ, nargs = _arg_type(f.name)
        help_ = f.metadata["help"] + (f" (default: {default})" if default is not None else "")
        if typ is bool:
            ap.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                            default=default, help=help_)
        else:
            ap.add_argument(flag, dest=f.name, type=typ, nargs=nargs, default=default,
                            metavar=f.name.upper(), help=help_)
    return ap


def main(argv: list[str] | None = None) -> int:
    config = Config(**vars(argument_parser().parse_args(argv)))
    try:
        results = train(config)
    except Interrupted as err:
        print(f"\n{err}", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FloatingPointError, runs.RunLocked, NoSpace) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        peer = distributed.peer_failure(err)
        if not peer:
            raise
        print(f"error: rank {distributed.world().rank}: another rank of this torchrun job "
              f"stopped ({peer}). The last checkpoint in {config.out} is intact: run the same "
              "command again to resume from it.", file=sys.stderr)
        return 1
    if not results:  # a torchrun rank other than 0: rank 0 prints the results
        return 0
    keys = ("psnr_y", "ssim_y", "lpips", "lr_psnr", "range_mse", "null_mse")
    # without eval_lpips, no lpips (nor lpips_kind) was measured: print what was
    print(json.dumps({k: results[k] for k in (*keys, "lpips_kind") if k in results}
                     | {"out": str(config.out)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
