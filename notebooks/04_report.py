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

# %% tags=["parameters"]
results = "../reports/results.csv"
runs = "../reports/runs"
grid = "../configs/quick.yaml"
tradeoff = []  # [[variant, label], ...]: the sweep of the weight of `down`, in order
samples_variant = ""  # a variant whose runs drew samples (noise > 0); "" for none
fronts = {}  # {sweep name: [[variant, label], ...]}: adversarial sweeps on the PD plane

# %%
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import HTML, Image, Markdown, display

from srlib import analysis as an
from srlib import report as rp
from srlib import results as rs
from srlib import stats
from srlib.data import dataset_name, load_dataset
from srlib.grid import family, load_grid

reports = Path(results).parent
table = rs.read_results(reports)
done = table[table.status == "done"]
g = load_grid(grid)
per_img = rs.read_per_image(reports)
baselines = rs.baseline_variants(g)
summ = rp.summary_table(table, per_img, baselines=baselines)
verdicts = rp.hypothesis_verdicts(g["hypotheses"], per_img, baselines=baselines)
rs.write_verdicts(reports, verdicts)
critic = rs.read_critic(reports)  # with the grid's critic criterion; else None
datasets = list(summ.dataset.unique()) if len(summ) else []
families = {v: family(g, v) for v in table.variant.unique()}

# %%
# the page's heading and introduction are the grid's own (`title:`, `introduction:`)
display(Markdown("\n\n".join(filter(None, [f"# {rp.page_title(g)}", g["introduction"]]))))

# %% [markdown]
# ## The answer

# %%
if g["answer"]:
    display(Markdown(rp.fill_answer(g["answer"], verdicts, table)))
else:
    display(Markdown("\n".join(f"- {s}" for s in rp.short_answer(g["hypotheses"], verdicts))
                     or "This grid declares no hypothesis."))
display(Markdown(" ".join([stats.procedure(g["hypotheses"]),
                           *rp.method_flags(g["hypotheses"], verdicts)])))

# %% [markdown]
# ### Every question in detail
#
# One sentence per question: its first hypothesis, pooled over every test set, with the
# verdict after the declared procedure and the training runs behind it (several runs:
# seeds resampled too; one run: test images only, never counted as established).

# %%
lines = [*rp.answer(g["hypotheses"], verdicts), *filter(None, [rp.critic_summary(critic)])]
display(Markdown("\n".join(f"- {s}" for s in lines) or "This grid declares no hypothesis."))

# %% [markdown]
# ### Every hypothesis at a glance
#
# Rows: the grid's hypotheses; columns: the pooled test images, then each test set. Each
# cell is the mean of the paired difference `a - b` in the hypothesis's metric and its
# 95% interval (for a claim about every image, the share of images that meet the value).

# %%
display(HTML(rp.verdict_matrix(g["hypotheses"], verdicts)))

# %% [markdown]
# ### One crop through the main methods
#
# The same crop of two test images (first seed) through HR, the closed-form baselines,
# the variants the grid names (`key_variants`) and the best projected and best adversarial
# variants, where the grid has them. Above each crop, that method's PSNR-Y, LPIPS (where
# measured) and LR-PSNR on that image; under it, its range part `D^+ D x` (what the
# downsampled loss constrains) and its null-space part `(I - D^+ D) x`, x5 around grey
# (what it cannot see).

# %%
if (reports / "key_figure.png").is_file():
    display(Image(filename=str(reports / "key_figure.png")))
else:
    display(Markdown("The artifacts stage saved no key figure (no finished run)."))

# %% [markdown]
# ## The grid
#
# Everything on this page is read from the result files of one run of the grid below
# (`results.csv`, `per_image.csv`, `verdicts.csv`, `manifold.json`, `artifacts.csv`, the
# runs' `losses.csv` and `validation.csv`, `provenance.json` and the saved figures); the
# notebooks that wrote them are listed at the end. The hypotheses are the grid file's own:
# each names the two variants it compares, the metric and the direction it expects, and
# its verdict follows from a 95% interval, not from a threshold written here.

