"""Measurements behind the report: null-space images, artifact scores, the toy, findings."""

import json
import re
from pathlib import Path

import jupytext
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import legend_clear_of_axes, write_small_sets

from srlib import analysis
from srlib.analysis import (
    artifact_inputs,
    artifact_panel,
    artifact_summary,
    busiest_box,
    load_loss_curves,
    lr_grid_energies,
    lr_grid_energy,
    null_perturbation,
    null_space_example,
    null_space_sentence,
    plot_artifact_crops,
    plot_losses,
    plot_perception_distortion,
    plot_range_null,
    plot_spectra,
    plot_toy,
    run_folder,
    toy_table,
)
from srlib.data import eval_pair, load_dataset
from srlib.grid import load_grid
from srlib.metrics import psnr_rgb, quantize
from srlib.report import (
    artifact_finding,
    general_findings,
    grid_summary,
    manifold_finding,
    page_findings,
    provenance_text,
    run_links,
    shipped,
)
from srlib.resize import BicubicDegradation
from srlib.results import columns
from srlib.runs import load_sr, run_dir, write_png
from srlib.toy import TOY_LOSSES, degrade, sample_manifold, toy_scores, train_toy

matplotlib.use("Agg")
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_null_perturbation_is_invisible_to_d_and_hits_its_psnr():
    op = BicubicDegradation(4)
    hr = torch.rand(3, 32, 40, dtype=torch.float64)
    n = null_perturbation(hr, op, target_psnr=25.0)
    assert op.down(n).abs().max() < 1e-12
    assert float(psnr_rgb(hr + n, hr)) == pytest.approx(25.0, abs=1e-6)


