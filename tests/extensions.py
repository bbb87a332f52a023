"""The README's "Extending the study" examples, entry for entry, as a user would add them.

``tests/test_extending.py`` installs them one at a time and trains with each; with
``SRLIB_TEST_EXTENSIONS=1`` in the environment, ``conftest.py`` installs all of them before
the suite runs, so that the whole suite shows that no test pins a table's exact contents.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srlib import losses, metrics, models


def _grad(crit, sr, hr, lr, ctx):
    """README: a gradient loss, the distance between the images' finite differences."""
    def dx(x):
        return x[..., :, 1:] - x[..., :, :-1]

    def dy(x):
        return x[..., 1:, :] - x[..., :-1, :]

    return losses.CRITERIA[crit](dx(sr), dx(hr)) + losses.CRITERIA[crit](dy(sr), dy(hr))


class BoxDown:
    """README: a loss operator, an object with ``down(hr)``: the mean of each s x s box."""

    def __init__(self, scale: int):
        self.scale = scale

    def down(self, hr):
        return F.avg_pool2d(hr, self.scale)


def _clamp_project(op, sr, lr):
    """README: a consistency step, ``(op, sr, lr) -> output``."""
    return models.project64(op, sr.clamp(0, 1), lr)


def _mae_y(sr, hr, crop):
    """README: a metric's function, the mean absolute error of Y (8-bit levels)."""
    c = (..., slice(crop, -crop or None), slice(crop, -crop or None))
    return float((metrics.rgb_to_y(sr)[c] - metrics.rgb_to_y(hr)[c]).abs().mean())


# table, name, entry: each as README writes it
ENTRIES = [
    (losses.TERMS, "grad", losses.TermSpec(fn=_grad, default="l1", table=losses.CRITERIA)),
    (losses.CRITERIA, "charbonnier", lambda a, b: torch.sqrt((a - b) ** 2 + 1e-6).mean()),
    (losses.ADVERSARIAL, "lsgan", losses.GanLoss(
        g=lambda real, fake: ((fake - 1) ** 2).mean(),
        d=lambda real, fake: ((real - 1) ** 2).mean() + (fake ** 2).mean())),
    (models.UPSAMPLERS, "bilinear", lambda nf, r: [nn.Upsample(scale_factor=r, mode="bilinear"),
                                                   nn.Conv2d(nf, nf, 3, padding=1)]),
    (losses.LOSS_OPERATORS, "box", BoxDown),
    (models.CONSISTENCY, "clamp-project", _clamp_project),
    (metrics.METRICS, "mae_y", metrics.Metric("MAE-Y", "", "{:.3f}", "lower", "image",
                                              results=True)),
]


def install(mp) -> None:
    """Add every entry and the metric's function with ``mp``, a ``pytest.MonkeyPatch``
    (undone at the end of a test, or kept for the whole session)."""
    import srlib.evaluate

    for table, name, entry in ENTRIES:
        mp.setitem(table, name, entry)
    base = metrics.image_metrics

    def image_metrics(sr, hr, lr, op):  # the metric's function: one more key
        return {**base(sr, hr, lr, op), "mae_y": _mae_y(metrics.quantize(sr), hr, op.scale)}

    mp.setattr(srlib.evaluate, "image_metrics", image_metrics)