# %%
display(Markdown(rp.grid_summary(table, g)))
# the scale: the generator's size and where the pixel network stands among published ones
display(Markdown("\n".join(f"- {s}" for s in rp.scale_lines(g, table))))

# %% [markdown]
# ## What is measured
#
# **The operator.** `D` is MATLAB's bicubic downsampling by the scale `s`,
# `imresize(x, 1/s, 'bicubic')`, the operator that made the LR images of every standard
# benchmark. It is linear: per channel, `D(x) = A_h x A_w^T`. Its pseudo-inverse is
# `D^+(y) = A_h^+ y (A_w^+)^T`, and `D^+ LR` is the image of least energy that downsamples
# to `LR` (the `pinv` baseline, where the grid has it): the image a downsampled-space loss
# scores zero without any learning, so a network earns its place only where it beats it.
# The projection `P(sr, lr) = sr + D^+(lr - D sr)` makes any image consistent with its
# input. Every image splits into two orthogonal parts, `x = D^+ D x + (I - D^+ D) x`: the
# *range* part, which its LR image fixes, and the *null-space* part, which `D` cannot see
# (at x4, 15 of every 16 dimensions). The error of an SR image splits the same way,
# `|SR - HR|^2 = |range(SR - HR)|^2 + |null(SR - HR)|^2` (the columns *range MSE* and
# *null MSE*): a downsampled-space loss controls only the first. The *null-space gain* of
# a variant is `10 log10(null_mse(D^+ LR) / null_mse(variant))` per image, in dB: positive
# where it restored detail that `D` cannot see, negative where it added error there; the
# *range gain* is the same for the range part. Every trained variant `v` is also evaluated
# as `v+P`, the projection `P(G(LR), LR)` of its own outputs (same weights, no training):
# exactly consistent, and with the null-space part of `v` unchanged (up to 8-bit rounding),
# so that only its range error moves.
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
# - `perc`, the L1 distance of VGG features: ESRGAN's ImageNet VGG19 before conv5_4's
#   activation where its weights are on the machine, otherwise (as on these machines,
#   offline) the shift-tolerant ST-LPIPS VGG16 before conv5_3's, standing in for it (the
#   runs' `perc_backend` says which; "What the runs report" below names it);
# - the ESRGAN-like mix, `0.01 L1_pixel + L_perc + 0.005 L_adv` (ESRGAN's weights, with
#   that perceptual term), and the proposal's fix, `L_down + w L_adv`, at the weights `w`
#   of the grid's variant names.
#
# **The metrics.** PSNR-Y and SSIM-Y on the Y channel (BT.601) with `s` pixels cropped
# from each border, the SR image clipped to [0, 1] and rounded to 8 bits first, as in the
# literature; LPIPS, a learned perceptual distance (lower is closer); LR-PSNR, the PSNR
# between `D(SR)` and the LR input, which measures consistency, the one thing `L_down`
# rewards; range and null MSE and the gains as above (RGB, over the whole image, whereas
# PSNR-Y and SSIM-Y crop the border).
#
# ## The questions, and how each is tested
#
# Each question the grid asks becomes hypotheses that this page can test: each declared
# hypothesis names two variants `a` and `b` (a trained variant, a baseline, or a projected
# twin `v+P`), one metric, and whether it expects `a` above or below `b`. Two trained
# variants are compared at equal training length, unless the grid marks the hypothesis
# otherwise, and then the finding says so. The questions, as the grid words them:

# %%
display(Markdown(g["questions"] or "This grid words no questions beyond its hypotheses."))

