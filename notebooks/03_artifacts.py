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
# The proposal's network, trained with the downsampled loss
# `L_down = mean (D(SR) - LR)^2`, produced "artificial and weird" images: noise patterns
# that downsample to the input very precisely. This notebook looks at the SR images of
# every finished variant of the grid to see where such artifacts come from. It addresses:
#
# - **H2, the proposal's failure**: `L_down` alone with pixel shuffle reaches a high
#   LR-PSNR but a large null-space error and periodic noise;
# - **H3, the upsampler**: the proposal blamed pixel shuffle, whose channels are tiled into
#   the output, one per position of an `s x s` cell; its artifacts, if any, repeat with
#   the LR pixel period;
# - **H4, the adversarial fix**: `L_down + w L_adv` should pull the null-space part of the
#   output towards natural detail rather than noise;
# - **H5, consistency by construction**, `SR = P(G(LR), LR)` with
#   `P(sr, lr) = sr + D^+(lr - D sr)`: a variant built so would show `D(SR) - LR = 0` up
#   to 8-bit rounding. Such variants appear here when the grid has them.
#
# Three measurements, all on the first test set and the first seed: the same crop of
# every SR image with what `D` sees of its error and what it cannot see; the spectrum of
# `SR - bicubic`, where periodic tiling shows as peaks; and the range and null-space parts
# of the error, per variant, from the results table.

# %% tags=["parameters"]
results = "../reports/results.csv"
runs = "../reports/runs"
grid = "../configs/quick.yaml"
image = ""          # a test image name; empty: the first image of the first test set
crop = 96           # HR px; placed where the HR image is most textured, fitted to the image
out = "../reports/artifacts.csv"   # the figures go beside it, for the report page
key_variants = []   # the key figure's variants beside the baselines and the best two

# %%
from pathlib import Path

from IPython.display import Markdown, display

from srlib.analysis import (
    artifact_inputs,
    artifact_panel,
    artifact_summary,
    busiest_box,
    lr_grid_energies,
    plot_artifact_crops,
    plot_range_null,
    plot_spectra,
)
from srlib.data import eval_pair
from srlib.metrics import quantize
from srlib.report import code
from srlib.resize import BicubicDegradation

a = artifact_inputs(results, runs, grid, image)
display(Markdown(f"Test set {code(a.dataset)}, image {code(a.image)}, seed {a.seed}, scale "
                 f"x{a.scale}; variants: {', '.join(map(code, a.variants)) or 'none'}."))

# %% [markdown]
# ## The same crop, for every variant
#
# Each variant gets three panels: the SR crop; `D(SR) - LR`, the residual the
# downsampled loss sees (x10, on the LR grid, grey = 0); and the null-space part of SR,
# `(I - D^+ D) SR`, which it cannot see (x5, grey = 0). `HR` and `bicubic` come first as
# references: the null-space part of `HR` is the detail a perfect SR would restore. The
# crop is the most textured `crop x crop` square of the image (of an image smaller than
# that, the largest square that fits, a multiple of the scale).
#
# What to look for: a variant trained with `L_down` alone can keep its middle panel grey
# (it explains its input) while its right panel fills with structure unlike that of
# `HR`. A regular grid in the right panel, repeating every `s` pixels, is the signature
# the proposal attributed to pixel shuffle (H3). The panels show one image of one seed;
# the tables of the report hold the means.

# %%
box = busiest_box(a.images[a.image], crop, a.scale)
fig = plot_artifact_crops(artifact_panel(a.images[a.image], a.srs, a.scale, box))
fig.savefig(Path(out).with_name("artifacts_crops.png"), dpi=72)  # the study's page <= 6 MB

# %% [markdown]
# ## The key figure
#
# The page's one figure: the same crop of two test images through HR, the closed-form
# baselines, the variants the grid names (`key_variants`: the pixel network, the
# proposal's network, its nearest-upsampling control) and the best of two families
# chosen from the results: the projected variant with the highest mean PSNR-Y and the
# adversarial one with the lowest mean LPIPS. Above each crop, its numbers on that image
# from the results' own per-image table; below it, its range part (what the downsampled
# loss constrains) and its null-space part (what it cannot see).

# %%
from srlib import analysis as an
from srlib.grid import load_grid
from srlib.results import read_per_image

chosen = an.key_variants(a.done, load_grid(grid), list(key_variants))
second = next((n for n in a.images if n != a.image), None)
boxes = {a.image: box, **({second: busiest_box(a.images[second], crop, a.scale)}
                          if second else {})}
fig = an.plot_key_figure(a, chosen, read_per_image(Path(results).parent), boxes)
fig.savefig(Path(out).with_name("key_figure.png"), dpi=72)

# %% [markdown]
# ## Spectrum of `SR - bicubic`
#
# Tiling artifacts of a sub-pixel upsampler repeat with the LR pixel period, so their
# energy sits at the harmonics of the LR sampling frequency: multiples of `1/s` of the
# HR sampling frequency, a grid of peaks in the centred spectrum (log magnitude). The
# number above each panel is the share of the residual's energy at those frequencies
# (`lr_grid_energy`); the table below averages it over the test images. A residual
# without periodic structure (white noise, say) puts there about the share of frequency
# bins those harmonics occupy, `(3s / H) (3s / W)`, well under 1% for an image of a few
# hundred pixels a side; a residual made of one repeating `s x s` pattern puts nearly all
# its energy there.

# %%
energy = lr_grid_energies(a)
op = BicubicDegradation(a.scale)
bic = quantize(op.up(eval_pair(a.images[a.image], op)[1]))
shown = energy[energy.image == a.image].set_index("variant").lr_grid_energy.to_dict()
fig = plot_spectra(a.srs, bic, shown)
fig.savefig(Path(out).with_name("artifacts_spectra.png"), dpi=56)  # keeps the page small

# %%
summary = artifact_summary(energy, a)
summary.to_csv(out)
summary[["lr_grid_energy"]].style.format("{:.1%}").format_index(escape="html")

# %% [markdown]
# ## Where the error lies: range and null-space MSE per variant
#
# The error splits exactly, `|SR - HR|^2 = |range(SR - HR)|^2 + |null(SR - HR)|^2`,
# with `range(x) = D^+ D x` and `null(x) = (I - D^+ D) x`. `L_down` controls only the
# first part. H2 predicts, for `L_down` with pixel shuffle, a small range part and a null
# part larger than that of a network trained with `L_pixel`; a variant whose null part
# is no larger than the `L_pixel` network's would count against H2. Log scale; means over
# seeds, from the results table.

# %%
fig = plot_range_null(a.done, a.dataset)
