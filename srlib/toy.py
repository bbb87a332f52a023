"""The 2-D toy of the argument: HR = two pixels on a curved manifold, LR = their mean.

The HR "images" are points ``x = c + r (cos t, sin t)`` on a circle (the manifold of
natural images, in miniature); the degradation is ``D(x) = (x1 + x2) / 2``. Every LR
value ``y`` is explained by the whole line ``x1 + x2 = 2y`` (its consistent set), which
meets the manifold at two points, mirror images about the diagonal. So:

- MSE against HR is minimised by the conditional mean ``(y, y)``: inside the circle,
  off the manifold (the blur of MSE-trained SR);
- the downsampled loss ``(D(G(y, z)) - y)^2`` is zero anywhere on the line: it does not
  care whether outputs are on the manifold;
- an adversarial term pulls outputs onto the manifold, and with the downsampled loss
  onto the two consistent manifold points.

``train_toy`` trains a small MLP generator with a noise input for each loss;
``toy_scores`` measures what the pictures show.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

CENTRE, RADIUS = 0.5, 0.3
TOY_LOSSES = ("mse", "down", "down+adv")


def sample_manifold(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` HR points ``(n, 2)`` on the circle and their LR values ``(n, 1)``."""
    t = torch.rand(n, generator=gen) * 2 * math.pi
    hr = CENTRE + RADIUS * torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    return hr, degrade(hr)


def degrade(x: torch.Tensor) -> torch.Tensor:
    """The toy's ``D``: ``(n, 2)`` -> ``(n, 1)``, the mean of the two pixels."""
    return x.mean(dim=1, keepdim=True)


def _mlp(cin: int, cout: int, hidden: int = 64) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, hidden), nn.LeakyReLU(0.2),
                         nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, cout))


class ToyGenerator(nn.Module):
    """``G(y, z)``: LR value ``(n, 1)`` and noise ``(n, 1)`` -> HR point ``(n, 2)``."""

    def __init__(self):
        super().__init__()
        self.net = _mlp(2, 2)

    def forward(self, lr: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([lr, z], dim=1)) + lr  # start near the diagonal


def train_toy(loss: str, steps: int = 3000, seed: int = 0, batch: int = 256,
              adv_weight: float = 0.1) -> ToyGenerator:
    """Train a toy generator with ``mse``, ``down`` or ``down+adv`` (vanilla GAN)."""
    if loss not in TOY_LOSSES:
        raise ValueError(f"toy loss must be one of {', '.join(TOY_LOSSES)}, got {loss!r}")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    g, d = ToyGenerator(), _mlp(2, 1)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-3, betas=(0.5, 0.99))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-3, betas=(0.5, 0.99))
    for _ in range(steps):
        hr, lr = sample_manifold(batch, gen)
        sr = g(lr, torch.randn(batch, 1, generator=gen))
        total = F.mse_loss(sr, hr) if loss == "mse" else F.mse_loss(degrade(sr), lr)
        if loss == "down+adv":
            logits = d(sr)
            total = total + adv_weight * F.binary_cross_entropy_with_logits(
                logits, torch.ones_like(logits))
        opt_g.zero_grad()
        total.backward()
        opt_g.step()
        if loss == "down+adv":
            real, fake = d(hr), d(sr.detach())
            d_loss = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                      + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
    return g.eval()


def toy_outputs(g: ToyGenerator, lr_value: float, n: int = 200, seed: int = 1) -> torch.Tensor:
    """``n`` outputs ``(n, 2)`` of ``g`` for one LR value, with ``n`` noise draws."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return g(torch.full((n, 1), lr_value), torch.randn(n, 1, generator=gen))


def toy_scores(g: ToyGenerator, n: int = 2000, seed: int = 2) -> dict[str, float]:
    """What the scatter plots show, measured on fresh LR values and noise:

    ``consistency_rmse``: RMS of ``D(G(y, z)) - y``; ``manifold_rmse``: RMS distance of
    outputs to the circle; ``hr_rmse``: RMS distance to the HR point that made ``y``."""
    gen = torch.Generator().manual_seed(seed)
    hr, lr = sample_manifold(n, gen)
    with torch.no_grad():
        sr = g(lr, torch.randn(n, 1, generator=gen))
    off = (sr - CENTRE).norm(dim=1) - RADIUS
    return {
        "consistency_rmse": float((degrade(sr) - lr).pow(2).mean().sqrt()),
        "manifold_rmse": float(off.pow(2).mean().sqrt()),
        "hr_rmse": float((sr - hr).pow(2).sum(dim=1).mean().sqrt()),
    }
