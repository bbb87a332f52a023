"""The losses of the study, and the loss-spec strings that combine them.

A spec is a sum of weighted terms, ``[weight*][criterion:]name``:

    down                      the proposal's loss: MSE(D(SR), LR)
    pixel                     the usual content loss: MSE(SR, HR)
    l1:pixel, mse:down        the criterion of a term
    down+0.005*adv            the fix the proposal suggests
    0.01*l1:pixel+perc+0.005*adv   ESRGAN's generator loss

Three plain dicts are the extension points: adding a criterion, a GAN loss or a term is
one entry in one of them, and a name missing from them is refused with the choices.

- ``CRITERIA``: distance name -> ``f(a, b)``, a mean over all elements.
- ``ADVERSARIAL``: GAN loss name -> ``GanLoss(g, d)``, the generator's and the
  discriminator's losses from the discriminator's logits (``ragan``: ESRGAN's
  relativistic average GAN).
- ``TERMS``: term name -> ``TermSpec``: its function, its default criterion, and the table
  its criteria come from (every entry of it applies; ``TermSpec.criteria``, default first).
  What the shipped terms do:

  - ``pixel``: SR against HR.
  - ``down``: ``D(SR)`` against LR, with the degradation ``op`` given to
    ``Loss``: in training, the same MATLAB bicubic ``D`` and the same quantised LR that
    the data pipeline made.
  - ``perc``: distance of VGG features, ESRGAN's: ImageNet VGG19 before the
    conv5_4 activation where ``vgg19-dcbb9e9d.pth`` is in torch's hub cache, otherwise the
    shift-tolerant VGG16 of ``stlpips-vgg`` before conv5_3's activation (``backend`` says
    which; the run records it). Built only for specs that use it.
  - ``adv``: the generator's adversarial term;
    ``Loss.discriminator`` gives the matching discriminator loss.
  - ``ms`` and ``ds``: diversity terms of a generator with noise, on two samples of one
    input (Mao et al.'s mode seeking, unbounded; DSGAN's, capped at ``DS_CAP``).
- ``LOSS_OPERATORS``: name -> ``f(scale)``, the operator ``D'`` that ``down`` applies to
  SR (an object with ``down(hr) -> lr``, ``(B, C, H, W)`` -> ``(B, C, H/s, W/s)``,
  differentiable), for the operator-mismatch study: the data and the evaluation keep
  MATLAB's ``D``, only the loss changes. ``matlab`` (``BicubicDegradation``, the
  default: ``D' = D``); ``torch-bicubic`` (``F.interpolate(mode="bicubic",
  antialias=True)``: the same kernel, a = -0.5 widened by s, but its borders renormalise
  the truncated kernel instead of padding symmetrically, so it equals ``D`` except in the
  outer 2 LR pixels); ``bilinear`` (``F.interpolate(mode="bilinear", antialias=True)``:
  the triangle kernel widened by s); ``gauss`` (``GaussDegradation``: a Gaussian of sigma
  ``s / sqrt(12)``, the variance of the s-pixel box of area averaging, sampled at the
  centres of the s x s blocks, MATLAB's sampling grid).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srlib import lpips
from srlib.resize import BicubicDegradation
from srlib.tables import lookup

# --- distances --------------------------------------------------------------------------

CRITERIA: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"mse": F.mse_loss, "l1": F.l1_loss}


def _distance(crit: str, a: Tensor, b: Tensor) -> Tensor:
    return lookup(CRITERIA, crit, "criterion")(a, b)


# --- GAN losses -------------------------------------------------------------------------


def _bce(logits: Tensor, target: float) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


@dataclass(frozen=True)
class GanLoss:
    """A GAN loss as two functions of the logits on HR (``d_real``) and on SR (``d_fake``)."""

    g: Callable[[Tensor, Tensor], Tensor]  # the generator's (d_real detached)
    d: Callable[[Tensor, Tensor], Tensor]  # the discriminator's


ADVERSARIAL: dict[str, GanLoss] = {
    # relativistic average: D wants real to look more real than the average fake, and fake
    # less real than the average real; G wants the reverse
    "ragan": GanLoss(
        g=lambda real, fake: 0.5 * (_bce(real - fake.mean(), 0.0) + _bce(fake - real.mean(), 1.0)),
        d=lambda real, fake: 0.5 * (_bce(real - fake.mean(), 1.0) + _bce(fake - real.mean(), 0.0)),
    ),
    "vanilla": GanLoss(
        g=lambda real, fake: _bce(fake, 1.0),
        d=lambda real, fake: _bce(real, 1.0) + _bce(fake, 0.0),
    ),
    "hinge": GanLoss(
        g=lambda real, fake: -fake.mean(),
        d=lambda real, fake: F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean(),
    ),
}


def adversarial_g(crit: str, d_real: Tensor, d_fake: Tensor) -> Tensor:
    """The generator's adversarial loss from discriminator logits (``d_real`` detached)."""
    return lookup(ADVERSARIAL, crit, "adversarial criterion").g(d_real, d_fake)


