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
# # Is the downsampled-space loss a loss for super-resolution?
#
# A blog post (*the proposal*) suggested training super-resolution (SR) networks by
# comparing the output with the input *after downsampling*, `MSE(LR, D(G(LR)))`, instead
# of with the high-resolution image, `MSE(HR, G(LR))`: the model would then be punished
# only for outputs that do not explain their input, and be free to produce any plausible
# detail. Its author trained an ESRGAN with this loss and got "artificial and weird"
# images: noise patterns that downsample to the input very precisely. The proposal then
# suggested two fixes: add adversarial training, and use an upsampler other than pixel
# shuffle. This report re-runs that experiment and those fixes, measures where each
# variant's error lies, and states, for each hypothesis, what the numbers of this run
# say.
#
# Everything on this page is read from the result files of one run of the grid below
# (`results.csv`, `manifold.json`, `artifacts.csv`, the runs' `losses.csv`,
# `provenance.json` and the saved figures); the notebooks that wrote them are linked at
# the end.

# %% tags=["parameters"]
results = "../reports/results.csv"
runs = "../reports/runs"
grid = "../configs/quick.yaml"

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import HTML, Image, Markdown, display

from srlib.ablate import load_grid
from srlib.analysis import load_loss_curves, plot_losses, plot_perception_distortion
from srlib.report import (
    format_table,
    grid_summary,
    page_findings,
    provenance_text,
    run_links,
    summary_table,
)

reports = Path(results).parent
table = pd.read_csv(results, keep_default_na=False, na_values=[""])
done = table[table.status == "done"]
summ = summary_table(table)
datasets = list(summ.dataset.unique()) if len(summ) else []
display(Markdown(grid_summary(table, load_grid(grid))))

# %% [markdown]
# ## What is measured
#
# **The operator.** `D` is MATLAB's bicubic downsampling by the scale `s`,
# `imresize(x, 1/s, 'bicubic')`, the operator that made the LR images of every standard
# benchmark. It is linear: per channel, `D(x) = A_h x A_w^T`. Its pseudo-inverse is
# `D^+(y) = A_h^+ y (A_w^+)^T`, and `D^+ LR` is the image of least energy that downsamples
# to `LR` (the `pinv` baseline, where the grid has it). The projection
# `P(sr, lr) = sr + D^+(lr - D sr)` makes any image consistent with its input. Every image
# splits into two orthogonal parts, `x = D^+ D x + (I - D^+ D) x`: the *range* part, which
# its LR image fixes, and the *null-space* part, which `D` cannot see (at x4, 15 of every
# 16 dimensions). The error of an SR image splits the same way,
# `|SR - HR|^2 = |range(SR - HR)|^2 + |null(SR - HR)|^2` (the columns *range MSE* and
# *null MSE*): a downsampled-space loss controls only the first.
#
# **The losses.** Variants are named `loss/upsampler`; their losses are sums of these
# terms:
#
# - `pixel`, the usual content loss: `L_pixel = mean (SR - HR)^2`, or
#   `L1_pixel = mean |SR - HR|`;
# - `down`, the proposal's loss: `L_down = mean (D(SR) - LR)^2`, with the `D` that made LR;
# - `adv`, ESRGAN's relativistic average GAN: with `C` the discriminator's raw output and
#   `D_Ra(a, b) = sigmoid(C(a) - mean C(b))`, the generator minimises
#   `L_adv = -mean log(1 - D_Ra(HR, SR)) - mean log D_Ra(SR, HR)`;
# - `perc`, the L1 distance of VGG features (ESRGAN: VGG19 before conv5_4's activation);
# - ESRGAN's mix, `0.01 L1_pixel + L_perc + 0.005 L_adv`, and the proposal's fix,
#   `L_down + 0.005 L_adv`.
#
# **The metrics.** PSNR-Y and SSIM-Y on the Y channel (BT.601) with `s` pixels cropped
# from each border, the SR image clipped to [0, 1] and rounded to 8 bits first, as in the
# literature; LPIPS, a learned perceptual distance (lower is closer); LR-PSNR, the PSNR
# between `D(SR)` and the LR input, which measures consistency, the one thing `L_down`
# rewards; range and null MSE as above.
#
# ## The hypotheses, and how each is tested
#
# - **H1, ill-posedness.** `hr + n`, with `n` in the null space of `D`, has the same LR
#   image as `hr` and a low PSNR against it, so a downsampled-space loss cannot tell them
#   apart. Tested on one test image (a null-space image scaled to a chosen PSNR) and in a
#   2-D toy where HR is two pixels on a circle and LR their mean. Refuted if `D(hr + n)`
#   differed from `D(hr)` by more than float64 rounding.
# - **H2, the proposal's failure.** `L_down` alone with pixel shuffle gives a high LR-PSNR
#   but a large null-space error, periodic noise, and a PSNR-Y far below the same network
#   trained with `L_pixel` (and below `pinv`, where the grid has it). Tested by comparing
#   `down/pixelshuffle` with `pixel/pixelshuffle`, seed by seed. Refuted where the
#   `down` network's null MSE is no larger, or its PSNR-Y no lower, than the `pixel`
#   network's.
# - **H3, the upsampler.** The proposal's hypothesis: pixel shuffle makes the loss easy to
#   exploit, and other upsamplers (nearest-neighbour with convolutions, transposed
#   convolution, pre-upsampling) do better under `L_down`. Tested by ranking the `down/*`
#   variants by null MSE and PSNR-Y, and by the share of periodic energy in their
#   artifacts. Supported where pixel shuffle ranks worst by more than the spread over
#   seeds; refuted where another upsampler does as badly. Variants trained for different
#   numbers of iterations are flagged in the findings.
# - **H4, the adversarial fix.** The proposal's other hypothesis: `L_down + w L_adv` pulls
#   outputs onto the manifold of natural images, without the tug of war between a pixel
#   loss and an adversarial loss. Tested against `pixel + adv` and ESRGAN's mix on PSNR-Y,
#   LPIPS and LR-PSNR; a fine-tune is read against the model it started from (its
#   `init_from` variant, also in the tables). Supported where the adversarial term lowers
#   LPIPS while LR-PSNR stays high; refuted where it does not.
# - **H5, consistency by construction** (beyond the proposal): `SR = P(G(LR), LR)`, in
#   training and after it, a generator with a noise input, and a loss operator other than
#   the data's `D`. These are the study's coming measurements: where the grid has no such
#   variant, this page states no finding about H5.
#
# ## Findings
#
# Each sentence below is computed from this run's result files; none is written by hand.
# A hypothesis whose variants are missing from the grid, or failed, gets no sentence. A
# grid with one seed gives no spread over seeds, and a grid trained for minutes on a CPU
# (the `quick` profile) demonstrates the phenomena and every figure; it is not evidence.

