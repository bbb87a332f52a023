"""The runner end to end on a micro grid: papermill runs, results.csv, index.html."""

import json
import re
from pathlib import Path

import jupytext
import pandas as pd
import pytest
import torch
import yaml
from conftest import write_micro_grid

from srlib import runs
from srlib.ablate import main
from srlib.grid import load_grid
from srlib.results import columns

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    """A micro grid (bicubic, two trained variants, one made to fail) on small images."""
    root = tmp_path_factory.mktemp("micro")
    cfg = write_micro_grid(root)
    out = root / "reports"
    rc = main([str(cfg), "--out", str(out)])
    return cfg, out, rc


def test_runner_builds_the_report(micro):
    _, out, rc = micro
    assert rc == 0
    results = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert list(results.columns) == columns()
    done = results[results.status == "done"]
    assert set(done.variant) == {"bicubic", "pixel/pixelshuffle", "down/pixelshuffle",
                                 "pixel/pixelshuffle+P", "down/pixelshuffle+P"}
    kinds = done.set_index("variant").kind
    assert kinds["bicubic"] == "baseline" and kinds["down/pixelshuffle"] == "trained"
    assert kinds["down/pixelshuffle+P"] == "projected"
    # the post-hoc projection makes the outputs consistent (after 8-bit rounding)
    lr_psnr = done.set_index("variant").lr_psnr.astype(float)
    assert lr_psnr["down/pixelshuffle+P"] > 50 > lr_psnr["down/pixelshuffle"]
    per_image = pd.read_csv(out / "per_image.csv")
    assert set(per_image.variant) == set(done.variant) and len(per_image) == 2 * 5
    assert (done.dataset == "test").all()
    assert done.loc[done.variant == "bicubic", "train_seconds"].astype(float).iloc[0] == 0
    assert (done.psnr_y.astype(float) > 0).all() and (done.lpips_kind != "").all()
    for v in ("pixel/pixelshuffle", "down/pixelshuffle"):
        run = out / "runs" / v / "seed0"
        assert (run / "train.ipynb").is_file() and (run / "train.html").is_file()
        assert json.loads((run / "metrics.json").read_text())["iters"] == 4
    html = (out / "index.html").read_text()
    assert "The answer" in html and "data:image/png;base64" in html
    # a grid without prose of its own: the page is about this grid, not the project's study
    assert "<title>The grid micro: what its runs measured</title>" in html
    assert re.search(r"<h1[^>]*>The grid <code>micro</code>: what its runs measured", html)
    assert "blog post" not in html and "Is the downsampled-space loss" not in html
    assert "import pandas" not in html and "from srlib" not in html  # no code cells
    assert "Warning" not in html  # no library's warning printed into the page
    # self-contained: nothing loaded from the network (no MathJax, require.js, mermaid)
    assert not re.search(r"<(script|link|img)[^>]*(src|href)=[\"']?https?:", html)
    assert (out / "03_artifacts.html").is_file() and (out / "manifold.json").is_file()
    prov = json.loads((out / "provenance.json").read_text())
    own = done[done.kind == "trained"].drop_duplicates(["variant", "seed"])
    assert prov["train_seconds_total"] == pytest.approx(own.train_seconds.astype(float).sum(),
                                                        abs=0.1)
    assert prov["train_seconds_total"] > 0


def test_failed_variant_is_reported(micro):
    _, out, _ = micro
    results = pd.read_csv(out / "results.csv", keep_default_na=False)
    broken = results[results.variant == "broken"].iloc[0]
    assert broken.status == "failed" and "no training image is at least 4096x4096" in broken.error
    assert "broken" in (out / "index.html").read_text()
    # the table and error.txt: the last line; traceback.txt: the notebook's whole text
    run = runs.run_dir(out, "broken", 0)
    assert broken.error == (run / runs.ERROR).read_text().strip()
    assert broken.error.startswith("ValueError: ") and "\n" not in broken.error
    whole = (run / runs.TRACEBACK).read_text()
    assert "Exception encountered at" in whole and len(whole.splitlines()) > 3
    assert "\x1b" not in whole


def test_bicubic_has_the_metrics_schema_of_trained_runs(micro):
    _, out, _ = micro
    bicubic = runs.read_metrics(runs.run_dir(out, "bicubic", 0))
    trained = runs.read_metrics(runs.run_dir(out, "down/pixelshuffle", 0))
    assert set(bicubic) == set(trained)
    assert bicubic["perc_backend"] is None and bicubic["torch"] == torch.__version__
    assert bicubic["iters"] == 0 and bicubic["config"]["loss"] == "bicubic"