def adversarial_d(crit: str, d_real: Tensor, d_fake: Tensor) -> Tensor:
    """The discriminator's loss from its logits on HR (``d_real``) and on SR (``d_fake``)."""
    return lookup(ADVERSARIAL, crit, "adversarial criterion").d(d_real, d_fake)


# --- perceptual features ----------------------------------------------------------------


class PerceptualFeatures(nn.Module):
    """Frozen VGG features for ``perc``: ``(B, 3, H, W)`` in ``[0, 1]`` -> feature map."""

    def __init__(self):
        super().__init__()
        if lpips.trunk_path("vgg19").is_file():
            features, taps, _ = lpips.vgg_trunk(19)
            # the convolutions of torchvision's VGG19 checkpoint (its classifier is not used)
            features.load_state_dict(
                {k.split(".", 1)[1]: v for k, v in lpips.trunk_state("vgg19").items()
                 if k.startswith("features.")},
                strict=True,
            )
            self.backend = "vgg19-imagenet-conv5_4"
            # ImageNet normalisation of inputs in [0, 1], as torchvision's VGG expects
            shift, scale = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
            offset = 0.0
        else:
            st = lpips.load("stlpips-vgg")
            features, taps = st.features, st.taps
            self.backend = "stlpips-vgg16-conv5_3"
            # LPIPS scaling layer on inputs mapped to [-1, 1]: (2x - 1 - shift) / scale
            shift, scale = st.shift.flatten().tolist(), st.scale.flatten().tolist()
            offset = 1.0
        self.features = features[: taps[-1]]  # up to the last conv, before its activation
        self.register_buffer("shift", torch.tensor(shift).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(scale).view(1, 3, 1, 1), persistent=False)
        self.offset = offset
        self.requires_grad_(False).eval()

    def forward(self, x: Tensor) -> Tensor:
        x = x * (1.0 + self.offset) - self.offset  # [0, 1], or [-1, 1] for the LPIPS trunk
        return self.features((x - self.shift) / self.scale)


# --- the loss's operator D' -------------------------------------------------------------


class Operator(Protocol):
    """What ``down`` needs of an operator: ``down(hr)``, ``(B, C, H, W)`` -> ``(B, C, H/s,
    W/s)``, linear and differentiable."""

    def down(self, hr: Tensor) -> Tensor: ...


def _lr_size(hr: Tensor, scale: int) -> tuple[int, int]:
    """``(H/s, W/s)`` of an HR batch, or a ValueError that says what is wrong."""
    if not isinstance(hr, Tensor) or hr.dim() != 4 or not hr.is_floating_point():
        raise ValueError("hr must be a float tensor of shape (B, C, H, W), got "
                         f"{getattr(hr, 'shape', type(hr).__name__)}")
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"hr of size {h}x{w} is not a multiple of the scale {scale}")
    return h // scale, w // scale


class TorchResize:
    """``D'``: ``F.interpolate`` to ``(H/s, W/s)`` with ``antialias=True`` (the kernel
    widened by s) and ``align_corners=False``: ``mode`` ``bicubic`` (a = -0.5 when
    antialiased, like MATLAB, but near the borders it renormalises the truncated kernel
    where MATLAB pads symmetrically) or ``bilinear`` (the triangle kernel)."""

    def __init__(self, scale: int, mode: str):
        self.scale, self.mode = int(scale), mode

    def __repr__(self) -> str:
        return f"TorchResize(scale={self.scale}, mode={self.mode!r})"

    def down(self, hr: Tensor) -> Tensor:
        return F.interpolate(hr, size=_lr_size(hr, self.scale), mode=self.mode,
                             antialias=True, align_corners=False)


