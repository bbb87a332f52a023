"""The grid file: what it refuses before anything runs (each with the file and the line),
and what a variant is. None of these tests trains."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from srlib import grid as gr
from srlib import report as rp
from srlib import stats
from srlib.ablate import main, make_plan, parse_args
from srlib.grid import load_grid

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, variants: dict, **top) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"defaults": {"iters": 10}, "variants": variants, **top}))
    return path


def test_yaml_aliases_are_refused_before_they_expand(tmp_path):
    # "billion laughs": nine levels of nine aliases, 9^9 nodes from under 1 kB
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(lines) + "\nvariants: {x: {loss: pixel}}\n")
    assert path.stat().st_size < 1024
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"laughs.yaml: its YAML aliases expand to more than"):
        load_grid(path)
    assert time.perf_counter() - t0 < 5  # counted, never expanded


def test_aliases_within_bounds_are_fine_and_never_shared(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text("variants:\n  a: &v {loss: pixel, seeds: [0]}\n  b: *v\nseeds: [0, 1]\n")
    g = load_grid(path)
    assert g["variants"]["a"] == g["variants"]["b"] == {"loss": "pixel", "seeds": [0]}
    assert g["variants"]["a"] is not g["variants"]["b"]


def test_a_file_larger_than_any_grid_is_refused(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * gr.MAX_GRID_BYTES + "\n")
    with pytest.raises(ValueError, match="big.yaml: .* bytes; a grid file is at most"):
        load_grid(path)


@pytest.mark.parametrize("name", ["./bicubic", "a/../b", "..", "a//b", "a/", "/abs",
                                  "a\nb", "tab\there", " a", "a\\b", "a/./b",
                                  # inside another variant's run folder, or a runner's file
                                  "a/seed0/eval", "a/seed12", "a/.lock.owner", ".hidden",
                                  "x" * 256, "a/" + "é" * 128])
def test_variant_names_that_are_not_one_plain_folder_are_refused(tmp_path, name):
    path = _write(tmp_path, {"bicubic": {"baseline": "bicubic"}, name: {"loss": "pixel"}})
    with pytest.raises(ValueError, match="variant name") as e:
        load_grid(path)
    assert "grid.yaml" in str(e.value)


def test_two_names_never_share_a_folder(tmp_path):
    """The rule behind the refusals: every accepted name is its own folder."""
    names = ["bicubic", "down/pixelshuffle", "a+P+x", "x y", "<script>"]
    folders = {gr.runs.run_dir(tmp_path, n, 0).resolve() for n in names}
    assert all(gr.check_variant_name(n) == "" for n in names) and len(folders) == len(names)


def test_variant_seeds_outside_the_grid_are_refused(tmp_path):
    path = _write(tmp_path, {"a": {"loss": "pixel", "seeds": [0, 5]}}, seeds=[0, 1])
    with pytest.raises(ValueError, match=r"variant 'a': seeds \[5\] are not among the grid's "
                                         r"seeds \[0, 1\]"):
        load_grid(path)


def test_a_seed_beyond_64_bits_names_the_field(tmp_path):
    path = _write(tmp_path, {"a": {"loss": "pixel"}}, seeds=[2**64])
    with pytest.raises(ValueError, match=r"grid.yaml:\d+: seeds must be integers in \[0, 2\^64\)"):
        load_grid(path)


def test_hypothesis_over_disjoint_seeds_is_refused_at_load(tmp_path):
    h = {"id": "H", "statement": "s", "a": "a", "b": "b", "metric": "psnr_y",
         "direction": "greater"}
    path = _write(tmp_path, {"a": {"loss": "pixel", "seeds": [0]},
                             "b": {"loss": "down", "seeds": [1]}}, seeds=[0, 1],
                  hypotheses=[h])
    with pytest.raises(ValueError, match=r"hypothesis 'H': a 'a' runs with seeds \[0\] and b "
                                         r"'b' with seeds \[1\]: no seed in common"):
        load_grid(path)


def test_init_from_a_baseline_is_refused_at_load(tmp_path):
    path = _write(tmp_path, {"pinv": {"baseline": "pinv"},
                             "ft": {"loss": "pixel", "init_from": "pinv"}})
    with pytest.raises(ValueError, match="init_from 'pinv' is a closed-form baseline"):
        load_grid(path)


def test_test_data_as_a_string_is_one_set(tmp_path):
    path = _write(tmp_path, {"a": {"loss": "pixel"}})
    g = load_grid(path)
    g["defaults"]["test_data"] = "some/folder/Set5"
    assert gr.test_sets(g) == ["Set5"]


def test_unknown_names_list_the_table_they_come_from(tmp_path):
    from srlib.evaluate import BASELINES

    path = _write(tmp_path, {"x": {"baseline": "pinvv"}})
    with pytest.raises(ValueError) as e:
        load_grid(path)
    assert "did you mean 'pinv'?" in str(e.value)
    assert f"baseline must be one of {', '.join(BASELINES)}, got 'pinvv'" in str(e.value)


def test_only_with_seeds_a_variant_does_not_run_is_refused(tmp_path, capsys):
    path = _write(tmp_path, {"a": {"loss": "pixel"}, "b": {"loss": "pixel", "seeds": [0]}},
                  seeds=[0, 1])
    assert main([str(path), "--only", "b", "--seeds", "1", "--out", str(tmp_path / "o")]) == 2
    assert "--seeds 1: variant 'b' runs with seeds [0] only" in capsys.readouterr().err
    # a run of fewer seeds still shows every seed's finished runs in the report
    plan = make_plan(parse_args([str(path), "--seeds", "1", "--out", str(tmp_path / "o")]))
    assert plan.report_seeds == [0, 1]


def test_every_text_from_a_grid_reaches_the_page_escaped():
    h = gr.Hypothesis("<b>H</b>", "<script>alert(1)</script> & more", "<script>v", "b",
                      "psnr_y", "greater")
    v = stats.verdict_table([h], pd.DataFrame(columns=stats.KEYS))
    md = "\n".join(rp.answer([h], v)) + rp.verdict_matrix([h], v)
    assert "<script>" not in md and "&lt;script&gt;" in md and "<b>" not in md
    assert rp.code("<script>v") == "<code>&lt;script&gt;v</code>"
    assert rp.code("down/pixelshuffle") == "`down/pixelshuffle`"  # plain names unchanged
    assert rp.code("a`b") == "<code>a`b</code>"  # no way out of a code span


def test_one_run_is_one_plain_picklable_call(tmp_path):
    """The unit of work a SLURM job calls (``srlib.slurm.RunJob``): ``train_run`` and its arguments
    survive pickling (plain data, a module-level function)."""
    import functools
    import pickle

    from srlib.notebooks import train_run

    path = _write(tmp_path, {"a": {"loss": "pixel"}})
    g = load_grid(path)
    config = gr.run_config(g, "a", 0, tmp_path / "out")
    call = functools.partial(train_run, "a", 0, config, gr.runs.run_dir(tmp_path / "out", "a", 0))
    back = pickle.loads(pickle.dumps(call))
    assert back.func is train_run and back.args[2] == config
    with pytest.raises(ValueError, match="seed 1 but config"):
        train_run("a", 1, config, tmp_path / "x")


def test_noise_floor_needs_a_variant_that_draws_samples(tmp_path):
    h = {"id": "H5b", "statement": "diverse beyond the floor", "a": "g", "b": "noise-floor",
         "metric": "diversity", "direction": "greater"}
    path = _write(tmp_path, {"g": {"loss": "pixel"}}, hypotheses=[h])
    with pytest.raises(ValueError) as e:
        load_grid(path)
    assert ("hypothesis 'H5b': b: noise-floor compares the samples of a 'g' with null-space "
            "noise, but it draws none: give it 'noise: C' and 'eval_samples: K'") in str(e.value)
    path = _write(tmp_path, {"g": {"loss": "pixel", "noise": 4, "eval_samples": 3}},
                  hypotheses=[h])
    (ok,) = load_grid(path)["hypotheses"]
    assert ok.floor == "diversity_floor" and ok.variants == ("g",)


def test_families_of_the_page_facets():
    g = load_grid(ROOT / "configs" / "study-2nd.yaml")
    fam = {v: gr.family(g, v) for v in g["variants"]}
    assert set(fam.values()) == set(gr.FAMILIES)
    assert fam["pinv"] == "baselines" and fam["down/pixelshuffle"] == "down"
    assert fam["ft-pixel/esrgan"] == "adversarial"
    assert fam["pixel/nearest-projectbox"] == "projected"
    assert gr.family(g, "pixel/nearest+P") == "projected" and gr.family(g, "x") == "other"


# ---- the critic's health criterion -----------------------------------------------------------

@pytest.mark.parametrize(("critic", "expected"), [
    ({"column": "d_los", "between": [0.1, 0.65]},
     r"critic: column must be one of d_loss, total, .*got 'd_los' \(did you mean 'd_loss'\?\) "
     r"\(a column of a run's losses.csv\)"),
    ({"between": [0.65, 0.1]}, r"'between' must be \[low, high\] with low < high"),
    ({"between": [0.1]}, r"'between' must be \[low, high\]"),
    ({"last": 0, "between": [0.1, 0.65]}, r"'last' must be a share of the iterations in \(0, 1\]"),
    ({"range": [0.1, 0.65]}, r"critic: key must be one of column, last, between, got 'range'"),
    ([0.1, 0.65], r"'critic' must be a mapping of column, last, between"),
])
def test_a_bad_critic_criterion_is_refused_at_load(tmp_path, critic, expected):
    path = _write(tmp_path, {"a": {"loss": "pixel+0.01*adv"}}, critic=critic)
    with pytest.raises(ValueError, match=expected):
        load_grid(path)


def test_the_critic_criterion_reads_the_end_of_the_runs_losses(tmp_path):
    """Defaults (d_loss, the last quarter); the statistic is the mean over the rows after
    75% of the last logged iteration; the page's sentence names every run that misses."""
    from srlib.results import critic_statistic

    g = load_grid(_write(tmp_path, {"a": {"loss": "pixel+0.01*adv"}},
                         critic={"between": [0.1, 0.65]}))
    assert g["critic"] == {"column": "d_loss", "last": 0.25, "between": [0.1, 0.65]}
    assert load_grid(_write(tmp_path, {"a": {"loss": "pixel"}}))["critic"] is None
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame({"iter": [10, 20, 30, 40], "d_loss": [0.9, 0.9, 0.2, 0.4],
                  "adv": [1, 1, 1, 1]}).to_csv(run / "losses.csv", index=False)
    assert critic_statistic(run, "d_loss", 0.25) == pytest.approx(0.4)  # iter > 30
    assert critic_statistic(run, "d_loss", 0.5) == pytest.approx(0.3)  # iter > 20
    assert critic_statistic(run, "total", 0.25) != critic_statistic(run, "total", 0.25)  # NaN
    table = pd.DataFrame({"variant": ["a", "b"], "seed": [0, 1], "value": [0.3, 0.02],
                          "low": 0.1, "high": 0.65, "healthy": [True, False],
                          "column": "d_loss", "last": 0.25})
    text = rp.critic_summary(table)
    assert text.startswith("1 of 2 runs with a critic meet the criterion")
    assert "last 25% of its iterations between 0.1 and 0.65" in text
    assert "`b` seed 1 (0.020)" in text and "`a`" not in text.split(";")[1]
    assert rp.critic_summary(None) == "" and list(rp.critic_rows(table).healthy) == ["yes", "no"]


