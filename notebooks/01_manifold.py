# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The argument: many HR images share one LR image
#
# The degradation `D` (MATLAB's bicubic downsampling) is linear, and at x4 it maps
# 16 HR pixels to 1 LR pixel: 15/16 of the dimensions of an HR image are in its null
# space, invisible in the LR image. A loss measured after `D` cannot see them.

# %% tags=["parameters"]
image = "astronaut"   # an image of the embedded test split
scale = 4
target_psnr = 20.0    # dB, how far the null-space perturbation moves the image
toy_steps = 1500      # training steps of each toy generator
seed = 0
out = "../reports/manifold.json"

# %%
import json

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

from srlib.analysis import null_perturbation, show_images
from srlib.data import eval_pair, load_dataset
from srlib.metrics import psnr_rgb
from srlib.resize import BicubicDegradation
from srlib.toy import CENTRE, RADIUS, TOY_LOSSES, toy_outputs, toy_scores, train_toy

# %% [markdown]
# ## (a) A real image plus a null-space image has the same LR image

# %%
op = BicubicDegradation(scale)
hr, lr = eval_pair(dict(load_dataset("default", "test"))[image], op)
hr64, lr64 = hr.double(), op.down(hr.double())
n = null_perturbation(hr64, op, target_psnr, seed)
other = hr64 + n
lr_diff = float((op.down(other) - lr64).abs().max())
psnr_hr = float(psnr_rgb(other, hr64))
show_images({"HR": hr, f"HR + n  ({psnr_hr:.1f} dB vs HR)": other.float(),
             "D(HR), x4 nearest": lr.repeat_interleave(scale, -1).repeat_interleave(scale, -2),
             "n, x2 + 0.5": 0.5 + 2 * n.float()}, size=3.2)
display(Markdown(
    f"`HR + n` is {psnr_hr:.1f} dB from `HR` (RGB PSNR), yet `D(HR + n)` differs from "
    f"`D(HR)` by at most {lr_diff:.1e} (float64; images unclipped): both are exact answers "
    "for the same LR input. A downsampled-space loss scores them the same."
))

# %% [markdown]
# ## (b) A 2-D toy: HR = two pixels on a curved manifold, LR = their mean
#
# HR points lie on a circle (the "natural images"); `D(x) = (x1 + x2) / 2`. One LR value
# `y` is explained by the whole line `x1 + x2 = 2y`, which meets the circle twice. Three
# small generators `G(y, z)` with a noise input `z` are trained: with MSE against HR,
# with the downsampled loss, and with the downsampled loss plus an adversarial term.

# %%
gens = {loss: train_toy(loss, steps=toy_steps, seed=seed) for loss in TOY_LOSSES}
scores = {loss: toy_scores(g) for loss, g in gens.items()}
y = CENTRE + 0.1  # one LR value, and its consistent line
t = torch.linspace(0, 2 * torch.pi, 200)
fig, axes = plt.subplots(1, 3, figsize=(12, 4), sharex=True, sharey=True)
for ax, (loss, g) in zip(axes, gens.items(), strict=True):
    ax.plot(CENTRE + RADIUS * torch.cos(t), CENTRE + RADIUS * torch.sin(t), c="0.6",
            label="HR manifold")
    ax.plot([2 * y - 1.2, 1.2], [1.2, 2 * y - 1.2], "--", c="C1", lw=1,
            label=f"consistent line (y = {y:.2f})")
    pts = toy_outputs(g, y)
    ax.scatter(pts[:, 0], pts[:, 1], s=6, c="C0", label="G(y, z), 200 draws of z")
    ax.set_title(f"{loss}: off-manifold RMS {scores[loss]['manifold_rmse']:.3f}")
    ax.set_aspect("equal")
    ax.set_xlim(0, 1.1)
    ax.set_ylim(0, 1.1)
axes[0].legend(fontsize=7, loc="lower left")
fig.tight_layout()

# %% [markdown]
# Measured on 2000 fresh LR values (RMS; the manifold is a circle of radius 0.3):

# %%
import pandas as pd

pd.DataFrame(scores).T.rename(columns={
    "consistency_rmse": "D(G) - y", "manifold_rmse": "distance to manifold",
    "hr_rmse": "distance to the true HR"}).round(4)

# %%
result = {"image": image, "scale": scale, "null_psnr_db": psnr_hr,
          "null_lr_max_abs_diff": lr_diff, "toy": scores, "toy_steps": toy_steps}
with open(out, "w") as f:
    json.dump(result, f, indent=1)