@lru_cache(maxsize=64)
def _gauss_np(n_in: int, scale: int) -> np.ndarray:
    """The ``(n_in / s, n_in)`` float64 matrix of ``GaussDegradation`` on one axis."""
    sigma = scale / math.sqrt(12.0)
    radius = 3.0 * sigma
    centre = scale * np.arange(n_in // scale) + (scale - 1) / 2.0  # 0-based block centres
    taps = int(math.ceil(2.0 * radius)) + 2
    idx = np.floor(centre - radius)[:, None] + np.arange(taps)[None, :]
    d = idx - centre[:, None]
    w = np.exp(-0.5 * (d / sigma) ** 2) * (np.abs(d) <= radius)
    w /= w.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(n_in), np.arange(n_in)[::-1]])  # symmetric padding
    src = mirror[np.mod(idx.astype(np.int64), 2 * n_in)]
    a = np.zeros((len(centre), n_in))
    np.add.at(a, (np.repeat(np.arange(len(centre)), taps), src.ravel()), w.ravel())
    return a


@lru_cache(maxsize=64)
def _gauss_matrix(n_in: int, scale: int, dtype: torch.dtype, device: str) -> Tensor:
    return torch.from_numpy(_gauss_np(n_in, scale)).to(device=device, dtype=dtype)


class GaussDegradation:
    """``D'``: Gaussian blur and decimation by s, separable, as one matrix per axis.

    Sigma is ``s / sqrt(12)`` (0.58, 0.87, 1.15 px at x2, x3, x4): the Gaussian with the
    variance of the s-pixel box filter, i.e. of area averaging (a sensor integrating over
    its pixel). The kernel is cut at 3 sigma and renormalised; borders are padded
    symmetrically, like MATLAB's. Decimation keeps MATLAB's phase: LR pixel ``i`` is the
    blurred image at the centre ``s*i + (s-1)/2`` of its s x s block (0-based), every
    s-th pixel from ``(s-1)/2`` at odd s, half-way between two pixels at even s (the
    Gaussian sampled at half-integer offsets). So ``D'`` and ``D`` see the same grid and
    differ in the kernel only (no half-pixel shift)."""

    def __init__(self, scale: int):
        self.scale = int(scale)
        self.sigma = self.scale / math.sqrt(12.0)

    def __repr__(self) -> str:
        return f"GaussDegradation(scale={self.scale}, sigma={self.sigma:.4g})"

    def down(self, hr: Tensor) -> Tensor:
        _lr_size(hr, self.scale)
        h, w = hr.shape[-2:]
        dev = str(hr.device)
        a_h = _gauss_matrix(h, self.scale, hr.dtype, dev)
        a_w = _gauss_matrix(w, self.scale, hr.dtype, dev)
        return a_h @ hr @ a_w.transpose(0, 1)


# name -> scale -> the operator D' that the down term applies to SR (see the docstring)
LOSS_OPERATORS: dict[str, Callable[[int], Operator]] = {
    "matlab": BicubicDegradation,  # D' = D, the data's own operator
    "torch-bicubic": lambda s: TorchResize(s, "bicubic"),
    "bilinear": lambda s: TorchResize(s, "bilinear"),
    "gauss": GaussDegradation,
}


def loss_operator(name: str, scale: int) -> Operator:
    """The operator ``LOSS_OPERATORS[name]`` at ``scale``; unknown names list the choices."""
    return lookup(LOSS_OPERATORS, name, "loss_operator")(scale)


# --- terms ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What a term may use besides ``(sr, hr, lr)``."""

    op: Operator  # the degradation the loss assumes (``down``): D, or a D' of LOSS_OPERATORS
    module: nn.Module | None  # the term's own network (``TermSpec.module``), if it has one
    d_real: Tensor | None  # discriminator logits on HR (detached), or None without a D
    d_fake: Tensor | None  # ... and on SR
    # a second sample of the same LR with other noise, and the mean |z1 - z2| of the two
    # noises (``ms``, ``ds``); None unless the spec has a term that needs it
    pair: tuple[Tensor, Tensor] | None = None


