"""The result folder: run folders collected into tables, written, and read back.

A result folder (``reports/`` for ``make report``, ``reports/study/`` for the study) holds:

==================  ===================================================================
``results.csv``     one row per variant x seed x test set (``columns()``): the run's means
                    (``collect``); a run that is not done is one row with its status
``per_image.csv``   one row per variant x seed x test set x image (``collect_per_image``):
                    the metrics of each run's ``eval/<set>/per_image.csv`` and
                    ``samples.csv``, with the gains against the grid's ``pinv`` baseline
``manifold.json``   the H1 measurements and the 2-D toy's (``01_manifold``)
``artifacts.csv``   the periodic-artifact energy per variant (``03_artifacts``)
``critic.csv``      with the grid's ``critic:`` criterion, one row per run with a
                    discriminator: its critic statistic and whether it is healthy
``provenance.json`` commit, grid, packages, device, date, wall time per stage, and the
                    SHA-256 of ``results.csv`` it describes (``provenance``)
``runs/``           the run folders (``srlib.runs``)
==================  ===================================================================

Statuses of a run (``run_status``): ``done``; ``failed`` (``error.txt``: its last line);
``stale`` (a fine-tune whose source was retrained after it); ``interrupted`` (started,
resumable); ``not run`` (never started, or the runner's ``error.txt`` says why: its
source failed, or its folder holds a run of another config). The readers
(``read_results``, ``read_per_image``, ``read_provenance``) refuse a damaged file with a
message that names it.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from collections.abc import Collection, Iterable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from srlib import runs
from srlib.grid import (
    baseline_of,
    projected_name,
    test_sets,
    total_iters,
    twin_source,
    variant_seeds,
    variant_spec,
)
from srlib.metrics import metrics_where
from srlib.stats import GAIN_METRICS, KEYS, add_gains

PROJECT = Path(__file__).resolve().parents[1]
GAINS = GAIN_METRICS  # computed against the pinv baseline (``stats.add_gains``)


def means() -> list[str]:
    """The run's means that ``results.csv`` holds (``METRICS`` with ``results``), in order;
    read at each call, so that an entry added to the table is a column at once."""
    return metrics_where(source="image", results=True)


def columns() -> list[str]:
    """The columns of ``results.csv``, in order."""
    return ["variant", "kind", "loss", "upsampler", "seed", "dataset", "status", *means(),
            "train_seconds", *GAINS, "lpips_kind", "iters", "iters_total", "device",
            "perc_backend", "error"]

KINDS = ("baseline", "trained", "projected")
RESULTS, PER_IMAGE, PROVENANCE = "results.csv", "per_image.csv", "provenance.json"
MANIFOLD, ARTIFACTS = "manifold.json", "artifacts.csv"  # written by 01_manifold, 03_artifacts
VERDICTS = "verdicts.csv"  # written by 04_report: ``srlib.stats.verdict_table``
CRITIC = "critic.csv"  # with the grid's ``critic:`` criterion: ``critic_table``


# ---- run folders -> tables ----------------------------------------------------------------

def run_status(run: str | Path) -> tuple[str, str]:
    """``(status, why)`` of a run folder (the statuses of the module doc)."""
    run = Path(run)
    if (run / runs.ERROR).is_file():
        text = (run / runs.ERROR).read_text()
        if text.startswith(runs.NOT_RUN):
            return "not run", runs.last_line(text[len(runs.NOT_RUN):])
        return "failed", runs.last_line(text)
    if runs.is_finished(run):
        why = runs.is_stale(run)
        return ("stale", why) if why else ("done", "")
    if (run / runs.CONFIG).is_file() or (run / runs.CHECKPOINT).is_file():
        return "interrupted", "resumable: run the runner again"
    return "not run", ""


def collect(root: Path, grid: dict, seeds: list[int]) -> pd.DataFrame:
    """One row per variant x seed x test set, plus a ``<variant>+P`` (``+B``) row per
    post-hoc twin of a trained run (kind ``projected``: the same outputs made consistent
    after training, ``srlib.runs.TWINS``); a run that
    is not done is one row with its status and why. A closed-form baseline is evaluated
    once, with the first seed."""
    rows = []
    for variant, spec in grid["variants"].items():
        for seed in variant_seeds(spec, seeds):
            rows += _run_rows(runs.run_dir(root, variant, seed), variant, spec or {}, seed,
                              total_iters(grid, variant))
    return pd.DataFrame(rows, columns=columns())


def _run_rows(d: Path, variant: str, spec: dict, seed: int, iters_total: int) -> list[dict]:
    base = baseline_of(spec)
    row = {"variant": variant, "kind": "baseline" if base else "trained",
           "loss": base or spec.get("loss", ""), "upsampler": spec.get("upsampler", ""),
           "seed": seed}
    try:
        status, why = run_status(d)
        m = runs.read_metrics(d) if status == "done" else {}
    except ValueError as err:  # a damaged file: this run fails, not the table
        status, why = "failed", str(err)
    if status != "done":
        return [{**row, "dataset": "", "status": status, "error": why}]
    common = {"train_seconds": m.get("train_seconds", np.nan),
              "lpips_kind": m["lpips_kind"], "iters": m["iters"],
              "iters_total": iters_total, "device": m["device"],
              "perc_backend": m.get("perc_backend") or "", "error": ""}
    names = means()
    out = [{**row, "dataset": name, "status": "done", **{k: ds.get(k, np.nan) for k in names},
            **common} for name, ds in m["datasets"].items()]
    for suffix, sets in (m.get("twins") or {}).items():
        for name, ds in sets.items():
            out.append({**row, "variant": projected_name(variant, suffix),
                        "kind": "projected", "dataset": name, "status": "done",
                        **{k: ds.get(k, np.nan) for k in names}, **common})
    return out


def per_image_table(folders: Iterable[tuple[str, int, Path]],
                    sets: Collection[str] | None = None) -> pd.DataFrame:
    """The long per-image table of run folders ``(variant, seed, run_dir)``: ``KEYS`` and
    the metrics of each ``eval/<set>/per_image.csv``, joined on the image with the
    K-sample statistics of ``eval/<set>/samples.csv`` where the run has them. Failed runs
    (``error.txt`` present) and folders without such files are skipped, and so is a set
    outside ``sets`` (a stray evaluation the grid does not ask for; a note says so). A
    cell that is not a number raises ``ValueError`` naming the file, row and column."""
    parts = []
    for variant, seed, d in folders:
        if (Path(d) / runs.ERROR).is_file():
            continue
        for dataset in runs.eval_sets(d):
            where = runs.eval_dir(d, dataset)
            if sets is not None and dataset not in sets:
                print(f"note: {where} is not a test set of the grid ({', '.join(sets)}); "
                      "left out", file=sys.stderr)
                continue
            t = _numeric(_read_csv(where / runs.PER_IMAGE), where / runs.PER_IMAGE)
            if (where / runs.SAMPLES_CSV).is_file():
                s = _numeric(_read_csv(where / runs.SAMPLES_CSV), where / runs.SAMPLES_CSV)
                t = t.merge(s[[c for c in s.columns if c == "image" or c not in t.columns]],
                            on="image", how="left", sort=False)
            t.insert(0, "dataset", dataset)
            t.insert(0, "seed", seed)
            t.insert(0, "variant", variant)
            parts.append(t)
    if not parts:
        return pd.DataFrame(columns=KEYS)
    out = pd.concat(parts, ignore_index=True)
    return out[KEYS + [c for c in out.columns if c not in KEYS]]


def _numeric(t: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``t`` with every column but ``image`` numeric; ``ValueError`` names the first cell
    that is not a number (``inf`` and ``nan`` are numbers)."""
    for c in t.columns:
        if c == "image" or pd.api.types.is_numeric_dtype(t[c]):
            continue
        values = pd.to_numeric(t[c], errors="coerce")
        bad = values.isna() & t[c].notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(f"{path}: row {i + 2}, column '{c}': {t[c].iloc[i]!r} is not a "
                             "number; rebuild it (evaluate the run again)")
        t[c] = values
    return t