def test_lr_grid_energy_separates_periodic_tiling_from_smooth_error():
    s, h = 4, 64
    base = torch.zeros(3, h, h, dtype=torch.float64)
    tile = torch.rand(3, s, s, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    periodic = tile.repeat(1, h // s, h // s)  # the same s x s pattern in every LR cell
    assert lr_grid_energy(periodic, base, s) > 0.95
    y = torch.linspace(0, 1, h, dtype=torch.float64)
    smooth = torch.sin(2 * np.pi * y)[None, :, None] * torch.cos(2 * np.pi * y)[None, None, :]
    assert lr_grid_energy(smooth.expand(3, h, h), base, s) < 0.05


def test_busiest_box_and_panel():
    img = torch.zeros(3, 64, 80, dtype=torch.uint8)
    img[:, 40:56, 8:24] = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
    top, left, k = busiest_box(img, 16, 4)
    assert top % 4 == 0 and left % 4 == 0 and k == 16
    assert abs(top - 40) <= 4 and abs(left - 8) <= 4
    panel = artifact_panel(img, {"x": torch.rand(3, 64, 80)}, 4, (top, left, k))
    assert list(panel) == ["HR", "bicubic", "x"]
    for parts in panel.values():
        assert all(v.shape == (3, 16, 16) for v in parts.values())


def test_toy():
    hr, lr = sample_manifold(100, torch.Generator().manual_seed(0))
    assert torch.allclose((hr - 0.5).norm(dim=1), torch.full((100,), 0.3))
    assert torch.allclose(degrade(hr), lr)
    g = train_toy("down", steps=300)
    s = toy_scores(g)
    assert set(s) == {"consistency_rmse", "manifold_rmse", "hr_rmse"}
    assert s["consistency_rmse"] < 0.02  # the downsampled loss is quickly satisfied
    with pytest.raises(ValueError, match="toy loss must be one of"):
        train_toy("l2")


def _results() -> pd.DataFrame:
    rows = []
    spec = {"bicubic": (28.5, 39.0, 2e-3), "pixel/pixelshuffle": (29.0, 35.0, 2e-3),
            "down/pixelshuffle": (20.0, 36.0, 2e-2), "down/nearest": (28.8, 40.0, 2.5e-3)}
    for seed in (0, 1):
        for v, (p, lrp, null) in spec.items():
            if v == "down/pixelshuffle" and seed == 1:
                lrp = 30.0  # seeds differ
            rows.append({"variant": v, "kind": "baseline" if v == "bicubic" else "trained",
                         "loss": v.split("/")[0], "upsampler": "", "seed": seed,
                         "dataset": "set", "status": "done", "psnr_y": p, "ssim_y": 0.8,
                         "lpips": 0.3, "lr_psnr": lrp, "range_mse": 1e-4, "null_mse": null,
                         "lr_psnr_raw": lrp + 1, "clipped": 0.01, "train_seconds": 10.0,
                         "lpips_kind": "stlpips-alex", "iters": 100, "device": "cpu",
                         "error": ""})
    rows.append({"variant": "down/deconv", "kind": "trained", "seed": 0, "status": "failed",
                 "error": "ValueError: boom"})
    return pd.DataFrame(rows, columns=columns())


# ---- 01_manifold ---------------------------------------------------------------------------

def test_null_space_example_has_one_lr_image_and_splits_hr():
    hr_u8 = torch.randint(0, 256, (3, 34, 42), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0))
    ex = null_space_example(hr_u8, 4, target_psnr=22.0)
    assert ex["null_lr_max_abs_diff"] < 1e-10
    assert ex["null_psnr_db"] == pytest.approx(22.0, abs=1e-6)
    assert ex["null_dim_share"] == pytest.approx(15 / 16)
    assert 0 < ex["pinv_psnr_db"] < 60
    assert len(ex["images"]) == 6
    assert all(img.shape == (3, 32, 40) for img in ex["images"].values())  # mod-cropped
    text = null_space_sentence(ex)
    assert "22.0 dB" in text and "93.8%" in text


def test_plot_toy_puts_its_legend_outside_the_axes_and_table_names_the_scores():
    gens = {loss: train_toy(loss, steps=3) for loss in TOY_LOSSES}
    scores = {loss: toy_scores(g, n=50) for loss, g in gens.items()}
    fig = plot_toy(gens, scores, lr_value=0.6, n=20)
    assert len(fig.axes) == len(TOY_LOSSES)
    assert all("off-manifold RMS" in ax.get_title() for ax in fig.axes)
    assert legend_clear_of_axes(fig)
    t = toy_table(scores)
    assert list(t.index) == list(TOY_LOSSES)
    assert list(t.columns) == ["RMS of D(G) - y", "RMS distance to manifold",
                               "RMS distance to the true HR"]


# ---- 03_artifacts: a runs folder with saved SR images ---------------------------------------

@pytest.fixture
def fake_runs(tmp_path):
    """``<root>/runs`` with SR images of two trained variants (one adds a periodic tile to
    bicubic, one a smooth ramp), a bicubic baseline, a failed run, and their results."""
    _, test = write_small_sets(tmp_path / "data", n_train=1, n_test=2)
    root = tmp_path / "reports"
    op = BicubicDegradation(4)
    tile = 0.05 * torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(1))
    rows = []
    for v in ("bicubic", "down/pixelshuffle", "pixel/pixelshuffle", "broken"):
        if v == "broken":
            rows.append({"variant": v, "seed": 0, "status": "failed", "error": "boom"})
            continue
        for name, img in load_dataset(test):
            _, lr = eval_pair(img, op)
            sr = quantize(op.up(lr))
            h, w = sr.shape[-2:]
            if v == "down/pixelshuffle":
                sr = sr + tile.repeat(1, h // 4, w // 4)
            elif v == "pixel/pixelshuffle":
                sr = sr + 0.05 * torch.linspace(0, 1, w)
            d = run_dir(root, v, 0) / "eval" / "test"
            d.mkdir(parents=True, exist_ok=True)
            write_png(d / f"{name}.png", sr)
        rows.append({"variant": v, "kind": "baseline" if v == "bicubic" else "trained",
                     "loss": v.split("/")[0], "seed": 0, "dataset": "test",
                     "status": "done", "psnr_y": 25.0, "lpips": 0.3, "lr_psnr": 40.0,
                     "range_mse": 1e-4, "null_mse": 1e-3, "lpips_kind": "stlpips-alex",
                     "iters": 10})
    grid = {"name": "fake", "defaults": {"scale": 4, "test_data": [test]}, "seeds": [0],
            "variants": {}}
    return pd.DataFrame(rows, columns=columns()), root / "runs", grid


def test_artifact_inputs_reads_what_the_notebook_needs(fake_runs):
    table, runs, grid = fake_runs
    a = artifact_inputs(table, runs, grid)
    assert (a.scale, a.dataset, a.seed) == (4, "test", 0)
    assert a.variants == ["down/pixelshuffle", "pixel/pixelshuffle"]  # no bicubic, no failed
    assert a.image == next(iter(a.images))
    assert set(a.srs) == set(a.variants)
    assert all(sr.shape == (3, 64, 64) and sr.dtype == torch.float32 for sr in a.srs.values())
    assert set(a.done.status) == {"done"}
    assert artifact_inputs(table, runs, grid, image=list(a.images)[1]).image == list(a.images)[1]
    with pytest.raises(ValueError, match="is not in"):
        artifact_inputs(table, runs, grid, image="nope")
    with pytest.raises(ValueError, match="runs folder"):
        run_folder(runs.parent, "x", 0)
    with pytest.raises(ValueError, match="no finished run"):
        artifact_inputs(table[table.status != "done"], runs, grid)


def test_load_sr_is_the_one_in_runs(fake_runs):
    _, runs, _ = fake_runs
    assert analysis.load_sr is load_sr  # one definition, in srlib.runs
    assert run_folder(runs, "down/pixelshuffle", 0) == runs / "down/pixelshuffle" / "seed0"


def test_lr_grid_energies_find_the_periodic_variant(fake_runs):
    a = artifact_inputs(*fake_runs)
    e = lr_grid_energies(a)
    assert list(e.columns) == ["variant", "image", "lr_grid_energy"]
    assert len(e) == len(a.variants) * len(a.images)
    mean = e.groupby("variant").lr_grid_energy.mean()
    assert mean["down/pixelshuffle"] > 0.5 > mean["pixel/pixelshuffle"]
    s = artifact_summary(e, a)
    assert list(s.index) == a.variants and list(s.columns) == ["lr_grid_energy", "seed", "dataset"]
    assert (s.dataset == "test").all() and (s.seed == 0).all()


def test_artifact_figures_fill_the_page_width(fake_runs):
    a = artifact_inputs(*fake_runs)
    img = a.images[a.image]
    panel = artifact_panel(img, a.srs, a.scale, busiest_box(img, 32, a.scale))
    fig = plot_artifact_crops(panel, per_row=2, width=14.0)
    assert fig.get_size_inches()[0] == pytest.approx(14.0)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 3 * len(panel) == 3 * (2 + len(a.variants))  # HR, bicubic, variants
    assert shown[0].get_title() == "HR\nSR"
    op = BicubicDegradation(a.scale)
    bic = quantize(op.up(eval_pair(img, op)[1]))
    fig = plot_spectra(a.srs, bic, {v: 0.25 for v in a.srs})
    assert fig.get_size_inches()[0] == pytest.approx(14.0)
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == [f"{v}\nLR-grid energy 25.0%" for v in a.variants]
    assert plot_spectra({}, bic, {}).axes[0].texts  # no variant: says so, does not fail


def test_plot_range_null_has_two_bars_per_variant(fake_runs):
    table, _, _ = fake_runs
    fig = plot_range_null(table, "test")
    ax = fig.axes[0]
    assert len(ax.patches) == 2 * 3  # bicubic and two trained variants
    assert ax.get_yscale() == "log"
    assert legend_clear_of_axes(fig) and len(fig.legends[0].get_texts()) == 2


# ---- 04_report ------------------------------------------------------------------------------

def test_perception_distortion_plane_is_faceted_and_labelled_directly():
    r = _results()
    done = list(r[r.status == "done"].variant.unique())
    fams = {v: ("baselines" if r[r.variant == v].kind.iloc[0] == "baseline" else
                "down" if v.startswith("down") else "pixel") for v in done}
    fig = plot_perception_distortion(r, "set", "stlpips-alex", fams)
    cols = list(dict.fromkeys(fams.values()))
    assert len(fig.axes) == 2 * len(cols) and not fig.legends
    assert [ax.get_title() for ax in fig.axes[:len(cols)]] == cols
    assert "stlpips-alex" in fig.axes[0].get_ylabel()
    labels = {t.get_text() for ax in fig.axes[:len(cols)] for t in ax.texts if t.get_text()}
    assert labels == set(done)  # every point named where it is


def test_load_loss_curves(tmp_path):
    runs = tmp_path / "runs"
    d = run_dir(tmp_path, "down/nearest", 1)
    d.mkdir(parents=True)
    pd.DataFrame({"iter": [0, 10], "total": [1.0, 0.5]}).to_csv(d / "losses.csv", index=False)
    curves = load_loss_curves(runs, ["down/nearest", "pixel/nearest"], 1)
    assert list(curves) == ["down/nearest"] and list(curves["down/nearest"].total) == [1.0, 0.5]
    fig = plot_losses({**curves, "b": curves["down/nearest"] * 2})
    assert len(fig.axes[0].lines) == 2 and legend_clear_of_axes(fig)


def test_run_links_link_only_existing_notebooks_and_escape_text(tmp_path):
    r = _results()
    r.loc[len(r)] = {"variant": "a<b", "seed": 0, "status": "failed"}
    page = run_dir(tmp_path, "down/nearest", 1) / "train.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html></html>")
    t = run_links(r, tmp_path).set_index(["variant", "seed"])
    assert list(t.columns) == ["status", "notebook"] and len(t) == 10  # 4 x 2 seeds + 2
    assert t.loc[("down/nearest", 1), "notebook"] == (
        '<a href="runs/down/nearest/seed1/train.html">runs/down/nearest/seed1/train.html</a>')
    assert t.loc[("down/nearest", 0), "notebook"] == ""
    assert ("a&lt;b", 0) in t.index
    html = run_links(r, tmp_path).to_html(index=False, escape=False)
    assert html.count("<a href=") == 1