@dataclass(frozen=True)
class TermSpec:
    """A loss term: ``fn(crit, sr, hr, lr, ctx)`` -> scalar tensor, unweighted.

    Its criteria are the names in ``table`` (``CRITERIA`` or ``ADVERSARIAL``), so a new
    entry there applies at once; ``default`` is the one a spec gets when it names none.
    ``module``, if given, builds the network the term needs (as ``ctx.module``): once per
    ``Loss``, and only for specs with the term.
    """

    fn: Callable[[str, Tensor, Tensor, Tensor, Context], Tensor]
    default: str
    table: Mapping[str, object]
    module: Callable[[], nn.Module] | None = None

    @property
    def criteria(self) -> tuple[str, ...]:
        """The criteria that apply, the default first."""
        return (self.default, *(c for c in self.table if c != self.default))


def _pixel(crit: str, sr: Tensor, hr: Tensor, lr: Tensor, ctx: Context) -> Tensor:
    return _distance(crit, sr, hr)


def _down(crit: str, sr: Tensor, hr: Tensor, lr: Tensor, ctx: Context) -> Tensor:
    return _distance(crit, ctx.op.down(sr), lr)


def _perc(crit: str, sr: Tensor, hr: Tensor, lr: Tensor, ctx: Context) -> Tensor:
    return _distance(crit, ctx.module(sr), ctx.module(hr).detach())


def _adv(crit: str, sr: Tensor, hr: Tensor, lr: Tensor, ctx: Context) -> Tensor:
    if ctx.d_real is None or ctx.d_fake is None:
        raise ValueError("the adv term needs the discriminator's logits: pass d_real, d_fake")
    return adversarial_g(crit, ctx.d_real, ctx.d_fake)


def _ms(crit: str, sr: Tensor, hr: Tensor, lr: Tensor, ctx: Context) -> Tensor:
    """Mode seeking (Mao et al., CVPR 2019): ``1 / (d(SR1, SR2) / mean|z1 - z2| + 1e-5)``,
    lowest when two noises give outputs far apart relative to how far apart the noises
    are (the diversity-sensitive term of a stochastic generator)."""
    if ctx.pair is None:
        raise ValueError("the ms term needs two samples: a generator with noise (noise > 0)")
    other, z_dist = ctx.pair
    return 1.0 / (_distance(crit, sr, other) / z_dist + 1e-5)


# ds's cap on d(SR1, SR2) / mean|z1 - z2|. With l1 and Gaussian noise the ratio is about
# the samples' per-pixel std: 0.03, about 8 grey levels (at 0.05 a sweep's samples ended
# 13 levels apart, and 5 PSNR-Y dB below the start).
DS_CAP = 0.03


def _ds(crit: str, sr: Tensor, hr: Tensor, lr: Tensor, ctx: Context) -> Tensor:
    """Diversity-sensitive (Yang et al., DSGAN, ICLR 2019): ``-min(d(SR1, SR2) / mean|z1 -
    z2|, DS_CAP)``, in ``[-DS_CAP, 0]``. Bounded where ``ms`` is not: once two samples are
    ``DS_CAP`` apart per unit of noise distance it stops pushing them apart."""
    if ctx.pair is None:
        raise ValueError("the ds term needs two samples: a generator with noise (noise > 0)")
    other, z_dist = ctx.pair
    return -torch.clamp(_distance(crit, sr, other) / z_dist, max=DS_CAP)


TERMS: dict[str, TermSpec] = {
    "pixel": TermSpec(_pixel, "mse", CRITERIA),
    "down": TermSpec(_down, "mse", CRITERIA),
    "perc": TermSpec(_perc, "l1", CRITERIA, module=PerceptualFeatures),
    "adv": TermSpec(_adv, "ragan", ADVERSARIAL),
    "ms": TermSpec(_ms, "l1", CRITERIA),
    "ds": TermSpec(_ds, "l1", CRITERIA),
}

# --- specs ------------------------------------------------------------------------------

_TERM = re.compile(r"^(?:(?P<w>[^*]+)\*)?(?:(?P<crit>[a-z0-9_]+):)?(?P<name>[a-z][a-z0-9_]*)$")


@dataclass(frozen=True)
class Term:
    """One term of a parsed spec."""

    weight: float
    name: str
    crit: str

    def __str__(self) -> str:
        w = "" if self.weight == 1 else f"{self.weight:g}*"
        return f"{w}{self.crit}:{self.name}"