# %% [markdown]
# ### The hypotheses this grid declares
#
# One row per hypothesis: its statement as the grid file words it, what is compared, then
# the evidence on the pooled test images and on each set: the paired difference `a - b`
# over the same test images (and seeds) with its 95% interval, the verdict (after the
# declared procedure within that column, as said under the answer: the primaries in a fixed
# sequence, Holm's adjustment among the others; the unadjusted one in brackets where it
# differs; *not reached*: a primary after one that was not supported), the images and
# training runs behind it, and the mean of each seed. Pooled over several seeds, a linear
# mixed model of the same differences (crossed random effects for image and seed, REML,
# Satterthwaite's degrees of freedom) is fitted beside the bootstrap: its estimate and
# p-value are in `verdicts.csv` (`mean_mixed`, `se_mixed`, `df_mixed`, `p_mixed`), and the
# answer says where it would decide a primary otherwise.
# *Supported*: the interval excludes 0 on the expected side; *contradicted*: on the other
# side; *inconclusive*: it includes 0 (or a single image gives no interval); *not tested*:
# a variant or the metric is missing, and the note says which. A claim about *every* test
# image (`every: true`) is supported only if each image (and seed) meets its value; its
# note names the worst.
#
# How the intervals are computed: with two or more seeds, images and seeds are resampled
# independently (a two-way bootstrap) and the interval is a Student-t interval on that
# bootstrap's standard error with Satterthwaite's degrees of freedom (a percentile over
# three seeds cannot reach beyond their range); with one seed, images alone: a
# percentile bootstrap from 10 images on, a studentized (bootstrap-t) one below.

# %%
display(HTML(rp.text_table(rp.hypothesis_table(g["hypotheses"], verdicts))))

# %% [markdown]
# ## What the runs report
#
# Computed from this run's result files, none written by hand: the ill-posedness
# measurement, training lengths, the perceptual loss's backbone, runs that failed or did
# not run, the periodic artifacts. A grid trained for minutes on a CPU (the `quick`
# profile) demonstrates the phenomena and every figure; it is not evidence.

# %%
lines = rp.page_findings(table, reports)
display(Markdown("\n".join(f"- {s}" for s in lines)))

# %% [markdown]
# ## Results
#
# One table per test set. Baselines come first, then each trained variant followed by its
# projected twin `+P`. PSNR-Y and SSIM-Y measure fidelity to HR (higher is better); LPIPS,
# perceptual distance (lower is better); LR-PSNR, consistency with the input (higher is
# more consistent); the null-space and range gains, how much less error than `D^+ LR` the
# variant leaves in each part (dB, higher is better). What to look for: a variant can top
# the LR-PSNR column and still sit low in PSNR-Y; its null-space gain then says where its
# error went. The iterations column gives a fine-tune as its source's iterations plus
# its own.

# %%
display(Markdown(rp.table_note(summ)))
for d in datasets:
    display(Markdown(f"### {rp.plain(d)}"))
    display(HTML(rp.format_table(summ, d).to_html(index=False)))

# %% [markdown]
# ## The perception-distortion plane
#
# One point per variant (its mean over seeds), one column per family: the closed-form
# baselines, pixel-trained, down-trained, adversarial and projected variants; the baselines
# also in grey in every column, for reference. Top: fidelity to HR (PSNR-Y, better to the
# right) against perceptual distance (LPIPS, better down), the perception-distortion
# trade-off (Blau and Michaeli, 2018). Bottom: fidelity against consistency with the input
# (LR-PSNR, better up). An arrow goes from each trained variant to its projected twin `+P`
# (the same outputs, made consistent).

# %%
for d in datasets:
    an.plot_perception_distortion(table, d, str(done.lpips_kind.iloc[0]), families)
    plt.show()

# %% [markdown]
# ### The adversarial sweeps: does `down + w adv` dominate `pixel + w adv` anywhere?
#
# The proposal's own question, where the grid sweeps the adversarial weight `w` for both
# losses from the same start (the report's `fronts` parameter): each sweep a line through
# its weights on the plane of PSNR-Y (better right) against LPIPS (better down), each
# point the mean over every test image and seed with its 95% interval on both axes. Then,
# at each weight both sweeps share, the paired difference of the first sweep minus the
# second in both metrics, and which one dominates there (better in both, both intervals
# excluding 0), if either.

