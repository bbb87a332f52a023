"""The ablation runner: a grid of variants x seeds through papermill, then the report.

    python -m srlib.ablate configs/quick.yaml [--only VARIANT ...] [--seeds 0 1] [--force]

A grid (YAML) has ``defaults`` (any ``srlib.train.Config`` field), ``seeds``,
``variants`` (``name: {loss, upsampler, ...}``) and optionally ``notebook_params``
(papermill parameters of ``01_manifold``, ``03_artifacts``, ``04_report``), ``name`` and
``hypotheses`` (a list). Any other key is refused, with the close match. A variant with
``baseline: bicubic`` or ``baseline: pinv`` is a closed-form baseline (evaluated once, with
the first seed; not trained; ``bicubic: {}`` is the bicubic one). Every trained variant
``v`` is also evaluated projected, ``P(G(LR), LR)`` from the same weights, as ``v+P``.
``init_from: <variant>`` starts from that variant's generator of the same seed (which then
runs first).

Each run executes ``notebooks/02_train.py`` with papermill into
``<out>/runs/<variant>/seed<k>/`` (``train.ipynb`` and ``train.html`` beside the run's
files, laid out by ``srlib.runs``). A finished run with an unchanged config is skipped; an
interrupted one resumes from its checkpoint; a failed one writes ``error.txt`` (last line)
and ``traceback.txt`` and the others go on. ``--force`` clears a run's outputs, then reruns
it. A fine-tune whose source was retrained since is rerun; one whose source failed is not
run. One runner at a time per output folder (``<out>/.lock``). SIGTERM / SIGINT are passed
on to the running trainings, which save a checkpoint; the runner exits 130 and the same
command resumes. Then ``01_manifold``, ``03_artifacts`` and ``04_report`` run; the report
reads ``<out>/results.csv`` and becomes ``<out>/index.html`` (no code cells, figures
embedded).
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import contextlib
import dataclasses
import difflib
import json
import logging
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import torch
import yaml

from srlib import runs, stats
from srlib.report import (
    add_gain_means,
    baseline_of,
    collect,
    collect_per_image,
    projected_name,
    total_iters,
    variant_seeds,
)
from srlib.train import Config, config_differences

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CONFIG_FIELDS = {f.name for f in dataclasses.fields(Config)}
TOP_LEVEL = ("name", "defaults", "seeds", "variants", "notebook_params", "hypotheses")
NOTEBOOK_STAGES = ("01_manifold", "03_artifacts", "04_report")
# Config fields the runner sets for each run: a grid value would be silently overridden.
RUNNER_SET = {"out": "the runner puts each run in <out>/runs/<variant>/seed<k>",
              "seed": "the runner sets it from the grid's 'seeds' (or --seeds)"}
# the outputs of each notebook stage, removed when the stage fails or is skipped so that
# the report never shows figures of an earlier invocation
STAGE_OUTPUTS = {"01_manifold": ("manifold.json",),
                 "03_artifacts": ("artifacts.csv", "artifacts_crops.png", "artifacts_spectra.png")}
# what the runner writes into error.txt when it does not run a run (so that a later
# invocation that finds the run valid again can drop it)
NOT_RUN = "not run: "
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


# ---- the grid file ------------------------------------------------------------------------

def load_grid(path: str | Path) -> dict:
    """Read and check a grid file; ``ValueError`` names the file, the line and the bad
    entry (with the close match of an unknown key)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"grid file not found: {path}")
    text = path.read_text()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        grid = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(_yaml_problem(path, err)) from None
    lines = _key_lines(path, node)

    def where(*keys: str) -> str:
        line = lines.get(tuple(str(k) for k in keys))
        return f"{path}:{line}" if line else str(path)

    if grid is None:
        raise ValueError(f"{path}: the file is empty; a grid needs 'variants'")
    if not isinstance(grid, dict):
        raise ValueError(f"{path}:{node.start_mark.line + 1}: expected a mapping of "
                         f"{', '.join(TOP_LEVEL)}, got a {_kind(grid)}")
    for key in grid:
        if key not in TOP_LEVEL:
            raise ValueError(f"{where(key)}: {_unknown(key, TOP_LEVEL, 'at the top level')}")
    grid.setdefault("name", path.stem)
    if not isinstance(grid["name"], str) or not grid["name"]:
        raise ValueError(f"{where('name')}: 'name' must be a non-empty string")
    grid["seeds"] = _check_seeds(grid.get("seeds", [0]), f"{where('seeds')}: seeds")
    grid["defaults"] = _check_fields(grid.get("defaults"), "defaults", where)
    variants = grid["variants"] = _check_variants(grid.get("variants"), where)
    try:
        _ordered(list(variants), grid)
    except ValueError as err:  # a cycle of init_from
        raise ValueError(f"{where('variants')}: {err}") from None
    grid["notebook_params"] = _check_notebook_params(grid.get("notebook_params"), where)
    grid["hypotheses"] = _check_hypotheses(grid, where)
    return grid