def _spec_error(spec: str, why: str) -> ValueError:
    valid = "; ".join(f"{n} ({' | '.join(t.criteria)})" for n, t in TERMS.items())
    return ValueError(
        f"loss spec {spec!r}: {why}. Terms are [weight*][criterion:]name joined by '+', "
        f"with name (criteria): {valid}; e.g. 'down', 'down+0.005*adv', "
        "'0.01*l1:pixel+perc+0.005*adv'"
    )


def parse_spec(spec: str) -> list[Term]:
    """``'0.01*pixel+perc'`` -> ``[Term(0.01, 'pixel', 'mse'), Term(1.0, 'perc', 'l1')]``."""
    if not isinstance(spec, str) or not spec.strip():
        raise _spec_error(str(spec), "empty")
    terms: list[Term] = []
    for part in spec.replace(" ", "").split("+"):
        m = _TERM.match(part)
        if not m or m["name"] not in TERMS:
            raise _spec_error(spec, f"unknown term {part!r}")
        name, crit = m["name"], m["crit"] or TERMS[m["name"]].default
        if crit not in TERMS[name].criteria:
            raise _spec_error(spec, f"criterion {crit!r} does not apply to {name!r}")
        try:
            weight = float(m["w"]) if m["w"] is not None else 1.0
        except ValueError:
            raise _spec_error(spec, f"malformed weight {m['w']!r} in {part!r}") from None
        if not weight > 0 or weight == float("inf"):
            raise _spec_error(spec, f"weight of {part!r} must be a positive finite number")
        if any(t.name == name for t in terms):
            raise _spec_error(spec, f"term {name!r} appears twice")
        terms.append(Term(weight, name, crit))
    return terms


class Loss(nn.Module):
    """The generator's loss of a spec; ``forward`` returns ``(total, {term: value})``.

    Args:
        spec: a loss spec (see the module docstring).
        op: the degradation ``down`` applies to SR: in training, the one that made the LR
            (``BicubicDegradation``), or another of ``LOSS_OPERATORS`` (``loss_operator``).
    """

    def __init__(self, spec: str, op: Operator):
        super().__init__()
        self.spec, self.terms, self.op = spec, parse_spec(spec), op
        # the terms' own networks (perc's VGG), built only for the terms of this spec
        self.nets = nn.ModuleDict({
            t.name: TERMS[t.name].module() for t in self.terms if TERMS[t.name].module
        })
        self.adv = next((t for t in self.terms if t.name == "adv"), None)

    @property
    def needs_discriminator(self) -> bool:
        return self.adv is not None

    @property
    def needs_pair(self) -> bool:
        """Whether a term compares two samples of one input (``ms``, ``ds``)."""
        return any(t.name in ("ms", "ds") for t in self.terms)

    @property
    def perc_backend(self) -> str | None:
        return self.nets["perc"].backend if "perc" in self.nets else None

    def forward(
        self,
        sr: Tensor,
        hr: Tensor,
        lr: Tensor,
        d_real: Tensor | None = None,
        d_fake: Tensor | None = None,
        pair: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """``sr``, ``hr``: ``(B, 3, H, W)``; ``lr``: ``(B, 3, H/s, W/s)``, all in [0, 1];
        ``d_real`` / ``d_fake``: discriminator logits on HR (detached) and on SR;
        ``pair``: a second sample and the mean ``|z1 - z2|`` (``ms``, ``ds``).
        Returns the weighted total and each unweighted term, detached (no device sync)."""
        values: dict[str, Tensor] = {}
        for t in self.terms:
            net = self.nets[t.name] if t.name in self.nets else None  # noqa: SIM401
            ctx = Context(self.op, net, d_real, d_fake, pair)
            values[t.name] = TERMS[t.name].fn(t.crit, sr, hr, lr, ctx)
        total = sum(t.weight * values[t.name] for t in self.terms)
        return total, {k: v.detach() for k, v in values.items()}

    def discriminator(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        """The discriminator's loss matching this spec's adv criterion."""
        if self.adv is None:
            raise ValueError(f"loss {self.spec!r} has no adv term: no discriminator to train")
        return adversarial_d(self.adv.crit, d_real, d_fake)
