"""The report from declared hypotheses: grid checks, verdict sentences, tables with
intervals, the validation-curve figure, and no variant name written into srlib."""

from __future__ import annotations

import io
import re
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import legend_clear_of_axes

from srlib import report as rp
from srlib import results as rs
from srlib import stats
from srlib.ablate import main
from srlib.analysis import load_validation, plot_validation
from srlib.grid import Hypothesis, load_grid
from srlib.runs import VALIDATION, run_dir

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]
FAST = {"n_boot": 1000}
SETS = ("S", "T")
BASELINES = ("pinv", "bic")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ---- synthetic result files ----------------------------------------------------------------

def per_image(n_images: int = 12, seeds=(0, 1, 2)) -> pd.DataFrame:
    """A per-image table as the runner writes it: two baselines (one seed), a trained
    variant ``A`` (3 dB more null-space error than ``pinv``), its fine-tune ``B`` (better
    PSNR-Y), and their projected twins (consistent: LR-PSNR 60 dB), on two test sets."""
    rng = np.random.default_rng(0)
    rows = []

    def add(v, seed, d, i, psnr, null, lrp, lpips=0.3):
        rows.append({"variant": v, "seed": seed, "dataset": d, "image": f"{i:03d}",
                     "psnr_y": psnr, "ssim_y": 0.8, "lpips": lpips, "lr_psnr": lrp,
                     "range_mse": 1e-5 if lrp > 50 else 1e-4, "null_mse": null})

    for d in SETS:
        null = rng.uniform(1e-3, 2e-3, n_images)
        level = 25 + rng.normal(0, 2, n_images)  # hard and easy images
        for i in range(n_images):
            add("pinv", 0, d, i, level[i], null[i], 60.0)
            add("bic", 0, d, i, level[i] - 0.6, 1.1 * null[i], 40.0)
            for s in seeds:
                e = rng.normal(0, 0.1)
                add("A", s, d, i, level[i] - 1 + e, 2 * null[i] * (1 + e / 10), 45.0 + e)
                add("A+P", s, d, i, level[i] - 0.8 + e, 2 * null[i] * (1 + e / 10), 60.0)
                f = rng.normal(0, 0.3)
                add("B", s, d, i, level[i] + 1 + f, 0.8 * null[i], 38.0 + e)
                add("B+P", s, d, i, level[i] + 1.1 + f, 0.8 * null[i], 60.0)
    return stats.add_gains(pd.DataFrame(rows), "pinv", baselines=BASELINES)


KIND = {"pinv": "baseline", "bic": "baseline", "A": "trained", "B": "trained",
        "A+P": "projected", "B+P": "projected"}
ITERS = {"pinv": (0, 0), "bic": (0, 0), "A": (100, 100), "A+P": (100, 100), "B": (20, 120),
         "B+P": (20, 120)}  # (own, total): B is a fine-tune of A


def results(table: pd.DataFrame) -> pd.DataFrame:
    """results.csv of ``table``: the per-run means, kinds, iterations, a perceptual
    backend for B, and a failed run."""
    means = table.groupby(["variant", "seed", "dataset"], sort=False).mean(
        numeric_only=True).reset_index()
    means["kind"] = means.variant.map(KIND)
    means["iters"] = means.variant.map(lambda v: ITERS[v][0])
    means["iters_total"] = means.variant.map(lambda v: ITERS[v][1])
    means["status"], means["lpips_kind"], means["error"] = "done", "stlpips-alex", ""
    means["perc_backend"] = np.where(means.variant.isin(["B", "B+P"]), "vgg19 (test)", "")
    failed = {"variant": "C", "kind": "trained", "seed": 1, "dataset": "", "status": "failed",
              "error": "Traceback\nValueError: boom"}
    out = pd.concat([means, pd.DataFrame([failed])], ignore_index=True)
    return out.reindex(columns=rs.columns())


@pytest.fixture(scope="module")
def files():
    t = per_image()
    return t, results(t)


