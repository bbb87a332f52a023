"""The confirmatory design: primaries in a fixed sequence, Holm among the secondaries, the
grid's checks of ``primary:`` and ``answer:``, the answer's sentences and fields, the mixed
model's columns and ``report --power``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import yaml

from srlib import report as rp
from srlib.grid import Hypothesis, load_grid, parse_hypotheses
from srlib.stats import holm, procedure, verdict_table

FAST = {"n_boot": 1000}


def _table(shifts: dict[str, float], seeds=(0, 1, 2), n_images: int = 30) -> pd.DataFrame:
    """PSNR-Y per image x seed: variant ``v`` is the reference ``R`` plus ``shifts[v]``
    and a little noise (a seed offset and per-image noise)."""
    rng = np.random.default_rng(1)
    level = 25 + rng.normal(0, 2, n_images)
    rows = []
    for v, shift in {"R": 0.0, **shifts}.items():
        for s in seeds:
            off = rng.normal(0, 0.05)
            for i in range(n_images):
                rows.append({"variant": v, "seed": s, "dataset": "S", "image": f"{i:03d}",
                             "psnr_y": level[i] + shift + off + rng.normal(0, 0.1)})
    return pd.DataFrame(rows)


def _h(hid: str, a: str, primary: int | None = None) -> Hypothesis:
    return Hypothesis(hid, f"{a} above R", a, "R", "psnr_y", "greater", primary=primary)


def test_a_supported_first_primary_lets_the_second_be_tested():
    t = _table({"big": 1.0, "also": 0.8})
    v = verdict_table([_h("P1", "big", 1), _h("P2", "also", 2)], t, **FAST)
    p = v[v.dataset == "pooled"].set_index("id")
    assert list(p.family) == ["primary", "primary"] and list(p.order) == [1, 2]
    assert list(p.adjusted) == ["supported", "supported"]


def test_an_unsupported_first_primary_ends_the_sequence():
    t = _table({"none": 0.0, "big": 1.0, "more": 1.2})
    hs = [_h("P2", "big", 2), _h("P1", "none", 1), _h("P3", "more", 3)]  # order, not place
    v = verdict_table(hs, t, **FAST)
    p = v[v.dataset == "pooled"].set_index("id")
    assert p.loc["P1", "adjusted"] == p.loc["P1", "verdict"] != "supported"
    for hid in ("P2", "P3"):  # each supported alone, at the full level
        assert p.loc[hid, "verdict"] == "supported" and p.loc[hid, "adjusted"] == "not reached"
        assert p.loc[hid, "note"].startswith("not reached: P1 before it was not supported "
                                             "(unadjusted: supported)")
    # the same in each test set's column
    assert (v[(v.dataset == "S") & (v.id != "P1")].adjusted == "not reached").all()


def test_holm_runs_within_the_secondaries_only():
    t = _table({"big": 1.0, "s1": 0.06, "s2": 0.05, "s3": 0.3})
    hs = [_h("P1", "big", 1), _h("S1", "s1"), _h("S2", "s2"), _h("S3", "s3")]
    v = verdict_table(hs, t, **FAST)
    p = v[v.dataset == "pooled"].set_index("id")
    sec = p[p.family == "secondary"]
    kept = holm(sec.p.tolist())
    for (hid, r), ok in zip(sec.iterrows(), kept, strict=True):
        assert r.adjusted == (r.verdict if ok or r.verdict == "inconclusive"
                              else "inconclusive"), hid
    # Holm over all four would ask the secondaries for p <= 0.05 / 4 at most
    assert p.loc["P1", "adjusted"] == "supported"
    assert "fixed sequence" in procedure(hs) and "P1" in procedure(hs)
    assert "Holm's adjustment across all" in procedure([_h("S1", "s1")])


def test_without_primaries_every_hypothesis_is_one_holm_family():
    t = _table({"a": 0.2, "b": 0.03})
    v = verdict_table([_h("A", "a"), _h("B", "b")], t, **FAST)
    p = v[v.dataset == "pooled"]
    assert (p.family == "secondary").all() and p.order.isna().all()
    kept = holm(p.p.tolist())
    for r, ok in zip(p.itertuples(), kept, strict=True):
        assert r.adjusted == (r.verdict if ok or r.verdict == "inconclusive"
                              else "inconclusive")


def test_the_mixed_model_sits_beside_the_bootstrap():
    t = _table({"big": 1.0})
    v = verdict_table([_h("P1", "big", 1)], t, **FAST).set_index("dataset")
    pooled, one_set = v.loc["pooled"], v.loc["S"]
    assert pooled.mean_mixed == pytest.approx(pooled["mean"], abs=1e-9)  # balanced
    assert pooled.se_mixed > 0 and pooled.df_mixed > 1 and pooled.p_mixed < 0.05
    assert pooled.verdict_mixed == "supported"
    assert np.isnan(one_set.p_mixed) and one_set.verdict_mixed == ""  # pooled only


def test_method_flags_name_a_primary_the_two_analyses_decide_differently():
    hs = [_h("P1", "big", 1)]
    v = verdict_table(hs, _table({"big": 1.0}), **FAST)
    assert rp.method_flags(hs, v) == []
    i = v.index[v.dataset == "pooled"][0]
    v.loc[i, "verdict_mixed"] = "inconclusive"
    (flag,) = rp.method_flags(hs, v)
    assert flag.startswith("**P1: the two analyses disagree.**") and "bootstrap's" in flag


VARIANTS = ["A", "B", "C"]


def _ph(hid: str, **kw) -> dict:
    return {"id": hid, "statement": "A beats B", "a": "A", "b": "B", "metric": "psnr_y",
            "direction": "greater", **kw}


@pytest.mark.parametrize("raw, message", [
    ([_ph("H1", primary=1), _ph("H2", primary=1)],
     "hypothesis 'H2': primary: 1 is also hypothesis 'H1''s place"),
    ([_ph("H1", primary=0)], "hypothesis 'H1': primary: expected a positive integer"),
    ([_ph("H1", primary="first")], "primary: expected a positive integer (its place in the "
                                   "fixed testing sequence: 1, 2, ...), got 'first'"),
    ([_ph("H1", primary=True)], "primary: expected a positive integer"),
    ([_ph(f"H{k}", primary=k) for k in range(1, 7)], "6 primary hypotheses"),
    ([_ph("H1", b=45, every=True, primary=1)], "primary: an 'every' claim cannot be primary"),
])
def test_bad_primaries_are_refused_at_load(raw, message):
    with pytest.raises(ValueError) as e:
        parse_hypotheses(raw, VARIANTS, "g.yaml")
    assert message in str(e.value)
    ok = parse_hypotheses([_ph("H1", primary=2), _ph("H2")], VARIANTS, "g.yaml")
    assert [h.primary for h in ok] == [2, None]


def _grid(tmp_path, answer) -> str:
    g = {"name": "g", "defaults": {"iters": 10, "test_data": ["default"]},
         "variants": {"pinv": {"baseline": "pinv"}, "A": {"loss": "pixel"}},
         "hypotheses": [{"id": "H1", "statement": "A beats pinv", "a": "A", "b": "pinv",
                         "metric": "psnr_y", "direction": "greater", "primary": 1}],
         "answer": answer}
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(g, sort_keys=False))
    return path


@pytest.mark.parametrize("answer, message", [
    ("It {H9.mean} dB.", "{H9.mean}: hypothesis must be one of H1, got 'H9'"),
    ("It {H1.average} dB.", "{H1.average}: field must be one of mean, abs, "),
    ("{A@Set5.psnr_y}", "{A@Set5.psnr_y}: test set must be one of default, got 'Set5'"),
    ("{Z@default.psnr_y}", "{Z@default.psnr_y}: variant must be one of"),
    ("{A@default.psnr}", "metric must be one of"),
    ("{}", "{}: expected {HYPOTHESIS.FIELD} or {VARIANT@SET.METRIC}"),
    (["ok", 3], "'answer' must be plain text (or a list of paragraphs)"),
])
def test_an_answer_with_an_unknown_field_is_refused_at_load(tmp_path, answer, message):
    with pytest.raises(ValueError) as e:
        load_grid(_grid(tmp_path, answer))
    assert "g.yaml:" in str(e.value) and message in str(e.value)


def test_the_answer_is_filled_from_the_verdicts_and_results(tmp_path):
    g = load_grid(_grid(tmp_path, ["No: {H1.verdict}, {H1.mean} dB [{H1.low}, {H1.high}].",
                                   "A scores {A@default.psnr_y} dB on {H1.seeds} runs."]))
    t = _table({"A": 1.0}).assign(dataset="default").replace({"R": "pinv"})
    v = verdict_table(g["hypotheses"], t, **FAST)
    r = v[v.dataset == "pooled"].iloc[0]
    res = (t.groupby(["variant", "seed", "dataset"], as_index=False).psnr_y.mean()
           .assign(status="done"))
    text = rp.fill_answer(g["answer"], v, res)
    assert text == (f"No: supported, {r['mean']:.2f} dB [{r.low:.2f}, {r.high:.2f}].\n\n"
                    f"A scores {t[t.variant == 'A'].psnr_y.mean():.2f} dB on 3 runs.")
    (line,) = rp.short_answer(g["hypotheses"], v)
    assert line.startswith("**H1** A beats pinv: **supported**, PSNR-Y ")
    assert "(A minus pinv, 3 runs: seeds resampled)" in line


def test_power_from_a_pilot_folder(tmp_path, capsys):
    g = _grid(tmp_path, None)
    t = _table({"A": 0.3}, n_images=20).assign(dataset="default").replace({"R": "pinv"})
    t = t[(t.variant != "pinv") | (t.seed == 0)]  # a baseline: evaluated once
    t.to_csv(tmp_path / "per_image.csv", index=False)
    assert rp.main([str(tmp_path), "--power", str(g)]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    print(line)
    assert line.startswith("H1 (primary 1): effect 0.") and "seeds per side give" in line
    assert "sd image" in line and "over 20 images x 3 seeds" in line


def test_dropped_pairs_say_whether_they_were_nan_or_infinite():
    t = _table({"big": 1.0})
    big = t.index[t.variant == "big"]
    t.loc[big[:2], "psnr_y"] = np.inf  # an exact reconstruction's PSNR
    t.loc[big[2:5], "psnr_y"] = np.nan
    v = verdict_table([_h("P1", "big", 1)], t, **FAST)
    note = v[v.dataset == "pooled"].note.iloc[0]
    assert "3 NaN pair(s) dropped" in note and "2 infinite pair(s) dropped" in note


def test_an_extension_may_add_runs_but_not_alter_what_was_declared():
    """A grid extended after its declaration (``declared:`` a list) may add variants and
    secondary hypotheses; changing a variant, a hypothesis, the seeds or defaults, or
    adding a primary, is an alteration, in red on the page."""
    from srlib.results import _altered

    h1 = Hypothesis("H1", "a beats pinv", "a", "pinv", "psnr_y", "greater", primary=1)
    h2 = Hypothesis("H2", "b beats pinv", "b", "pinv", "psnr_y", "greater")
    old = {"seeds": [0, 1], "defaults": {"preset": "study"}, "critic": None,
           "variants": {"a": {"loss": "down"}}, "hypotheses": [h1]}
    added = {**old, "variants": {**old["variants"], "b": {"loss": "pixel"}},
             "hypotheses": [h1, h2]}
    assert _altered(old, added) == []
    assert _altered(old, {**added, "seeds": [0]}) == ["seeds"]
    assert _altered(old, {**added, "variants": {"a": {"loss": "pixel"}}}) == ["variants"]
    assert _altered(old, {**added, "hypotheses": [h1, dataclasses.replace(h2, primary=2)]}
                    ) == ["hypotheses"]
    assert _altered(old, {**added, "hypotheses": [dataclasses.replace(h1, b="bicubic")]}
                    ) == ["hypotheses"]
    assert _altered(old, {**old, "hypotheses": []}) == ["hypotheses"]
    dec = {"commit": "aaaaaaa", "path": "g.yaml", "date": "2026-12-07", "changed": [],
           "extensions": [{"commit": "bbbbbbb", "path": "g.yaml", "date": "2026-12-08",
                           "added": ["b", "H2"], "altered": []}]}
    lines = rp.declared_lines(dec)
    assert "`bbbbbbb`" in lines[1] and "`b`, `H2`" in lines[1] and "#b00020" not in lines[1]
    dec["extensions"][0]["altered"] = ["variants"]
    assert "#b00020" in rp.declared_lines(dec)[1] and "variants" in rp.declared_lines(dec)[1]


def test_the_declared_grid_is_checked_against_the_commit_it_names(tmp_path):
    """configs/study.yaml says it was declared at a commit of this repository: what
    decides its results is unchanged since (only prose was added); a grid that changed a
    hypothesis since is said to have changed, in red on the page; an unknown commit too."""
    import subprocess
    from pathlib import Path

    from srlib.results import declaration

    root = Path(__file__).resolve().parents[1]
    if subprocess.run(["git", "-C", str(root), "cat-file", "-e", "41c853c"]).returncode:
        pytest.skip("a clone without the study's history")
    grid = load_grid(root / "configs" / "study.yaml")
    dec = declaration(grid)
    assert dec["commit"] == "41c853c" and dec["changed"] == [] and dec["date"].startswith("20")
    assert all(not e["altered"] and e["added"] for e in dec["extensions"])
    lines = rp.declared_lines(dec)
    assert "41c853c" in lines[0] and "unchanged since the last declaration" in lines[-1]
    assert not any("#b00020" in line for line in lines)
    raw = yaml.safe_load((root / "configs" / "study.yaml").read_text())
    raw["hypotheses"][0]["direction"] = "greater"
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(raw))
    changed = declaration(load_grid(tmp_path / "g.yaml"))
    assert changed["changed"] == ["hypotheses"]
    assert "Changed since the last declaration in: hypotheses" in rp.declared_lines(changed)[-1]
    assert "color:#b00020" in rp.declared_lines(changed)[-1]
    raw["declared"] = "0000000:configs/study-next.yaml"
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(raw))
    assert "git has no" in declaration(load_grid(tmp_path / "g.yaml"))["error"]
    raw["declared"] = "HEAD"
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match=r"'declared' must be COMMIT:PATH"):
        load_grid(tmp_path / "g.yaml")
    for bad in ([], ["41c853c:configs/study.yaml", 3]):
        raw["declared"] = bad
        (tmp_path / "g.yaml").write_text(yaml.safe_dump(raw))
        with pytest.raises(ValueError, match=r"'declared' must be COMMIT:PATH, or a list"):
            load_grid(tmp_path / "g.yaml")
    # a page built from a tree with uncommitted changes says so, in red
    text = rp.provenance_text({"commit": "abc1234 (with uncommitted changes)"})
    assert "Built from a tree with uncommitted changes" in text and "#b00020" in text