def test_a_committed_page_links_no_file_that_git_leaves_out(tmp_path):
    """The study's page is read from the repository: its runs are git-ignored, so the
    page names their notebooks without linking them; a page that is itself ignored (the
    default report) links every notebook that exists."""
    import subprocess

    r = _results()
    repo, reports = tmp_path, tmp_path / "study"
    page = run_dir(reports, "down/nearest", 1) / "train.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html></html>")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text("study/runs/\n")
    cell = run_links(r, reports).set_index(["variant", "seed"]).loc[("down/nearest", 1)]
    assert cell.notebook == ("<code>runs/down/nearest/seed1/train.html</code> "
                             "(not kept with this page)")
    assert shipped(reports, [page]) == set()
    (repo / ".gitignore").write_text("study/\n")  # the page itself is not kept either
    assert shipped(reports, [page, reports / "missing.html"]) == {page}


def test_report_sentences_are_computed_from_the_files(tmp_path):
    r = _results()
    text = grid_summary(r, {"name": "g", "defaults": {"scale": 4, "data": "Sun80"}})
    assert ("Grid `g`: 4 trained variant(s) and 1 closed-form baseline(s), 2 seed(s) (0, 1), "
            "scale x4") in text and "0 declared hypothesis(es)" in text
    assert "`Sun80`" in text and "not comparable with published LPIPS" in text
    toy = {k: {"manifold_rmse": 0.1 * i, "consistency_rmse": 1e-3, "hr_rmse": 0.2}
           for i, k in enumerate(TOY_LOSSES, 1)}
    m = {"image": "astronaut", "null_psnr_db": 20.0, "null_lr_max_abs_diff": 3e-16,
         "pinv_psnr_db": 27.5, "toy": toy, "toy_steps": 50}
    line = manifold_finding(m)
    assert "20.0 dB" in line and "3.0e-16" in line and "27.5 dB" in line
    assert "0.100 off the manifold" in line and "0.300 off it" in line and "50 steps" in line
    art = pd.DataFrame({"variant": ["x", "y"], "lr_grid_energy": [0.01, 0.4], "seed": 0,
                        "dataset": "set"})
    assert artifact_finding(art).endswith("(`set`, seed 0): `y` 40.0%, `x` 1.0%.")
    prov = {"commit": "abc", "grid": "q.yaml", "date": "today", "device": "cpu",
            "python": "3.11", "platform": "linux", "packages": {"torch": "2.13.0"},
            "stage_seconds": {"runs": 61.2}}
    p = provenance_text(prov)
    assert "`abc`" in p and "torch 2.13.0" in p and "runs 61 s" in p and p.count("\n- ") == 4
    assert "summed: not recorded" in p
    assert "summed: 102 min" in provenance_text(prov | {"train_seconds_total": 6120.0})
    (tmp_path / "manifold.json").write_text(json.dumps(m))
    art.to_csv(tmp_path / "artifacts.csv", index=False)
    lines = page_findings(r, tmp_path)
    assert lines[0] == line and lines[-1] == artifact_finding(art)
    assert lines[1:-1] == general_findings(r)