def _check_hypotheses(grid: dict, where: Callable[..., str]) -> list[stats.Hypothesis]:
    """``hypotheses`` -> ``stats.Hypothesis`` objects, checked against the grid's variants
    and the ``+P`` twins of its trained ones, the metrics ``stats`` knows, the grid's test
    sets and the training length of the variants compared (``_unequal_iters``); every
    problem on its own line, each naming the hypothesis and the field."""
    from srlib.data import dataset_name

    if grid.get("hypotheses") is not None and not isinstance(grid["hypotheses"], list):
        raise ValueError(f"{where('hypotheses')}: 'hypotheses' must be a list, got a "
                         f"{_kind(grid['hypotheses'])}")
    variants = grid["variants"]
    trained = [v for v, spec in variants.items() if not baseline_of(spec, v)]
    clash = [projected_name(v) for v in trained if projected_name(v) in variants]
    if clash:
        raise ValueError(f"{where('variants', clash[0])}: variant name {clash[0]!r} is taken "
                         "by the projected twin of a trained variant; rename it")
    names = [*variants, *map(projected_name, trained)]
    sets = [grid["defaults"].get("test_data", Config().test_data),
            *((spec or {}).get("test_data", []) for spec in variants.values())]
    sets = {dataset_name(s) for x in sets for s in ([x] if isinstance(x, str) else x or [])}
    hypotheses = stats.parse_hypotheses(grid.get("hypotheses"), names, stats.KNOWN_METRICS,
                                        where("hypotheses"), sets)
    problems = [f"{where('hypotheses')}: hypothesis '{h.id}': {why}" for h in hypotheses
                if (why := _unequal_iters(h, variants, grid["defaults"]))]
    if problems:
        raise ValueError("\n".join(problems))
    return hypotheses


def _unequal_iters(h: stats.Hypothesis, variants: dict[str, dict], defaults: dict) -> str:
    """Why hypothesis ``h`` compares two trained (or projected) variants trained for
    different numbers of iterations (a fine-tune counts its source's too), or '' when the
    counts agree, a side is a baseline, b is a fixed value, or ``h.unequal_iters_ok``."""
    if h.unequal_iters_ok or h.value is not None:
        return ""
    sides = [v[:-len(projected_name(""))] if v not in variants else v for v in (h.a, h.b)]
    if any(baseline_of(variants[v], v) for v in sides):
        return ""
    counts = [iteration_label(variants, defaults, v) for v in sides]
    totals = [total_iters(variants, defaults, v) for v in sides]
    if totals[0] == totals[1]:
        return ""
    return (f"a '{h.a}' is trained for {counts[0]} iterations and b '{h.b}' for "
            f"{counts[1]}: compare variants of equal training length, or mark the "
            "hypothesis 'unequal_iters_ok: true' (the report then says so)")


def iteration_label(variants: dict[str, dict], defaults: dict, variant: str) -> str:
    """A variant's training length as text: ``'2000'``, or for a fine-tune its source's
    total and its own, ``'2000 + 200'``; ``'0'`` for a baseline."""
    spec = variants[variant] or {}
    own = total_iters(variants, defaults, variant)
    src = spec.get("init_from")
    if not src:
        return str(own)
    before = total_iters(variants, defaults, src)
    return f"{before} + {own - before}"


def _check_variants(variants, where) -> dict:
    """The ``variants`` mapping, each checked: a folder-safe name, Config fields, a loss
    (but for the bicubic baseline), an ``init_from`` that names a variant."""
    if not isinstance(variants, dict) or not variants:
        raise ValueError(f"{where('variants')}: needs a non-empty mapping 'variants' "
                         "(name: {loss, upsampler, ...})")
    for name in list(variants):
        if not isinstance(name, str) or not name.strip() or name.startswith("/") \
                or ".." in name.split("/"):
            raise ValueError(f"{where('variants', name)}: variant name {name!r} must be a "
                             "relative folder name (it becomes runs/<variant>/)")
        raw = variants[name]
        base = raw.pop("baseline", None) if isinstance(raw, dict) else None
        own_seeds = raw.pop("seeds", None) if isinstance(raw, dict) else None
        spec = variants[name] = _check_fields(raw, f"variant {name!r}", where,
                                              ("variants", name))
        if own_seeds is not None:  # a subset of the grid's seeds, checked in load_grid
            spec["seeds"] = _check_seeds(own_seeds, f"{where('variants', name, 'seeds')}: "
                                                    f"variant {name!r}: seeds")
        if base is not None:
            _check_baseline(base, name, spec, where)
            spec["baseline"] = base
        elif not baseline_of(spec, name) and "loss" not in spec:
            raise ValueError(f"{where('variants', name)}: variant {name!r} needs a 'loss' "
                             "(or 'baseline: <name>' for a closed-form baseline)")
        src = spec.get("init_from")
        if src is not None and src not in variants:
            raise ValueError(f"{where('variants', name, 'init_from')}: variant {name!r}: "
                             f"init_from {src!r} is not a variant")
    return variants


