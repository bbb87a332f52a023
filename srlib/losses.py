"""The losses of the study, and the loss-spec strings that combine them.

A spec is a sum of weighted terms, ``[weight*][criterion:]name``:

    down                      the seed's loss: MSE(D(SR), LR)
    pixel                     the usual content loss: MSE(SR, HR)
    l1:pixel, mse:down        the criterion of a term (mse or l1)
    down+0.005*adv            the seed's proposed fix
    0.01*l1:pixel+perc+0.005*adv   ESRGAN's generator loss

Terms (``TERMS``; first criterion = default):

- ``pixel`` (mse | l1): SR against HR.
- ``down`` (mse | l1): ``D(SR)`` against LR, with the same MATLAB bicubic ``D`` and the
  same quantised LR that the data pipeline made: the only place this loss is defined.
- ``perc`` (l1 | mse): distance of VGG features, ESRGAN's: ImageNet VGG19 before the
  conv5_4 activation where ``vgg19-dcbb9e9d.pth`` is in torch's hub cache, otherwise the
  shift-tolerant VGG16 of ``stlpips-vgg`` before conv5_3's activation (``backend`` says
  which; the run records it).
- ``adv`` (ragan | vanilla | hinge): the generator's adversarial term; ``ragan`` is
  ESRGAN's relativistic average GAN. ``Loss.discriminator`` gives the matching D loss.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from srlib import lpips
from srlib.resize import BicubicDegradation

TERMS: dict[str, tuple[str, ...]] = {
    "pixel": ("mse", "l1"),
    "down": ("mse", "l1"),
    "perc": ("l1", "mse"),
    "adv": ("ragan", "vanilla", "hinge"),
}
_TERM = re.compile(r"^(?:(?P<w>[^*]+)\*)?(?:(?P<crit>[a-z0-9]+):)?(?P<name>[a-z]+)$")


@dataclass(frozen=True)
class Term:
    weight: float
    name: str
    crit: str

    def __str__(self) -> str:
        w = "" if self.weight == 1 else f"{self.weight:g}*"
        return f"{w}{self.crit}:{self.name}"


def _spec_error(spec: str, why: str) -> ValueError:
    valid = "; ".join(f"{n} ({' | '.join(c)})" for n, c in TERMS.items())
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
        name, crit = m["name"], m["crit"] or TERMS[m["name"]][0]
        if crit not in TERMS[name]:
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


def _distance(crit: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(a, b) if crit == "mse" else F.l1_loss(a, b)


class PerceptualFeatures(nn.Module):
    """Frozen VGG features for ``perc``: ``(B, 3, H, W)`` in ``[0, 1]`` -> feature map."""

    def __init__(self):
        super().__init__()
        if lpips.trunk_path("vgg19").is_file():
            features, taps, _ = lpips.vgg_trunk(19)
            features.load_state_dict(
                {k.split(".", 1)[1]: v for k, v in lpips.trunk_state("vgg19").items()},
                strict=False,
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * (1.0 + self.offset) - self.offset  # [0, 1], or [-1, 1] for the LPIPS trunk
        return self.features((x - self.shift) / self.scale)


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def adversarial_g(crit: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """The generator's adversarial loss from discriminator logits (``d_real`` detached)."""
    if crit == "ragan":  # real should look less real than fake on average, and vice versa
        return 0.5 * (_bce(d_real - d_fake.mean(), 0.0) + _bce(d_fake - d_real.mean(), 1.0))
    if crit == "vanilla":
        return _bce(d_fake, 1.0)
    return -d_fake.mean()  # hinge


def adversarial_d(crit: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss from its logits on HR (``d_real``) and on SR (``d_fake``)."""
    if crit == "ragan":
        return 0.5 * (_bce(d_real - d_fake.mean(), 1.0) + _bce(d_fake - d_real.mean(), 0.0))
    if crit == "vanilla":
        return _bce(d_real, 1.0) + _bce(d_fake, 0.0)
    return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()


class Loss(nn.Module):
    """The generator's loss of a spec; ``forward`` returns ``(total, {term: value})``.

    Args:
        spec: a loss spec (see the module docstring).
        op: the degradation that made the LR (for ``down``).
    """

    def __init__(self, spec: str, op: BicubicDegradation):
        super().__init__()
        self.spec, self.terms, self.op = spec, parse_spec(spec), op
        names = {t.name for t in self.terms}
        self.perc = PerceptualFeatures() if "perc" in names else None
        self.adv = next((t for t in self.terms if t.name == "adv"), None)

    @property
    def needs_discriminator(self) -> bool:
        return self.adv is not None

    @property
    def perc_backend(self) -> str | None:
        return self.perc.backend if self.perc is not None else None

    def forward(
        self,
        sr: torch.Tensor,
        hr: torch.Tensor,
        lr: torch.Tensor,
        d_real: torch.Tensor | None = None,
        d_fake: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``sr``, ``hr``: ``(B, 3, H, W)``; ``lr``: ``(B, 3, H/s, W/s)``, all in [0, 1];
        ``d_real`` / ``d_fake``: discriminator logits on HR (detached) and on SR.
        Returns the weighted total and each unweighted term, detached (no device sync)."""
        values: dict[str, torch.Tensor] = {}
        for t in self.terms:
            if t.name == "pixel":
                values[t.name] = _distance(t.crit, sr, hr)
            elif t.name == "down":
                values[t.name] = _distance(t.crit, self.op.down(sr), lr)
            elif t.name == "perc":
                values[t.name] = _distance(t.crit, self.perc(sr), self.perc(hr).detach())
            else:
                if d_real is None or d_fake is None:
                    raise ValueError(f"loss {self.spec!r} has an adv term: pass d_real, d_fake")
                values[t.name] = adversarial_g(t.crit, d_real, d_fake)
        total = sum(t.weight * values[t.name] for t in self.terms)
        return total, {k: v.detach() for k, v in values.items()}

    def discriminator(self, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        """The discriminator's loss matching this spec's adv criterion."""
        if self.adv is None:
            raise ValueError(f"loss {self.spec!r} has no adv term: no discriminator to train")
        return adversarial_d(self.adv.crit, d_real, d_fake)
