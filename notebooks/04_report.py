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
# A blog post proposed to train super-resolution (SR) networks by comparing the output with
# the input *after downsampling*, `MSE(LR, D(G(LR)))`, instead of with the high-resolution
# image, `MSE(HR, G(LR))`: the model would then be punished only for outputs that do not
# explain their input, and be free to produce any plausible detail. Its author trained an
# ESRGAN with this loss and got "artificial and weird" images: noise patterns that
# downsample to the input very precisely. This report re-runs that experiment and the
# fixes it proposed, measures where each variant's error lies, and says which claims hold.
#
# `D` is MATLAB's bicubic downsampling (the operator behind every standard benchmark). It is
# linear, so every HR image splits exactly into a part `D` sees (its *range*) and a part it
# cannot see (its *null space*: at x4, 15 of every 16 dimensions). The error of an SR image
# splits the same way, `|SR - HR|^2 = range MSE + null MSE`: a downsampled-space loss
# controls only the first.

# %% tags=["parameters"]
results = "../reports/results.csv"
runs = "../reports/runs"
grid = "../configs/quick.yaml"

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import HTML, Image, Markdown, display

from srlib.ablate import load_grid
from srlib.analysis import plot_losses
from srlib.report import findings, format_table, summary_table

table = pd.read_csv(results, keep_default_na=False, na_values=[""])
reports = Path(results).parent
runs = Path(runs)
g = load_grid(grid)
summ = summary_table(table)
datasets = list(summ.dataset.unique()) if len(summ) else []
seeds = sorted(table.seed.unique())
kind = table[table.status == "done"].lpips_kind.iloc[0] if len(summ) else "none"
manifold = reports / "manifold.json"
artifacts = reports / "artifacts.csv"
display(Markdown(
    f"Grid `{g['name']}`: {table.variant.nunique()} variants x {len(seeds)} seed(s) "
    f"({', '.join(map(str, seeds))}), scale x{g['defaults'].get('scale', 4)}, "
    f"preset `{g['defaults'].get('preset', 'quick')}`, trained on "
    f"`{g['defaults'].get('data', 'default')}`, tested on {', '.join(f'`{d}`' for d in datasets)}. "
    f"Perceptual distance: **{kind}**"
    + (" (shift-tolerant LPIPS, used because the ImageNet trunk of standard LPIPS is not "
       "on this machine; its values are not comparable with published LPIPS)"
       if kind.startswith("stlpips") else "") + "."
))

# %% [markdown]
# ## Findings
# Every number below is computed from the results table of this run of the report.

# %%
lines = []
if manifold.is_file():
    m = json.loads(manifold.read_text())
    toy = m["toy"]
    lines.append(
        f"**Ill-posedness** (H1): adding a null-space image to `{m['image']}` moves it "
        f"{m['null_psnr_db']:.1f} dB (PSNR) away, yet changes its LR image by at most "
        f"{m['null_lr_max_abs_diff']:.1e}. In the 2-D toy, MSE training lands "
        f"{toy['mse']['manifold_rmse']:.3f} off the manifold (the conditional mean), the "
        f"downsampled loss is consistent to {toy['down']['consistency_rmse']:.1e} but lands "
        f"{toy['down']['manifold_rmse']:.3f} off it, and adding an adversarial term brings "
        f"outputs to {toy['down+adv']['manifold_rmse']:.3f} of the manifold (consistency "
        f"{toy['down+adv']['consistency_rmse']:.1e})."
    )
for d in datasets:
    lines += [f"*{d}*: {s}" if len(datasets) > 1 else s for s in findings(table, d)]
if artifacts.is_file():
    e = pd.read_csv(artifacts).set_index("variant").lr_grid_energy.sort_values(ascending=False)
    lines.append(
        "**Periodic artifacts**: share of the energy of `SR - bicubic` at the harmonics of the "
        "LR sampling frequency (first test set, first seed): "
        + ", ".join(f"`{v}` {x:.1%}" for v, x in e.items()) + "."
    )