def _h(hid, a, b, metric, direction, **kw) -> Hypothesis:
    return Hypothesis(hid, f"{a} vs {b}", a, b, metric, direction, **kw)


# ---- verdicts and their sentences ----------------------------------------------------------

def test_verdicts_from_the_per_image_table(files):
    t, r = files
    hs = [_h("fine-tune", "B", "A", "psnr_y", "greater", unequal_iters_ok=True),
          _h("backwards", "A", "B", "psnr_y", "greater"),
          _h("null", "A", "pinv", "null_gain_db", "less"),
          _h("same", "B", "A", "lpips", "less"),
          _h("twin", "A+P", "A", "lr_psnr", "greater"),
          _h("absent", "Z", "A", "psnr_y", "greater"),
          Hypothesis("fixed", "A+P reaches 50 dB", "A+P", "50", "lr_psnr", "greater",
                     value=50.0)]
    v = rp.hypothesis_verdicts(hs, t, baselines=BASELINES, **FAST)
    assert list(v.columns) == stats.VERDICT_COLUMNS
    assert len(v) == len(hs) * (len(SETS) + 1)  # pooled, then each set
    got = v.set_index(["id", "dataset"]).verdict
    assert all(got[h, d] == want for h, want in [
        ("fine-tune", "supported"), ("backwards", "contradicted"), ("null", "supported"),
        ("same", "inconclusive"), ("twin", "supported"), ("absent", "not tested"),
        ("fixed", "supported")] for d in ("pooled", *SETS))
    null = v[(v.id == "null") & (v.dataset == "S")].iloc[0]
    assert null["mean"] == pytest.approx(-10 * np.log10(2), abs=0.02)  # twice the error
    assert (null.n_images, null.n_seeds) == (12, 3)  # the baseline broadcast over seeds
    pooled = v[(v.id == "null") & (v.dataset == "pooled")].iloc[0]
    assert (pooled.n_images, pooled.n_seeds) == (24, 3)
    assert pooled.method == "two-way t" and len(pooled.seed_means.split(" / ")) == 3


def test_the_answer_gives_one_sentence_per_question(files):
    t, r = files
    hs = [_h("H1", "B", "A", "psnr_y", "greater", unequal_iters_ok=True),
          _h("H1-twin", "A+P", "A", "lr_psnr", "greater"),
          _h("H2", "A", "pinv", "null_gain_db", "less"),
          _h("H4", "Z", "A", "psnr_y", "greater")]
    v = rp.hypothesis_verdicts(hs, t, baselines=BASELINES, **FAST)
    lines = rp.answer(hs, v)
    assert len(lines) == 3 and [x[:6] for x in lines] == ["**H1**", "**H2**", "**H4**"]
    assert "**supported**" in lines[0] and "per seed" in lines[0]
    assert "pooled over 24 images, 3 runs: seeds resampled" in lines[0]
    assert "Its other hypotheses (1), after adjustment: 1 supported" in lines[0]
    assert "**not tested**" in lines[2]
    # one run: labelled so, never counted as established
    one = t[t.seed.isna() | (t.seed == 0)]
    v1 = rp.hypothesis_verdicts(hs, one, baselines=BASELINES, **FAST)
    first = rp.answer(hs, v1)[0]
    assert "supported on one run, not established" in first and rp.ONE_RUN in first


def test_verdict_matrix_and_hypothesis_table(files):
    t, _ = files
    hs = [_h("H1", "B", "A", "psnr_y", "greater", unequal_iters_ok=True),
          Hypothesis("<b>H9</b>", "<script>x</script>: claims", "A", "Z", "psnr_y", "greater")]
    v = rp.hypothesis_verdicts(hs, t[t.seed.isna() | (t.seed == 0)], baselines=BASELINES,
                               **FAST)
    page = rp.verdict_matrix(hs, v)
    assert page.count("<tr>") == 1 + len(hs) and "<script>" not in page and "<b>H9" not in page
    assert page.count(rp.VERDICT_COLOURS["supported"]) >= 3  # pooled, S, T of H1 (+ legend)
    assert "repeating-linear-gradient" in page  # one run: hatched
    table = rp.hypothesis_table(hs, v)
    assert list(table.columns) == ["hypothesis", "statement", "compared", "pooled", *SETS,
                                   "notes"]
    assert len(table) == len(hs)  # one row per hypothesis, the statement once
    assert table.loc[0, "pooled"].endswith(f"24 images, {rp.ONE_RUN}")
    assert "missing variant(s): 'Z'" in table.loc[1, "notes"]