# %%
if fronts and per_img is not None:
    front_vars = [v for members in fronts.values() for v, _ in members]
    ci = stats.summary_with_ci(per_img[per_img.variant.isin(front_vars)], ["psnr_y", "lpips"],
                               by=["variant"], baselines=baselines)
    an.plot_fronts(ci, fronts, str(done.lpips_kind.iloc[0]))
    plt.show()
    display(Markdown("\n".join(f"- {s}" for s in rp.front_comparison(
        per_img, fronts, baselines=baselines)) or "No weight of the first two sweeps has "
        "finished runs on both sides."))
else:
    display(Markdown("This grid does not declare adversarial sweeps (`fronts`)."))

# %% [markdown]
# ## PSNR-Y, LPIPS and LR-PSNR as the weight of `down` grows
#
# Where the grid sweeps the weight of the downsampled-space term added to a pixel and
# adversarial loss (the report's `tradeoff` parameter), from 0 through several decades to
# the projection `P`, which makes every output exactly consistent: PSNR-Y, LPIPS and
# LR-PSNR (means over seeds) against that weight, one figure per test set. The
# x axis is ordered, not to scale. What to look for: whether PSNR-Y and LPIPS move, and in
# which direction, as LR-PSNR climbs. Where the grid did not ask for the
# sweep, or fewer than two of its variants finished, this section says so instead.

# %%
figs = [an.plot_tradeoff(table, tradeoff, d) for d in datasets] if tradeoff else []
for fig in figs:
    if fig is not None:
        plt.show()
if not any(f is not None for f in figs):
    display(Markdown("This grid did not ask for a sweep of the weight of `down` "
                     "(`tradeoff`), or fewer than two of its variants finished."))

# %% [markdown]
# ## Training curves
#
# The total loss of each run (the weighted sum of its terms), first seed, log scale, one
# panel per family (at most eight lines a panel). The
# losses of different variants are different functions, so their levels are not
# comparable with one another; what to look for is whether each curve has flattened by
# the end of training (a curve still falling means more iterations could change that
# variant's numbers) and whether adversarial fine-tunes oscillate.

# %%
curves = an.load_loss_curves(runs, list(done.variant.unique()), int(table.seed.min()))
if curves:
    an.plot_losses(curves, title="total training loss of each run, first seed",
                   families=families)
    plt.show()

# %% [markdown]
# ## Do the discriminators learn?
#
# An adversarial term can only help if its critic tells SR from HR. For every run with a
# discriminator (first seed), its loss against the run's own iterations, smoothed: a
# critic that cannot tell the two apart sits at `ln 2` (dashed) for the relativistic loss;
# one that learns stays below it. The first iterations of the adversarial runs of the
# study train the critic alone (`d_warmup`), so the curve starts from a critic that has
# already seen the generator's outputs. A curve back at `ln 2` means the generator has
# caught up with its critic, or the critic has stopped learning: read the adversarial
# findings with that in mind.

# %%
fig = an.plot_discriminators(curves, families) if curves else None
if fig is not None:
    plt.show()
else:
    display(Markdown("No run of this grid has a discriminator."))
if critic is not None and len(critic):
    display(Markdown(rp.critic_summary(critic)))
    display(HTML(rp.text_table(rp.critic_rows(critic))))

# %% [markdown]
# ## Where the error goes during training
#
# Measured on fixed validation crops while each variant trained (mean over its seeds),
# where the grid asked for it (`val_every`): left, the null-space gain against `D^+ LR`
# (dB; the dashed line is `D^+ LR` itself); middle, the LR-PSNR; right, the mechanism:
# the correlation of the output's null-space part with its part at the run's start. Unlike
# the losses, these are the same measurement for every variant. A downsampled-space loss
# drives the LR-PSNR up from the start; what to look for is whether the null-space gain
# rises with it, stays near 0 (the network learned `D^+`), or falls below 0 (it added
# error that `D` cannot see). Its gradient, `2 D^T (D SR - LR)`, lies in the range of
# `D^T`: the null-space part moves only through the weights it shares with the range
# part, so a correlation that stays well above 0 is initial null content (pixel shuffle's
# checkerboard, say) that training never corrected. A fine-tune's curve counts its own
# iterations, from its start.