# ---- the notebooks read as the argument ------------------------------------------------------

def _words(text: str) -> int:
    return len(re.findall(r"[A-Za-z0-9_]+", text))


@pytest.mark.parametrize("name", ["01_manifold.py", "04_report.py"])
def test_notebook_prose_outweighs_code(name):
    nb = jupytext.read(NOTEBOOKS / name)
    md = sum(_words(c.source) for c in nb.cells if c.cell_type == "markdown")
    code = sum(_words(c.source) for c in nb.cells if c.cell_type == "code")
    assert md > code, f"{name}: {md} words of markdown, {code} of code"


PARAMETERS = {"01_manifold.py": {"image", "scale", "target_psnr", "toy_steps", "toy_seeds", "seed",
                                   "out"},
              "03_artifacts.py": {"results", "runs", "grid", "image", "crop", "out",
                                  "key_variants"},
              "04_report.py": {"results", "runs", "grid", "tradeoff",
                               "samples_variant", "fronts"}}


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_notebooks_state_their_hypotheses_and_stay_thin(name):
    nb = jupytext.read(NOTEBOOKS / name)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1  # papermill's parameters cell, with what the runner passes
    assert set(re.findall(r"^(\w+) =", tagged[0].source, re.M)) == PARAMETERS[name]
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    # the report's questions are its grid's own (`questions:`): the default grid's state them
    questions = (load_grid(NOTEBOOKS.parent / "configs" / "quick.yaml")["questions"]
                 if name == "04_report.py" else md)
    for h in ("H2", "H3", "H4", "H5"):
        assert f"**{h}," in questions, f"{name} does not state {h}"
    if name != "03_artifacts.py":
        assert "**H1, ill-posedness.**" in questions
        assert "`L_down = mean (D(SR) - LR)^2`" in md
        assert "`P(sr, lr) = sr + D^+(lr - D sr)`" in md
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert not any(re.search(r"^\s*def ", src, re.M) for src in code), "functions belong in srlib"
    assert max(len(src.splitlines()) for src in code) <= 25
    assert "the seed's" not in md.lower() and "from srlib" not in md