def test_a_hypothesis_with_a_missing_variant_or_set_is_not_tested(files):
    t, r = files
    hs = [_h("gone", "A", "D", "psnr_y", "greater"),
          _h("elsewhere", "A", "B", "psnr_y", "less", datasets=("U",))]
    v = rp.hypothesis_verdicts(hs, t[t.variant != "D"], **FAST)
    assert set(v.verdict) == {"not tested"}
    assert list(v[(v.id == "elsewhere") & (v.dataset == "U")].note) == [
        "no results on test set 'U'"]
    # a folder without per_image.csv: every hypothesis says why it is not tested
    old = rp.hypothesis_verdicts(hs, None)
    assert set(old.verdict) == {"not tested"}
    assert all("per_image.csv" in n for n in old.note)
    assert rp.hypothesis_table(hs, v).loc[0, "pooled"].startswith("n/a")


def test_verdicts_of_a_folder_from_its_per_image_table_alone(tmp_path, files, capsys):
    t, _ = files
    t.to_csv(tmp_path / rs.PER_IMAGE, index=False)
    grid = {"name": "g", "seeds": [0, 1, 2],
            "variants": {"pinv": {"baseline": "pinv"}, "bic": {"baseline": "bicubic"},
                         "A": {"loss": "pixel"}},
            "hypotheses": [{"id": "H1", "statement": "A above pinv", "a": "A", "b": "pinv",
                            "metric": "psnr_y", "direction": "greater"}]}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    assert rp.main([str(tmp_path), "--verdicts", str(path)]) == 0
    out = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(out.columns) == stats.VERDICT_COLUMNS
    assert list(out.dataset) == ["pooled", *SETS] and set(out.verdict) == {"contradicted"}
    assert rp.main([str(tmp_path), "--verdicts", str(path), "--sets", "S"]) == 0
    assert list(pd.read_csv(io.StringIO(capsys.readouterr().out)).dataset) == ["pooled", "S"]
    # bad input: an unknown set, a metric the table lacks; clear errors, no traceback
    assert rp.main([str(tmp_path), "--verdicts", str(path), "--sets", "Set99"]) == 2
    assert "--sets: test set must be one of S, T, got 'Set99'" in capsys.readouterr().err
    grid["hypotheses"][0]["metric"] = "ssim_y"
    t.drop(columns=["ssim_y"]).to_csv(tmp_path / rs.PER_IMAGE, index=False)
    path.write_text(yaml.safe_dump(grid))
    assert rp.main([str(tmp_path), "--verdicts", str(path)]) == 2
    err = capsys.readouterr().err
    assert "hypothesis 'H1': metric: 'ssim_y' is not a column of" in err and "psnr_y" in err


def test_every_metric_has_words_a_unit_a_format_and_a_source():
    from srlib.metrics import METRICS

    for name, m in METRICS.items():
        assert m.words and m.unit in ("", "dB", "%", "grey levels") and m.fmt.format(1.5), name
        assert m.better in ("higher", "lower", "") and m.source in ("image", "gain", "samples",
                                                                  "validation")
        assert not m.floor or m.floor in METRICS, f"{name}: its floor is a metric too"
        assert not m.table or m.heading or m.source == "samples", f"{name}: needs a heading"


def test_general_findings_name_no_hypothesis(files):
    _, r = files
    text = "\n".join(rp.general_findings(r))
    assert "**Training length differs**" in text and "`A` 100, `B` 100 + 20" in text
    assert "`A+P`" not in text.split("Perceptual")[0]  # twins share their variant's length
    assert "**Perceptual loss**: `B`, `B+P`: perceptual loss on vgg19 (test)." in text
    assert "**Failed**: `C` seed 1: `ValueError: boom`" in text
    same = r[r.variant.isin(["pinv", "A"])]
    assert not any("Training length" in s for s in rp.general_findings(same))


