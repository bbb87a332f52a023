"""The ablation runner: a grid of variants x seeds through papermill, then the report.

    python -m srlib.ablate configs/quick.yaml [--only VARIANT ...] [--seeds 0 1] [--force]

A grid (YAML) has ``defaults`` (any ``srlib.train.Config`` field), ``seeds``,
``variants`` (``name: {loss, upsampler, ...}``) and optionally ``notebook_params``
(papermill parameters of ``01_manifold``, ``03_artifacts``, ``04_report``). A variant
named ``bicubic`` is the MATLAB bicubic baseline (evaluated, not trained);
``init_from: <variant>`` starts from that variant's generator of the same seed (which
then runs first).

Each run executes ``notebooks/02_train.py`` with papermill into
``<out>/runs/<variant>/seed<k>/`` (``train.ipynb`` and ``train.html`` beside the run's
files). A finished run with an unchanged config is skipped; an interrupted one resumes
from its checkpoint; a failed one writes ``error.txt`` and the others go on. Then
``01_manifold``, ``03_artifacts`` and ``04_report`` run; the report reads ``<out>/results.csv`` and
becomes ``<out>/index.html`` (no code cells, figures embedded).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import platform
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import torch
import yaml

from srlib.report import collect, run_dir
from srlib.train import Config, config_differences, save_atomic

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CONFIG_FIELDS = {f.name for f in dataclasses.fields(Config)}


def load_grid(path: str | Path) -> dict:
    """Read and check a grid file; ``ValueError`` names the file and the bad entry."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"grid file not found: {path}")
    grid = yaml.safe_load(path.read_text()) or {}
    for key in ("variants",):
        if not isinstance(grid.get(key), dict) or not grid[key]:
            raise ValueError(f"{path}: needs a non-empty mapping '{key}'")
    grid.setdefault("defaults", {})
    grid.setdefault("seeds", [0])
    grid.setdefault("name", path.stem)
    for name, spec in [("defaults", grid["defaults"]), *grid["variants"].items()]:
        spec = spec or {}
        unknown = set(spec) - CONFIG_FIELDS
        if unknown:
            raise ValueError(f"{path}: {name}: unknown field(s) {sorted(unknown)}; "
                             f"known: {sorted(CONFIG_FIELDS - {'out'})}")
    for name, spec in grid["variants"].items():
        grid["variants"][name] = spec = spec or {}
        if name != "bicubic" and "loss" not in spec:
            raise ValueError(f"{path}: variant {name!r} needs a 'loss'")
        src = spec.get("init_from")
        if src is not None and src not in grid["variants"]:
            raise ValueError(f"{path}: variant {name!r}: init_from {src!r} is not a variant")
    if not all(isinstance(s, int) for s in grid["seeds"]):
        raise ValueError(f"{path}: seeds must be a list of integers, got {grid['seeds']!r}")
    return grid


def run_params(grid: dict, variant: str, seed: int, out: Path) -> dict:
    """The papermill parameters of one run (a ``Config`` as plain data)."""
    spec = {**grid["defaults"], **grid["variants"][variant]}
    if spec.get("init_from"):
        spec["init_from"] = str(run_dir(out, spec["init_from"], seed).resolve())
    spec.update(seed=seed, out=str(run_dir(out, variant, seed).resolve()), progress=False)
    return {"variant": variant, **spec}


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


def is_finished(d: Path, params: dict) -> bool:
    """A run is finished when its metrics exist and its config is the one asked for."""
    if not (d / "metrics.json").is_file() or not (d / "config.json").is_file():
        return False
    return same_config(d, params)


def same_config(d: Path, params: dict) -> bool:
    """Whether the run folder ``d`` holds a run of the config asked for (so it may resume,
    or, finished, be skipped)."""
    cfg = Config(**{k: v for k, v in params.items() if k in CONFIG_FIELDS}).resolved()
    return not config_differences(d, cfg)


