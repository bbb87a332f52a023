"""The 2-D toy of the argument: HR = two pixels on a curved manifold, LR = their mean.

The HR "images" are points ``x = c + r (cos t, sin t)`` on a circle (the manifold of
natural images, in miniature; ``c = CENTRE`` in both coordinates, ``r = RADIUS``), ``t``
uniform; the degradation is ``D(x) = (x1 + x2) / 2``, its pseudo-inverse
``D^+ y = (y, y)``, and the consistency projection ``P(x, y) = x + D^+(y - D x)`` adds
``y - D x`` to both coordinates. Every LR value ``y`` is explained by the whole line
``x1 + x2 = 2 y`` (its consistent line), which meets the circle at two points, mirror
images about the diagonal, equally likely given ``y``; their mean is ``D^+ y``, the
conditional mean.

A generator ``G(y, z)`` is an MLP with a noise input ``z ~ N(0, 1)``, randomly initialised
and not offset by ``D^+ y``. ``TOY_LOSSES``:

- ``mse``: ``mean |G(y, z) - x|^2`` against the HR point;
- ``down``: ``mean (D G(y, z) - y)^2``, zero anywhere on the consistent line;
- ``down+adv``: ``down + ADV_WEIGHT * adv``, ``adv`` the relativistic average GAN loss of
  the main study (``srlib.losses.adversarial_g("ragan", ...)``), its discriminator (an MLP
  on 2-D points, real = circle points) trained with ``adversarial_d("ragan", ...)``;
- ``adv+P``: ``adv`` alone on the outputs ``P(G(y, z), y)`` (the null-space GAN).

Measured by ``toy_study`` at the defaults (1500 steps, seeds 0, 1, 2; ranges over the
seeds; seeds 3-9 stay inside the ranges in brackets). Distances in pixel units, the circle
has radius 0.3; "near a point": within 0.05 of it; the spread scores at ``y = 0.6``, whose
consistent manifold points lie 0.265 either side of ``D^+ y`` along the line.

- ``mse`` lands on the conditional mean: at ``y = 0.6`` the outputs' mean is within 0.002
  of ``(0.6, 0.6)``, their std along the line 0.001-0.003, every output 0.14-0.20 from the
  circle, none near a consistent point; over all ``y`` the RMS distance to the circle is
  0.140 (0.139-0.141). It is the closest to the HR point (RMS 0.21, against 0.29 for the
  adversarial losses, whose outputs are nearer the mirror image of the HR point than the
  HR point itself for 49-52 % of draws).
- ``down`` is consistent (RMS of ``D G - y`` 0.0015-0.002) and leaves each output where
  training from the random start put it along the line: the mean offset from ``D^+ y`` is
  -0.10 to +0.03 (-0.18 to +0.15), the std over ``z`` 0.016-0.045 (0.016-0.09). That
  offset is not the initial one (seed 4: -0.01 at init, +0.15 trained): the loss has no
  gradient along the line, but the shared weights move. Off the manifold (RMS 0.11-0.13
  (0.09-0.13)), never near both consistent points (up to 0.3 % near one (38 %)).
- ``down+adv`` and ``adv+P`` reach both consistent manifold points on every seed: 83-90 %
  (75-90 %) of the outputs near one of the two, each of the two getting 40-43 % (33-43 %);
  over all ``y`` the median distance to the circle is 0.009-0.015, the RMS 0.034-0.040
  (0.034-0.044), set by a tail (90th percentile 0.03-0.06, 99th 0.16-0.20) of outputs
  between the two points, where a continuous ``G`` of a 1-D ``z`` passes from one to the
  other. ``down+adv`` keeps a consistency error of
  0.0085-0.013 RMS (it grows with ``ADV_WEIGHT``); ``adv+P``'s is float32 rounding, 2e-8.
- ``project=True`` (``P`` after training) makes any generator's outputs consistent to
  float32 rounding, 2e-8 RMS (float64: 4e-17); on ``down+adv`` it moves the outputs
  slightly off the circle (RMS 0.038 -> 0.041).

``toy_study`` takes about 18 s on one CPU core (1500 steps: 0.6 s for ``mse`` and ``down``,
2.1-2.5 s for the adversarial losses).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from srlib.losses import adversarial_d, adversarial_g

CENTRE, RADIUS = 0.5, 0.3
TOY_LOSSES = ("mse", "down", "down+adv", "adv+P")
ADV_WEIGHT = 0.005  # w of down + w * adv; 0.001-0.01 all reached both points (4 seeds)
LINE = (1 / math.sqrt(2), -1 / math.sqrt(2))  # unit direction of every consistent line


def sample_manifold(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` HR points ``(n, 2)`` on the circle (angle uniform) and their LR values ``(n, 1)``."""
    t = torch.rand(n, generator=gen) * 2 * math.pi
    hr = CENTRE + RADIUS * torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    return hr, degrade(hr)