def test_only_into_a_new_folder_reports_what_exists(micro, tmp_path, capsys):
    """--only into a folder without the other runs: they are "not run", the report is
    built from the one that exists."""
    import shutil

    cfg, out, _ = micro
    fresh = tmp_path / "reports"
    shutil.copytree(runs.run_dir(out, "down/pixelshuffle", 0),
                    runs.run_dir(fresh, "down/pixelshuffle", 0))
    assert main([str(cfg), "--out", str(fresh), "--only", "down/pixelshuffle"]) == 0
    assert "finished earlier, skipped" in capsys.readouterr().out
    results = pd.read_csv(fresh / "results.csv", keep_default_na=False).set_index("variant")
    assert results.loc["down/pixelshuffle", "status"] == "done"
    others = results.drop(["down/pixelshuffle", "down/pixelshuffle+P"])
    assert set(others.status) == {"not run"}
    html = (fresh / "index.html").read_text()
    assert "The answer" in html and "Not run" in html


def test_a_report_that_cannot_be_built_leaves_no_stale_page(micro, tmp_path, monkeypatch,
                                                            capsys):
    import shutil

    from srlib import notebooks

    cfg, out, _ = micro
    copy = tmp_path / "reports"
    shutil.copytree(out, copy)
    assert "The answer" in (copy / "index.html").read_text()

    def fail_the_report(notebook, output, params):
        if notebook == "04_report.py":
            raise RuntimeError("the report notebook broke")

    monkeypatch.setattr(notebooks, "execute", fail_the_report)
    assert main([str(cfg), "--out", str(copy), "--only", "down/pixelshuffle"]) == 1
    err = capsys.readouterr().err
    assert "error: the report could not be built: 04_report.py failed: RuntimeError: the " \
           "report notebook broke" in err
    page = (copy / "index.html").read_text()
    assert "The answer" not in page and "could not be built" in page


def test_second_invocation_skips_finished_runs(micro, capfd):
    cfg, out, _ = micro
    before = (out / "runs" / "down/pixelshuffle" / "seed0" / "metrics.json").stat().st_mtime
    assert main([str(cfg), "--out", str(out), "--only", "down/pixelshuffle"]) == 0
    printed = capfd.readouterr().out
    assert "finished earlier, skipped" in printed
    # nothing changed: every report stage is kept, the page is written again
    for stem in ("01_manifold", "03_artifacts", "04_report"):
        assert f"{stem}.py: unchanged inputs, kept" in printed
    assert "report: " in printed
    after = (out / "runs" / "down/pixelshuffle" / "seed0" / "metrics.json").stat().st_mtime
    assert before == after
    # a closed-form baseline is evaluated once too, unless forced
    bic = out / "runs" / "bicubic" / "seed0" / "metrics.json"
    before = bic.stat().st_mtime_ns
    assert main([str(cfg), "--out", str(out), "--only", "bicubic"]) == 0
    assert "bicubic seed 0: finished earlier, skipped" in capfd.readouterr().out
    assert bic.stat().st_mtime_ns == before
    # a result folder moved or copied whole keeps its baselines' evaluations
    import shutil

    from srlib.evaluate import baseline_done
    from srlib.grid import baseline_config

    moved = out.parent / "moved"
    shutil.copytree(out / "runs" / "bicubic", moved / "runs" / "bicubic")
    grid = load_grid(cfg)
    assert baseline_done(moved / "runs" / "bicubic" / "seed0",
                         baseline_config(grid, "bicubic", 0, moved))
    assert main([str(cfg), "--out", str(out), "--only", "bicubic", "--force"]) == 0
    assert "bicubic seed 0: done" in capfd.readouterr().out
    assert bic.stat().st_mtime_ns != before


def test_bad_grids(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"variants": {"x": {"loss": "down", "colour": 3}}}))
    with pytest.raises(ValueError, match="variant 'x': key must be one of .*, got 'colour'"):
        load_grid(bad)
    bad.write_text(yaml.safe_dump({"variants": {"x": {"upsampler": "nearest"}}}))
    with pytest.raises(ValueError, match="needs a 'loss'"):
        load_grid(bad)
    bad.write_text(yaml.safe_dump({"variants": {"x": {"loss": "down", "init_from": "y"}}}))
    with pytest.raises(ValueError, match="init_from must be one of x, got 'y'"):
        load_grid(bad)
    assert main([str(tmp_path / "missing.yaml")]) == 2
    assert "grid file not found" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 2  # a folder: said so, not "not found"
    assert f"{tmp_path} is a directory; expected a grid file" in capsys.readouterr().err
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"variants": {"x": {"loss": "down"}}}))
    assert main([str(good), "--only", "y"]) == 2
    assert "--only must be one of x, got 'y'" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["quick", "full", "study-2nd", "study"])
