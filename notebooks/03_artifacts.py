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
# # Artifacts across variants
#
# For one test image and the first seed of every finished variant: the same crop of the
# SR images, what `D` sees of their error (`D(SR) - LR`), and what it cannot see (the
# null-space part of SR); then the spectrum of `SR - bicubic`, where the periodic tiling
# of pixel shuffle shows as peaks at multiples of the LR sampling frequency.

# %% tags=["parameters"]
results = "../reports/results.csv"
runs = "../reports/runs"
grid = "../configs/quick.yaml"
image = ""          # a test image name; empty: the first image of the first test set
crop = 96           # HR px; the crop is placed where the HR image is most textured
out = "../reports/artifacts.csv"   # the figures go beside it, for the report page

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from srlib.ablate import load_grid
from srlib.analysis import (
    artifact_panel,
    busiest_box,
    load_sr,
    lr_grid_energy,
    residual_spectrum,
    show_images,
)
from srlib.data import eval_pair, load_dataset
from srlib.metrics import quantize
from srlib.resize import BicubicDegradation

table = pd.read_csv(results)
done = table[table.status == "done"]
g = load_grid(grid)
scale = g["defaults"].get("scale", 4)
test_set = g["defaults"].get("test_data", ["default"])[0]
dataset = done.dataset.iloc[0]
seed = int(done.seed.min())
variants = [v for v in done[done.seed == seed].variant.unique() if v != "bicubic"]
images = dict(load_dataset(test_set, split="test"))
image = image or next(iter(images))
runs = Path(runs)
srs = {v: load_sr(runs / v / f"seed{seed}", dataset, image) for v in variants}

# %% [markdown]
# ## The same crop, for every variant
# Columns: the SR crop; `D(SR) - LR` (x10, on the LR grid); the null-space part of SR (x5).
# A variant trained with the downsampled loss alone can keep the middle column grey (it
# explains its input) while the right column fills with structure no LR image constrains.

# %%
box = busiest_box(images[image], crop, scale)
panel = artifact_panel(images[image], srs, scale, box)
fig = show_images({f"{name}: {part}": img for name, parts in panel.items()
                   for part, img in parts.items()}, ncols=3, size=2.6)
fig.savefig(Path(out).with_name("artifacts_crops.png"), dpi=80)

# %% [markdown]
# ## Spectrum of SR - bicubic (log magnitude, centred)
# Tiling artifacts of a sub-pixel upsampler repeat with the LR pixel period, so their
# energy sits at multiples of 1/s of the sampling frequency: a grid of peaks. The number
# above each panel is the share of the residual's energy at those frequencies.

# %%
op = BicubicDegradation(scale)
rows = []
for name, img in images.items():
    hr, lr = eval_pair(img, op)
    bic = quantize(op.up(lr))
    for v in variants:
        sr = load_sr(runs / v / f"seed{seed}", dataset, name)
        share = lr_grid_energy(sr, bic, scale)
        rows.append({"variant": v, "image": name, "lr_grid_energy": share})
energy = pd.DataFrame(rows)
hr, lr = eval_pair(images[image], op)
bic = quantize(op.up(lr))
cols = min(4, len(variants))
nrows = -(-len(variants) // cols)
fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 3.4 * nrows), squeeze=False)
for ax in axes.flat:
    ax.axis("off")
for ax, v in zip(axes.flat, variants, strict=False):
    ax.imshow(residual_spectrum(srs[v], bic), cmap="magma")
    share = energy[(energy.variant == v) & (energy.image == image)].lr_grid_energy.iloc[0]
    ax.set_title(f"{v}\nLR-grid energy {share:.1%}", fontsize=8)
fig.tight_layout()
fig.savefig(Path(out).with_name("artifacts_spectra.png"), dpi=80)

# %%
summary = energy.groupby("variant", sort=False).lr_grid_energy.mean().rename("lr_grid_energy")
summary.to_frame().assign(seed=seed, dataset=dataset).to_csv(out)
summary.to_frame().style.format("{:.1%}")

# %% [markdown]
# ## Where the error lies: range and null-space MSE per variant
# The HR error splits exactly: `|SR - HR|^2 = |range part|^2 + |null part|^2`. A
# downsampled-space loss controls only the first.

# %%
parts = done[done.dataset == dataset].groupby("variant", sort=False)
means = parts[["range_mse", "null_mse"]].mean()
ax = means.plot.bar(figsize=(8, 3.5), logy=True, rot=30)
ax.set_ylabel("MSE (RGB, [0, 1])")
ax.set_title(f"{dataset}: range and null-space parts of the error (mean over seeds)")
plt.tight_layout()