def collect_per_image(root: Path, results: pd.DataFrame, grid: dict) -> pd.DataFrame:
    """The per-image table of every done run in ``results`` (post-hoc twins from their
    folders, ``srlib.runs.TWINS``), with the gains against the grid's ``pinv`` baseline
    when it has one (else those columns are NaN)."""
    done = results[results.status == "done"].drop_duplicates(["variant", "seed"])
    folders = []
    for _, r in done.iterrows():
        twin = twin_source(r.variant, grid["variants"]) if r.kind == "projected" else None
        d = runs.run_dir(root, twin[0] if twin else r.variant, int(r.seed))
        folders.append((r.variant, int(r.seed), d / runs.TWINS[twin[1]][1] if twin else d))
    table = per_image_table(folders, test_sets(grid))
    variants = grid["variants"]
    pinv = [v for v, spec in variants.items() if baseline_of(spec) == "pinv"]
    if pinv and not table.empty and pinv[0] in set(table.variant):
        return add_gains(table, baseline=pinv[0], baselines=baseline_variants(grid))
    return table.assign(**{g: np.nan for g in GAINS})


def add_gain_means(results: pd.DataFrame, per_image: pd.DataFrame) -> pd.DataFrame:
    """``results`` with the per-run means of the gains (``GAINS``)."""
    if per_image.empty or GAINS[0] not in per_image:
        return results
    gains = per_image.groupby(["variant", "seed", "dataset"])[GAINS].mean().reset_index()
    out = results.drop(columns=GAINS).merge(gains, on=["variant", "seed", "dataset"],
                                            how="left")
    return out[columns()]


