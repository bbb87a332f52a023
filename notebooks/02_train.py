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
# This notebook is executed once per variant and seed by `python -m srlib.ablate`, with
# the parameters below replaced by papermill. Run it by hand to train a single variant;
# running it again resumes an interrupted run (or shows a finished one).

# %% tags=["parameters"]
variant = "down/pixelshuffle"
loss = "down"
upsampler = "pixelshuffle"
preset = "quick"
iters = 200
seed = 0
data = "default"
test_data = ["default"]
device = "auto"
out = "../reports/runs/example/seed0"
scale = 4
progress = True
# any other field of srlib.train.Config may be passed too (batch, patch, lr, init_from, ...)

# %%
import pandas as pd
from IPython.display import Markdown, display

from srlib.analysis import load_sr, plot_losses, show_images
from srlib.data import dataset_name, load_dataset
from srlib.train import Config, train

extra = {k: v for k, v in dict(globals()).items() if k in Config.__dataclass_fields__}
config = Config(**extra)

# %% [markdown]
# ## Training
# The whole step (generator, and discriminator for adversarial losses) is in
# `srlib/train.py`; the loss spec is parsed by `srlib/losses.py`.

# %%
results = train(config)
display(Markdown(
    f"**{variant}**, seed {seed}: {results['iters']} iterations in "
    f"{results['train_seconds']:.0f} s on {results['device']}"
    + (f", resumed from iteration {results['resumed_from_iter']}"
       if results["resumed_from_iter"] else "")
))

# %%
curves = pd.read_csv(f"{out}/losses.csv")
terms = [c for c in curves.columns if c not in ("iter", "total", "d_loss", "lr", "seconds")]
plot_losses({variant: curves}, terms + ["d_loss"], f"{variant}: loss terms (unweighted)")

# %% [markdown]
# ## Metrics on the test sets
# PSNR-Y / SSIM-Y on the Y channel with the scale cropped from each border, LR-PSNR between
# `D(SR)` and LR, and the range / null-space split of the error (RGB, [0, 1] units).

# %%
table = pd.DataFrame(results["datasets"]).T
table[["psnr_y", "ssim_y", "lpips", "lr_psnr", "range_mse", "null_mse", "n_images"]].rename(
    columns={"lpips": f"lpips ({results['lpips_kind']})"})

# %% [markdown]
# ## Outputs (centre crops)

# %%
first = dataset_name(test_data[0])
for name, hr in load_dataset(test_data[0], split="test")[:2]:
    sr = load_sr(out, first, name)
    h, w = sr.shape[-2:]
    k = min(h, w, 128)
    box = (slice(None), slice((h - k) // 2, (h + k) // 2), slice((w - k) // 2, (w + k) // 2))
    show_images({"HR": hr[:, : h, : w].float()[box] / 255, variant: sr[box]}, size=3.5)