display(Markdown("\n".join(f"- {s}" for s in lines)))

# %% [markdown]
# ## Results
# Mean ± standard deviation over seeds. PSNR-Y and SSIM-Y on the Y channel (BT.601) with
# the scale cropped from each border, SR rounded to 8 bits; LR-PSNR between `D(SR)` and
# the LR input (RGB); "raw": the same before SR is clipped to [0, 1] and rounded, and
# "clipped": the share of raw SR values outside [0, 1]; range and null MSE: the two parts
# of the RGB error (in [0, 1] units).

# %%
for d in datasets:
    display(Markdown(f"### {d}"))
    display(HTML(format_table(summ, d).to_html(index=False)))

# %% [markdown]
# ## The perception-distortion plane
# One point per variant and seed. Left panel: fidelity to HR (PSNR-Y, better to the right)
# against perceptual distance (LPIPS, better down). Right panel: fidelity to HR against
# consistency with the input (LR-PSNR, better up).

# %%
done = table[table.status == "done"]
for d in datasets:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    sub = done[done.dataset == d]
    sns.scatterplot(data=sub, x="psnr_y", y="lpips", hue="variant", style="variant", s=70,
                    ax=axes[0])
    axes[0].set(xlabel="PSNR-Y (dB)", ylabel=f"LPIPS ({kind})",
                title=f"{d}: perception vs distortion")
    sns.scatterplot(data=sub, x="psnr_y", y="lr_psnr", hue="variant", style="variant", s=70,
                    ax=axes[1], legend=False)
    axes[1].set(xlabel="PSNR-Y (dB)", ylabel="LR-PSNR (dB)",
                title=f"{d}: consistency with the input vs fidelity to HR")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    plt.show()

# %% [markdown]
# ## Training curves
# The total loss of each run (weighted sum of its terms), first seed.

# %%
curves = {}
for v in done.variant.unique():
    f = runs / v / f"seed{seeds[0]}" / "losses.csv"
    if f.is_file():
        curves[v] = pd.read_csv(f)
if curves:
    plot_losses(curves, title="total training loss")
    plt.show()

# %% [markdown]
# ## Artifacts
# The same crop of one test image for every variant (first seed). Columns: the SR crop;
# `D(SR) - LR`, what the downsampled loss sees (x10, grey = 0); the null-space part of SR,
# what it cannot see (x5, grey = 0). Then the spectrum of `SR - bicubic` per variant: a
# grid of peaks at multiples of the LR sampling frequency is the signature of periodic
# tiling. More in [the artifacts notebook](03_artifacts.html).

# %%
for name in ("artifacts_crops.png", "artifacts_spectra.png"):
    if (reports / name).is_file():
        display(Image(filename=str(reports / name)))

# %% [markdown]
#
# ## Runs
# Each run's executed notebook (loss curves, crops, its metrics):

# %%
rows = []
for _, r in table.drop_duplicates(["variant", "seed"]).iterrows():
    link = f"runs/{r.variant}/seed{r.seed}/train.html"
    has = (reports / link).is_file()
    rows.append(f"<tr><td>{r.variant}</td><td>{r.seed}</td><td>{r.status}</td><td>"
                + (f"<a href='{link}'>{link}</a>" if has else "") + "</td></tr>")
display(HTML("<table><tr><th>variant</th><th>seed</th><th>status</th><th>notebook</th></tr>"
             + "".join(rows) + "</table>"))

# %% [markdown]
# ## Provenance

# %%
prov_file = reports / "provenance.json"
if prov_file.is_file():
    prov = json.loads(prov_file.read_text())
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in prov["stage_seconds"].items())
    display(Markdown(
        f"- commit `{prov['commit']}`, grid `{prov['grid']}`, generated {prov['date']}\n"
        f"- device: {prov['device']}; Python {prov['python']} on {prov['platform']}\n"
        f"- packages: " + ", ".join(f"{k} {v}" for k, v in prov["packages"].items()) + "\n"
        f"- wall time per stage: {stages} (this page's own stage not included)"
    ))