def _check_baseline(base: object, name: str, spec: dict, where: Callable[..., str]) -> None:
    """A closed-form baseline names one of ``evaluate.BASELINES`` and trains nothing."""
    from srlib.evaluate import BASELINES

    if base not in BASELINES:
        raise ValueError(f"{where('variants', name, 'baseline')}: variant {name!r}: "
                         f"{_unknown(base, tuple(BASELINES), 'as a baseline')}")
    trained = sorted(set(spec) & {"loss", "upsampler", "init_from", "iters"})
    if trained:
        raise ValueError(f"{where('variants', name)}: variant {name!r} is the closed-form "
                         f"baseline {base!r}: it trains nothing, so {trained} do not apply")


def _yaml_problem(path: Path, err: yaml.YAMLError) -> str:
    """One line for a YAML syntax error: file, line, column, what the parser says."""
    mark = getattr(err, "problem_mark", None)
    at = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    context = getattr(err, "context", None)
    return f"{at}: not valid YAML: {problem}" + (f" ({context})" if context else "")


def _key_lines(path: Path, node: yaml.Node | None) -> dict[tuple[str, ...], int]:
    """The line of every mapping key, by its path of keys; refuses a key given twice in
    one mapping (YAML would keep the last silently, e.g. two variants of one name)."""
    lines: dict[tuple[str, ...], int] = {}

    def walk(n: yaml.Node, prefix: tuple[str, ...]) -> None:
        if not isinstance(n, yaml.MappingNode):
            return
        for key, value in n.value:
            k = (*prefix, str(key.value))
            if k in lines:
                raise ValueError(f"{path}:{key.start_mark.line + 1}: key {key.value!r} "
                                 f"given twice (first on line {lines[k]})")
            lines[k] = key.start_mark.line + 1
            walk(value, k)

    if node is not None:
        walk(node, ())
    return lines


def _kind(obj: object) -> str:
    return {list: "list", dict: "mapping", str: "string"}.get(type(obj), type(obj).__name__)