def baseline_variants(grid: dict) -> list[str]:
    """The grid's closed-form baselines (seed-independent: counted once per image)."""
    return [v for v, spec in grid["variants"].items() if baseline_of(spec)]


def variant_kinds(results: pd.DataFrame) -> dict[str, str]:
    """variant -> ``baseline`` | ``trained`` | ``projected`` (the ``kind`` column), in
    the table's order."""
    if results.empty:
        return {}
    k = results.groupby("variant", sort=False)["kind"].first()
    return {v: x if x in KINDS else "trained" for v, x in k.items()}


def critic_statistic(run: Path, column: str, last: float) -> float:
    """The mean of ``column`` of the run's ``losses.csv`` over the rows of its last
    ``last`` share of iterations (iteration > (1 - last) x the last logged one); NaN
    where the run logged no such values."""
    path = Path(run) / runs.LOSSES
    if not path.is_file():
        return float("nan")
    log = _read_csv(path)
    if column not in log or log.empty:
        return float("nan")
    tail = pd.to_numeric(log.loc[log.iter > (1 - last) * log.iter.max(), column],
                         errors="coerce")
    return float(tail.mean()) if tail.notna().any() else float("nan")


def critic_table(root: Path, grid: dict, results: pd.DataFrame) -> pd.DataFrame:
    """One row per done trained run of ``results`` (``collect``'s table) with a
    discriminator (a loss with an ``adv`` term) under the grid's criterion
    (``srlib.grid.check_critic``): ``variant``, ``seed``, ``value`` (its
    ``critic_statistic``), ``low``, ``high``, ``healthy`` (within them), ``column``,
    ``last``."""
    from srlib.losses import parse_spec

    crit = grid.get("critic")
    cols = ["variant", "seed", "value", "low", "high", "healthy", "column", "last"]
    if not crit:
        return pd.DataFrame(columns=cols)
    low, high = crit["between"]
    done = results[(results.status == "done") & (results.kind == "trained")]
    rows = []
    for r in done.drop_duplicates(["variant", "seed"]).itertuples():
        loss = str(variant_spec(grid, r.variant).get("loss", "pixel"))
        if "adv" not in {t.name for t in parse_spec(loss)}:
            continue
        value = critic_statistic(runs.run_dir(root, r.variant, int(r.seed)), crit["column"],
                                 crit["last"])
        rows.append({"variant": r.variant, "seed": int(r.seed), "value": value, "low": low,
                     "high": high, "healthy": bool(low <= value <= high),
                     "column": crit["column"], "last": crit["last"]})
    return pd.DataFrame(rows, columns=cols)