def test_the_result_folder_holds_the_critic_table(tmp_path):
    """results.write puts critic.csv beside results.csv: one row per done run with a
    discriminator, none for a run without one; no criterion, no file."""
    from conftest import write_small_sets

    from srlib import results as rs
    from srlib import runs
    from srlib.train import Config, train

    train_dir, test_dir = write_small_sets(tmp_path / "data", n_train=2, n_test=1)
    grid = load_grid(_write(tmp_path, {"adv": {"loss": "pixel+0.01*adv"}, "pix": {"loss": "pixel"}},
                            critic={"between": [0.1, 0.65]}))
    root = tmp_path / "out"
    for v, loss in (("adv", "pixel+0.01*adv"), ("pix", "pixel")):
        train(Config(loss=loss, iters=4, log_every=1, out=str(runs.run_dir(root, v, 0)),
                     data=train_dir, test_data=[test_dir], batch=2, patch=16, nf=8, nb=1,
                     gc=4, d_nf=8, device="cpu", progress=False))
    rs.write(root, grid, [0])
    critic = rs.read_critic(root)
    assert list(critic.variant) == ["adv"] and critic.value.iloc[0] > 0
    assert critic.healthy.iloc[0] == (0.1 <= critic.value.iloc[0] <= 0.65)
    rs.write(root, {**grid, "critic": None}, [0])
    assert rs.read_critic(root) is None


