"""Generators and discriminators of the study.

- ``RRDBNet``: ESRGAN's generator (Wang et al., ECCV-W 2018): residual-in-residual dense
  blocks with residual scaling 0.2, then one of the upsamplers of ``UPSAMPLERS`` (the
  study's variable; a new one is one entry there). What the shipped entries do:

  =================  ==========================================================
  pixelshuffle       sub-pixel convolution (ESPCN): conv to r^2 x channels, shuffle
  pixelshuffle-icnr  the same, its conv initialised with ICNR (Aitken et al. 2017):
                     the r^2 sub-pixel kernels of each channel start equal, so at
                     init it is nearest x r after a conv (no checkerboard)
  nearest            nearest-neighbour x r + conv per step (ESRGAN's own)
  deconv             transposed convolution (kernel r + 2*(r//2), stride r)
  pre                MATLAB bicubic x s first, the network at HR size
                     (VDSR-style pre-upsampling)
  =================  ==========================================================

  x4 runs as two x2 steps, x2 as one, x3 as a single x3 step.

  A global skip of ``SKIPS``, for every upsampler, adds an image computed from LR to the
  network's output: ``none``; ``bicubic`` (MATLAB bicubic x s); ``pinv`` (``D^+ LR``).
  ``skip=None`` is the upsampler's historical default, ``default_skip``: ``bicubic`` for
  ``pre`` (its residual skip, VDSR-style), ``none`` for the others. The skip has no
  weights: the same state dict loads whatever the skip.

  Consistency by construction, ``CONSISTENCY``: ``none`` (the default, today's output) or
  ``project``, the output replaced by ``P(SR, LR) = SR + D^+(LR - D SR)`` (CEM,
  DDNM's range-null decomposition) inside the forward pass, after the skip, so that
  ``D(output) == LR`` to float32 rounding for every upsampler and skip; differentiable (the
  gradient reaching the network is its null-space part). No weights either: a projected
  generator loads an unprojected one's state dict (a fine-tune into projection).
  ``project-box`` is the projection onto the consistent images *within* ``[0, 1]``
  (``project_box64``), so that clipping at saving keeps ``D(output) == LR``.

  A noise input, ``noise`` channels (0, the default: none, today's deterministic
  generator): the stochastic generator of the study's H5. Per-pixel Gaussian noise
  ``z ~ N(0, 1)``, ``(B, noise, h, w)`` at the size the body runs at (LR; HR for ``pre``),
  is mixed into the features after ``conv_first`` by a 1x1 conv without bias,
  ``conv_noise`` (``feat = conv_first(x) + conv_noise(z)``; StyleGAN's per-pixel noise
  inputs, with a learned mix per feature instead of one scale per channel; an SRFlow-like
  latent at LR size). The body's 3x3 convs spread it spatially. ``noise_at`` adds depths
  (``NOISE_DEPTHS``: ``first``, the default and the above; ``body``, after the RRDB
  blocks; ``hr``, at HR size after the upsampler, for per-pixel HR detail), each with its
  own 1x1 conv and its own channels of the one z tensor. Its
  layer is created last, so a noise generator seeded alike has the deterministic one's
  weights plus ``conv_noise`` (PyTorch's default init times ``NOISE_INIT_GAIN``,
  non-zero: z matters from the start), and a deterministic state dict loads into it but
  for ``conv_noise``.
  ``forward(lr, z)`` takes z explicitly (``sample_noise(lr, seed)`` draws the fixed one of
  a seed, on the CPU, so a sample is the same on every device); with ``z=None`` it draws
  from torch's global generator in training mode (reproducible under
  ``torch.manual_seed``; ``srlib.train`` checkpoints that generator's state) and, in eval
  mode, uses the noise of seed 0, so ``g(lr)`` is deterministic: sample 0 of the K of
  ``srlib.ntire.sample_seeds``. With ``consistency: project`` every sample is exactly
  consistent: the samples differ in the null space of ``D`` only.
- ``GENERATOR_FIELDS``: the generator's fields, each a ``Knob`` (default, help, what it
  accepts, whether a fine-tune may change it): what ``build_generator`` takes,
  ``srlib.train.Config`` declares and checks, and ``srlib.runs.load_generator`` rebuilds
  a run's generator from.
- ``rrdbnet_from_published``: a published x4 RRDBNet state dict (ESRGAN's or BasicSR's key
  names, ``PUBLISHED_LAYOUTS``) as an ``RRDBNet`` with ESRGAN's own upsampler (``nearest``)
  and no skip, nf, nb and gc read from its shapes.
- ``VGGDiscriminator``: ESRGAN's VGG-style discriminator, its depth adapted to the patch.
- ``UNetDiscriminator``: Real-ESRGAN's U-Net discriminator with spectral normalisation,
  a per-pixel realness map.

Tensors are ``(B, 3, H, W)`` in roughly ``[0, 1]``; the generator's output is not clipped
(metrics clip and quantise).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from srlib.resize import BicubicDegradation
from srlib.tables import unknown

SCALES = (2, 3, 4)

# Regimes: the generator's size and how it is trained, each a field of srlib.train.Config
# (a flag or a grid's field overrides it). `quick` is sized so the report's whole grid
# trains on a 2-core CPU in its budget (benchmarks/train_throughput.py); `study` is the
# regime in which the networks learn on that CPU (benchmarks/README.md, "A regime that
# learns on the CPU"); `esrgan` is the paper's generator. d_nf: discriminator width;
# skip None: the upsampler's own (default_skip); ema_decay 0: no moving average.
PRESETS: dict[str, dict] = {
    "quick": {"nf": 32, "nb": 1, "gc": 16, "patch": 32, "batch": 16,
              "learning_rate": 1e-3, "schedule": "step", "iters": 1000, "ema_decay": 0.0,
              "d_nf": 32},
    "study": {"nf": 32, "nb": 1, "gc": 16, "patch": 96, "batch": 8,
              "learning_rate": 1e-3, "schedule": "cosine", "iters": 6000, "ema_decay": 0.999,
              "skip": "pinv", "d_nf": 16},
    "esrgan": {"nf": 64, "nb": 23, "gc": 32, "patch": 128, "batch": 16,
               "learning_rate": 2e-4, "schedule": "step", "iters": 1000, "ema_decay": 0.0,
               "d_nf": 64},
}


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2, inplace=True)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs (growth ``gc``), output scaled by 0.2 + input."""

    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(nf + i * gc, gc if i < 4 else nf, 3, padding=1) for i in range(5)
        )
        for conv in self.convs:  # ESRGAN's init: Kaiming scaled by 0.1 for stable training
            nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for i, conv in enumerate(self.convs):
            out = conv(torch.cat(feats, dim=1))
            if i < 4:
                feats.append(F.leaky_relu(out, 0.2))
        return x + 0.2 * out