# ---- tables --------------------------------------------------------------------------------

def test_table_of_plain_means(files):
    t, r = files
    s = rp.summary_table(r, t, baselines=BASELINES, **FAST)
    assert list(s[s.dataset == "S"].variant) == ["pinv", "bic", "A", "A+P", "B", "B+P"]
    assert list(s.dataset.unique()) == list(SETS)
    table = rp.format_table(s, "S").set_index("variant")
    assert list(table.columns) == ["kind", "PSNR-Y (dB)", "SSIM-Y", "LPIPS (stlpips-alex)",
                                   "LR-PSNR (dB)", "null-space gain (dB)", "range gain (dB)",
                                   "images", "seeds", "iterations"]
    cell = re.compile(r"^-?\d+\.\d{2}$")  # the mean alone: no interval over a few images
    assert all(cell.match(c) for c in table["PSNR-Y (dB)"])
    assert table.loc["A", "null-space gain (dB)"].startswith("-3.0")
    assert table.loc["pinv", "null-space gain (dB)"] == "0.00"
    assert table.loc["A", "SSIM-Y"] == "0.8000"
    assert list(table.loc[["pinv", "A", "B"], "seeds"]) == ["1", "3", "3"]
    assert set(table.images) == {"12"}
    assert list(table.loc[["pinv", "A", "B+P"], "iterations"]) == ["0", "100", "100 + 20"]
    assert list(table.loc[["bic", "A+P"], "kind"]) == ["baseline", "projected"]
    mean = t[(t.variant == "A") & (t.dataset == "S")].psnr_y.mean()
    assert s.set_index(["dataset", "variant"]).loc[("S", "A"), "psnr_y_mean"] == \
        pytest.approx(mean)
    assert "No interval" in rp.table_note(s) and "whole image" in rp.table_note(s)


def test_read_per_image(tmp_path, files):
    t, _ = files
    assert rs.read_per_image(tmp_path) is None
    t.to_csv(tmp_path / "per_image.csv", index=False)
    back = rs.read_per_image(tmp_path)
    assert back.image.iloc[0] == "000" and len(back) == len(t)


# ---- the grid's hypotheses are checked before any training ---------------------------------

def _grid(tmp_path: Path, hypotheses: list[dict], **variants) -> Path:
    g = {"name": "h", "defaults": {"iters": 100, "test_data": ["default"]},
         "variants": {"pinv": {"baseline": "pinv"}, "bicubic": {"baseline": "bicubic"},
                      "A": {"loss": "down", "upsampler": "pixelshuffle"},
                      "B": {"loss": "pixel", "upsampler": "pixelshuffle"},
                      "short": {"loss": "pixel", "iters": 50},
                      "tune": {"loss": "down+0.005*adv", "init_from": "A", "iters": 20},
                      **variants},
         "hypotheses": hypotheses}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(g, sort_keys=False))
    return path


def _hd(**kw) -> dict:
    return {"id": "H", "statement": "A is below B", "a": "A", "b": "B", "metric": "psnr_y",
            "direction": "less", **kw}


def test_valid_hypotheses_are_parsed(tmp_path):
    grid = load_grid(_grid(tmp_path, [
        _hd(), _hd(id="P", a="A+P", b="pinv", metric="null_gain_db", datasets=["default"]),
        _hd(id="U", a="tune", b="A", unequal_iters_ok=True),
        _hd(id="V", a="short", b=45, metric="lr_psnr_ntire_worst", direction="greater")]))
    hs = grid["hypotheses"]
    assert [h.id for h in hs] == ["H", "P", "U", "V"]
    assert (hs[3].b, hs[3].value) == ("45", 45.0)  # a fixed value: no length to compare
    assert hs[0] == Hypothesis("H", "A is below B", "A", "B", "psnr_y", "less")
    assert hs[1].a == "A+P" and hs[1].datasets == ("default",)
    assert hs[2].unequal_iters_ok
    assert load_grid(_grid(tmp_path, []))["hypotheses"] == []