def read_critic(folder: str | Path) -> pd.DataFrame | None:
    """``critic.csv`` of a result folder, or ``None`` where absent (no criterion)."""
    path = Path(folder) / CRITIC
    return _read_csv(path) if path.is_file() else None


# ---- writing the folder -------------------------------------------------------------------

def write(out: Path, grid: dict, seeds: list[int]) -> pd.DataFrame:
    """``results.csv`` and ``per_image.csv`` of ``out`` from whatever run folders exist
    (every variant of the grid, with ``seeds``); returns the results table."""
    results = collect(out, grid, seeds)
    per_image = collect_per_image(out, results, grid)
    results = add_gain_means(results, per_image)
    runs.write_text(out / PER_IMAGE, per_image.to_csv(index=False))
    runs.write_text(out / RESULTS, results.to_csv(index=False))
    if grid.get("critic"):
        runs.write_text(out / CRITIC, critic_table(out, grid, results).to_csv(index=False))
    else:
        (out / CRITIC).unlink(missing_ok=True)
    return results


def provenance(out: Path, stages: dict[str, float], grid_path: Path,
               results: pd.DataFrame, grid: dict | None = None) -> dict:
    """Git commit, package versions, device, date, the wall time of each stage of this
    invocation, ``train_seconds_total`` (the training time the done runs of ``results``
    recorded, which a rebuild that skips them keeps), and the SHA-256 and row count of
    ``out/results.csv`` and ``out/per_image.csv`` (``read_results``, ``read_per_image``
    check them), ``invocations`` (each runner invocation that wrote the folder: commit,
    date, wall seconds of its runs stage), and where ``grid`` says ``declared``, its
    ``declaration``. The grid's
    path is relative to
    the project when it lies inside it."""
    import importlib.metadata as md

    import torch

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=PROJECT, timeout=10).stdout.strip()
        # the result folder itself is left out: the runner has just rewritten the
        # committed study's tables in it, which is what a rebuild is for
        inside = not Path(project_path(out)).is_absolute()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", *([f":(exclude){project_path(out)}"] if inside else [])],
                               capture_output=True, text=True, cwd=PROJECT,
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
    commit += " (with uncommitted changes)" if dirty else ""
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    # every invocation that wrote this folder, with the wall time of its runs: a rebuild
    # that skips the finished runs keeps the time the first one spent training them
    try:
        before = (read_provenance(out) or {}).get("invocations", [])
    except ValueError:
        before = []
    invocations = [*before, {"commit": commit, "date": date,
                             "runs_seconds": round(stages.get("runs", 0.0), 1)}][-50:]
    return {
        "commit": commit,
        "grid": project_path(grid_path),
        "date": date,
        "python": platform.python_version(), "platform": platform.platform(),
        "device": device,
        "packages": packages, "stage_seconds": stages,
        "train_seconds_total": _train_seconds(results),
        "invocations": invocations,
        **({"declared": declaration(grid)} if grid and grid.get("declared") else {}),
        "results_sha256": runs.file_hash(out / RESULTS), "results_rows": len(results),
        **({"per_image_sha256": runs.file_hash(out / PER_IMAGE),
            "per_image_rows": _rows(out / PER_IMAGE)} if (out / PER_IMAGE).is_file() else {}),
    }


def _grid_at(commit: str, path: str) -> tuple[dict | None, str, str]:
    """The grid file ``path`` as commit ``commit`` holds it, loaded, and that commit's
    date: ``(grid, date, "")``, or ``(None, "", why)`` where git cannot show it."""
    import tempfile

    from srlib.grid import load_grid

    try:
        shown = subprocess.run(["git", "show", f"{commit}:{path}"], capture_output=True,
                               text=True, cwd=PROJECT, timeout=30)
        date = subprocess.run(["git", "show", "-s", "--format=%cI", commit],
                              capture_output=True, text=True, cwd=PROJECT, timeout=30)
    except (OSError, subprocess.SubprocessError) as err:
        return None, "", f"git could not be run ({err})"
    if shown.returncode != 0:
        return None, "", f"git has no {path} at {commit}"
    with tempfile.TemporaryDirectory() as tmp:
        old_path = Path(tmp) / Path(path).name
        old_path.write_text(shown.stdout)
        try:
            return load_grid(old_path), date.stdout.strip(), ""
        except ValueError as err:
            return None, "", f"the declared grid no longer loads ({err})"