def _unknown(key: object, known: tuple[str, ...] | set[str], where: str) -> str:
    """'unknown key ... (did you mean ...?)', or what a renamed key is called now."""
    k = str(key)
    if k in runs.RENAMED and runs.RENAMED[k] in known:
        return f"key {k!r} {where} is now called {runs.RENAMED[k]!r}"
    close = difflib.get_close_matches(k, sorted(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key {k!r}{hint} {where}; known: {', '.join(sorted(known))}"


def _check_fields(spec: object, what: str, where: Callable[..., str],
                  keys: tuple[str, ...] = ("defaults",)) -> dict:
    """``defaults`` or a variant: a mapping (or nothing) of ``Config`` fields."""
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise ValueError(f"{where(*keys)}: {what} must be a mapping of Config fields, got a "
                         f"{_kind(spec)}")
    known = CONFIG_FIELDS - set(RUNNER_SET)
    for key in spec:
        if key in RUNNER_SET:
            raise ValueError(f"{where(*keys, key)}: {what}: '{key}' cannot be set in a grid: "
                             f"{RUNNER_SET[key]}")
        if key not in known:
            raise ValueError(f"{where(*keys, key)}: {_unknown(key, known, f'in {what}')}")
    return spec


def _check_seeds(seeds: object, what: str) -> list[int]:
    """A non-empty list of distinct non-negative integers."""
    if not isinstance(seeds, list) or not seeds:
        raise ValueError(f"{what} must be a non-empty list of integers, got {seeds!r}")
    bad = [s for s in seeds if not isinstance(s, int) or isinstance(s, bool) or s < 0]
    if bad:
        raise ValueError(f"{what} must be non-negative integers, got {bad[0]!r} in {seeds!r}")
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise ValueError(f"{what} must be distinct, {twice} given twice in {seeds!r}")
    return seeds


def _check_notebook_params(params: object, where: Callable[..., str]) -> dict:
    """``notebook_params``: a mapping of notebook stems to mappings of their parameters."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ValueError(f"{where('notebook_params')}: 'notebook_params' must be a mapping "
                         f"of notebooks ({', '.join(NOTEBOOK_STAGES)}), got a {_kind(params)}")
    for stem, values in params.items():
        if stem not in NOTEBOOK_STAGES:
            raise ValueError(f"{where('notebook_params', stem)}: "
                             f"{_unknown(stem, NOTEBOOK_STAGES, 'in notebook_params')}")
        if values is None:
            params[stem] = values = {}
        if not isinstance(values, dict):
            raise ValueError(f"{where('notebook_params', stem)}: notebook_params.{stem} must "
                             f"be a mapping of its parameters, got a {_kind(values)}")
        known = notebook_parameters(stem)
        for key in values:
            if key not in known:
                raise ValueError(f"{where('notebook_params', stem, key)}: "
                                 f"{_unknown(key, known, f'in notebook_params.{stem}')}")
    return params


def notebook_parameters(stem: str) -> set[str]:
    """The names a notebook's ``parameters`` cell assigns (what papermill can set)."""
    import jupytext

    nb = jupytext.read(NOTEBOOKS / f"{stem}.py")
    names: set[str] = set()
    for cell in nb.cells:
        if "parameters" in cell.metadata.get("tags", []):
            for stmt in ast.parse(cell.source).body:
                targets = stmt.targets if isinstance(stmt, ast.Assign) else \
                    [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
                names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def run_config(grid: dict, variant: str, seed: int, out: Path) -> dict:
    """The ``Config`` fields of one run, as plain data (the grid's, then the runner's)."""
    spec = {k: v for k, v in {**grid["defaults"], **grid["variants"][variant]}.items()
            if k in CONFIG_FIELDS}  # not the runner's own keys (baseline, seeds)
    if spec.get("init_from"):
        spec["init_from"] = str(runs.run_dir(out, spec["init_from"], seed).resolve())
    spec.update(seed=seed, out=str(runs.run_dir(out, variant, seed).resolve()), progress=False)
    return spec


def run_params(grid: dict, variant: str, seed: int, out: Path) -> dict:
    """The papermill parameters of ``02_train``: its label and its ``config`` mapping."""
    return {"variant": variant, "config": run_config(grid, variant, seed, out)}


def _ordered(variants: list[str], grid: dict) -> list[str]:
    """Variants with every ``init_from`` source before its users."""
    done: list[str] = []

    def visit(v: str, path: tuple) -> None:
        if v in done:
            return
        if v in path:
            raise ValueError(f"init_from cycle: {' -> '.join((*path, v))}")
        src = grid["variants"][v].get("init_from")
        if src:
            visit(src, (*path, v))
        done.append(v)

    for v in variants:
        visit(v, ())
    return done


# ---- one run --------------------------------------------------------------------------------

def same_config(d: Path, config: dict) -> bool:
    """Whether the run folder ``d`` holds a run of ``config`` (``Config`` fields), so it
    may resume or, finished, be skipped."""
    return not config_differences(d, Config(**config).resolved())


def execute(notebook: str, output: Path, params: dict) -> None:
    """Run a jupytext notebook with papermill, then write its HTML beside it.

    The kernel starts in the runner's working directory: papermill's ``cwd=`` would change
    the runner's own directory for the duration, and runs executing in parallel threads
    would then restore each other's (a race that once left the runner in notebooks/).
    The runner passes every path absolute, so no notebook depends on its directory."""
    import jupytext
    import nbformat
    import papermill as pm

    # papermill's own log lines (kernel start, parameters a notebook does not declare)
    # would interleave with the progress lines of parallel runs; a grid's parameters are
    # checked against each notebook's parameters cell by load_grid instead.
    logging.getLogger("papermill").setLevel(logging.ERROR)

    nb = jupytext.read(NOTEBOOKS / notebook)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    output.parent.mkdir(parents=True, exist_ok=True)
    src = output.with_name(output.stem + ".input.ipynb")
    nbformat.write(nb, src)
    try:
        pm.execute_notebook(str(src), str(output), parameters=params, progress_bar=False,
                            kernel_name="python3")
    except BaseException:
        # the executed notebook shows where it failed; converting it must not replace
        # the notebook's own error with one of its own
        with contextlib.suppress(Exception):
            if output.exists():
                to_html(output, output.with_suffix(".html"), code=True)
        raise
    finally:
        src.unlink(missing_ok=True)
    to_html(output, output.with_suffix(".html"), code=True)


def to_html(notebook: Path, html: Path, code: bool, title: str | None = None) -> None:
    """Executed notebook -> self-contained HTML (figures embedded), code cells optional;
    ``title``: the page's title (default: the notebook's first heading)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook, as_version=4)
    if title is None:
        first = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
        title = next((ln.lstrip("# ").strip() for ln in first.splitlines()
                      if ln.startswith("#")), notebook.stem)
    exporter = HTMLExporter(exclude_input=not code, exclude_input_prompt=not code,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    runs.write_text(html, body)


def _baseline_config(grid: dict, variant: str, seed: int, out: Path) -> dict:
    """The config a closed-form baseline's folder records (``Config`` fields, as JSON
    reads them back): its name as the loss, no upsampler, the grid's test sets."""
    spec = {**grid["defaults"], **grid["variants"][variant]}
    fields = {k: v for k, v in spec.items() if k in CONFIG_FIELDS}
    c = Config(**{**fields, "loss": baseline_of(grid["variants"][variant], variant),
                  "upsampler": "", "init_from": None, "seed": seed,
                  "out": str(runs.run_dir(out, variant, seed))})
    return json.loads(json.dumps(dataclasses.asdict(c)))


def _baseline_done(d: Path, config: dict) -> bool:
    """Whether the baseline's folder ``d`` holds its evaluation of ``config`` already."""
    return (runs.is_finished(d) and not (d / runs.ERROR).is_file()
            and runs.read_json(d / runs.CONFIG) == config)


def _baseline_run(d: Path, config: dict) -> None:
    """A closed-form baseline (bicubic, ``D^+ LR``; ``config`` from ``_baseline_config``)
    as the run folder ``d``: evaluated, not trained, ``metrics.json`` in the runs' schema."""
    from srlib.data import dataset_name
    from srlib.evaluate import BASELINES, evaluate_sets
    from srlib.resize import BicubicDegradation

    name, scale, test_data = config["loss"], config["scale"], config["test_data"]
    with runs.locked(d, "run folder"):
        runs.clear(d)
        per_set, kind, _ = evaluate_sets(BASELINES[name](BicubicDegradation(scale)),
                                         test_data, scale, d, model=name)
        runs.write_json(d / runs.CONFIG, config)
        runs.write_metrics(d, per_set, lpips_kind=kind, config=config,
                           first_set=dataset_name(test_data[0]), iters=0, device="cpu")


@dataclasses.dataclass
class Outcome:
    """What became of one run: ``kind`` (done, skipped, failed, refused, not run,
    interrupted, not started) and the line the progress shows."""

    kind: str
    text: str

    @property
    def usable(self) -> bool:
        """Whether a fine-tune may start from this run's generator."""
        return self.kind in ("done", "skipped")


@dataclasses.dataclass
class Plan:
    """A checked invocation: the grid and what of it to run, where, how many at a time."""

    config: Path
    grid: dict
    names: list[str]
    seeds: list[int]
    forced: set[str]
    out: Path
    jobs: int


def run_one(plan: Plan, variant: str, seed: int, sources: dict[tuple[str, int], Future],
            stop: _Stop) -> Outcome:
    """Skip, resume, rerun or refuse one run, as its folder and its source say."""
    d = runs.run_dir(plan.out, variant, seed)
    src = plan.grid["variants"][variant].get("init_from")
    src_outcome = sources[(src, seed)].result() if src else None  # submitted earlier
    if stop.signum is not None:
        return Outcome("not started", "not started (stopping)")
    if baseline_of(plan.grid["variants"][variant], variant):
        config = _baseline_config(plan.grid, variant, seed, plan.out)
        if variant not in plan.forced and _baseline_done(d, config):
            return Outcome("skipped", "finished earlier, skipped")
        return _attempt(d, stop, lambda: _baseline_run(d, config))
    params = run_params(plan.grid, variant, seed, plan.out)
    if src_outcome is not None:
        why = _unusable_source(runs.run_dir(plan.out, src, seed), src, seed, src_outcome)
        if why:
            # its old outputs, if any, no longer follow from its source: error.txt makes
            # the table show the reason instead of those numbers
            runs.write_error(d, NOT_RUN + why)
            return Outcome("not run", f"NOT RUN ({why})")
    note = ""
    if variant in plan.forced:
        with runs.locked(d, "run folder"):
            runs.clear(d)  # before the rerun: a failed rerun leaves no old generator behind
        note = " (forced: old outputs removed)"
    elif (d / runs.CONFIG).is_file():
        if not same_config(d, params["config"]):
            msg = f"{d} holds a run of another config; rerun with --force to replace it"
            runs.write_error(d, NOT_RUN + msg)
            return Outcome("refused", f"NOT RUN ({msg})")
        stale = runs.is_stale(d) if src else None
        if stale:
            with runs.locked(d, "run folder"):
                runs.clear(d)
            note = f" (rerun from scratch: {stale})"
        elif runs.is_finished(d):
            _drop_runner_error(d)
            return Outcome("skipped", "finished earlier, skipped")
    outcome = _attempt(d, stop, lambda: execute("02_train.py", d / "train.ipynb", params))
    outcome.text += note
    return outcome


def _unusable_source(src_dir: Path, src: str, seed: int, outcome: Outcome) -> str:
    """Why a fine-tune cannot start from its source run, or '' when it can."""
    if not outcome.usable:
        what = {"refused": "holds a run of another config",
                "interrupted": "was interrupted"}.get(outcome.kind, outcome.kind)
        return f"its source {src} seed {seed} {what}"
    if not (src_dir / runs.GENERATOR).is_file():
        return f"its source {src} seed {seed} has no {runs.GENERATOR}"
    return ""


def _attempt(d: Path, stop: _Stop, work: Callable[[], None]) -> Outcome:
    """Run ``work`` for the run folder ``d``; a failure is recorded, never raised."""
    d.mkdir(parents=True, exist_ok=True)
    for name in (runs.ERROR, runs.TRACEBACK):  # a resumed run starts without its old error
        (d / name).unlink(missing_ok=True)
    try:
        work()
        return Outcome("done", "done")
    except Exception as err:  # one failed variant must not stop the grid
        text = error_text(err)
        if stop.signum is not None or getattr(err, "ename", None) == "Interrupted":
            return Outcome("interrupted", f"interrupted ({last_line(text)})")
        line = runs.write_error(d, text)
        return Outcome("failed", f"FAILED ({_short(line)}; see {d / runs.TRACEBACK})")


def _drop_runner_error(d: Path) -> None:
    """A run found valid again loses the error.txt the runner wrote when it did not run
    it (its source had failed, or its config differed); a training error stays."""
    err = d / runs.ERROR
    if err.is_file() and err.read_text().startswith(NOT_RUN):
        err.unlink()
        (d / runs.TRACEBACK).unlink(missing_ok=True)


def error_text(err: BaseException) -> str:
    """The whole text of a failure, without ANSI colour codes: a notebook's own
    traceback for a papermill error, else the Python traceback."""
    if type(err).__name__ == "PapermillExecutionError":
        text = str(err)
    else:
        text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    return ANSI.sub("", text).strip()


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "unknown error"


def _short(line: str, n: int = 300) -> str:
    return line if len(line) <= n else line[: n - 3] + "..."


# ---- signals: pass them on to the kernels -------------------------------------------------

def child_pids(parent: int | None = None) -> list[int]:
    """The processes whose parent is ``parent`` (this process): papermill's kernels run
    in a session of their own, so a terminal's Ctrl-C or a scheduler's SIGTERM to this
    process never reaches them unless it is passed on."""
    parent = os.getpid() if parent is None else parent
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: psutil comes with the Jupyter stack
        import psutil

        return [p.pid for p in psutil.Process(parent).children()]
    pids = []
    for stat in proc.glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
        if ppid == parent:
            pids.append(int(stat.parent.name))
    return pids


class _Stop:
    """SIGTERM / SIGINT: remember it, pass it on to the running kernels (each training
    saves a checkpoint and stops), start nothing new."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.signalled: set[int] = set()

    def handle(self, signum: int, _frame: object) -> None:
        if self.signum is not None:
            self.signalled.clear()  # a second signal is passed on again
        self.signum = signum
        self.forward()

    def forward(self) -> None:
        """Pass the signal to each child not yet told (kernels started since included)."""
        if self.signum is None:
            return
        for pid in child_pids():
            if pid not in self.signalled:
                self.signalled.add(pid)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, self.signum)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""


@contextlib.contextmanager
def _signals_passed_on(stop: _Stop) -> Iterator[None]:
    """Route SIGTERM / SIGINT to ``stop`` for the block (main thread only: Python
    delivers signals there)."""
    old = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            old[sig] = signal.signal(sig, stop.handle)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


# ---- the grid -------------------------------------------------------------------------------

def _fmt(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}:{s:02d}"


@contextlib.contextmanager
def _threads_per_run(jobs: int) -> Iterator[None]:
    """CPU: several runs side by side with a share of the cores each (small convolutions
    scale poorly across threads); kernels inherit the environment."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    saved_env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_grid(plan: Plan, stop: _Stop, t_start: float) -> dict[tuple[str, int], Outcome]:
    """Every run of the plan, ``plan.jobs`` at a time, sources before their fine-tunes;
    prints one progress line per run."""
    jobs = [(v, s) for v in plan.names for s in variant_seeds(plan.grid["variants"][v], v,
                                                               plan.seeds)]
    lock, progress = threading.Lock(), {"done": 0, "spent": 0.0, "ran": 0}

    def one(variant: str, seed: int) -> Outcome:
        t0 = time.perf_counter()
        d = runs.run_dir(plan.out, variant, seed)
        try:
            outcome = run_one(plan, variant, seed, futures, stop)
        except runs.RunLocked as err:  # someone trains in it: leave its files alone
            outcome = Outcome("not run", f"NOT RUN ({err})")
        except Exception as err:  # e.g. a config that does not validate
            line = runs.write_error(d, error_text(err))
            outcome = Outcome("failed", f"FAILED ({_short(line)}; see {d / runs.TRACEBACK})")
        dt = time.perf_counter() - t0
        with lock:
            progress["done"] += 1
            if outcome.kind in ("done", "failed", "interrupted"):
                progress["spent"] += dt
                progress["ran"] += 1
            left = len(jobs) - progress["done"]
            per_run = progress["spent"] / progress["ran"] if progress["ran"] else 0.0
            print(f"[{progress['done']}/{len(jobs)}] {variant} seed {seed}: {outcome.text} in "
                  f"{_fmt(dt)} (elapsed {_fmt(time.perf_counter() - t_start)}, "
                  f"~{_fmt(left * per_run / plan.jobs)} left)", flush=True)
        return outcome

    futures: dict[tuple[str, int], Future] = {}
    with _threads_per_run(plan.jobs), ThreadPoolExecutor(max_workers=plan.jobs) as pool:
        for variant, seed in jobs:  # sources before their users: FIFO, no deadlock
            futures[(variant, seed)] = pool.submit(one, variant, seed)
        told = False
        while not all(f.done() for f in futures.values()):
            concurrent.futures.wait(futures.values(), timeout=0.5)
            if stop.signum is not None:
                if not told:
                    told = True
                    print(f"stopping ({stop.name}): passed on to the running runs, which "
                          "save a checkpoint; no new run starts", file=sys.stderr, flush=True)
                stop.forward()  # kernels that started after the signal
    return {k: f.result() for k, f in futures.items()}


def _interrupted(plan: Plan, outcomes: dict[tuple[str, int], Outcome], stop: _Stop) -> int:
    """Say which runs stopped and how to resume; exit status 130."""
    stopped = [(v, s, o) for (v, s), o in outcomes.items() if o.kind == "interrupted"]
    waiting = [(v, s) for (v, s), o in outcomes.items() if o.kind == "not started"]
    print(f"interrupted by {stop.name}: {len(stopped)} run(s) stopped, {len(waiting)} not "
          "started; the report was not rebuilt", file=sys.stderr)
    for v, s, o in stopped:
        ckpt = runs.run_dir(plan.out, v, s) / runs.CHECKPOINT
        print(f"  {v} seed {s}: {o.text}"
              + ("" if ckpt.is_file() else " (no checkpoint: it restarts from iteration 0)"),
              file=sys.stderr)
    for v, s in waiting:
        print(f"  {v} seed {s}: not started", file=sys.stderr)
    print("run the same command to resume", file=sys.stderr, flush=True)
    return 130


# ---- the report -----------------------------------------------------------------------------

def provenance(stages: dict[str, float], grid_path: Path, rows: list[dict] = ()) -> dict:
    """Git commit, package versions, device, date, the wall time of each stage of this
    invocation, and ``train_seconds_total``: the training time the done runs of ``rows``
    (``write_results``) recorded, which a rebuild that skips them keeps. The grid's path
    is relative to the project when it lies inside it."""
    import importlib.metadata as md

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=NOTEBOOKS.parent, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, cwd=NOTEBOOKS.parent,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "unknown", ""
    packages = {}
    for p in ("torch", "numpy", "scikit-image", "pandas", "matplotlib", "papermill",
              "jupytext", "nbconvert", "lpips", "stlpips-pytorch"):
        try:
            packages[p] = md.version(p)
        except md.PackageNotFoundError:
            packages[p] = "not installed"
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name() if cuda else f"cpu ({torch.get_num_threads()} threads)"
    return {
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "grid": _project_path(grid_path),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(), "platform": platform.platform(),
        "device": device,
        "packages": packages, "stage_seconds": stages,
        "train_seconds_total": _train_seconds(rows),
    }


def _project_path(path: Path) -> str:
    """``path`` relative to the project's root when inside it (a committed provenance
    names no machine's folders), else absolute."""
    path = Path(path).resolve()
    try:
        return path.relative_to(NOTEBOOKS.parent.resolve()).as_posix()
    except ValueError:
        return str(path)


def _train_seconds(rows: list[dict]) -> float:
    """The sum of ``train_seconds`` over the done runs of ``rows`` (one per variant x seed;
    the projected twins and baselines add nothing)."""
    seen, total = set(), 0.0
    for r in rows:
        try:
            t = float(r.get("train_seconds"))
        except (TypeError, ValueError):
            continue
        if r.get("status") == "done" and r.get("kind") == "trained" and t == t \
                and (r["variant"], r["seed"]) not in seen:
            seen.add((r["variant"], r["seed"]))
            total += t
    return round(total, 1)


def write_results(plan: Plan) -> list[dict]:
    """``<out>/results.csv`` from whatever run folders exist (every variant of the grid,
    the seeds asked for); returns the rows that are not done, for the notes."""
    variants = plan.grid["variants"]
    results = collect(plan.out, variants, plan.seeds, plan.grid["defaults"])
    per_image = collect_per_image(plan.out, results, variants)
    results = add_gain_means(results, per_image)
    runs.write_text(plan.out / "per_image.csv", per_image.to_csv(index=False))
    runs.write_text(plan.out / "results.csv", results.to_csv(index=False))
    stale = results[results.status == "stale"]
    for _, r in stale.iterrows():
        print(f"note: {r.variant} seed {r.seed} is stale ({r.error}); it is left out of the "
              f"tables: run `--only {r.variant}` to rerun it", flush=True)
    return results.to_dict("records")


def build_report(plan: Plan, stages: dict[str, float], stop: _Stop, t_start: float) -> int:
    """results.csv, then the notebooks, then index.html. A page that cannot be built
    replaces the old index.html with one saying so: never a stale report."""
    rows = write_results(plan)
    trained = any(r["status"] == "done" and r.get("kind") != "baseline" for r in rows)
    common = {"results": str(plan.out / "results.csv"), "runs": str(plan.out / "runs"),
              "grid": str(plan.config.resolve())}
    stage_params = {"01_manifold": {"out": str(plan.out / "manifold.json")},
                    "03_artifacts": {**common, "out": str(plan.out / "artifacts.csv")},
                    "04_report": common}
    problems = []
    for stem in NOTEBOOK_STAGES:
        if stop.signum is not None:
            break
        if stem == "03_artifacts" and not trained:
            _remove_outputs(plan.out, stem, notebook=True)
            print(f"{stem}.py: skipped (no trained run has finished)", flush=True)
            continue
        params = {**stage_params[stem], **plan.grid["notebook_params"].get(stem, {})}
        t0 = time.perf_counter()
        if stem == "04_report":
            runs.write_json(plan.out / "provenance.json", provenance(stages, plan.config, rows))
        try:
            execute(f"{stem}.py", plan.out / f"{stem}.ipynb", params)
        except Exception as err:
            if stop.signum is not None:
                break
            why = f"{stem}.py failed: {_short(last_line(error_text(err)))}"
            if stem == "04_report":
                return _report_failed(plan.out, why)
            _remove_outputs(plan.out, stem)
            problems.append(why)
            print(f"error: {why} (see {plan.out / stem}.html); the report is built without "
                  "it", file=sys.stderr, flush=True)
            continue
        stages[stem] = time.perf_counter() - t0
        print(f"{stem}.py: done in {_fmt(stages[stem])}", flush=True)
    if stop.signum is not None:
        print(f"interrupted by {stop.name}: the report was not rebuilt; run the same command "
              "to build it", file=sys.stderr)
        return 130
    try:
        to_html(plan.out / "04_report.ipynb", plan.out / "index.html", code=False)
    except Exception as err:
        return _report_failed(plan.out, f"index.html: {_short(last_line(error_text(err)))}")
    print(f"report: {plan.out / 'index.html'} (total {_fmt(time.perf_counter() - t_start)})")
    if problems:
        print(f"error: {'; '.join(problems)}", file=sys.stderr)
        return 1
    return 0


def _remove_outputs(out: Path, stem: str, notebook: bool = False) -> None:
    """A stage's outputs of an earlier invocation; with ``notebook``, its executed
    notebook too (a failed stage keeps it: it shows the error)."""
    names = STAGE_OUTPUTS.get(stem, ()) + ((f"{stem}.ipynb", f"{stem}.html") if notebook else ())
    for name in names:
        (out / name).unlink(missing_ok=True)


def _report_failed(out: Path, why: str) -> int:
    """Replace ``index.html`` with a page that says the report is not current, and why."""
    import html

    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Report not built</title>"
        "</head><body><h1>The report could not be built</h1>"
        f"<p>{html.escape(when)}: {html.escape(why)}.</p>"
        "<p>The page that was here showed results of an earlier invocation and was removed. "
        "The results table is <a href='results.csv'>results.csv</a>; the failed notebook is "
        "<a href='04_report.html'>04_report.html</a>. Fix the problem and run the same "
        "command again.</p></body></html>\n")
    runs.write_text(out / "index.html", page)
    print(f"error: the report could not be built: {why}; {out / 'index.html'} now says so "
          f"(see {out / '04_report.html'})", file=sys.stderr)
    return 1


# ---- the command ------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (``argparse`` exits 2 on a malformed one)."""
    ap = argparse.ArgumentParser(prog="python -m srlib.ablate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="grid file, e.g. configs/quick.yaml")
    ap.add_argument("--only", nargs="+", metavar="VARIANT", help="run only these variants")
    ap.add_argument("--seeds", nargs="+", type=int, help="override the grid's seeds")
    ap.add_argument("--force", action="store_true",
                    help="remove the outputs of the variants asked for and rerun them (not "
                         "the runs they start from; their fine-tunes rerun when next asked "
                         "for)")
    ap.add_argument("--out", default="reports", help="output folder (default: reports)")
    ap.add_argument("--jobs", type=int, default=None,
                    help="runs at a time (default: 2 on a CPU machine, 1 with CUDA)")
    return ap.parse_args(argv)


def make_plan(a: argparse.Namespace) -> Plan:
    """Check the grid and the options; ``ValueError`` / ``FileNotFoundError`` say what is
    wrong, before anything is written."""
    grid = load_grid(a.config)
    seeds = _check_seeds(a.seeds, "--seeds") if a.seeds is not None else grid["seeds"]
    names = list(grid["variants"])
    if a.only:
        bad = [v for v in a.only if v not in grid["variants"]]
        if bad:
            raise ValueError(f"--only: unknown variant(s) {bad}; the grid has {names}")
        names = list(dict.fromkeys(a.only))
    forced = set(names) if a.force else set()  # not the sources _ordered adds
    if a.jobs is not None and a.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {a.jobs}")
    out = runs.check_writable_folder(a.out).resolve()
    jobs = a.jobs or (1 if torch.cuda.is_available() else min(2, os.cpu_count() or 1))
    return Plan(config=Path(a.config).resolve(), grid=grid, names=_ordered(names, grid),
                seeds=seeds, forced=forced, out=out, jobs=jobs)


def run(plan: Plan) -> int:
    """The runs, then the report, with SIGTERM / SIGINT passed on to the kernels."""
    t_start = time.perf_counter()
    print(f"{plan.grid['name']}: {len(plan.names)} variants x {len(plan.seeds)} seeds -> "
          f"{plan.out} ({plan.jobs} at a time)", flush=True)
    stop = _Stop()
    with _signals_passed_on(stop):
        outcomes = run_grid(plan, stop, t_start)
        if stop.signum is not None:
            return _interrupted(plan, outcomes, stop)
        return build_report(plan, {"runs": time.perf_counter() - t_start}, stop, t_start)


def main(argv: list[str] | None = None) -> int:
    """0: report built (failed runs are in it); 1: a notebook stage or the page failed; 2: bad input
    or the output folder is in use; 130: stopped by SIGTERM / SIGINT (resumable)."""
    a = parse_args(argv)
    try:
        plan = make_plan(a)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as held:
        try:
            # two runners in one folder would train every run twice and race on its files
            held.enter_context(runs.locked(plan.out, "output folder"))
        except runs.RunLocked as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return run(plan)


if __name__ == "__main__":
    sys.exit(main())