@pytest.mark.parametrize("bad, message", [
    (_hd(a="Z"), "hypothesis 'H': a must be one of .*, got 'Z'"),
    (_hd(b="pinv+P"), "hypothesis 'H': b must be one of .*, got 'pinv\\+P'"),  # no twin of pinv
    (_hd(metric="psnr"), "hypothesis 'H': metric must be one of .*, got 'psnr'"),
    (_hd(direction="lower"), "hypothesis 'H': direction must be one of greater, less, got 'lower'"),
    (_hd(datasets=["Set99"]), "hypothesis 'H': datasets must be one of .*, got 'Set99'"),
    (_hd(b="short"), "hypothesis 'H': a 'A' is trained for 100 iterations and b 'short' for 50"),
    (_hd(a="tune+P", b="A"),
     r"hypothesis 'H': a 'tune\+P' is trained for 100 \+ 20 iterations and b 'A' for 100"),
    (_hd(unequal_iters_ok="yes"), "hypothesis 'H': unequal_iters_ok: expected true or false"),
])
def test_bad_hypotheses_are_refused_before_training(tmp_path, capsys, bad, message):
    path = _grid(tmp_path, [bad])
    with pytest.raises(ValueError) as err:
        load_grid(path)
    assert re.search(message, str(err.value)) and str(path) in str(err.value)
    assert main([str(path), "--out", str(tmp_path / "out")]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "out" / "runs").exists()  # nothing trained


def test_equal_iterations_and_baselines_pass_the_length_check(tmp_path):
    grid = load_grid(_grid(tmp_path, [_hd(a="A", b="bicubic"), _hd(id="2", a="B+P", b="A"),
                                      _hd(id="3", a="short", b="pinv")]))
    assert len(grid["hypotheses"]) == 3


def test_a_variant_may_not_take_a_twin_name(tmp_path):
    with pytest.raises(ValueError, match="'A\\+P' is taken by the post-hoc twin"):
        load_grid(_grid(tmp_path, [], **{"A+P": {"loss": "pixel"}}))


# ---- no variant name, label or threshold in srlib's report code ----------------------------

def _shipped_variant_names() -> set[str]:
    from srlib.evaluate import BASELINES as KINDS  # kind names, which a grid may reuse

    names = set()
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        names |= set(yaml.safe_load(path.read_text()).get("variants") or {})
    return {n for n in names if n not in KINDS}


@pytest.mark.parametrize("module", ["report.py", "stats.py"])
def test_no_variant_name_of_the_shipped_grids_in_srlib(module):
    source = (ROOT / "srlib" / module).read_text()
    names = _shipped_variant_names()
    assert len(names) >= 5  # the grids were read
    prefixes = {n.split("/")[0] + "/" for n in names if "/" in n}
    found = [x for x in sorted(names | prefixes)
             if re.search(r"""["'`]""" + re.escape(x) + (r"" if x.endswith("/") else r"""["'`]"""),
                          source)]
    assert not found, f"srlib/{module} names variants of the shipped grids: {found}"


# ---- validation curves ---------------------------------------------------------------------