def test_runs_without_lpips_leave_it_empty_and_no_hypothesis_may_read_it(tmp_path):
    from conftest import write_small_sets

    from srlib.train import Config, train

    train_dir, test_dir = write_small_sets(tmp_path / "data", n_train=2, n_test=1)
    m = train(Config(loss="pixel", iters=2, out=str(tmp_path / "r"), data=train_dir,
                     test_data=[test_dir], batch=2, patch=16, nf=8, nb=1, gc=4, device="cpu",
                     progress=False, eval_lpips=False))
    assert "lpips" not in m and "psnr_y" in m and "+P" in m["twins"]
    per_image = pd.read_csv(tmp_path / "r" / "eval" / "test" / "per_image.csv")
    assert "lpips" not in per_image and "lpips" not in (m["twins"]["+P"]["test"])
    path = _write(tmp_path, {"a": {"loss": "pixel", "eval_lpips": False}, "b": {"loss": "down"}},
                  hypotheses=[{"id": "H", "statement": "s", "a": "a", "b": "b",
                               "metric": "lpips", "direction": "less"}])
    with pytest.raises(ValueError, match="hypothesis 'H': metric lpips, but 'a' is evaluated "
                                         r"without it \(eval_lpips: false\)"):
        load_grid(path)


def test_a_fine_tune_whose_seeds_its_source_lacks_is_refused_at_load(tmp_path):
    path = _write(tmp_path, {"a": {"loss": "pixel", "seeds": [0]},
                             "t": {"loss": "down", "init_from": "a"}}, seeds=[0, 1])
    with pytest.raises(ValueError, match=r"variant 't' fine-tunes 'a' with seeds \[1\], "
                                         r"which 'a' does not train \(its seeds: \[0\]\)"):
        load_grid(path)
    ok = _write(tmp_path, {"a": {"loss": "pixel", "seeds": [0]},
                           "t": {"loss": "down", "init_from": "a", "seeds": [0]}}, seeds=[0, 1])
    assert load_grid(ok)["variants"]["t"]["seeds"] == [0]


