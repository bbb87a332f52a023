"""The runner's faults, one test (or a few) each: stale fine-tunes, two runners on one
folder, SIGTERM, partial results, grid typos, the error of a failed run.

Most tests train in-process (``in_process`` below) and skip the report notebooks: they are
about which runs the runner runs, skips, refuses or stops; papermill and the notebooks
are covered end to end by ``test_ablate.py`` and by the SIGTERM test here."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import write_small_sets

from srlib import ablate, notebooks, runs
from srlib.ablate import main
from srlib.grid import load_grid
from srlib.report import general_findings
from srlib.results import collect, columns

ROOT = Path(__file__).resolve().parents[1]
TINY = {"preset": "quick", "iters": 4, "batch": 2, "patch": 16, "nf": 8, "nb": 1, "gc": 4,
        "log_every": 2, "device": "cpu"}


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> tuple[str, str]:
    return write_small_sets(tmp_path_factory.mktemp("sets"), n_train=2, n_test=1)


def write_grid(path: Path, sets: tuple[str, str], variants: dict, **defaults) -> Path:
    grid = {"name": "faults", "seeds": [0], "variants": variants,
            "defaults": {**TINY, "data": sets[0], "test_data": [sets[1]], **defaults}}
    path.write_text(yaml.safe_dump(grid))
    return path


def _train_here(variant: str, seed: int, config: dict, run: Path,
                env: dict | None = None, gpus: int = 1) -> None:
    """``notebooks.train_run`` without a kernel: the same ``train_on()`` the notebook
    calls."""
    from srlib.train import Config, train_on

    assert config["seed"] == seed and variant
    train_on(Config(**config), gpus)


def _results_only(plan, stages, stop, t_start) -> int:
    ablate._write_results(plan, stages)
    return 0


@pytest.fixture
def in_process(monkeypatch):
    """Runs train in this process, the report stage writes results.csv only."""
    monkeypatch.setattr(ablate, "train_run", _train_here)
    monkeypatch.setattr(ablate, "build_report", _results_only)


def results(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "results.csv", keep_default_na=False).set_index("variant")


# ---- 1. stale fine-tunes --------------------------------------------------------------------

SRC = {"loss": "pixel", "upsampler": "pixelshuffle"}
FT = {"loss": "down", "upsampler": "pixelshuffle", "init_from": "src", "iters": 2}


@pytest.fixture(scope="module")
def finetune(tmp_path_factory, sets):
    """A source and its fine-tune, trained (module-wide: each test below sets its own
    starting point from there)."""
    root = tmp_path_factory.mktemp("finetune")
    grid = write_grid(root / "grid.yaml", sets, {"src": SRC, "ft": FT})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ablate, "train_run", _train_here)
        mp.setattr(ablate, "build_report", _results_only)
        assert main([str(grid), "--out", str(root / "out"), "--jobs", "1"]) == 0
    return root, root / "out"


def test_forced_source_makes_its_finetune_stale_and_the_next_run_reruns_it(
        finetune, sets, in_process, capsys):
    root, out = finetune
    src, ft = runs.run_dir(out, "src", 0), runs.run_dir(out, "ft", 0)
    changed = write_grid(root / "changed.yaml", sets, {"src": {**SRC, "iters": 6}, "ft": FT})
    assert main([str(changed), "--out", str(out), "--only", "src", "--force"]) == 0
    text = capsys.readouterr().out
    assert "src seed 0: done" in text and "forced: old outputs removed" in text
    assert runs.read_metrics(src)["iters"] == 6
    # the fine-tune was not asked for: the table says it is stale, not done
    assert "note: ft seed 0 is stale" in text
    row = results(out).loc["ft"]
    assert row.status == "stale" and "retrained" in row.error

    assert main([str(changed), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "src seed 0: finished earlier, skipped" in text
    line = next(ln for ln in text.splitlines() if "ft seed 0:" in ln)
    assert "done" in line and "rerun from scratch" in line and "retrained" in line
    assert runs.recorded_source(ft)["generator_sha256"] == runs.generator_hash(src)
    assert results(out).loc["ft"].status == "done"


def test_finetune_of_a_failed_source_is_not_run_and_not_reported_done(
        finetune, sets, in_process, capsys):
    root, out = finetune
    src, ft = runs.run_dir(out, "src", 0), runs.run_dir(out, "ft", 0)
    broken = write_grid(root / "broken.yaml", sets,
                        {"src": {**SRC, "patch": 4096}, "ft": FT})
    assert main([str(broken), "--out", str(out), "--only", "src", "--force"]) == 0
    assert "src seed 0: FAILED (ValueError: no training image is at least 4096x4096" in \
        capsys.readouterr().out
    assert not (src / runs.GENERATOR).exists()  # --force removed the old outputs first
    assert results(out).loc["ft"].status == "stale"

    old_metrics = (ft / runs.METRICS).stat().st_mtime
    assert main([str(broken), "--out", str(out), "--only", "ft"]) == 0
    text = capsys.readouterr().out
    assert "ft seed 0: NOT RUN (its source src seed 0 failed)" in text
    assert (ft / runs.METRICS).stat().st_mtime == old_metrics  # not trained
    row = results(out).loc["ft"]
    assert row.status == "not run" and "its source src seed 0 failed" in row.error
    assert "its source src seed 0 failed" in (ft / runs.ERROR).read_text()


def test_a_moved_result_folder_keeps_its_finetunes(sets, tmp_path, in_process, capsys):
    """Paths are stored relative to the run: a copied folder's fine-tune is neither refused
    nor retrained."""
    import shutil

    root = tmp_path
    grid = write_grid(root / "grid.yaml", sets, {"src": SRC, "ft": FT})
    assert main([str(grid), "--out", str(root / "out"), "--jobs", "1"]) == 0
    moved = root / "elsewhere" / "out"
    shutil.copytree(root / "out", moved)
    capsys.readouterr()
    assert main([str(grid), "--out", str(moved)]) == 0
    text = capsys.readouterr().out
    assert "src seed 0: finished earlier, skipped" in text
    assert "ft seed 0: finished earlier, skipped" in text, text
    assert results(moved).loc["ft"].status == "done"


# ---- 2. one runner per output folder --------------------------------------------------------

def test_a_second_runner_on_the_same_folder_refuses_at_once(sets, tmp_path):
    grid = write_grid(tmp_path / "grid.yaml", sets, {"a": SRC})
    out = tmp_path / "out"
    with runs.locked(out, "output folder"):
        before = sorted(p.name for p in out.iterdir())
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "srlib.ablate", str(grid), "--out",
                               str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
        took = time.monotonic() - t0
        assert sorted(p.name for p in out.iterdir()) == before  # wrote nothing
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert err.startswith("error: output folder") and str(out) in err
    assert f"pid {os.getpid()}" in err and len(err.splitlines()) == 1
    assert proc.stdout == "" and took < 60


# ---- 3. SIGTERM ---------------------------------------------------------------------------

def test_sigterm_saves_a_checkpoint_and_the_same_command_resumes(sets, tmp_path, monkeypatch,
                                                                 capsys):
    grid = write_grid(tmp_path / "grid.yaml", sets, {"a": SRC, "b": SRC}, iters=600,
                      ckpt_every=600)
    out = tmp_path / "out"
    run_a, run_b = runs.run_dir(out, "a", 0), runs.run_dir(out, "b", 0)
    cmd = [str(grid), "--out", str(out), "--jobs", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "srlib.ablate", *cmd], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not (run_a / runs.LOSSES).is_file() or \
                len((run_a / runs.LOSSES).read_text().splitlines()) < 2:  # training
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted by SIGTERM" in stderr and "to resume, run the same command:" in stderr
    assert "a seed 0: interrupted" in stderr and "b seed 0: not started" in stderr
    it = torch.load(run_a / runs.CHECKPOINT, weights_only=False)["iter"]
    assert 0 < it < 600
    assert not (run_a / runs.ERROR).exists()  # interrupted, not failed
    assert not (run_b / runs.CONFIG).exists()  # never started

    monkeypatch.setattr(ablate, "build_report", _results_only)  # the resumption is the test
    assert main([*cmd, "--only", "a"]) == 0
    assert "a seed 0: done" in capsys.readouterr().out
    m = runs.read_metrics(run_a)
    assert m["resumed_from_iter"] == it and m["iters"] == 600
    assert not (run_a / runs.CHECKPOINT).exists()


def test_sigterm_during_force_says_the_command_that_resumes(sets, tmp_path, monkeypatch,
                                                           capsys):
    """``--force``, then "the same command" would clear the checkpoint: the message gives
    the command without it, and that command resumes."""
    grid = write_grid(tmp_path / "grid.yaml", sets, {"a": SRC}, iters=600, ckpt_every=600)
    out = tmp_path / "out"
    run_a = runs.run_dir(out, "a", 0)
    cmd = [str(grid), "--out", str(out), "--jobs", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "srlib.ablate", *cmd, "--force"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not (run_a / runs.LOSSES).is_file() or \
                len((run_a / runs.LOSSES).read_text().splitlines()) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    line = next(ln for ln in stderr.splitlines() if ln.startswith("to resume"))
    assert "without --force" in line
    told = line.split(": ", 1)[1].split()
    assert told[:3] == ["python", "-m", "srlib.ablate"] and "--force" not in told
    assert told[3:] == cmd
    monkeypatch.setattr(ablate, "build_report", _results_only)
    assert main(told[3:]) == 0
    assert runs.read_metrics(run_a)["resumed_from_iter"] > 0


# ---- 4. partial results -------------------------------------------------------------------

GRID = {"variants": {"bicubic": {"baseline": "bicubic"}, "down/pixelshuffle": {"loss": "down"}},
        "defaults": {}}


def test_runs_that_do_not_exist_are_not_run_and_the_findings_survive_the_csv(tmp_path):
    table = collect(tmp_path, GRID, [0, 1])
    assert list(table.columns) == columns() and set(table.status) == {"not run"}
    failed = runs.run_dir(tmp_path, "down/pixelshuffle", 1)
    runs.write_error(failed, "Traceback (most recent call last):\n  ...\nValueError: boom\n")
    (failed / runs.ERROR).write_text("")  # an empty error cell: NaN once read from a CSV
    table = collect(tmp_path, GRID, [0, 1])
    table.to_csv(tmp_path / "results.csv", index=False)
    back = pd.read_csv(tmp_path / "results.csv", keep_default_na=False, na_values=[""])
    assert back.error.isna().all()
    text = "\n".join(general_findings(back))
    assert "**Failed**: `down/pixelshuffle` seed 1." in text
    assert "**Not run**: `bicubic` seed 0, `down/pixelshuffle` seed 0." in text
    assert runs.last_line(float("nan")) == "" and runs.last_line("a\n\nb: c\n") == "b: c"
    damaged = runs.run_dir(tmp_path, "bicubic", 0)
    damaged.mkdir(parents=True)
    (damaged / runs.CONFIG).write_text("{}")
    (damaged / runs.METRICS).write_text("{trunc")
    row = collect(tmp_path, {"variants": {"bicubic": {"baseline": "bicubic"}}, "defaults": {}},
                  [0]).iloc[0]
    # a damaged metrics.json is an unfinished run: the runner evaluates it again
    assert row.status == "interrupted" and row.error == "resumable: run the runner again"


# ---- 5. grid typos --------------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("varients: {}\nvariants:\n  a: {loss: down}\n",
     r"bad.yaml:1: top-level key must be one of .*, got 'varients' \(did you mean "
     r"'variants'\?\)"),
    ("seed: [5]\nvariants:\n  a: {loss: down}\n",
     r"bad.yaml:1: top-level key must be one of .*, got 'seed' \(did you mean 'seeds'\?\)"),
    ("variants:\n  a: {loss: down, lr: 0.1}\n",
     r"bad.yaml:2: variant 'a': key 'lr' is now called 'learning_rate'"),
    ("defaults: {upsampeler: nearest}\nvariants:\n  a: {loss: down}\n",
     r"bad.yaml:1: defaults: key must be one of .*, got 'upsampeler' \(did you mean "
     r"'upsampler'\?\)"),
    ("variants:\n  a: {loss: down}\nnotebook_params:\n  03_artifact: {crop: 32}\n",
     r"bad.yaml:4: notebook_params: notebook must be one of 01_manifold, 03_artifacts, "
     r"04_report, got '03_artifact' \(did you mean '03_artifacts'\?\)"),
    ("variants:\n  a: {loss: down}\nnotebook_params:\n  01_manifold: {toy_step: 3}\n",
     r"bad.yaml:4: notebook_params.01_manifold: parameter must be one of .*, got "
     r"'toy_step' \(did you mean 'toy_steps'\?\)"),
    ("variants:\n  a: {loss: down}\n  a: {loss: pixel}\n",
     r"bad.yaml:3: key 'a' given twice \(first on line 2\)"),
    # every value refused at load, not after the other runs trained
    ("variants:\n  a: {loss: donw}\n", r"bad.yaml:2: variant 'a': loss spec 'donw': unknown "
                                        r"term 'donw'"),
    ("variants:\n  a: {loss: down, upsampler: pixelshufle}\n",
     r"bad.yaml:2: variant 'a': upsampler must be one of .*\(did you mean 'pixelshuffle'\?\)"),
    ("variants:\n  a: {loss: down, consistency: projct}\n", r"variant 'a': consistency must be"),
    ("variants:\n  a: {loss: down, loss_operator: bilinar}\n", r"variant 'a': loss_operator"),
    ("defaults: {discriminator: vgg19}\nvariants:\n  a: {loss: down+0.1*adv}\n",
     r"bad.yaml:3: variant 'a': discriminator must be one of"),
    # the runner's own paths: a grid may not move what it writes out of --out
    ("variants:\n  a: {loss: down}\nnotebook_params:\n  03_artifacts: {out: /elsewhere/a.csv}\n",
     r"bad.yaml:4: notebook_params.03_artifacts.out: the runner sets it"),
    ("variants:\n  a: {loss: down}\nnotebook_params:\n  04_report:\n    results: O/results.csv\n",
     r"bad.yaml:5: notebook_params.04_report.results: the runner sets it"),
    ("variants:\n  a: {loss: down}\nnotebook_params:\n  04_report: {runs: O/runs}\n",
     r"notebook_params.04_report.runs: the runner sets it"),
    ("variants:\n  a: {loss: down, seed: 3}\n", r"bad.yaml:2: .*'seed' cannot be set in a grid"),
    ("variants:\n  a: {loss: down\n  b: {}\n", r"bad.yaml:3:4: not valid YAML: expected ','"),
    ("- a\n- b\n", r"bad.yaml:1: expected a mapping of name, title, .* got a list"),
    ("just words\n", r"bad.yaml:1: expected a mapping .* got a string"),
    ("seeds: [0, 0]\nvariants:\n  a: {loss: down}\n", r"seeds must be distinct"),
    ("seeds: []\nvariants:\n  a: {loss: down}\n", r"seeds must be a non-empty list"),
    ("seeds: [-1]\nvariants:\n  a: {loss: down}\n", r"seeds must be integers in \[0, 2\^64\)"),
    ("seeds: 3\nvariants:\n  a: {loss: down}\n", r"seeds must be a non-empty list"),
    ("hypotheses: {h1: x}\nvariants:\n  a: {loss: down}\n", r"'hypotheses' must be a list"),
    ("variants:\n  a: {loss: down, init_from: b}\n  b: {loss: down, init_from: a}\n",
     r"init_from cycle: a -> b -> a"),
])
def test_grid_typos_are_refused_with_the_line_and_the_close_match(tmp_path, text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_grid(bad)


def test_bad_grid_or_seeds_exit_2_with_one_line_and_write_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("variants:\n  a: {loss: down}\nvarients: {}\n")
    assert main([str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "did you mean 'variants'" in err
    good = tmp_path / "good.yaml"
    good.write_text("hypotheses: []\nvariants:\n  a: {loss: down}\n")
    assert load_grid(good)["hypotheses"] == []
    assert main([str(good), "--out", str(tmp_path / "out"), "--seeds", "1", "1"]) == 2
    assert "--seeds must be distinct" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---- 6. the error of a failed run ------------------------------------------------------------

def test_a_failed_run_keeps_its_last_line_in_the_table_and_its_text_in_the_folder(
        sets, tmp_path, in_process, capsys):
    from papermill.exceptions import PapermillExecutionError

    colour = ["\x1b[0;31m---------\x1b[0m", "\x1b[0;31mValueError\x1b[0m  Traceback",
              "\x1b[1;32m----> 1\x1b[0m train(cfg)", "\x1b[0;31mValueError\x1b[0m: boom"]
    err = PapermillExecutionError(3, 3, "train(cfg)", "ValueError", "boom", colour)
    text = notebooks.error_text(err)
    assert "\x1b" not in text and runs.last_line(text) == "ValueError: boom"

    grid = write_grid(tmp_path / "grid.yaml", sets,
                      {"x": {**SRC, "patch": 4096}})
    out = tmp_path / "out"
    assert main([str(grid), "--out", str(out)]) == 0
    run = runs.run_dir(out, "x", 0)
    line = (run / runs.ERROR).read_text().strip()
    assert line.startswith("ValueError: no training image is at least") and "\n" not in line
    whole = (run / runs.TRACEBACK).read_text()
    assert whole.startswith("Traceback") and len(whole.splitlines()) > 3
    assert results(out).loc["x"].error == line
    assert f"see {run / runs.TRACEBACK}" in capsys.readouterr().out


def test_markup_in_a_grid_reaches_no_page_as_markup(sets, tmp_path):
    """A variant named ``<i>x`` and a hypothesis whose id and statement hold HTML, through
    the whole runner: every page shows them as text."""
    grid = write_grid(tmp_path / "grid.yaml", sets, {"bicubic": {"baseline": "bicubic"},
                                                     "<i>x": SRC})
    g = yaml.safe_load(grid.read_text())
    g["hypotheses"] = [{"id": "<b>H</b>", "statement": "<script>alert(1)</script> holds",
                        "a": "<i>x", "b": "bicubic", "metric": "psnr_y",
                        "direction": "greater"}]
    grid.write_text(yaml.safe_dump(g))
    out = tmp_path / "out"
    assert main([str(grid), "--out", str(out)]) == 0
    pages = [out / "index.html", out / "03_artifacts.html",
             runs.run_dir(out, "<i>x", 0) / "train.html"]
    for page in pages:
        text = page.read_text()
        assert "<i>x" not in text and "<script>alert" not in text and "<b>H</b>" not in text, \
            page
    assert "&lt;i&gt;x" in pages[0].read_text() and "&lt;i&gt;x" in pages[2].read_text()