def test_plot_discriminators_shows_adversarial_runs_only():
    from srlib.analysis import plot_discriminators

    plain = pd.DataFrame({"iter": [10, 20], "total": [1.0, 0.5], "d_loss": [None, None]})
    assert plot_discriminators({"pixel": plain}) is None
    adv = pd.DataFrame({"iter": [10, 20, 30], "total": [1.0, 0.9, 0.8],
                        "d_loss": [0.69, 0.5, 0.4]})
    fig = plot_discriminators({"pixel": plain, "gan": adv}, window=2)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert "gan" in labels and "pixel" not in labels
    assert ax.get_lines()[0].get_ydata()[-1] == pytest.approx(0.45)  # running mean of 2


def _std_panel(fig):
    return next(ax for ax in fig.axes if ax.get_title().startswith("std of"))


def test_plot_samples_shows_the_spread_of_the_samples(tmp_path):
    from srlib.analysis import plot_samples
    from srlib.runs import write_png

    g = torch.Generator().manual_seed(0)
    hr_u8 = (torch.rand(3, 48, 48, generator=g) * 255).round().byte()
    hr = hr_u8.float() / 255
    box = (8, 8, 24)
    assert plot_samples(tmp_path, "Set5", "img", hr_u8, 4, box=box) is None  # no samples
    folder = tmp_path / "eval" / "Set5" / "samples" / "img"
    folder.mkdir(parents=True)
    for i in range(3):
        write_png(folder / f"{i}.png", hr)
    fig = plot_samples(tmp_path, "Set5", "img", hr_u8, 4, box=box)
    std = np.asarray(_std_panel(fig).images[0].get_array())
    assert std.shape == (24, 24) and np.all(std == 0)
    assert _std_panel(fig).get_title() == "std of 3 samples\n(dark 0, yellow 0.000)"
    # no colour bar: every column keeps the width of its images
    assert len(fig.axes) == 5 and len({round(ax.get_position().width, 4) for ax in fig.axes}) == 1
    assert any(ax.get_title().startswith("null part") for ax in fig.axes)
    plt.close(fig)
    for i in range(3):
        write_png(folder / f"{i}.png", torch.rand(3, 48, 48, generator=g))
    fig = plot_samples(tmp_path, "Set5", "img", hr_u8, 4, box=box, max_samples=2)
    std = np.asarray(_std_panel(fig).images[0].get_array())
    assert std.min() >= 0 and std.mean() > 0.05
    assert _std_panel(fig).get_title().endswith(f"yellow {std.max():.3f})")
    assert [ax.get_title() for ax in fig.axes[:2]] == ["sample 0", "sample 1"]
    plt.close(fig)