def degrade(x: torch.Tensor) -> torch.Tensor:
    """The toy's ``D``: ``(n, 2)`` -> ``(n, 1)``, the mean of the two pixels."""
    return x.mean(dim=1, keepdim=True)


def projection(x: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
    """``P(x, y) = x + D^+(y - D x)``, ``D^+ y = (y, y)``: ``(n, 2)``, ``(n, 1)`` -> ``(n, 2)``
    with ``D P(x, y) = y`` up to rounding; moves ``x`` along the diagonal only."""
    return x + (lr - degrade(x))


def consistent_points(lr_value: float) -> torch.Tensor:
    """The two points ``(2, 2)`` where the line ``x1 + x2 = 2 y`` meets the circle, ``+``
    first (``x1 > x2``); ``y`` within ``CENTRE +- RADIUS / sqrt(2)``."""
    s = math.sqrt(RADIUS**2 - 2 * (lr_value - CENTRE) ** 2)
    u = torch.tensor(LINE)
    return torch.stack([lr_value + s * u, lr_value - s * u])


@contextmanager
def _one_thread() -> Iterator[None]:
    """Torch on one thread: for these tiny networks more threads only add overhead, and on
    a busy machine spinning threads made 10 steps take seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _mlp(cin: int, cout: int, hidden: int = 64) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, hidden), nn.LeakyReLU(0.2),
                         nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, cout))


class ToyGenerator(nn.Module):
    """``G(y, z)``: LR value ``(n, 1)`` and noise ``(n, 1)`` -> HR point ``(n, 2)``; an MLP
    from PyTorch's default random init, no ``D^+ y`` skip. ``consistent``: return
    ``P(G(y, z), y)`` (the projection inside the forward, as ``adv+P`` trains)."""

    def __init__(self, consistent: bool = False):
        super().__init__()
        self.net, self.consistent = _mlp(2, 2), consistent

    def forward(self, lr: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x = self.net(torch.cat([lr, z], dim=1))
        return projection(x, lr) if self.consistent else x


def train_toy(loss: str, steps: int = 1500, seed: int = 0, batch: int = 256,
              adv_weight: float = ADV_WEIGHT, lr: float = 2e-3, lr_d: float = 4e-3
              ) -> ToyGenerator:
    """A toy generator trained with one of ``TOY_LOSSES`` (see the module docstring).

    Adam (betas 0, 0.9) with cosine decay to 0 for all losses; with ``adv``, one
    discriminator step (learning rate ``lr_d``) before each generator step. On one thread
    (set here): 0.6 s (``mse``, ``down``), 2.1-2.5 s (``adv``) per 1500 steps."""
    if loss not in TOY_LOSSES:
        raise ValueError(f"toy loss must be one of {', '.join(TOY_LOSSES)}, got {loss!r}")
    with _one_thread():
        return _train(loss, steps, seed, batch, adv_weight, lr, lr_d)


def _train(loss: str, steps: int, seed: int, batch: int, adv_weight: float, lr: float,
           lr_d: float) -> ToyGenerator:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the networks' init
    g, d = ToyGenerator(consistent=loss == "adv+P"), _mlp(2, 1)
    adv = loss in ("down+adv", "adv+P")
    opts = [torch.optim.Adam(g.parameters(), lr=lr, betas=(0.0, 0.9))]
    if adv:
        opts.append(torch.optim.Adam(d.parameters(), lr=lr_d, betas=(0.0, 0.9)))
    scheds = [torch.optim.lr_scheduler.CosineAnnealingLR(o, steps) for o in opts]

    def draw() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hr, y = sample_manifold(batch, gen)
        return hr, y, torch.randn(batch, 1, generator=gen)

    for _ in range(steps):
        if adv:  # discriminator: circle points real, outputs fake
            hr, y, z = draw()
            with torch.no_grad():
                sr = g(y, z)
            d_loss = adversarial_d("ragan", d(hr), d(sr))
            opts[1].zero_grad()
            d_loss.backward()
            opts[1].step()
        hr, y, z = draw()
        sr = g(y, z)
        if loss == "mse":
            total = F.mse_loss(sr, hr)
        elif loss == "down":
            total = F.mse_loss(degrade(sr), y)
        else:
            a = adversarial_g("ragan", d(hr).detach(), d(sr))
            total = a if loss == "adv+P" else F.mse_loss(degrade(sr), y) + adv_weight * a
        opts[0].zero_grad()
        total.backward()
        opts[0].step()
        for s in scheds:
            s.step()
    return g.eval()


def toy_outputs(g: ToyGenerator, lr_value: float, n: int = 200, seed: int = 1,
                project: bool = False) -> torch.Tensor:
    """``n`` outputs ``(n, 2)`` of ``g`` for one LR value, with ``n`` noise draws;
    ``project``: ``P`` applied after ``g``."""
    gen = torch.Generator().manual_seed(seed)
    lr = torch.full((n, 1), lr_value)
    with torch.no_grad():
        x = g(lr, torch.randn(n, 1, generator=gen))
    return projection(x, lr) if project else x


def _measures(g: ToyGenerator, n: int, seed: int, project: bool) -> dict[str, float]:
    gen = torch.Generator().manual_seed(seed)
    hr, lr = sample_manifold(n, gen)
    with torch.no_grad():
        sr = g(lr, torch.randn(n, 1, generator=gen))
    if project:
        sr = projection(sr, lr)
    off = (sr - CENTRE).norm(dim=1) - RADIUS
    return {
        "consistency_rmse": float((degrade(sr) - lr).pow(2).mean().sqrt()),
        "manifold_rmse": float(off.pow(2).mean().sqrt()),
        "manifold_median": float(off.abs().median()),
        "hr_rmse": float((sr - hr).pow(2).sum(dim=1).mean().sqrt()),
    }


def toy_scores(g: ToyGenerator, n: int = 2000, seed: int = 2,
               project: bool = False) -> dict[str, float]:
    """What the scatter plots show, on ``n`` fresh LR values and noise draws:

    ``consistency_rmse``: RMS of ``D G(y, z) - y``; ``manifold_rmse``: RMS distance of the
    outputs to the circle; ``hr_rmse``: RMS distance to the HR point that made ``y`` (all
    in pixel units; the circle has radius 0.3). ``project``: score ``P(G(y, z), y)``."""
    m = _measures(g, n, seed, project)
    return {k: m[k] for k in ("consistency_rmse", "manifold_rmse", "hr_rmse")}


def toy_spread(g: ToyGenerator, lr_value: float = CENTRE + 0.1, n: int = 2000, seed: int = 1,
               radius: float = 0.05, project: bool = False) -> dict[str, float]:
    """Where ``n`` outputs for one LR value ``y`` lie along its consistent line.

    ``line_mean``, ``line_std``: mean and std over ``z`` of the outputs' coordinate along
    ``LINE`` from ``D^+ y`` (the consistent manifold points are at ``+-0.265`` for
    ``y = 0.6``); ``near_points``: share of outputs within ``radius`` of one of the two
    consistent manifold points; ``near_min``: the smaller of the two points' shares;
    ``both_hit``: 1.0 when each point gets at least 10 % of the outputs, else 0.0."""
    x = toy_outputs(g, lr_value, n, seed, project)
    u = (x - lr_value) @ torch.tensor(LINE)
    near = torch.cdist(x, consistent_points(lr_value)) < radius  # (n, 2)
    shares = near.float().mean(dim=0)
    return {
        "line_mean": float(u.mean()),
        "line_std": float(u.std()),
        "near_points": float(near.any(dim=1).float().mean()),
        "near_min": float(shares.min()),
        "both_hit": float(shares.min() >= 0.1),
    }


def toy_study(seeds: tuple[int, ...] = (0, 1, 2), steps: int = 1500,
              losses: tuple[str, ...] = TOY_LOSSES) -> pd.DataFrame:
    """One row per loss x seed: ``toy_scores`` plus ``manifold_median`` (median distance to
    the circle), ``toy_spread`` at ``y = 0.6``, the same scores after ``P``
    (``proj_consistency_rmse``, ``proj_manifold_rmse``) and the training time ``seconds``.
    About 18 s at the defaults on one CPU core."""
    rows = []
    with _one_thread():
        for loss in losses:
            for seed in seeds:
                t0 = time.perf_counter()
                g = train_toy(loss, steps=steps, seed=seed)
                seconds = time.perf_counter() - t0
                proj = _measures(g, 2000, 2, project=True)
                rows.append({"loss": loss, "seed": seed, **_measures(g, 2000, 2, False),
                             **toy_spread(g), "proj_consistency_rmse": proj["consistency_rmse"],
                             "proj_manifold_rmse": proj["manifold_rmse"], "seconds": seconds})
    return pd.DataFrame(rows)