# %%
trained = [v for v, k in rs.variant_kinds(done).items() if k == "trained"]
seeds = sorted(int(s) for s in table.seed.dropna().unique())
val = an.load_validation(runs, trained, seeds, how="mean")
if val:
    an.plot_validation(val, families)
    plt.show()

# %% [markdown]
# ## Artifacts
#
# The same crop of one test image for every variant (first seed). Three panels per
# variant: the SR crop; `D(SR) - LR`, what the downsampled loss sees (x10, grey = 0); the
# null-space part of SR, what it cannot see (x5, grey = 0). Then the spectrum of
# `SR - bicubic` per variant: a grid of peaks at multiples of the LR sampling frequency
# is the signature of periodic tiling, the artifact H3 attributes to pixel shuffle.

# %%
for name in ("artifacts_crops.png", "artifacts_spectra.png"):
    if (reports / name).is_file():
        display(Image(filename=str(reports / name)))
if rp.shipped(reports, [reports / "03_artifacts.html"]):
    display(Markdown("More in [the artifacts notebook](03_artifacts.html)."))

# %% [markdown]
# ## Samples of a generator with a noise input
#
# A generator fed noise beside its LR input draws many SR images of one input; projected
# with `P`, every sample is exactly consistent with its LR image, so the samples can
# differ only in the null space of `D`. The same crop of the first image of the first test
# set (first seed of the report's `samples_variant`) for several samples, then the
# per-pixel standard deviation over all of them (mean over channels), then the null-space
# part of HR there (x5, grey = 0). What to look for: the spread should sit where HR's
# null part has detail (edges and texture) and vanish in flat regions; a spread of zero
# everywhere means the generator ignores its noise. Where the grid did not name such a
# variant, or its run saved no samples, this section says so instead.
#
# Their numbers, as the NTIRE 2021 challenge measures a stochastic generator: for each
# test image, K samples drawn with fixed seeds; LR-PSNR (ours and the challenge's) as the
# mean and the worst over the samples (the challenge asks every sample to reach 45 dB);
# the challenge's diversity score, `(global best - local best) / global best x 100`, from
# the LPIPS maps of the samples (0 when all samples are the same image); PSNR-Y of the
# samples' mean image and the mean PSNR-Y of the samples; the LPIPS of the best sample.
# Each cell: mean over test images x seeds [95% interval].

# %%
samples = rp.samples_table(per_img)
if len(samples):
    display(HTML(samples.to_html(index=False)))

# %%
fig = None
if samples_variant:
    test_set = str(g["defaults"].get("test_data", ["default"])[0])
    image, hr_u8 = load_dataset(test_set, "test")[0]
    run = an.run_folder(runs, samples_variant, int(table.seed.min()))
    fig = an.plot_samples(run, dataset_name(test_set), image, hr_u8,
                          int(g["defaults"].get("scale", 4)))
if fig is not None:
    plt.show()
else:
    display(Markdown("This grid did not name a variant that draws samples "
                     "(`samples_variant`), or its run saved none."))

# %% [markdown]
# ## Runs
#
# Each run's executed notebook: its loss curves, crops and metrics, in the result folder's
# `runs/`, linked where that folder is kept beside this page. The study report committed
# to git carries only the page and its tables, so there each notebook is named, not
# linked: rebuild them with the grid's command (`make study`).

# %%
display(HTML(rp.run_links(table, reports).to_html(index=False, escape=False)))

# %% [markdown]
# ## Provenance
#
# The commit, grid, machine and package versions this page was built from.

# %%
prov = rs.read_provenance(reports)
if prov is not None:
    display(Markdown(rp.provenance_text(prov)))