DECIDING = ("seeds", "defaults", "variants", "hypotheses", "critic")  # what results depend on


def _altered(old: dict, new: dict) -> list[str]:
    """What an extension of ``old`` into ``new`` altered rather than added: seeds, defaults
    or critic changed; a variant or hypothesis of ``old`` removed or changed; a primary
    hypothesis added (the primaries' order is fixed at the first declaration)."""
    out = [k for k in ("seeds", "defaults", "critic") if old.get(k) != new.get(k)]
    if any(new["variants"].get(k) != v for k, v in old["variants"].items()):
        out.append("variants")
    old_h = {h.id: h for h in old.get("hypotheses") or []}
    new_h = {h.id: h for h in new.get("hypotheses") or []}
    if any(new_h.get(k) != h for k, h in old_h.items()) or any(
            h.primary for k, h in new_h.items() if k not in old_h):
        out.append("hypotheses")
    return out


def declaration(grid: dict) -> dict | None:
    """Where a grid with ``declared:`` was declared, and whether what decides its results
    changed since: ``{"commit", "path", "date", "changed", "extensions"}``.

    ``declared`` is ``COMMIT:PATH`` or a list of them, oldest first: the first declaration,
    then each commit that extended the grid before the runs it added ran. ``changed``: the
    parts (``DECIDING``) that differ between the last of them and the grid now (empty:
    only prose or layout changed). ``extensions``: one ``{"commit", "path", "date",
    "added", "altered"}`` per later entry, ``added`` the variants and hypotheses it added,
    ``altered`` what it changed instead of adding (``_altered``; empty for a clean
    extension). ``{"commit", "path", "error"}`` where git cannot show one of them. None
    without ``declared``."""
    if not grid.get("declared"):
        return None
    entries = grid["declared"] if isinstance(grid["declared"], list) else [grid["declared"]]
    loaded = []
    for entry in entries:
        commit, path = entry.split(":", 1)
        old, date, why = _grid_at(commit, path)
        if old is None:
            return {"commit": commit, "path": path, "error": why}
        loaded.append((commit, path, date, old))
    extensions = []
    for (_, _, _, prev), (commit, path, date, old) in zip(loaded[:-1], loaded[1:], strict=True):
        added = [k for k in old["variants"] if k not in prev["variants"]]
        ids = {h.id for h in prev.get("hypotheses") or []}
        added += [h.id for h in old.get("hypotheses") or [] if h.id not in ids]
        extensions.append({"commit": commit, "path": path, "date": date, "added": added,
                           "altered": _altered(prev, old)})
    commit, path, date, _ = loaded[0]
    last = loaded[-1][3]
    return {"commit": commit, "path": path, "date": date, "extensions": extensions,
            "changed": [k for k in DECIDING if last.get(k) != grid.get(k)]}


def _rows(path: Path) -> int:
    """The data rows of a CSV the project wrote (its lines but the header)."""
    with path.open("rb") as f:
        return max(0, sum(1 for _ in f) - 1)


def record_stages(out: Path, stages: dict[str, float]) -> None:
    """The wall time of each stage so far, into ``out/provenance.json``."""
    prov = read_provenance(out) or {}
    runs.write_json(out / PROVENANCE, {**prov, "stage_seconds": stages})


def project_path(path: Path) -> str:
    """``path`` relative to the project's root when inside it (a committed provenance
    names no machine's folders), else absolute."""
    path = Path(path).resolve()
    try:
        return path.relative_to(PROJECT.resolve()).as_posix()
    except ValueError:
        return str(path)


def _train_seconds(results: pd.DataFrame) -> float:
    """The sum of ``train_seconds`` over the done trained runs (one per variant x seed;
    the projected twins and baselines add nothing)."""
    done = results[(results.status == "done") & (results.kind == "trained")]
    t = pd.to_numeric(done.drop_duplicates(["variant", "seed"])["train_seconds"],
                      errors="coerce")
    return round(float(t.sum()), 1)