def test_validation_curves(tmp_path):
    runs = tmp_path / "runs"
    for v, sign in (("A", -1.0), ("B", 1.0)):
        for seed in (0, 1):
            d = run_dir(tmp_path, v, seed)
            d.mkdir(parents=True)
            it = np.arange(0, 101, 20)
            pd.DataFrame({"iter": it, "psnr_y": 25.0, "lr_psnr": 30 + it / 10 + seed,
                          "null_gain_db": sign * it / 100 + seed,
                          "range_gain_db": 0.5, "null_corr": 1 - it / 200}
                         ).to_csv(d / VALIDATION, index=False)
    first = load_validation(runs, ["A", "B", "none"], [0, 1])
    assert list(first) == ["A", "B"] and first["A"].seeds.iloc[0] == 1
    assert first["A"].null_gain_db.iloc[-1] == pytest.approx(-1.0)
    mean = load_validation(runs, ["A", "B"], [0, 1], how="mean")
    assert mean["A"].null_gain_db.iloc[-1] == pytest.approx(-0.5)
    assert mean["B"].lr_psnr.iloc[0] == pytest.approx(30.5) and mean["B"].seeds.iloc[0] == 2
    fig = plot_validation(mean)
    # + a 0 line on the null-space gain (D^+ LR) and on null_corr (nothing of the start left)
    assert len(fig.axes) == 3 and [len(ax.lines) for ax in fig.axes] == [3, 2, 3]
    assert "null-space gain" in fig.axes[0].get_ylabel()
    assert "LR-PSNR" in fig.axes[1].get_ylabel() and "correlation" in fig.axes[2].get_ylabel()
    assert fig.axes[0].get_xlabel() == "iteration"
    assert legend_clear_of_axes(fig)
    assert [t.get_text() for t in fig.axes[2].get_legend().get_texts()] == ["A", "B"]
    # faceted by family, eight lines a panel at most, each distinct in colour and dash
    many = {f"v{i}": mean["A"] for i in range(11)}
    fig = plot_validation(many, {f"v{i}": "down" if i < 9 else "pixel" for i in range(11)})
    rows = [fig.axes[i].get_title() for i in range(0, len(fig.axes), 3)]
    assert rows == ["down (1 of 2)", "down (2 of 2)", "pixel"]
    styles = [(line.get_color(), line.get_linestyle()) for line in fig.axes[0].lines[:-1]]
    assert len(styles) == 8 == len(set(styles)) and legend_clear_of_axes(fig)
    assert plot_validation({}).axes[0].texts  # nothing logged: says so
    with pytest.raises(ValueError, match="how must be"):
        load_validation(runs, ["A"], [0], how="median")


# ---- the report notebook on synthetic result files -----------------------------------------

def test_report_notebook_states_each_hypothesis_before_its_verdict(tmp_path, files):
    """04_report on a result folder with per_image.csv and one validation.csv: the page
    states the statements, their verdicts, the tables with intervals and the curves."""
    from srlib.notebooks import execute

    t, r = files
    out = tmp_path / "reports"
    (out / "runs").mkdir(parents=True)
    r.to_csv(out / "results.csv", index=False)
    t.to_csv(out / "per_image.csv", index=False)
    d = run_dir(out, "A", 0)
    d.mkdir(parents=True)
    pd.DataFrame({"iter": [10, 20], "psnr_y": [24.0, 25.0], "lr_psnr": [30.0, 35.0],
                  "null_gain_db": [-1.0, -2.0], "range_gain_db": [0.1, 0.2]}).to_csv(
        d / VALIDATION, index=False)
    grid = {"name": "synthetic", "defaults": {"test_data": ["S", "T"]},
            "variants": {"pinv": {"baseline": "pinv"}, "bic": {"baseline": "bicubic"},
                         "A": {"loss": "down"},
                         "B": {"loss": "pixel", "init_from": "A", "iters": 20}},
            "hypotheses": [{"id": "H-twin", "statement": "Projection makes A consistent.",
                            "a": "A+P", "b": "A", "metric": "lr_psnr",
                            "direction": "greater"}]}
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid, sort_keys=False))
    params = {"results": str(out / "results.csv"), "runs": str(out / "runs"),
              "grid": str(tmp_path / "grid.yaml")}
    execute("04_report.py", out / "04_report.ipynb", params)
    html = (out / "04_report.html").read_text()
    # the answer first: the claim, then its verdict and interval
    said = html.index("Projection makes A consistent (H-twin): <strong>supported")
    assert said < html.index('id="The-grid"') < html.index("Projection makes A consistent.")
    assert html.index('<table class="verdicts">') < html.index('id="The-grid"')
    assert "H-twin" in html and "95% interval" in html
    assert (out / rs.VERDICTS).is_file()
    assert re.search(r"-?\d+\.\d\d \[-?\d+\.\d\d, -?\d+\.\d\d\]", html)
    assert "perceptual loss on vgg19 (test)" in html
    assert html.count("data:image/png;base64") >= 4  # 2 planes, validation, no loss curves