class RRDB(nn.Module):
    """Residual in residual dense block: three dense blocks, scaled 0.2, plus input."""

    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.blocks = nn.Sequential(*(ResidualDenseBlock(nf, gc) for _ in range(3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.blocks(x)


def _steps(scale: int) -> list[int]:
    """Upsampling steps: x4 = x2 x2, x2, x3 (a single step where x2 steps do not fit)."""
    if scale not in SCALES:
        raise ValueError(unknown("scale", scale, SCALES))
    return [2, 2] if scale == 4 else [scale]


class _Nearest(nn.Module):
    def __init__(self, r: int):
        super().__init__()
        self.r = r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.r, mode="nearest")


def _up_pixelshuffle(nf: int, r: int) -> list[nn.Module]:
    return [nn.Conv2d(nf, nf * r * r, 3, padding=1), nn.PixelShuffle(r)]


def icnr_(conv: nn.Conv2d, r: int) -> nn.Conv2d:
    """ICNR (Aitken et al. 2017), in place: tie the ``r^2`` sub-pixel kernels (and biases)
    of each output channel of a conv feeding ``PixelShuffle(r)`` to its first one, so the
    shuffled output starts as nearest x r of a conv. The first kernels keep the conv's own
    init (PyTorch's Kaiming uniform), and no random numbers are drawn: seeded alike, the
    plain and the ICNR generator differ only in this tying."""
    # PixelShuffle takes output channel c at sub-pixel (i, j) from input c*r^2 + i*r + j.
    with torch.no_grad():
        conv.weight.copy_(conv.weight[:: r * r].repeat_interleave(r * r, dim=0))
        if conv.bias is not None:
            conv.bias.copy_(conv.bias[:: r * r].repeat_interleave(r * r))
    return conv


def _up_pixelshuffle_icnr(nf: int, r: int) -> list[nn.Module]:
    conv, shuffle = _up_pixelshuffle(nf, r)
    return [icnr_(conv, r), shuffle]


def _up_nearest(nf: int, r: int) -> list[nn.Module]:
    return [_Nearest(r), nn.Conv2d(nf, nf, 3, padding=1)]


def _up_deconv(nf: int, r: int) -> list[nn.Module]:
    # Output size (n-1) r - 2p + k = r n needs k = r + 2p; p = r // 2 gives the usual
    # k=4, s=2, p=1 at x2 (overlapping kernels) and k=5, s=3, p=1 at x3.
    p = r // 2
    return [nn.ConvTranspose2d(nf, nf, r + 2 * p, stride=r, padding=p)]


UpStep = Callable[[int, int], list[nn.Module]]

# Upsampler name -> one step of factor r on nf channels: (nf, r) -> modules, (B, nf, h, w)
# -> (B, nf, r*h, r*w). None marks pre-upsampling: no step in the network, which runs at
# HR size on the bicubic image.
UPSAMPLERS: dict[str, UpStep | None] = {
    "pixelshuffle": _up_pixelshuffle,
    "pixelshuffle-icnr": _up_pixelshuffle_icnr,
    "nearest": _up_nearest,
    "deconv": _up_deconv,
    "pre": None,
}

Skip = Callable[[BicubicDegradation, torch.Tensor], torch.Tensor]

# Global skip name -> (op, lr) -> image added to the network's output: LR (B, 3, h, w) ->
# (B, 3, s*h, s*w), float32, roughly [0, 1]. None: no skip.
SKIPS: dict[str, Skip | None] = {
    "none": None,
    "bicubic": BicubicDegradation.up,  # MATLAB bicubic x s, the bicubic baseline
    "pinv": BicubicDegradation.pinv,  # D^+ LR: D(output) == LR while the network adds 0
}


Consistency = Callable[[BicubicDegradation, torch.Tensor, torch.Tensor], torch.Tensor]


def project64(op: BicubicDegradation, sr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
    """``P(sr, lr) = sr + D^+(lr - D sr)`` computed in float64, returned in float32.

    ``sr`` (float32, ``(B, 3, s*h, s*w)``) and ``lr`` are cast to float64, so ``D`` and
    ``D^+`` run with float64 matrices (``BicubicDegradation`` caches them per dtype) and
    float64 matmuls; only the result is rounded to float32 (relative 6e-8), which leaves
    ``D(output) - lr`` at about 1e-7. Neither TF32 nor autocast can touch it: TF32
    (``torch.backends.cuda.matmul.allow_tf32``, ``set_float32_matmul_precision``) applies
    to float32 matmuls only, never to float64 ones (cuBLAS DGEMM is IEEE double, on tensor
    cores or not), and autocast leaves float64 ops alone; the caller also disables autocast
    around it (``RRDBNet.forward``). Differentiable: the casts pass gradients through."""
    return op.project(sr.double(), lr.double()).float()


class _TowardBox(torch.autograd.Function):
    """Identity forward; backward drops each gradient component that would move a value
    already outside ``[0, 1]`` further out (gradient descent steps ``x - lr * grad``)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(x)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        (x,) = ctx.saved_tensors
        outward = ((x < 0) & (grad > 0)) | ((x > 1) & (grad < 0))
        return grad.masked_fill(outward, 0.0)


def project_box64(op: BicubicDegradation, sr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
    """The closest image to ``sr`` that is consistent with ``lr`` *and* in ``[0, 1]``
    (``BicubicDegradation.project_box``, Dykstra in float64), so that clipping at saving
    cannot break consistency; returned in float32. Straight-through: the forward value is
    the box-constrained projection, the gradient that of ``project64`` (its null-space
    part), since the rounds of clamps are not worth differentiating, except that no
    gradient moves a value of ``sr`` that lies outside the box further out. That matters:
    with the plain projection's gradient, a term that gains from spread (``ms``) pushed
    ``sr`` outward without limit while the forward value stayed in the box, until
    Dykstra's rounds no longer reached it (seen: samples 60 grey levels apart, LR-PSNR
    15 dB)."""
    plain = project64(op, _TowardBox.apply(sr), lr)
    with torch.no_grad():
        boxed = op.project_box(sr.detach(), lr.detach(), iters=BOX_ITERS)[0].float()
    return plain + (boxed - plain).detach()


BOX_ITERS = 100  # Dykstra rounds per forward pass (Set14, strong noise: 70-300 to 1e-6)

# Consistency name -> (op, sr, lr) -> the output that replaces SR: (B, 3, s*h, s*w),
# float32. None: the output as it is.
CONSISTENCY: dict[str, Consistency | None] = {
    "none": None,
    "project": project64,  # P(SR, LR): D(output) == LR by construction
    "project-box": project_box64,  # and in [0, 1]: consistent after clipping too
}


# Noise depth name -> where ``z`` is mixed into the features, each by its own 1x1 conv
# without bias (``noise_at``): ``first`` after ``conv_first`` (LR size; ``conv_noise``),
# ``body`` on the RRDB body's output before ``conv_body`` (LR size, after the blocks),
# ``hr`` after the upsampler, at HR size, before ``conv_hr`` (its noise is ``s^2`` LR-size
# channels per noise channel, pixel-shuffled to HR: one z tensor serves every depth).
NOISE_DEPTHS = ("first", "body", "hr")
# The noise convs start at this fraction of PyTorch's default init: at the default, a
# pixel-trained start's samples (noise at first, body and hr) were about 60 grey levels
# apart before the first step, far outside [0, 1], and no loss brought them back.
NOISE_INIT_GAIN = 0.05


def _is_depths(v) -> bool:
    return isinstance(v, list) and bool(v) and len(set(v)) == len(v) and \
        all(isinstance(d, str) and d in NOISE_DEPTHS for d in v)


def default_skip(upsampler: str) -> str:
    """The skip an upsampler had before skips were selectable, what ``skip=None`` means:
    ``bicubic`` for pre-upsampling (a ``None`` entry of ``UPSAMPLERS``), else ``none``."""
    if upsampler not in UPSAMPLERS:
        raise ValueError(unknown("upsampler", upsampler, UPSAMPLERS))
    return "bicubic" if UPSAMPLERS[upsampler] is None else "none"


# ---- the generator's fields ----------------------------------------------------------

@dataclass(frozen=True)
class Knob:
    """A setting: its default, its help text (its CLI flag's) and what it accepts.

    What it accepts is one of: ``choices`` (the allowed values; a table such as
    ``UPSAMPLERS``, its keys, read at each check, so that an entry added later counts),
    ``least`` (an integer >= least, and <= ``most`` unless None) or ``ok`` (a predicate);
    none: anything. ``expected`` words the message instead of the generated words.
    ``fine_tune(old, new)``, for a generator field: whether a run with ``new`` may start
    from a generator trained with ``old`` (``init_from``); by default, when they are equal.
    """

    default: Any
    help: str
    choices: Collection | None = None
    least: int | None = None
    most: int | None = None
    ok: Callable[[Any], bool] | None = None
    expected: str = ""
    fine_tune: Callable[[Any, Any], bool] = operator.eq

    def accepts(self, value) -> bool:
        if self.choices is not None:
            try:
                return not isinstance(value, bool) and value in self.choices
            except TypeError:  # unhashable: not a key of a table
                return False
        if self.least is not None:
            return isinstance(value, int) and not isinstance(value, bool) \
                and value >= self.least and (self.most is None or value <= self.most)
        return self.ok is None or self.ok(value)

    def describe(self) -> str:
        """What it accepts, in words: ``one of a, b, c``, ``a positive integer``, ..."""
        if self.expected:
            return self.expected
        if self.choices is not None:
            return f"one of {', '.join(map(str, self.choices))}"
        if self.most is not None:
            return f"an integer in [{self.least}, {self.most}]"
        return {0: "a non-negative integer", 1: "a positive integer"}.get(
            self.least, f"an integer >= {self.least}")

    def check(self, name: str, value) -> None:
        """``ValueError`` naming the setting, the value and what was expected."""
        if not self.accepts(value):
            if self.choices is not None and not self.expected:
                raise ValueError(unknown(name, value, self.choices))
            raise ValueError(f"{name} must be {self.describe()}, got {value!r}")


# The generator's fields: what RRDBNet takes and a run's config.json records. One place for
# training's Config (its fields, their flags, checks and help), build_generator, the
# init_from check and runs.load_generator. A new knob: its entry here, RRDBNet's parameter
# using it, and its line in srlib.train.Config (``name: type = _g("name")``). None sizes
# are the preset's (PRESETS), a None skip the upsampler's own (default_skip).
GENERATOR_FIELDS: dict[str, Knob] = {
    "upsampler": Knob("nearest", f"one of {', '.join(UPSAMPLERS)}", choices=UPSAMPLERS),
    "skip": Knob(None, f"global skip added to the output: one of {', '.join(SKIPS)} "
                       "(default: the upsampler's own: bicubic for pre, else none)",
                 choices=SKIPS),
    # no weights: an unprojected generator starts a projected one (same weights, P added)
    "consistency": Knob("none", f"one of {', '.join(CONSISTENCY)}: 'project' makes the "
                                "output P(G(LR), LR), consistent with LR by construction",
                        choices=CONSISTENCY, fine_tune=lambda _old, _new: True),
    # a deterministic source starts a noise generator: its weights load, conv_noise fresh
    "noise": Knob(0, "Gaussian noise channels mixed into the generator's LR features (a "
                     "stochastic generator; 0: none, deterministic); train it with an adv "
                     "term", least=0, expected="a non-negative integer (0: no noise input, "
                     "deterministic; k > 0: k noise channels)",
                  fine_tune=lambda old, new: old in (0, new)),
    # no weights: z's scale at sampling, so a fine-tune may change it
    "noise_std": Knob(1.0, "with noise: the standard deviation of z ~ N(0, noise_std^2), the "
                           "noise amplitude", ok=lambda v: isinstance(v, (int, float))
                      and not isinstance(v, bool) and 0 < v < float("inf"),
                      expected="a positive number", fine_tune=lambda _old, _new: True),
    # a fine-tune may add depths: their convs start fresh (train._build allows it)
    "noise_at": Knob(["first"], "with noise: where z is mixed into the features, one or more "
                                f"of {', '.join(NOISE_DEPTHS)} (first: after the first conv; "
                                "body: after the RRDB blocks; hr: at HR size after the "
                                "upsampler)", ok=_is_depths,
                     expected=f"a non-empty list of distinct depths from {', '.join(NOISE_DEPTHS)}",
                     fine_tune=lambda _old, _new: True),
    "scale": Knob(4, f"SR factor, one of {', '.join(map(str, SCALES))}", choices=SCALES),
    "nf": Knob(None, "generator features (preset's)", least=1),
    "nb": Knob(None, "generator RRDB blocks (preset's)", least=1),
    "gc": Knob(None, "dense-block growth channels (preset's)", least=1),
}


def check_generator(**fields) -> None:
    """Check generator fields (``GENERATOR_FIELDS`` names) by their entries; an unknown
    name raises ``ValueError`` listing the known ones."""
    for name, value in fields.items():
        if name not in GENERATOR_FIELDS:
            raise ValueError(unknown("generator field", name, GENERATOR_FIELDS))
        GENERATOR_FIELDS[name].check(name, value)


def _upsampler(step: UpStep, nf: int, scale: int) -> nn.Sequential:
    """The steps of ``scale`` (x4 = x2 x2), each followed by a leaky ReLU."""
    layers: list[nn.Module] = []
    for r in _steps(scale):
        layers += [*step(nf, r), _lrelu()]
    return nn.Sequential(*layers)


class RRDBNet(nn.Module):
    """ESRGAN's generator: LR ``(B, 3, h, w)`` -> SR ``(B, 3, s*h, s*w)``, plus a global skip.

    Args:
        scale: 2, 3 or 4. upsampler: one of ``UPSAMPLERS``.
        nf: features; nb: RRDB blocks; gc: dense-block growth channels.
        skip: one of ``SKIPS``, added to the output;
            ``None``: ``default_skip(upsampler)``, the historical behaviour. ``pre`` always
            takes the bicubic image as input; its output skip is this one.
        consistency: one of ``CONSISTENCY``: ``none`` (the output as it is) or ``project``
            (the output, skip included, replaced by ``P(SR, LR)``, computed in float64
            outside autocast: ``D(output) == LR`` to float32 rounding).
        noise: Gaussian noise channels mixed into the features (module doc); 0: none.
    """

    def __init__(self, scale: int = 4, upsampler: str = "nearest", nf: int = 64,
                 nb: int = 23, gc: int = 32, skip: str | None = None,
                 consistency: str = "none", noise: int = 0,
                 noise_at: list[str] | None = None, noise_std: float = 1.0):
        super().__init__()
        skip = default_skip(upsampler) if skip is None else skip
        noise_at = list(GENERATOR_FIELDS["noise_at"].default if noise_at is None else noise_at)
        check_generator(upsampler=upsampler, skip=skip, consistency=consistency, noise=noise,
                        noise_at=noise_at, noise_std=noise_std, scale=scale, nf=nf, nb=nb,
                        gc=gc)
        self.noise_std = float(noise_std)
        step = UPSAMPLERS[upsampler]
        self.scale, self.upsampler, self.skip = scale, upsampler, skip
        self.consistency, self.noise = consistency, noise
        self.pre = step is None  # pre-upsampling: the whole network at HR size
        self.op = BicubicDegradation(scale)  # no weights: skips leave the state dict alone
        self.conv_first = nn.Conv2d(3, nf, 3, padding=1)
        self.body = nn.Sequential(*(RRDB(nf, gc) for _ in range(nb)))
        self.conv_body = nn.Conv2d(nf, nf, 3, padding=1)
        self.upsample = nn.Identity() if step is None else _upsampler(step, nf, scale)
        self.conv_hr = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_last = nn.Conv2d(nf, 3, 3, padding=1)
        # Created last: every other weight is drawn as without noise (module doc); the
        # first depth keeps its historical name (conv_noise) and is created first.
        self.noise_at = noise_at if noise else []
        self.conv_noise = nn.Conv2d(noise, nf, 1, bias=False) \
            if noise and "first" in noise_at else None
        self.conv_noise_body = nn.Conv2d(noise, nf, 1, bias=False) \
            if noise and "body" in noise_at else None
        # at HR size: s^2 LR-size channels per noise channel, shuffled (none for pre)
        self.hr_ratio = 1 if self.pre else scale * scale
        self.conv_noise_hr = nn.Conv2d(noise, nf, 1, bias=False) \
            if noise and "hr" in noise_at else None
        with torch.no_grad():  # scaled after drawing: the other weights stay as they were
            for conv in (self.conv_noise, self.conv_noise_body, self.conv_noise_hr):
                if conv is not None:
                    conv.weight.mul_(NOISE_INIT_GAIN)

    def noise_channels(self) -> dict[str, int]:
        """How many of z's channels each noise depth takes, in ``NOISE_DEPTHS`` order."""
        per = {"first": self.noise, "body": self.noise, "hr": self.noise * self.hr_ratio}
        return {d: per[d] for d in NOISE_DEPTHS if d in self.noise_at}

    def noise_shape(self, lr: torch.Tensor) -> tuple[int, int, int, int]:
        """The shape of ``z`` for the input ``lr`` ``(B, 3, h, w)``: ``(B, C, h, w)``,
        ``(B, C, s*h, s*w)`` for ``pre`` (the size the body runs at), ``C`` the channels of
        every noise depth (``noise_channels``; ``noise`` with ``first`` alone)."""
        b, _, h, w = lr.shape
        r = self.scale if self.pre else 1
        return (b, sum(self.noise_channels().values()), r * h, r * w)

    def sample_noise(self, lr: torch.Tensor, seed: int | None = None) -> torch.Tensor:
        """``z ~ N(0, noise_std^2)`` of ``noise_shape(lr)`` on ``lr``'s device, float32: from
        ``torch.Generator().manual_seed(seed)`` on the CPU (the same z on every device), or
        from torch's global generator (on ``lr``'s device) when ``seed`` is None."""
        if not self.noise:
            raise ValueError("this generator has no noise input (noise=0): there is no z "
                             "to draw; build it with noise > 0 for samples")
        shape = self.noise_shape(lr)
        if seed is None:
            return torch.randn(shape, device=lr.device) * self.noise_std
        gen = torch.Generator().manual_seed(seed)
        return (torch.randn(shape, generator=gen) * self.noise_std).to(lr.device)

    def _noise_features(self, x: torch.Tensor, lr: torch.Tensor,
                        z: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """``{depth: its conv of its part of z}`` for the body's input ``x``, z drawn when
        None (module doc); empty without a noise input. The ``hr`` part is pixel-shuffled
        to HR size first."""
        if not self.noise:
            if z is not None:
                raise ValueError("z given, but this generator has no noise input (noise=0); "
                                 "pass z=None, or build it with noise > 0")
            return {}
        if z is None:
            z = self.sample_noise(lr, None if self.training else 0)
        want = self.noise_shape(lr)
        if tuple(z.shape) != want:
            raise ValueError(f"z must have shape {want} (B, noise, h, w), got {tuple(z.shape)}")
        z = z.to(device=x.device, dtype=x.dtype)
        convs = {"first": self.conv_noise, "body": self.conv_noise_body,
                 "hr": self.conv_noise_hr}
        out, start = {}, 0
        for depth, n in self.noise_channels().items():
            part = z[:, start:start + n]
            start += n
            if depth == "hr" and self.hr_ratio > 1:
                part = F.pixel_shuffle(part, self.scale)
            out[depth] = convs[depth](part)
        return out

    def forward(self, lr: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """SR of ``lr``; ``z``: the noise of a generator with a noise input (module doc),
        drawn when None; a generator without one refuses a z."""
        # Under bf16 autocast, the image-valued ends run in float32: a bf16 image would
        # carry rounding errors of about one 8-bit level (and pinv would lose D(SR) == LR).
        fp32 = torch.autocast(lr.device.type, enabled=False)
        skip_fn = SKIPS[self.skip]  # looked up here, so a table entry added later is used
        consistent = CONSISTENCY[self.consistency]
        with fp32:
            x = self.op.up(lr.float()) if self.pre else lr
            base = None if skip_fn is None else skip_fn(self.op, lr.float())
        mixed = self._noise_features(x, lr, z)
        feat = self.conv_first(x)
        feat = feat + mixed["first"] if "first" in mixed else feat
        body = self.body(feat)
        body = body + mixed["body"] if "body" in mixed else body
        feat = self.upsample(feat + self.conv_body(body))
        feat = feat + mixed["hr"] if "hr" in mixed else feat
        feat = F.leaky_relu(self.conv_hr(feat), 0.2)
        with fp32:  # the projection too: autocast never reaches D (it runs in float64)
            out = self.conv_last(feat.float())
            out = out if base is None else base + out
            return out if consistent is None else consistent(self.op, out, lr)


# ---- published RRDBNet checkpoints ------------------------------------------------------

# The key layouts of published x4 RRDBNet state dicts: ``rdb``, conv k (1-5) of dense block
# j (1-3) of trunk block i; ``trunk``, the trunk's prefix; then the conv after the trunk,
# the two upsampling convs (each after nearest x2) and the HR conv. ``conv_first`` and
# ``conv_last`` are named alike in both layouts and here.
PUBLISHED_LAYOUTS: dict[str, dict[str, str]] = {
    # xinntao/ESRGAN's RRDBNet_arch.py (RRDB_ESRGAN_x4.pth, RRDB_PSNR_x4.pth)
    "ESRGAN": {"rdb": "RRDB_trunk.{i}.RDB{j}.conv{k}", "trunk": "RRDB_trunk",
               "conv_body": "trunk_conv", "up1": "upconv1", "up2": "upconv2",
               "conv_hr": "HRconv"},
    # BasicSR's rrdbnet_arch.py (ESRGAN_SRx4_DF2KOST_official, RealESRGAN_x4plus, ...)
    "BasicSR": {"rdb": "body.{i}.rdb{j}.conv{k}", "trunk": "body",
                "conv_body": "conv_body", "up1": "conv_up1", "up2": "conv_up2",
                "conv_hr": "conv_hr"},
}
# BasicSR saves a network as {wrapper: state dict}; with both, the moving average is the
# one its own test scripts load.
PUBLISHED_WRAPPERS = ("params_ema", "params")


def rrdbnet_from_published(state: object) -> tuple[RRDBNet, dict]:
    """A published x4 RRDBNet state dict as this project's ``RRDBNet`` (upsampler
    ``nearest``, skip ``none``, no noise, no consistency: ESRGAN's network exactly), its
    weights loaded, in eval mode; and what was read: ``{"layout", "nf", "nb", "gc"}``.

    ``state``: a dict of tensors with the keys of one of ``PUBLISHED_LAYOUTS`` (ESRGAN's
    or BasicSR's), or BasicSR's dict holding one under ``params_ema`` or ``params``
    (``params_ema`` preferred); a ``module.`` prefix (DataParallel) is dropped. nf is
    ``conv_first``'s output channels, nb the number of trunk blocks, gc the first dense
    conv's output channels. ``ValueError`` (worded to follow the file's name) says what
    does not fit: not a dict of tensors, keys of neither layout, keys missing or unknown
    (a few named), a shape that differs, an input other than RGB (BasicSR's x2 and x1
    models pixel-unshuffle their input: only x4 is supported)."""
    state = _unwrapped(state)
    name, layout = _layout_of(state)
    nf, nb, gc = _published_sizes(state, layout)
    g = RRDBNet(scale=4, upsampler="nearest", nf=nf, nb=nb, gc=gc, skip="none")
    names = _published_names(layout, nb, _esrgan_upsampling(g))
    missing = [k for k in names if k not in state]
    foreign = [k for k in state if k not in names]
    if missing or foreign:
        why = [f"{what} {_listed(keys)}" for what, keys in
               (("lacks", missing), ("has unknown keys", foreign)) if keys]
        raise ValueError(f"{' and '.join(why)}; expected {_layout_words(name)}")
    mine = g.state_dict()
    for k, v in state.items():
        if v.shape != mine[names[k]].shape:
            raise ValueError(f"has {k} of shape {tuple(v.shape)}, expected "
                             f"{tuple(mine[names[k]].shape)} for nf={nf}, nb={nb}, gc={gc} "
                             "(read from conv_first and the first dense conv)")
    g.load_state_dict({names[k]: v for k, v in state.items()})
    return g.eval(), {"layout": name, "nf": nf, "nb": nb, "gc": gc}


def _listed(items: list[str], n: int = 4) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def _layout_words(name: str) -> str:
    """``ESRGAN's layout (conv_first, RRDB_trunk.0.RDB1.conv1, ...)``: its parts' names."""
    lay = PUBLISHED_LAYOUTS[name]
    return (f"{name}'s layout (conv_first, {lay['rdb'].format(i=0, j=1, k=1)}, "
            f"{lay['conv_body']}, {lay['up1']}, {lay['up2']}, {lay['conv_hr']}, conv_last)")


def _unwrapped(state: object) -> dict[str, torch.Tensor]:
    """The state dict of a published file's contents (module doc of
    ``rrdbnet_from_published``), every entry checked to be a tensor."""
    where = "holds"
    if isinstance(state, dict):
        wrapper = next((k for k in PUBLISHED_WRAPPERS if k in state), None)
        if wrapper is not None:
            state, where = state[wrapper], f"holds under {wrapper!r}"
    if not isinstance(state, dict) or not state:
        what = "an empty dict" if isinstance(state, dict) else f"a {type(state).__name__}"
        raise ValueError(f"{where} {what}, not a state dict (parameter name -> tensor)")
    bad = next((k for k, v in state.items()
                if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise ValueError(f"{where} a dict whose entry {bad!r} is of type "
                         f"{type(state[bad]).__name__}, not a state dict (parameter name -> "
                         f"tensor; BasicSR's: under {' or '.join(PUBLISHED_WRAPPERS)})")
    if all(k.startswith("module.") for k in state):  # saved from (Distributed)DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _layout_of(state: dict[str, torch.Tensor]) -> tuple[str, dict[str, str]]:
    """The layout of ``PUBLISHED_LAYOUTS`` whose conv after the trunk ``state`` has."""
    found = [n for n, lay in PUBLISHED_LAYOUTS.items() if f"{lay['conv_body']}.weight" in state]
    if len(found) != 1:
        raise ValueError(f"has keys of no RRDBNet layout known here ({_listed(list(state))}); "
                         f"expected {' or '.join(map(_layout_words, PUBLISHED_LAYOUTS))}")
    return found[0], PUBLISHED_LAYOUTS[found[0]]


def _published_sizes(state: dict[str, torch.Tensor], layout: dict[str, str]
                     ) -> tuple[int, int, int]:
    """``(nf, nb, gc)`` read from the shapes and the trunk's keys."""
    first, dense = "conv_first.weight", layout["rdb"].format(i=0, j=1, k=1) + ".weight"
    for key in (first, dense):
        if key not in state or state[key].dim() != 4:
            found = f"has {key} of shape {tuple(state[key].shape)}" if key in state else \
                f"lacks {key}"
            raise ValueError(f"{found}; expected a conv weight (out, in, 3, 3) there")
    nf, inputs = state[first].shape[:2]
    if inputs != 3:  # BasicSR's x2 / x1: pixel-unshuffle by 2 / 4, then 12 / 48 channels
        kind = {12: " (BasicSR's x2 RRDBNet)", 48: " (BasicSR's x1 RRDBNet)"}.get(inputs, "")
        raise ValueError(f"has conv_first taking {inputs} input channels{kind}, expected 3 "
                         "(RGB): only x4 RRDBNet checkpoints are supported")
    prefix = layout["trunk"] + "."
    blocks = {int(part) for k in state if k.startswith(prefix)
              and (part := k[len(prefix):].split(".")[0]).isdigit()}
    gaps = sorted(set(range(max(blocks) + 1)) - blocks)
    if gaps:  # checked before building: a stray large index must not size the network
        raise ValueError(f"lacks trunk blocks {_listed([str(i) for i in gaps])} of "
                         f"{layout['trunk']}.0 to {layout['trunk']}.{max(blocks)}")
    return int(nf), len(blocks), int(state[dense].shape[0])


def _esrgan_upsampling(g: RRDBNet) -> list[str]:
    """The names of ``g``'s two upsampling convs, once its upsampler is checked to be
    ESRGAN's x4: (nearest x2, 3x3 conv, leaky ReLU 0.2) twice."""
    mods = list(g.upsample)
    ok = len(mods) == 6 and all(
        isinstance(near, _Nearest) and near.r == 2 and isinstance(conv, nn.Conv2d)
        and conv.kernel_size == (3, 3) and conv.padding == (1, 1)
        and isinstance(act, nn.LeakyReLU) and act.negative_slope == 0.2
        for near, conv, act in (mods[:3], mods[3:]))
    if not ok:
        raise ValueError("cannot be held exactly here: this project's RRDBNet upsampler "
                         "'nearest' at x4 is not ESRGAN's (nearest x2, 3x3 conv, leaky ReLU "
                         f"0.2, twice) but {g.upsample}")
    return [f"upsample.{i}" for i, m in enumerate(mods) if isinstance(m, nn.Conv2d)]


def _published_names(layout: dict[str, str], nb: int, up: list[str]) -> dict[str, str]:
    """A layout's key -> this project's ``RRDBNet`` key, for every weight and bias of an x4
    RRDBNet of ``nb`` trunk blocks; ``up``: the names of this project's upsampling convs."""
    parts = {"conv_first": "conv_first", layout["conv_body"]: "conv_body",
             layout["up1"]: up[0], layout["up2"]: up[1], layout["conv_hr"]: "conv_hr",
             "conv_last": "conv_last"}
    parts |= {layout["rdb"].format(i=i, j=j + 1, k=k + 1): f"body.{i}.blocks.{j}.convs.{k}"
              for i in range(nb) for j in range(3) for k in range(5)}
    return {f"{a}.{p}": f"{b}.{p}" for a, b in parts.items() for p in ("weight", "bias")}


class VGGDiscriminator(nn.Module):
    """ESRGAN's VGG-style discriminator: (conv, BN, lrelu) pairs halving the size per
    stage, then two linear layers. Five stages at 128 px (the paper); fewer on smaller
    patches, so the last feature map stays 4 x 4 at powers of two. ``(B, 3, p, p)`` ->
    ``(B, 1)`` logits."""

    def __init__(self, patch: int, nf: int = 64):
        super().__init__()
        stages = min(5, int(math.log2(patch)) - 2)
        if stages < 1 or patch % 2**stages:
            raise ValueError(f"discriminator patch must be a multiple of 8 and >= 8, got {patch}")
        layers: list[nn.Module] = [nn.Conv2d(3, nf, 3, 1, 1), _lrelu()]
        cin = nf
        for i in range(stages):
            cout = nf * min(2**i, 8)
            if i > 0:
                layers += [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
                           _lrelu()]
                cin = cout
            layers += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), _lrelu()]
        self.features = nn.Sequential(*layers)
        side = patch // 2**stages
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(cin * side * side, 100), _lrelu(), nn.Linear(100, 1)
        )
        self.patch = patch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.patch, self.patch):
            raise ValueError(f"discriminator expects {self.patch}x{self.patch} patches, "
                             f"got {tuple(x.shape[-2:])}")
        return self.classifier(self.features(x))


class UNetDiscriminator(nn.Module):
    """Real-ESRGAN's U-Net discriminator with spectral normalisation: ``(B, 3, H, W)`` ->
    ``(B, 1, H, W)`` per-pixel logits (H, W multiples of 8)."""

    def __init__(self, nf: int = 64):
        super().__init__()
        sn = spectral_norm
        self.conv0 = nn.Conv2d(3, nf, 3, 1, 1)
        self.down = nn.ModuleList([
            sn(nn.Conv2d(nf, nf * 2, 4, 2, 1, bias=False)),
            sn(nn.Conv2d(nf * 2, nf * 4, 4, 2, 1, bias=False)),
            sn(nn.Conv2d(nf * 4, nf * 8, 4, 2, 1, bias=False)),
        ])
        self.up = nn.ModuleList([
            sn(nn.Conv2d(nf * 8, nf * 4, 3, 1, 1, bias=False)),
            sn(nn.Conv2d(nf * 4, nf * 2, 3, 1, 1, bias=False)),
            sn(nn.Conv2d(nf * 2, nf, 3, 1, 1, bias=False)),
        ])
        self.head = nn.Sequential(
            sn(nn.Conv2d(nf, nf, 3, 1, 1, bias=False)), _lrelu(),
            sn(nn.Conv2d(nf, nf, 3, 1, 1, bias=False)), _lrelu(),
            nn.Conv2d(nf, 1, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(f"U-Net discriminator needs sides that are multiples of 8, "
                             f"got {tuple(x.shape[-2:])}")
        skips = [F.leaky_relu(self.conv0(x), 0.2)]
        for conv in self.down:
            skips.append(F.leaky_relu(conv(skips[-1]), 0.2))
        h = skips.pop()
        for conv in self.up:
            h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
            h = F.leaky_relu(conv(h), 0.2) + skips.pop()
        return self.head(h)


def build_generator(preset: str, scale: int = 4, upsampler: str = "nearest",
                    **fields) -> RRDBNet:
    """The generator of a preset (``PRESETS``): ``scale``, ``upsampler`` and
    the other ``GENERATOR_FIELDS`` by name (``skip``, ``consistency``, ``noise``, ``nf``,
    ``nb``, ``gc``, ...), each at its table default when not given; None sizes are the
    preset's, a None skip the upsampler's own. Each is checked by its table entry."""
    if preset not in PRESETS:
        raise ValueError(unknown("preset", preset, PRESETS))
    values = {k: knob.default for k, knob in GENERATOR_FIELDS.items()}
    values |= {"scale": scale, "upsampler": upsampler} | fields
    for k, v in values.items():
        if v is None and k in PRESETS[preset]:
            values[k] = PRESETS[preset][k]
    if values["skip"] is None and values["upsampler"] in UPSAMPLERS:
        values["skip"] = default_skip(values["upsampler"])
    check_generator(**values)
    return RRDBNet(**values)


# ---- the generator's size ---------------------------------------------------------------

def conv_flops(model: nn.Module, lr: torch.Tensor, hr_only: bool = False) -> int:
    """Forward FLOPs (2 x multiply-adds) of every (transposed) convolution for input ``lr``;
    ``hr_only``: of those whose output is at HR size only."""
    total = 0
    hr_side = lr.shape[-1] * model.scale

    def hook(m: nn.Module, inp, out) -> None:
        nonlocal total
        if hr_only and out.shape[-1] != hr_side:
            return
        k = m.weight[0].numel()  # (Cin / groups) x kh x kw for Conv2d
        if isinstance(m, nn.ConvTranspose2d):  # each input pixel scatters Cout x kh x kw
            total += 2 * inp[0].numel() * m.weight[0].numel()
        else:
            total += 2 * out.numel() * k

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with torch.no_grad():
        model(lr)
    for h in handles:
        h.remove()
    return total


def generator_size(preset: str, scale: int = 4, upsampler: str = "nearest",
                   **sizes: int) -> dict:
    """The size of a preset's generator: ``params`` (trainable parameters) and
    ``mflops_per_lr_pixel``, the forward MFLOPs of its convolutions (2 x multiply-adds)
    per LR pixel, counted on a 48 x 48 LR input (the rate does not depend on the size).
    ``sizes``: ``nf``, ``nb``, ``gc`` other than the preset's."""
    g = build_generator(preset, scale=scale, upsampler=upsampler, **sizes)
    lr = torch.zeros(1, 3, 48, 48)
    return {"params": sum(p.numel() for p in g.parameters() if p.requires_grad),
            "mflops_per_lr_pixel": conv_flops(g, lr) / lr[0, 0].numel() / 1e6}