# ---- reading it back ------------------------------------------------------------------------

def _read_csv(path: Path, **kw) -> pd.DataFrame:
    """A CSV the project wrote; ``ValueError`` names the file when it cannot be read."""
    try:
        return pd.read_csv(path, dtype={"image": str, "variant": str, "dataset": str}, **kw)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable CSV ({type(err).__name__}: "
                         f"{str(err).strip().splitlines()[0]}); rebuild it with the runner"
                         ) from None


def read_results(folder: str | Path) -> pd.DataFrame:
    """``results.csv`` of a result folder, checked: every column of ``columns()``, and the
    SHA-256 that ``provenance.json`` recorded (a file cut short or rewritten since is
    refused). ``ValueError`` / ``FileNotFoundError`` name the file."""
    path = Path(folder) / RESULTS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no results table here; build it with "
                                "`python -m srlib.ablate GRID --out FOLDER`")
    t = _read_csv(path, keep_default_na=False, na_values=[""])
    missing = [c for c in columns() if c not in t.columns]
    if missing:
        raise ValueError(f"{path}: lacks column(s) {', '.join(missing)}; it is not a results "
                         "table of this project's runner (rebuild it with the runner)")
    prov = read_provenance(folder)
    want = prov.get("results_sha256") if prov else None
    if want and runs.file_hash(path) != want:
        raise ValueError(f"{path}: does not match {Path(folder) / PROVENANCE} (its SHA-256 "
                         f"differs; {len(t)} rows read, {prov.get('results_rows', '?')} "
                         "written): cut short or rewritten since; rebuild it with the runner")
    return t


def read_per_image(folder: str | Path) -> pd.DataFrame | None:
    """``per_image.csv`` of a result folder, or ``None`` where it is absent or empty (no
    done run); a damaged one, or one whose SHA-256 is not the one ``provenance.json``
    recorded (cut short: a mean would silently become a few images' mean), raises
    ``ValueError`` naming it."""
    path = Path(folder) / PER_IMAGE
    if not path.is_file() or path.stat().st_size == 0:
        return None
    prov = read_provenance(folder) or {}
    want = prov.get("per_image_sha256")
    if want and runs.file_hash(path) != want:
        raise ValueError(f"{path}: does not match {Path(folder) / PROVENANCE} (its SHA-256 "
                         f"differs; {_rows(path)} rows here, {prov.get('per_image_rows', '?')} "
                         "written): cut short or rewritten since; rebuild it with the runner")
    t = _read_csv(path)
    missing = [c for c in KEYS if c not in t.columns]
    if missing:
        raise ValueError(f"{path}: lacks column(s) {', '.join(missing)}; rebuild it with the "
                         "runner")
    return None if t.empty else t


def read_provenance(folder: str | Path) -> dict | None:
    """``provenance.json`` of a result folder as a mapping, or ``None`` where absent;
    ``ValueError`` names the file when it is not a JSON object."""
    path = Path(folder) / PROVENANCE
    return runs.read_json(path) if path.is_file() else None



def write_verdicts(folder: str | Path, verdicts: pd.DataFrame) -> Path:
    """``verdicts.csv`` beside ``results.csv`` (atomically): the verdict table the page
    shows, so that it can be read without the page (``python -m srlib.report FOLDER
    --verdicts GRID`` recomputes it from ``per_image.csv``)."""
    path = Path(folder) / VERDICTS
    runs.write_text(path, verdicts.to_csv(index=False))
    return path


def read_manifold(folder: str | Path) -> dict | None:
    """``manifold.json`` of a result folder, or ``None`` where absent."""
    path = Path(folder) / MANIFOLD
    return runs.read_json(path) if path.is_file() else None


def read_artifacts(folder: str | Path) -> pd.DataFrame | None:
    """``artifacts.csv`` of a result folder, or ``None`` where absent."""
    path = Path(folder) / ARTIFACTS
    return _read_csv(path) if path.is_file() else None