# %%
display(Markdown("\n".join(f"- {s}" for s in page_findings(table, reports))))

# %% [markdown]
# ## Results
#
# Mean ± standard deviation over seeds, one table per test set. PSNR-Y and SSIM-Y
# measure fidelity to HR (higher is better); LPIPS, perceptual distance (lower is
# better); LR-PSNR, consistency with the input (higher is more consistent); "raw": the
# same before SR is clipped to [0, 1] and rounded, and "clipped": the share of raw SR
# values outside [0, 1]; range and null MSE: the two parts of the RGB error (in [0, 1]
# units). What to look for: a variant can top the LR-PSNR column and still sit low in
# PSNR-Y; its null MSE then says where its error went.

# %%
for d in datasets:
    display(Markdown(f"### {d}"))
    display(HTML(format_table(summ, d).to_html(index=False)))

# %% [markdown]
# ## The perception-distortion plane
#
# One point per variant and seed. Left: fidelity to HR (PSNR-Y, better to the right)
# against perceptual distance (LPIPS, better down): the perception-distortion trade-off
# (Blau and Michaeli, 2018), along which published MSE-trained models sit right and high
# and GAN-trained ones left and low. Right: fidelity to
# HR against consistency with the input (LR-PSNR, better up). A loss that rewards only
# consistency can place a variant at the top of the right panel and far to its left;
# the bicubic baseline marks where no learning at all would land.

# %%
for d in datasets:
    plot_perception_distortion(table, d, str(done.lpips_kind.iloc[0]))
    plt.show()

# %% [markdown]
# ## Training curves
#
# The total loss of each run (the weighted sum of its terms), first seed, log scale. The
# losses of different variants are different functions, so their levels are not
# comparable with one another; what to look for is whether each curve has flattened by
# the end of training (a curve still falling means more iterations could change that
# variant's numbers) and whether adversarial fine-tunes oscillate.

# %%
curves = load_loss_curves(runs, list(done.variant.unique()), int(table.seed.min()))
if curves:
    plot_losses(curves, title="total training loss")
    plt.show()

# %% [markdown]
# ## Artifacts
#
# The same crop of one test image for every variant (first seed). Three panels per
# variant: the SR crop; `D(SR) - LR`, what the downsampled loss sees (x10, grey = 0); the
# null-space part of SR, what it cannot see (x5, grey = 0). Then the spectrum of
# `SR - bicubic` per variant: a grid of peaks at multiples of the LR sampling frequency
# is the signature of periodic tiling, the artifact H3 attributes to pixel shuffle. More
# in [the artifacts notebook](03_artifacts.html).

# %%
for name in ("artifacts_crops.png", "artifacts_spectra.png"):
    if (reports / name).is_file():
        display(Image(filename=str(reports / name)))

# %% [markdown]
# ## Runs
#
# Each run's executed notebook: its loss curves, crops and metrics.

# %%
display(HTML(run_links(table, reports).to_html(index=False, escape=False)))

# %% [markdown]
# ## Provenance
#
# The commit, grid, machine and package versions this page was built from.

# %%
if (reports / "provenance.json").is_file():
    display(Markdown(provenance_text(json.loads((reports / "provenance.json").read_text()))))
