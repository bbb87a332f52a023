"""Paired bootstrap, pairing rules, gains and hypotheses of ``srlib.stats``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from srlib import grid, metrics, stats
from srlib.grid import Hypothesis, parse_hypotheses
from srlib.results import per_image_table
from srlib.stats import (
    add_gains,
    difference_from_value,
    evaluate_hypothesis,
    format_interval,
    holm,
    paired_bootstrap,
    paired_difference,
    summary_with_ci,
    verdict_table,
)

FAST = {"n_boot": 2000}


def table(values: dict, seeds=(0, 1, 2), n_images: int = 20, dataset: str = "S") -> pd.DataFrame:
    """Long per-image table: ``values[variant](seed, image_index) -> psnr_y``."""
    rows = [{"variant": v, "seed": s, "dataset": dataset, "image": f"{i:03d}",
             "psnr_y": float(f(s, i))}
            for v, f in values.items() for s in seeds for i in range(n_images)]
    return pd.DataFrame(rows)


# ---- the bootstrap -----------------------------------------------------------------------

def test_interval_of_a_normal_sample_matches_the_normal_theory():
    x = np.random.default_rng(1).normal(0.5, 2.0, 4000)
    iv = paired_bootstrap(x, n_boot=4000)
    half = 1.96 * x.std(ddof=1) / math.sqrt(x.size)
    assert iv.mean == pytest.approx(x.mean())
    assert iv.low == pytest.approx(x.mean() - half, abs=0.08 * half)
    assert iv.high == pytest.approx(x.mean() + half, abs=0.08 * half)
    assert iv.low < 0.5 < iv.high and iv.excludes_zero
    assert (iv.n, iv.n_dropped, iv.level) == (4000, 0, 0.95)


def test_symmetric_sample_includes_zero_and_positive_sample_excludes_it():
    y = np.random.default_rng(2).normal(0, 1, 200)
    sym = paired_bootstrap(np.concatenate([y, -y]), **FAST)
    assert sym.low < 0 < sym.high and not sym.excludes_zero
    pos = paired_bootstrap(np.random.default_rng(3).uniform(0.1, 1.0, 50), **FAST)
    assert pos.low > 0 and pos.excludes_zero
    neg = paired_bootstrap(-np.random.default_rng(3).uniform(0.1, 1.0, 50), **FAST)
    assert neg.high < 0 and neg.excludes_zero


def test_bootstrap_is_deterministic_given_the_seed():
    x = np.random.default_rng(4).normal(0.1, 1, 300)
    assert paired_bootstrap(x, seed=7, **FAST) == paired_bootstrap(x, seed=7, **FAST)
    assert paired_bootstrap(x, seed=7, **FAST).low != paired_bootstrap(x, seed=8, **FAST).low


def test_single_value_nan_and_empty():
    one = paired_bootstrap(np.array([0.7]))
    assert (one.mean, one.low, one.high, one.n) == (0.7, 0.7, 0.7, 1)
    assert one.degenerate and not one.excludes_zero
    some = paired_bootstrap(np.array([1.0, np.nan, 2.0, np.inf, 3.0]), **FAST)
    assert (some.n, some.n_dropped, some.mean) == (3, 2, 2.0) and not some.degenerate
    none = paired_bootstrap(np.array([np.nan]))
    assert none.n == 0 and math.isnan(none.mean) and not none.excludes_zero


def test_images_are_the_unit_resampled():
    """With every image under 3 seeds, resampling images equals resampling the per-image
    means (same draws), and is wider than treating the 60 pairs as independent."""
    rng = np.random.default_rng(5)
    effect = rng.normal(0.3, 1.0, 20)
    img = np.repeat(np.arange(20), 3)
    diff = effect[img] + rng.normal(0, 0.05, img.size)
    by_image = paired_bootstrap(diff, clusters=img, **FAST)
    means = diff.reshape(20, 3).mean(1)
    ref = paired_bootstrap(means, **FAST)
    assert (by_image.low, by_image.high) == pytest.approx((ref.low, ref.high))
    assert by_image.n == 60 and by_image.n_images == 20
    iid = paired_bootstrap(diff, **FAST)
    assert iid.high - iid.low < 0.7 * (by_image.high - by_image.low)
    assert paired_bootstrap(diff[:3], clusters=img[:3]).degenerate  # one image: no interval


def test_seeds_are_resampled_from_two_seeds_on():
    rng = np.random.default_rng(6)
    for n_seeds in (2, 3, 6):
        img, sd = np.divmod(np.arange(30 * n_seeds), n_seeds)
        diff = 0.2 * rng.normal(size=30)[img] + rng.normal(0, 1.0, n_seeds)[sd]
        auto = paired_bootstrap(diff, clusters=img, seeds=sd, **FAST)
        images = paired_bootstrap(diff, clusters=img, seeds=sd, resample_seeds=False, **FAST)
        assert auto.n_seeds == n_seeds and auto.method == "two-way t"
        assert images.method == "percentile"
        assert (auto.high - auto.low) > 2 * (images.high - images.low)
        # the per-seed means, in seed order
        want = [diff[sd == s].mean() for s in range(n_seeds)]
        assert auto.seed_means == pytest.approx(want)
    one = paired_bootstrap(np.arange(12.0), clusters=np.arange(12), seeds=[0] * 12, **FAST)
    assert one.one_run and one.method == "percentile"


def _coverage(resample_seeds, reps=400, n_images=30, n_seeds=3):
    """Share of ``reps`` simulated studies whose 95% interval covers the true mean 0:
    image effects sd 1, seed effects sd 0.5, image x seed noise sd 0.5."""
    rng = np.random.default_rng(2026)
    img, sd = np.divmod(np.arange(n_images * n_seeds), n_seeds)
    hits = 0
    for r in range(reps):
        y = (rng.normal(0, 1.0, n_images)[img] + rng.normal(0, 0.5, n_seeds)[sd]
             + rng.normal(0, 0.5, img.size))
        iv = paired_bootstrap(y, clusters=img, seeds=sd, resample_seeds=resample_seeds,
                              n_boot=1000, seed=r)
        hits += iv.low <= 0 <= iv.high
    return hits / reps


def test_retraining_inside_the_interval_covers_the_truth():
    both, images = _coverage(None), _coverage(False)
    print(f"coverage of the 95% interval over 400 simulated studies (30 images, 3 seeds): "
          f"images and seeds {both:.1%}, images only {images:.1%}")
    assert both >= 0.93
    assert images < 0.85


def test_small_sets_get_the_studentized_interval():
    x = np.array([0.3, 1.9, -0.4, 2.6, 0.9])  # 5 images, one seed
    iv = paired_bootstrap(x, clusters=np.arange(5), n_boot=4000)
    assert iv.method == "t" and iv.n_images == 5 and iv.df == 4
    se = x.std(ddof=1) / math.sqrt(5)
    half = 2.7764451 * se  # Student's t, 4 degrees of freedom, 97.5%
    assert (iv.low, iv.high) == pytest.approx((x.mean() - half, x.mean() + half))
    # the percentile bootstrap on 5 images is far narrower than the t interval
    pct = np.quantile([np.random.default_rng(i).choice(x, 5).mean() for i in range(4000)],
                      [0.025, 0.975])
    assert (pct[1] - pct[0]) < 0.8 * 2 * half
    # two values per image (fixed seeds): the image means' standard error
    two = paired_bootstrap(np.repeat(x, 2), clusters=np.repeat(np.arange(5), 2),
                           seeds=np.tile([0, 1], 5), resample_seeds=False)
    assert (two.low, two.high) == pytest.approx((iv.low, iv.high))
    # from ten images on, the percentile interval
    assert paired_bootstrap(np.arange(10.0), clusters=np.arange(10), **FAST).method == (
        "percentile")


def test_p_value_agrees_with_the_interval():
    rng = np.random.default_rng(3)
    for n_seeds in (1, 3):
        img, sd = np.divmod(np.arange(40 * n_seeds), n_seeds)
        for shift in (0.0, 0.4, 2.0):
            y = shift + rng.normal(0, 1.0, 40)[img] + rng.normal(0, 0.2, img.size)
            iv = paired_bootstrap(y, clusters=img, seeds=sd, **FAST)
            assert 0 <= iv.p <= 1
            if iv.excludes_zero:
                assert iv.p < 0.06
            else:
                assert iv.p > 0.04


# ---- pairing -----------------------------------------------------------------------------

def test_pairs_on_dataset_seed_and_image():
    # a - b = 1 exactly when paired on (seed, image), anything else when mispaired
    t = table({"A": lambda s, i: 10 * s + i * i, "B": lambda s, i: 10 * s + i * i - 1})
    t = t[~((t.variant == "B") & (t.seed == 2))]  # B lacks seed 2: those pairs drop out
    iv = paired_difference(t, "A", "B", "psnr_y", "S", **FAST)
    assert (iv.mean, iv.low, iv.high) == (1.0, 1.0, 1.0)
    assert (iv.n, iv.n_images, iv.n_seeds) == (40, 20, 2)
    other = table({"A": lambda s, i: 0.0, "B": lambda s, i: 0.0}, dataset="T")
    pooled = paired_difference(pd.concat([t, other]), "A", "B", "psnr_y", **FAST)
    assert pooled.n_images == 40 and pooled.mean == pytest.approx(40 / 100)
    rev = paired_difference(t, "B", "A", "psnr_y", "S", **FAST)
    assert rev.mean == -1.0
    with pytest.raises(ValueError, match="several rows"):
        paired_difference(pd.concat([t, t]), "A", "B", "psnr_y", "S")


@pytest.mark.parametrize("how", ["identical seeds", "no seed", "named, one seed"])
def test_a_baseline_is_broadcast_over_the_other_seeds(how):
    t = table({"A": lambda s, i: s + i, "base": lambda s, i: i})
    baselines: tuple[str, ...] = ()
    if how == "no seed":
        t = t[(t.variant == "A") | (t.seed == 0)].copy()
        t.loc[t.variant == "base", "seed"] = np.nan
    elif how == "named, one seed":
        t = t[(t.variant == "A") | (t.seed == 0)]
        baselines = ("base",)
    iv = paired_difference(t, "A", "base", "psnr_y", baselines=baselines, **FAST)
    assert iv.mean == pytest.approx(1.0)  # seeds 0, 1, 2 against the same baseline
    assert (iv.n, iv.n_images, iv.n_seeds) == (60, 20, 3)
    back = paired_difference(t, "base", "A", "psnr_y", baselines=baselines, **FAST)
    assert back.mean == pytest.approx(-1.0)


def test_a_single_seed_unnamed_variant_is_paired_by_seed():
    t = table({"A": lambda s, i: s + i, "B": lambda s, i: i})
    t = t[(t.variant == "A") | (t.seed == 0)]
    iv = paired_difference(t, "A", "B", "psnr_y", **FAST)
    assert (iv.mean, iv.n, iv.n_seeds) == (0.0, 20, 1)


def test_two_baselines_pair_on_image_and_count_no_seed():
    t = table({"b1": lambda s, i: i + 0.5, "b2": lambda s, i: i})
    iv = paired_difference(t, "b1", "b2", "psnr_y", **FAST)
    assert (iv.mean, iv.n, iv.n_images, iv.n_seeds) == (0.5, 20, 20, 0)  # nothing trained
    assert not iv.one_run


# ---- gains -------------------------------------------------------------------------------

def _mse_table(ref: str = "pinv") -> pd.DataFrame:
    rows = []
    for s in (0, 1):
        for i in range(4):
            rows.append({"variant": ref, "seed": s, "dataset": "S", "image": str(i),
                         "null_mse": 1e-3 * (i + 1), "range_mse": 2e-4 * (i + 1)})
            rows.append({"variant": "half", "seed": s, "dataset": "S", "image": str(i),
                         "null_mse": 0.5e-3 * (i + 1), "range_mse": 4e-4 * (i + 1)})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("ref", ["pinv", "some baseline"])
def test_gains_against_the_baseline(ref):
    g = add_gains(_mse_table(ref), baseline=ref)
    base, half = g[g.variant == ref], g[g.variant == "half"]
    assert (base.null_gain_db == 0).all() and (base.range_gain_db == 0).all()
    assert half.null_gain_db.to_numpy() == pytest.approx(10 * np.log10(2))  # +3.01 dB
    assert half.range_gain_db.to_numpy() == pytest.approx(-10 * np.log10(2))
    iv = paired_difference(g, "half", ref, "null_gain_db", **FAST)
    assert iv.mean == pytest.approx(3.0103, abs=1e-4) and iv.excludes_zero


def test_gains_broadcast_a_named_one_seed_baseline_and_nan_without_it():
    t = _mse_table()
    t = t[(t.variant == "half") | (t.seed == 0)]
    assert add_gains(t, "pinv", baselines=("pinv",)).null_gain_db.notna().all()
    unnamed = add_gains(t, "pinv")
    assert unnamed[unnamed.seed == 1].null_gain_db.isna().all()
    assert add_gains(t, baseline="absent").null_gain_db.isna().all()


# ---- hypotheses --------------------------------------------------------------------------

VARIANTS = ["A", "B", "base"]
METRICS = {"psnr_y", "null_gain_db"}


def _h(**kw) -> dict:
    return {"id": "H2", "statement": "A beats B", "a": "A", "b": "B", "metric": "psnr_y",
            "direction": "greater", **kw}


def test_parse_hypotheses_accepts_a_valid_list():
    hs = parse_hypotheses([_h(), _h(id="H3", direction="less", datasets=["S"])],
                          VARIANTS, "grid.yaml", datasets={"S"})
    assert hs[0] == Hypothesis("H2", "A beats B", "A", "B", "psnr_y", "greater")
    assert hs[1].datasets == ("S",) and hs[1].direction == "less"
    assert not hs[0].unequal_iters_ok
    ok = parse_hypotheses([_h(unequal_iters_ok=True)], VARIANTS, "grid.yaml")
    assert ok[0].unequal_iters_ok
    assert parse_hypotheses(None, VARIANTS, "grid.yaml") == []


@pytest.mark.parametrize("bad, message", [
    (_h(a="x"), "grid.yaml: hypothesis 'H2': a must be one of A, B, base, got 'x'"),
    (_h(b="y"), "hypothesis 'H2': b must be one of A, B, base, got 'y'"),
    (_h(b="A"), "hypothesis 'H2': b: same variant as a"),
    (_h(metric="psnr"), "hypothesis 'H2': metric must be one of psnr_y, "),
    (_h(direction="up"), "hypothesis 'H2': direction must be one of greater, less, got 'up'"),
    (_h(expected="greater"), "hypothesis 'H2': key must be one of "
                             + ", ".join(grid._ALLOWED) + ", got 'expected'"),
    ({k: v for k, v in _h().items() if k != "metric"}, "hypothesis 'H2': metric: missing"),
    ({k: v for k, v in _h().items() if k != "id"}, "hypothesis #1: id: missing"),
    (_h(statement=""), "hypothesis 'H2': statement: expected a non-empty string"),
    (_h(datasets=["Set99"]), "hypothesis 'H2': datasets must be one of S, got 'Set99'"),
    (_h(unequal_iters_ok="yes"), "hypothesis 'H2': unequal_iters_ok: expected true or false"),
    (_h(b=float("inf")), "hypothesis 'H2': b: expected a variant or a finite number"),
    (_h(b=True), "hypothesis 'H2': b: expected a non-empty string, got True"),
])
def test_parse_errors_name_the_hypothesis_and_the_field(bad, message):
    with pytest.raises(ValueError) as e:
        parse_hypotheses([bad], VARIANTS, "grid.yaml", datasets={"S"})
    assert message in str(e.value)


def test_parse_reports_every_problem_and_duplicate_ids():
    with pytest.raises(ValueError) as e:
        parse_hypotheses([_h(), _h(a="x", metric="m")], VARIANTS, "g.yaml")
    lines = str(e.value).splitlines()
    assert "g.yaml: hypothesis 'H2': id: duplicate (also hypothesis #1)" in lines
    assert any("a must be one of A, B, base, got 'x'" in x for x in lines)
    assert any("metric must be one of" in x and "got 'm'" in x for x in lines)
    with pytest.raises(ValueError, match="expected a list"):
        parse_hypotheses({"H1": {}}, VARIANTS, "g.yaml")


def test_b_may_be_a_fixed_value():
    (h,) = parse_hypotheses([_h(b=45), ], VARIANTS, "grid.yaml")
    assert (h.b, h.value, h.variants) == ("45", 45.0, ("A",))
    assert parse_hypotheses([_h(b=0.5)], VARIANTS, "g")[0].b == "0.5"
    # B is absent: only a is needed; the difference is a - 45 per image, resampled so
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 1, (3, 20))
    t = table({"A": lambda s, i: 46 + noise[s, i]})
    r = evaluate_hypothesis(h, t, **FAST)["S"]
    assert r["verdict"] == "supported" and r["interval"].mean == pytest.approx(1 + noise.mean())
    assert (r["interval"].n_images, r["interval"].n_seeds) == (20, 3)
    less = Hypothesis("H", "A below 47", "A", "47", "psnr_y", "less", value=47.0)
    assert evaluate_hypothesis(less, t, **FAST)["S"]["verdict"] == "supported"
    assert evaluate_hypothesis(Hypothesis("H", "C", "C", "45", "psnr_y", "greater",
                                          value=45.0), t)["S"]["note"] == \
        "missing variant(s): 'C'"
    # a seed-independent variant counts each image once
    base = difference_from_value(table({"A": lambda s, i: float(i)}), "A", 0.0, "psnr_y")
    assert (base.mean, base.n, base.n_seeds) == (9.5, 20, 0)


def _verdicts(values: dict, h: Hypothesis, **kw) -> dict:
    return evaluate_hypothesis(h, table(values), **FAST, **kw)["S"]


def test_verdicts_follow_the_interval():
    rng = np.random.default_rng(8)
    noise = rng.normal(0, 1, (3, 20))
    better = {"A": lambda s, i: 30 + 1 + noise[s, i], "B": lambda s, i: 30 + noise[s, i] / 2}
    same = {"A": lambda s, i: 30 + noise[s, i] - noise.mean(), "B": lambda s, i: 30.0}
    up = Hypothesis("H", "A above B", "A", "B", "psnr_y", "greater")
    down = Hypothesis("H", "A below B", "A", "B", "psnr_y", "less")
    r = _verdicts(better, up)
    assert r["verdict"] == "supported" and r["interval"].low > 0
    assert _verdicts(better, down)["verdict"] == "contradicted"
    r = _verdicts(same, up)
    assert r["verdict"] == "inconclusive" and "includes 0" in r["note"]


def test_missing_variant_is_not_tested():
    h = Hypothesis("H4", "C beats B", "C", "B", "psnr_y", "greater")
    r = evaluate_hypothesis(h, table({"A": lambda s, i: i, "B": lambda s, i: i}))
    assert r == {"pooled": {"interval": None, "share": None, "verdict": "not tested",
                            "note": "not tested on any set", "mixed": None},
                 "S": {"interval": None, "share": None, "verdict": "not tested",
                       "note": "missing variant(s): 'C'", "mixed": None}}
    h2 = Hypothesis("H5", "A beats B on T", "A", "B", "psnr_y", "greater", ("T",))
    r2 = evaluate_hypothesis(h2, table({"A": lambda s, i: i, "B": lambda s, i: i}))
    assert r2["T"]["verdict"] == "not tested" and "'T'" in r2["T"]["note"]
    empty = evaluate_hypothesis(h, pd.DataFrame(columns=["variant", "seed", "dataset"]))
    assert empty[""]["verdict"] == "not tested"


def test_single_image_is_inconclusive():
    h = Hypothesis("H", "A above B", "A", "B", "psnr_y", "greater")
    r = evaluate_hypothesis(h, table({"A": lambda s, i: 2.0, "B": lambda s, i: 1.0},
                                     seeds=(0,), n_images=1))["S"]
    assert r["verdict"] == "inconclusive" and "no interval" in r["note"]


def test_verdict_table_has_one_row_per_hypothesis_and_set():
    t = pd.concat([table({"A": lambda s, i: i + 0.9 + 0.1 * s, "B": lambda s, i: i}, dataset=d)
                   for d in ("S", "T")])
    hs = [Hypothesis("H1", "A above B", "A", "B", "psnr_y", "greater"),
          Hypothesis("H2", "A above C", "A", "C", "psnr_y", "greater")]
    v = verdict_table(hs, t, **FAST)
    assert list(v.columns) == stats.VERDICT_COLUMNS
    assert list(zip(v.id, v.dataset, v.verdict, strict=True)) == [
        ("H1", "pooled", "supported"), ("H1", "S", "supported"), ("H1", "T", "supported"),
        ("H2", "pooled", "not tested"), ("H2", "S", "not tested"), ("H2", "T", "not tested")]
    # pooled: the images of both sets (an image is (set, image)), the seeds shared
    assert v.loc[0, ["mean", "n_images", "n_seeds"]].tolist() == pytest.approx([1.0, 40, 3])
    assert v.loc[1, ["mean", "n_images", "n_seeds"]].tolist() == pytest.approx([1.0, 20, 3])
    assert v.loc[1, "seed_means"] == "0.9 / 1 / 1.1" and v.loc[1, "method"] == "two-way t"
    assert (v.verdict == v.adjusted).all()


# ---- summaries and the per-image table ---------------------------------------------------

def test_summary_with_ci():
    rng = np.random.default_rng(9)
    noise = rng.normal(0, 1, (3, 20))
    t = table({"A": lambda s, i: 30 + noise[s, i], "base": lambda s, i: 28 + noise[0, i]})
    s = summary_with_ci(t, ["psnr_y"], **FAST).set_index("variant")
    means = t.groupby("variant").psnr_y.mean()
    assert s.psnr_y_mean.to_dict() == pytest.approx(means.to_dict())
    assert (s.psnr_y_low < s.psnr_y_mean).all() and (s.psnr_y_mean < s.psnr_y_high).all()
    assert s.loc["A", ["n_images", "n_seeds", "seed_independent"]].tolist() == [20, 3, False]
    assert s.loc["base", ["n_images", "n_seeds", "seed_independent"]].tolist() == [20, 1, True]


def test_format_interval():
    assert format_interval(29.0712, 28.9, 29.25) == "29.07 [28.90, 29.25]"
    assert format_interval(float("nan"), 0, 0) == "n/a"
    assert paired_bootstrap(np.array([0.5])).format("{:.1f}") == "0.5 (n=1)"


def test_per_image_table_reads_run_folders(tmp_path):
    def run(name: str, sets: dict[str, list[float]], error: bool = False):
        d = tmp_path / name
        for ds, vals in sets.items():
            (d / "eval" / ds).mkdir(parents=True)
            pd.DataFrame({"image": ["001", "002"][:len(vals)], "psnr_y": vals,
                          "null_mse": [1e-3] * len(vals)}).to_csv(
                d / "eval" / ds / "per_image.csv", index=False)
        d.mkdir(exist_ok=True)
        if error:
            (d / "error.txt").write_text("boom")
        return d

    runs = [("A", 0, run("a0", {"Set5": [30.0, 31.0], "Set14": [27.0]})),
            ("A", 1, run("a1", {})),  # no eval: skipped
            ("B", 0, run("b0", {"Set5": [29.0, 30.0]}, error=True))]  # failed: skipped
    t = per_image_table(runs)
    assert list(t.columns) == ["variant", "seed", "dataset", "image", "psnr_y", "null_mse"]
    assert sorted(zip(t.dataset, t.image, t.psnr_y, strict=True)) == [
        ("Set14", "001", 27.0), ("Set5", "001", 30.0), ("Set5", "002", 31.0)]
    assert set(t.variant) == {"A"} and set(t.seed) == {0}
    assert list(per_image_table([]).columns) == ["variant", "seed", "dataset", "image"]
    # a stray set the grid does not test is left out, not a crash
    assert set(per_image_table(runs, sets=["Set5"]).dataset) == {"Set5"}
    # a damaged cell names the file, the row and the column
    bad = run("c0", {"Set5": [30.0, 31.0]})
    f = bad / "eval" / "Set5" / "per_image.csv"
    f.write_text(f.read_text().replace("31.0", "abc"))
    with pytest.raises(ValueError, match=r"c0/eval/Set5/per_image.csv: row 3, column "
                                         r"'psnr_y': 'abc' is not a number"):
        per_image_table([("C", 0, bad)])


def test_per_image_table_joins_the_samples_of_a_stochastic_run(tmp_path):
    d = tmp_path / "n0" / "eval" / "Set5"
    d.mkdir(parents=True)
    pd.DataFrame({"image": ["001", "002"], "psnr_y": [30.0, 31.0]}).to_csv(
        d / "per_image.csv", index=False)
    pd.DataFrame({"image": ["002", "001"], "diversity": [4.0, 3.0],
                  "lr_psnr_ntire_worst": [46.0, 47.0]}).to_csv(d / "samples.csv", index=False)
    t = per_image_table([("N", 0, tmp_path / "n0")])
    assert t.set_index("image")[["psnr_y", "diversity", "lr_psnr_ntire_worst"]].to_dict(
        "index") == {"001": {"psnr_y": 30.0, "diversity": 3.0, "lr_psnr_ntire_worst": 47.0},
                     "002": {"psnr_y": 31.0, "diversity": 4.0, "lr_psnr_ntire_worst": 46.0}}


# ---- every, Holm -------------------------------------------------------------------------

def test_wilson_interval():
    from srlib.stats import wilson_interval

    low, high = wilson_interval(10, 10)
    assert (low, high) == pytest.approx((0.7225, 1.0), abs=1e-4)  # z = 1.96, n = 10
    low, high = wilson_interval(5, 10)
    assert (low, high) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_every_is_supported_only_when_every_image_meets_the_value():
    from srlib.stats import share_meeting

    (h,) = parse_hypotheses([_h(b=45, every=True, statement="every image above 45")],
                            VARIANTS, "g")
    assert h.every and h.value == 45.0
    good = table({"A": lambda s, i: 46.0 + i})
    r = evaluate_hypothesis(h, good, **FAST)
    assert r["S"]["verdict"] == "supported" and r["S"]["share"].share == 1.0
    assert "worst: S/000" in r["S"]["note"] and "46.00" in r["S"]["note"]
    bad = table({"A": lambda s, i: 44.5 if (s, i) == (1, 7) else 46.0 + i})
    r = evaluate_hypothesis(h, bad, **FAST)
    assert r["S"]["verdict"] == "contradicted" and r["pooled"]["verdict"] == "contradicted"
    s = r["S"]["share"]
    assert (s.n, s.meeting, s.worst, s.worst_value) == (60, 59, "S/007 (seed 1)", 44.5)
    assert "1 of 60 below 45" in r["S"]["note"]
    assert s.low < s.share < s.high <= 1
    less = share_meeting(bad, "A", 45.0, "psnr_y", "less")
    assert (less.meeting, less.worst_value) == (1, 65.0)
    v = verdict_table([h], bad, **FAST)
    assert list(v.method) == ["wilson share"] * 2 and v.every.all()


@pytest.mark.parametrize("bad, message", [
    (_h(every=True), "hypothesis 'H2': every: true needs a fixed value in b (a number), got b 'B'"),
    (_h(every="yes", b=45), "hypothesis 'H2': every: expected true or false, got 'yes'"),
    (_h(statement="every image of A beats B"), "hypothesis 'H2': statement: says 'every' but "
                                               "its test is on a mean"),
    (_h(b="noise-floor"), "hypothesis 'H2': b: noise-floor needs a metric with a noise floor "
                          f"({', '.join(m for m, x in metrics.METRICS.items() if x.floor)}), "
                          "got metric 'psnr_y'"),
])
def test_every_and_noise_floor_errors(bad, message):
    with pytest.raises(ValueError) as e:
        parse_hypotheses([bad], VARIANTS, "grid.yaml")
    assert message in str(e.value)


def test_noise_floor_is_compared_image_by_image():
    t = table({"A": lambda s, i: 5.0 + 0.1 * i})
    t["diversity"] = t["psnr_y"]
    t["diversity_floor"] = t["psnr_y"] - 2.0
    (h,) = parse_hypotheses([_h(b="noise-floor", metric="diversity")], VARIANTS, "g")
    assert (h.floor, h.variants) == ("diversity_floor", ("A",))
    r = evaluate_hypothesis(h, t, **FAST)["S"]
    assert r["verdict"] == "supported" and r["interval"].mean == pytest.approx(2.0)


def test_holm():
    # m = 4: thresholds 0.0125, 0.0167, 0.025, 0.05; the step-down stops at the first miss
    assert holm([0.01, 0.04, 0.03, 0.005]) == [True, False, False, True]
    assert holm([0.001, 0.002, 0.003, 0.04]) == [True, True, True, True]
    assert holm([0.01, float("nan"), 0.02]) == [True, False, True]  # m = 2
    assert holm([]) == []


def test_adjusted_verdicts_are_holm_across_hypotheses():
    rng = np.random.default_rng(5)
    noise = rng.normal(0, 1, (1, 40))
    t = table({"A": lambda s, i: noise[0, i], "B": lambda s, i: noise[0, i] - 0.5,
               "C": lambda s, i: noise[0, i] - 0.25 + 0.9 * rng.normal()}, seeds=(0,), n_images=40)
    hs = [Hypothesis("H1", "A above B", "A", "B", "psnr_y", "greater"),
          *(Hypothesis(f"H{k}", "A above C", "A", "C", "psnr_y", "greater") for k in (2, 3, 4))]
    v = verdict_table(hs, t, **FAST)
    pooled = v[v.dataset == "pooled"].reset_index()
    want = holm(pooled.p.tolist())
    for r, rejected in zip(pooled.itertuples(), want, strict=True):
        assert r.adjusted == (r.verdict if rejected or r.verdict == "inconclusive"
                              else "inconclusive")
    assert pooled.loc[0, "adjusted"] == "supported"  # a 0.5 shift on 40 images, no noise


def test_two_sweeps_are_compared_at_equal_distortion():
    """Sweep a trades PSNR-Y for LPIPS better than sweep b: at PSNR-Y 29.0, a's front
    reads 0.160 and b's 0.175 (interpolated between 29.2 and 28.8); the interval, over
    images and seeds resampled, holds the truth and excludes 0."""
    rng = np.random.default_rng(1)
    fronts = {"start": (30.0, 0.200), "a1": (29.5, 0.180), "a2": (29.0, 0.160),
              "a3": (28.5, 0.140), "b1": (29.6, 0.190), "b2": (29.2, 0.180),
              "b3": (28.8, 0.170)}
    img = rng.normal(0, 1.0, 20)  # images differ a lot, the same way for every variant
    rows = [{"variant": v, "seed": s, "dataset": "S", "image": f"i{i}",
             "psnr_y": p + img[i] + rng.normal(0, 0.02),
             "lpips": q + 0.01 * img[i] + rng.normal(0, 0.002)}
            for v, (p, q) in fronts.items() for s in range(3) for i in range(20)]
    t = pd.DataFrame(rows)
    r = stats.matched_distortion(t, ["start", "a1", "a2", "a3"], ["start", "b1", "b2", "b3"],
                                 level=29.0, n_boot=500)
    assert r["mean"] == pytest.approx(-0.015, abs=0.002)
    assert r["low"] < -0.015 < r["high"] < 0 and r["inside"] > 0.9
    assert (r["n_images"], r["n_seeds"]) == (20, 3)
    # by default, the middle of the range both fronts span (28.8 to 30.0)
    assert stats.matched_distortion(t, ["start", "a1", "a2", "a3"],
                                    ["start", "b1", "b2", "b3"], n_boot=50)["level"] == \
        pytest.approx(29.4, abs=0.05)
    with pytest.raises(ValueError, match="span no common psnr_y"):
        stats.matched_distortion(t, ["a3"], ["start"], n_boot=10)