def test_plot_tradeoff_orders_the_sweep():
    from srlib.analysis import plot_tradeoff

    rows = [{"variant": v, "seed": s, "dataset": "Set5", "status": st,
             "psnr_y": 25.0 + i + s, "lpips": 0.3 - 0.01 * i, "lr_psnr": 40.0 + 5 * i}
            for i, (v, st) in enumerate([("a", "done"), ("b", "done"), ("c", "done"),
                                         ("d", "failed")]) for s in (0, 1)]
    results = pd.DataFrame(rows)
    sweep = [["c", "100"], ["a", "0"], ["b", "1"], ["d", "project"]]
    fig = plot_tradeoff(results, sweep, "Set5")
    assert len(fig.axes) == 3
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["100", "0", "1"]
    assert list(fig.axes[0].get_lines()[0].get_ydata()) == pytest.approx([27.5, 25.5, 26.5])
    plt.close(fig)
    assert plot_tradeoff(results, [["a", "0"], ["d", "project"]], "Set5") is None
    assert plot_tradeoff(results, sweep, "Set14") is None


def test_key_variants_name_the_baselines_the_chosen_and_the_best_two():
    from srlib.analysis import key_variants

    grid = {"defaults": {}, "variants": {
        "pinv": {"baseline": "pinv"}, "pixel": {"loss": "pixel"}, "down": {"loss": "down"},
        "gan": {"loss": "down+0.01*adv"}, "gan2": {"loss": "pixel+0.005*adv"},
        "proj": {"loss": "pixel", "consistency": "project"}}}
    rows = [("pinv", "baseline", 29.0, 0.30), ("pixel", "trained", 30.0, 0.31),
            ("pixel+P", "projected", 30.2, 0.30), ("down", "trained", 28.0, 0.33),
            ("gan", "trained", 25.0, 0.20), ("gan2", "trained", 24.0, 0.25),
            ("proj", "trained", 30.1, 0.29), ("down+P", "projected", 28.5, 0.32)]
    r = pd.DataFrame([{"variant": v, "kind": k, "seed": 0, "dataset": "S", "status": "done",
                       "psnr_y": p, "lpips": lp} for v, k, p, lp in rows])
    got = key_variants(r, grid, ["pixel", "down", "absent"])
    assert [v for v, _ in got] == ["pinv", "pixel", "down", "pixel+P", "gan"]
    assert dict(got)["pixel+P"] == "best projected (highest PSNR-Y)"
    assert dict(got)["gan"] == "best adversarial (lowest LPIPS)"