def execute(notebook: str, output: Path, params: dict, cwd: Path) -> None:
    """Run a jupytext notebook with papermill, then write its HTML beside it."""
    import jupytext
    import nbformat
    import papermill as pm

    # papermill warns of every parameter missing from a notebook's parameters cell; the
    # Config fields beyond the common ones are passed that way on purpose.
    logging.getLogger("papermill").setLevel(logging.ERROR)

    nb = jupytext.read(NOTEBOOKS / notebook)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    output.parent.mkdir(parents=True, exist_ok=True)
    src = output.with_name(output.stem + ".input.ipynb")
    nbformat.write(nb, src)
    try:
        pm.execute_notebook(str(src), str(output), parameters=params, cwd=str(cwd),
                            progress_bar=False, kernel_name="python3")
    finally:
        src.unlink(missing_ok=True)
        if output.exists():
            to_html(output, output.with_suffix(".html"), code=True)


def to_html(notebook: Path, html: Path, code: bool) -> None:
    """Executed notebook -> self-contained HTML (figures embedded), code cells optional."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(exclude_input=not code, exclude_input_prompt=not code,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    tmp = html.with_name(html.name + ".tmp")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(html)


def _bicubic_run(grid: dict, seed: int, out: Path) -> None:
    """The bicubic baseline as a run folder (metrics.json in the runs' schema)."""
    from srlib.data import dataset_name
    from srlib.evaluate import evaluate_sets
    from srlib.resize import BicubicDegradation

    spec = {**grid["defaults"], **grid["variants"]["bicubic"]}
    c = Config(**{k: v for k, v in spec.items() if k in CONFIG_FIELDS},
               loss="bicubic", upsampler="", out=str(run_dir(out, "bicubic", seed)))
    d = Path(c.out)
    d.mkdir(parents=True, exist_ok=True)
    per_set, kind = evaluate_sets(BicubicDegradation(c.scale).up, c.test_data, c.scale, d,
                                  model="bicubic")
    save_atomic(dataclasses.asdict(c), d / "config.json")
    result = {**per_set[dataset_name(c.test_data[0])], "datasets": per_set,
              "lpips_kind": kind, "iters": 0, "train_seconds": 0.0, "device": "cpu",
              "its_per_second": None, "resumed_from_iter": None,
              "config": dataclasses.asdict(c)}
    save_atomic(result, d / "metrics.json")


def _fmt(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}:{s:02d}"


def provenance(stages: dict[str, float], grid_path: Path) -> dict:
    """Git commit, package versions, device, date and the wall time of each stage."""
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
        "grid": str(grid_path), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(), "platform": platform.platform(),
        "device": device,
        "packages": packages, "stage_seconds": stages,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m srlib.ablate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="grid file, e.g. configs/quick.yaml")
    ap.add_argument("--only", nargs="+", metavar="VARIANT", help="run only these variants")
    ap.add_argument("--seeds", nargs="+", type=int, help="override the grid's seeds")
    ap.add_argument("--force", action="store_true",
                    help="rerun the variants asked for even if finished (not the runs they "
                         "start from)")
    ap.add_argument("--out", default="reports", help="output folder (default: reports)")
    ap.add_argument("--jobs", type=int, default=None,
                    help="runs at a time (default: 2 on a CPU machine, 1 with CUDA)")
    a = ap.parse_args(argv)
    t_start = time.perf_counter()
    try:
        grid = load_grid(a.config)
        seeds = a.seeds if a.seeds is not None else grid["seeds"]
        names = list(grid["variants"])
        if a.only:
            bad = [v for v in a.only if v not in grid["variants"]]
            if bad:
                raise ValueError(f"--only: unknown variant(s) {bad}; the grid has {names}")
            names = a.only
        forced = set(names) if a.force else set()  # not the sources _ordered adds
        names = _ordered(names, grid)
        if a.jobs is not None and a.jobs < 1:
            raise ValueError(f"--jobs must be >= 1, got {a.jobs}")
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(v, s) for v in names for s in seeds]
    jobs_n = a.jobs or (1 if torch.cuda.is_available() else min(2, os.cpu_count() or 1))
    print(f"{grid['name']}: {len(names)} variants x {len(seeds)} seeds -> {out} "
          f"({jobs_n} at a time)", flush=True)
    # CPU: several runs side by side with a share of the cores each (small convolutions
    # scale poorly across threads); GPU: one run at a time.
    threads = max(1, (os.cpu_count() or 1) // jobs_n)
    saved_env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    lock, progress = threading.Lock(), {"done": 0, "spent": 0.0, "ran": 0}

    def run_one(variant: str, seed: int) -> None:
        d = run_dir(out, variant, seed)
        params = run_params(grid, variant, seed, out)
        src = grid["variants"][variant].get("init_from")
        if src and (src, seed) in futures:
            futures[(src, seed)].result()  # the run it starts from: submitted earlier
        t0 = time.perf_counter()
        force = variant in forced
        if not force and variant != "bicubic" and is_finished(d, params):
            status, ran = "finished earlier, skipped", False
        elif not force and variant != "bicubic" and (d / "config.json").is_file() \
                and not same_config(d, params):
            msg = f"{d} holds a run of another config; rerun with --force to replace it"
            (d / "error.txt").write_text(msg + "\n")
            status, ran = f"NOT RUN ({msg})", False
        else:
            ran = True
            if force and d.exists():
                for f in ("metrics.json", "checkpoint.pt", "config.json", "losses.csv"):
                    (d / f).unlink(missing_ok=True)
            d.mkdir(parents=True, exist_ok=True)
            (d / "error.txt").unlink(missing_ok=True)
            try:
                if variant == "bicubic":
                    _bicubic_run(grid, seed, out)
                else:
                    if src and not (run_dir(out, src, seed) / "generator.pt").is_file():
                        raise RuntimeError(f"init_from {src!r} seed {seed} did not finish")
                    execute("02_train.py", d / "train.ipynb", params, NOTEBOOKS)
                status = "done"
            except Exception as err:  # one failed variant must not stop the grid
                (d / "error.txt").write_text(
                    "".join(traceback.format_exception_only(type(err), err)))
                status = f"FAILED ({type(err).__name__}; see {d / 'error.txt'})"
        dt = time.perf_counter() - t0
        with lock:
            progress["done"] += 1
            if ran:
                progress["spent"] += dt
                progress["ran"] += 1
            left = len(jobs) - progress["done"]
            per_run = progress["spent"] / progress["ran"] if progress["ran"] else 0.0
            print(f"[{progress['done']}/{len(jobs)}] {variant} seed {seed}: {status} in "
                  f"{_fmt(dt)} (elapsed {_fmt(time.perf_counter() - t_start)}, "
                  f"~{_fmt(left * per_run / jobs_n)} left)", flush=True)

    futures: dict = {}
    try:
        with ThreadPoolExecutor(max_workers=jobs_n) as pool:
            for variant, seed in jobs:  # sources before their users: FIFO, no deadlock
                futures[(variant, seed)] = pool.submit(run_one, variant, seed)
        for f in futures.values():
            f.result()
    finally:
        torch.set_num_threads(torch_threads)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    stages = {"runs": time.perf_counter() - t_start}

    results = collect(out, {v: grid["variants"][v] for v in grid["variants"]}, seeds)
    tmp = out / "results.csv.tmp"
    results.to_csv(tmp, index=False)
    tmp.replace(out / "results.csv")
    common = {"results": str(out / "results.csv"), "runs": str(out / "runs"),
              "grid": str(Path(a.config).resolve())}
    stages_nb = [("01_manifold.py", {"out": str(out / "manifold.json")}),
                 ("03_artifacts.py", {**common, "out": str(out / "artifacts.csv")}),
                 ("04_report.py", common)]
    for nb, params in stages_nb:
        stem = Path(nb).stem
        params = {**params, **grid.get("notebook_params", {}).get(stem, {})}
        t0 = time.perf_counter()
        if stem == "04_report":
            meta = provenance(stages, Path(a.config))
            save_atomic(meta, out / "provenance.json")
        try:
            execute(nb, out / f"{stem}.ipynb", params, NOTEBOOKS)
        except Exception as err:
            print(f"error: {nb} failed: {err}", file=sys.stderr)
            return 1
        stages[stem] = time.perf_counter() - t0
        print(f"{nb}: done in {_fmt(stages[stem])}", flush=True)
    to_html(out / "04_report.ipynb", out / "index.html", code=False)
    print(f"report: {out / 'index.html'} (total {_fmt(time.perf_counter() - t_start)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