def test_shipped_grids_load(name):
    grid = load_grid(Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml")
    names = {"bicubic", "pinv", "down/pixelshuffle", "down/nearest"}
    assert names <= set(grid["variants"])
    ids = {h.id.split("-")[0] for h in grid.get("hypotheses") or []}
    # the questions of README; the third edition of the study cut H4 and H5 for its budget
    assert ({"H1", "H2", "H3"} if name == "study" else {"H1", "H2", "H3", "H4"}) <= ids


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.py")), ids=lambda p: p.name)
def test_notebooks_parse_with_a_parameters_cell(path):
    nb = jupytext.read(path)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "one cell tagged 'parameters' for papermill"
    compile("\n".join(c.source for c in nb.cells if c.cell_type == "code"), str(path), "exec")


def test_changed_config_is_not_mixed_up_with_old_results(micro, tmp_path, capfd):
    import shutil

    cfg, out, _ = micro
    copy = tmp_path / "reports"
    shutil.copytree(out, copy)
    grid = yaml.safe_load(cfg.read_text())
    grid["variants"]["down/pixelshuffle"]["loss"] = "l1:down"
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(grid))
    # refused: `not run`, naming the fields that differ; the page is built; exit 2
    assert main([str(changed), "--out", str(copy), "--only", "down/pixelshuffle"]) == 2
    printed = capfd.readouterr()
    assert "holds a run of another config (loss: 'down' -> 'l1:down')" in printed.out
    assert "error: down/pixelshuffle seed 0: NOT RUN" in printed.err
    # the results changed, so the report's notebooks ran again: their kernels' log (the
    # unencrypted-TCP warning of each) stays out of the terminal
    assert "04_report.py: done" in printed.out
    assert "[IPKernelApp]" not in printed.err and "encryption" not in printed.err
    row = pd.read_csv(copy / "results.csv", keep_default_na=False).set_index("variant")
    assert row.loc["down/pixelshuffle", "status"] == "not run"
    assert "loss: 'down' -> 'l1:down'" in row.loc["down/pixelshuffle", "error"]
    # the grid put back: the run is found valid again, and its error leaves the page
    assert main([str(cfg), "--out", str(copy), "--only", "down/pixelshuffle"]) == 0
    row = pd.read_csv(copy / "results.csv", keep_default_na=False).set_index("variant")
    assert (row.loc["down/pixelshuffle", "status"], row.loc["down/pixelshuffle", "error"]) == (
        "done", "")
    assert main([str(changed), "--out", str(copy), "--only", "down/pixelshuffle", "--force"]) == 0
    row = pd.read_csv(copy / "results.csv", keep_default_na=False).set_index("variant")
    assert row.loc["down/pixelshuffle", "status"] == "done"
    m = json.loads((copy / "runs" / "down/pixelshuffle" / "seed0" / "metrics.json").read_text())
    assert m["config"]["loss"] == "l1:down"


def test_a_failed_figure_stage_is_left_out_of_the_report_and_the_exit_says_so(
        micro, tmp_path, monkeypatch, capsys):
    import shutil

    from srlib import notebooks

    cfg, out, _ = micro
    copy = tmp_path / "reports"
    shutil.copytree(out, copy)
    assert (copy / "artifacts.csv").is_file()

    def fail_the_artifacts(notebook, output, params):
        if notebook == "03_artifacts.py":
            raise RuntimeError("no artifacts today")

    monkeypatch.setattr(notebooks, "execute", fail_the_artifacts)
    assert main([str(cfg), "--out", str(copy), "--only", "down/pixelshuffle"]) == 1
    captured = capsys.readouterr()
    assert "error: 03_artifacts.py failed: RuntimeError: no artifacts today" in captured.err
    assert "report:" in captured.out and (copy / "index.html").is_file()
    assert not (copy / "artifacts.csv").exists()  # no figures of an earlier invocation
    assert not (copy / "artifacts_crops.png").exists()