def test_the_page_takes_its_title_introduction_and_questions_from_the_grid(tmp_path):
    import nbformat

    from srlib.notebooks import first_heading

    bare = load_grid(_write(tmp_path, {"pinv": {"baseline": "pinv"}}))
    assert (bare["title"], bare["introduction"], bare["questions"]) == (None, None, None)
    assert rp.page_title(bare) == f"The grid `{bare['name']}`: what its runs measured"
    g = load_grid(_write(tmp_path, {"pinv": {"baseline": "pinv"}}, title="My ablation",
                         introduction=["First.", "Second."], questions="- **Q1**"))
    assert rp.page_title(g) == "My ablation" and g["introduction"] == "First.\n\nSecond."
    assert g["questions"] == "- **Q1**"
    with pytest.raises(ValueError, match=r"'title' must be one line"):
        load_grid(_write(tmp_path, {"pinv": {"baseline": "pinv"}}, title="a\nb"))
    with pytest.raises(ValueError, match=r":\d+: 'questions' must be plain text"):
        load_grid(_write(tmp_path, {"pinv": {"baseline": "pinv"}}, questions={"a": 1}))
    # the page's <title> is the heading its first cell displays
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=[
        nbformat.v4.new_output("display_data", {"text/markdown": "# The grid `x`\n\nIntro"})])])
    assert first_heading(nb) == "The grid x"
    # no shipped grid carries another grid's prose: the project's words are in its grids
    for name in ("quick", "study"):
        text = (Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml").read_text()
        assert "title:" in text, name
