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
# # One run: train a generator with one loss and one upsampler, then evaluate it
#
# The runner (`python -m srlib.ablate GRID`) executes this notebook once per variant and
# seed, with the `parameters` cell below replaced by papermill. Run it by hand to train a
# single variant; running it again resumes an interrupted run, or shows a finished one.
#
# **What a run is.** A generator `G` (ESRGAN's RRDBNet, with the upsampler under study)
# maps a low-resolution patch `LR = quantize(D(HR))` to `SR = G(LR)`, where `D` is MATLAB's
# bicubic downsampling, the operator that made the LR images of every standard benchmark.
# The loss spec says what `G` is trained to do. The two losses this study compares are
#
# - the usual content loss, `pixel`: `L_pixel = mean (SR - HR)^2`, which asks `G` for the
#   one HR image of the training pair;
# - the proposal's loss, `down`: `L_down = mean (D(SR) - LR)^2`, which asks only that `SR`
#   explain its input, and leaves free every detail that `D` cannot see (its null space).
#
# A spec adds weighted terms: `down+0.005*adv` adds ESRGAN's relativistic adversarial term
# `L_adv`, for which a discriminator is trained in the same step; ESRGAN's own mix is
# `0.01*l1:pixel + perc + 0.005*adv`, with `perc` a distance between VGG features.

# %% tags=["parameters"]
variant = "example"  # the label of this run in the report's tables
# Any field of srlib.train.Config; the fields not given take Config's defaults, the same
# defaults as `python -m srlib.train --help`.
config = {"loss": "down", "upsampler": "pixelshuffle", "iters": 200,
          "out": "../reports/runs/example/seed0"}
# GPUs (ranks) to train on: more than 1 trains under torchrun, one rank per visible GPU
# (a grid variant's `gpus`; srlib.train.train_on)
gpus = 1

# %%
import inspect

import pandas as pd
from IPython.display import Markdown, display

from srlib.analysis import plot_losses, show_images
from srlib.data import dataset_name, load_dataset
from srlib.report import plain
from srlib.runs import load_sr
from srlib.train import Config, train_on, train_step

cfg = Config(**config).resolved()
pd.Series({k: v for k, v in vars(cfg).items()}, name=variant).to_frame()

# %% [markdown]
# ## The training step
# This is the whole optimisation step, as `srlib/train.py` runs it at every iteration: the
# generator's loss (the spec above) and its update, then, for adversarial specs, one
# update of the discriminator on the same batch. Everything else in `srlib.train.train`
# is bookkeeping: data, checkpoints, resumption, logging, evaluation.

# %%
display(Markdown(f"```python\n{inspect.getsource(train_step)}```"))

# %%
results = train_on(cfg, gpus)
display(Markdown(
    f"**{plain(variant)}**, seed {cfg.seed}: {results['iters']} iterations in "
    f"{results['train_seconds']:.0f} s on {results['device']}"
    + (f", resumed from iteration {results['resumed_from_iter']}"
       if results["resumed_from_iter"] else "")
))

# %% [markdown]
# ## The loss terms during training
# Each term unweighted, on a log scale. With `down` alone, the term falls far below the
# `pixel` loss of a comparable run: the generator can explain its input almost exactly
# while its output is far from HR. That gap is the study's subject.

# %%
curves = pd.read_csv(f"{cfg.out}/losses.csv")
terms = [c for c in curves.columns
         if c not in ("iter", "total", "d_loss", "learning_rate", "seconds")]
plot_losses({variant: curves}, terms + ["d_loss"], f"{variant}: loss terms (unweighted)")

# %% [markdown]
# ## Metrics on the test sets
# PSNR-Y and SSIM-Y on the Y channel with the scale cropped from each border (SR clipped
# and rounded to 8 bits first), LR-PSNR between `D(SR)` and LR, and the split of the RGB
# error into the part `D` sees (range) and the part it cannot see (null space).

# %%
table = pd.DataFrame(results["datasets"]).T
shown = ["psnr_y", "ssim_y", "lpips", "lr_psnr", "range_mse", "null_mse", "n_images"]
table[[c for c in shown if c in table]].rename(  # no lpips column with eval_lpips off
    columns={"lpips": f"lpips ({results['lpips_kind']})"})

# %% [markdown]
# ## Outputs (centre crops of the first two test images)

# %%
first = dataset_name(cfg.test_data[0])
for name, hr in load_dataset(cfg.test_data[0], split="test")[:2]:
    sr = load_sr(cfg.out, first, name)
    h, w = sr.shape[-2:]
    k = min(h, w, 128)
    box = (slice(None), slice((h - k) // 2, (h + k) // 2), slice((w - k) // 2, (w + k) // 2))
    show_images({"HR": hr[:, : h, : w].float()[box] / 255, variant: sr[box]}, size=3.5)