def test_threshold_finding_names_variants_passing_on_both_definitions():
    from srlib.report import general_findings

    rows = [{"variant": v, "kind": "trained", "seed": 0, "dataset": "S", "status": "done",
             "lr_psnr": ours, "lr_psnr_ntire": theirs, "iters": 10, "iters_total": 10}
            for v, ours, theirs in (("a", 50.0, 47.0), ("b", 46.0, 44.0), ("c", 30.0, 30.0))]
    text = "\n".join(general_findings(pd.DataFrame(rows)))
    assert "on both our definition and the challenge's: `a`; on ours only: `b`." in text


def test_samples_table_shows_the_stochastic_variants_alone():
    rows = [{"variant": v, "seed": 0, "dataset": "S", "image": f"{i}", "psnr_y": 30.0 + i,
             "diversity": (2.0 + i) if v == "noisy" else np.nan,
             "lr_psnr_ntire_worst": (46.0 + i) if v == "noisy" else np.nan}
            for v in ("plain", "noisy") for i in range(4)]
    t = rp.samples_table(pd.DataFrame(rows), n_boot=500)
    assert t["variant"].tolist() == ["noisy"] and t["test set"].tolist() == ["S"]
    assert t["diversity score (the challenge's) (%)"].iloc[0] == "3.50"
    assert t["the challenge's LR-PSNR, worst sample (dB)"].iloc[0] == "47.50"
    assert (t["images"].iloc[0], t["seeds"].iloc[0]) == (4, 1)
    assert rp.samples_table(pd.DataFrame(rows).drop(columns="diversity")).empty
    assert rp.samples_table(None).empty


def test_headline_table_from_a_result_folder(tmp_path, files, capsys):
    t, res = files
    t.to_csv(tmp_path / "per_image.csv", index=False)
    res.to_csv(tmp_path / "results.csv", index=False)
    (tmp_path / "provenance.json").write_text('{"commit": "abc1234"}')
    md = rp.headline_table(tmp_path, ["psnr_y@S", "null_gain_db@T"], ["pinv", "A"], n_boot=500)
    lines = md.splitlines()
    assert lines[0] == "| variant | PSNR-Y (dB), S | null-space gain (dB), T | seeds |"
    mean_a = t[(t.variant == "A") & (t.dataset == "S")].psnr_y.mean()
    assert lines[3].startswith(f"| `A` | {mean_a:.2f} [") and lines[3].endswith("| 3 |")
    assert lines[2].startswith("| `pinv` |") and "0.00 [0.00, 0.00]" in lines[2]
    assert "commit `abc1234`" in lines[-1]
    with pytest.raises(ValueError, match="column 'psnr@S': expected METRIC@TESTSET"):
        rp.headline_table(tmp_path, ["psnr@S"])
    with pytest.raises(ValueError, match="without a done run .*: Z"):
        rp.headline_table(tmp_path, ["psnr_y@S"], ["Z"])
    assert rp.main([str(tmp_path), "--columns", "psnr_y@X"]) == 2
    assert "column 'psnr_y@X'" in capsys.readouterr().err
    assert rp.main([str(tmp_path), "--columns", "psnr_y@S", "--variants", "B"]) == 0
    assert "| `B` |" in capsys.readouterr().out


# ---- the adversarial sweeps on the perception-distortion plane ---------------------------

def _front_table(rng: np.random.Generator) -> pd.DataFrame:
    """Two sweeps at two weights, 3 seeds x 12 images: at 1e-3 the first is better in
    both metrics; at 1e-2 it has the higher PSNR-Y and the higher LPIPS."""
    effects = {"d1": (0.5, -0.02), "p1": (0.0, 0.0), "d2": (0.5, 0.02), "p2": (0.0, 0.0)}
    rows = []
    for v, (dp, dl) in effects.items():
        for seed in range(3):
            for i in range(12):
                rows.append({"variant": v, "seed": seed, "dataset": "S", "image": f"i{i}",
                             "psnr_y": 28 + 0.1 * i + dp + rng.normal(0, 0.05),
                             "lpips": 0.2 + 0.01 * i + dl + rng.normal(0, 0.002)})
    return pd.DataFrame(rows)


def test_the_fronts_say_where_one_sweep_dominates_the_other():
    from srlib.analysis import plot_fronts

    t = _front_table(np.random.default_rng(0))
    fronts = {"down + w adv": [["d1", "1e-3"], ["d2", "1e-2"]],
              "pixel + w adv": [["p1", "1e-3"], ["p2", "1e-2"], ["missing", "1e-1"]]}
    lines = rp.front_comparison(t, fronts)
    assert len(lines) == 3  # each weight both sweeps have, then at equal PSNR-Y
    assert lines[2].startswith("At equal PSNR-Y (") or "not compared" in lines[2]
    assert lines[0].startswith("At 1e-3, `d1` minus `p1`: PSNR-Y 0.50 [")
    assert lines[0].endswith("(3 seed(s), 12 images): down + w adv dominates.")
    assert "neither dominates" in lines[1]
    ci = stats.summary_with_ci(t, ["psnr_y", "lpips"], by=["variant"])
    fig = plot_fronts(ci, fronts, "stlpips-alex")
    ax = fig.axes[0]
    assert [txt.get_text() for txt in ax.get_legend().get_texts()] == list(fronts)
    assert {txt.get_text() for txt in ax.texts} == {"1e-3", "1e-2"}
    assert rp.front_comparison(t, {"only": fronts["down + w adv"]}) == []


def test_seed_means_text_of_an_every_hypothesis_is_empty():
    """An "every" hypothesis over 3 seeds has no per-seed means (it counts images): the
    page's matrix said nothing there, instead of failing on the empty field (the
    study's second edition, 04_report)."""
    import pandas as pd

    from srlib.report import seed_means_text

    row = pd.Series({"n_seeds": 3, "seed_means": "", "metric": "lr_psnr_ntire"})
    assert seed_means_text(row) == ""
    row = pd.Series({"n_seeds": 3, "seed_means": "1.0 / 2.5 / 3.25", "metric": "psnr_y"})
    assert seed_means_text(row) == "1.00 / 2.50 / 3.25"


def test_the_scale_line_names_the_generator_size_and_the_published_set5_results():
    from srlib.grid import load_grid
    from srlib.models import build_generator, conv_flops, generator_size

    g = load_grid(Path(__file__).resolve().parents[1] / "configs" / "pilot.yaml")
    t = pd.DataFrame({"variant": ["pinv", "pixel/pixelshuffle", "pixel/pixelshuffle",
                                  "bicubic"],
                      "dataset": ["Set5"] * 4, "status": ["done"] * 4,
                      "psnr_y": ["29.23", "30.60", "30.70", "28.42"]})
    size, lines = generator_size("study", 4, "pixelshuffle"), rp.scale_lines(g, t)
    net = build_generator("study", 4, "pixelshuffle")
    assert size["params"] == sum(p.numel() for p in net.parameters())
    assert f"{size['params'] / 1e6:.2f} M parameters" in lines[0]
    assert "ESRGAN's generator (preset `esrgan`): 16.70 M" in lines[0]  # as the paper says
    assert lines[1] == ("`pixel/pixelshuffle` on Set5 x4: PSNR-Y 30.65 dB, beside `pinv` "
                        "29.23, SRCNN 30.48 as published, ESRGAN's RRDB_PSNR 32.73 as "
                        "published.")  # bicubic is no variant of this grid
    # a 48 x 48 LR input through one 3x3 conv of 3 -> 8 channels: 2 x 27 x 8 FLOPs a pixel
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    conv.scale = 1
    assert conv_flops(conv, torch.zeros(1, 3, 48, 48)) == 2 * 27 * 8 * 48 * 48
