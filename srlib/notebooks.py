"""Executing the notebooks: papermill, jupytext, nbconvert, and the kernels' signals.

Notebooks live in ``notebooks/`` as jupytext ``.py`` files; ``execute`` runs one with
papermill (parameters injected after its ``parameters`` cell) and writes the executed
``.ipynb`` and its self-contained HTML (``to_html``). One run's unit of work is
``train_run(variant, seed, config, run)``: a plain, picklable call that executes
``02_train.py`` into the run folder, the same wherever it is called. The report is
``report_stages``: ``01_manifold``, ``03_artifacts`` and ``04_report`` over a result folder
(``srlib.results``), then ``index.html``; while it runs, ``index.html`` says the report is
being rebuilt (``mark_rebuilding``).

Papermill starts each kernel in a session of its own, so a terminal's Ctrl-C or a
scheduler's SIGTERM to the caller never reaches it: ``Stop`` remembers the signal and passes
it on to the kernels (``child_pids``), whose training then saves a checkpoint and stops.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import jinja2

from srlib import results, runs
from srlib.grid import NOTEBOOK_STAGES, NOTEBOOKS

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
TRAIN = "02_train.py"
# the outputs of each report stage, removed when the stage fails or is skipped so that the
# report never shows figures of an earlier invocation
STAGE_OUTPUTS = {"01_manifold": (results.MANIFOLD,),
                 "03_artifacts": (results.ARTIFACTS, "artifacts_crops.png",
                                  "artifacts_spectra.png")}


def train_run(variant: str, seed: int, config: dict, run: str | Path,
              env: dict[str, str] | None = None, gpus: int = 1) -> None:
    """One trained run: ``02_train.py`` with papermill into ``run/train.ipynb`` (and
    ``train.html``), its parameters the variant's label, its ``Config`` fields
    (``srlib.grid.run_config``) and its ``gpus`` (more than 1: torchrun ranks,
    ``srlib.train.train_on``); ``seed`` is ``config['seed']``, named for the caller's
    logs; ``env``: variables set for its kernel only (``CUDA_VISIBLE_DEVICES``). A failure
    raises (the notebook's error, ``error_text`` words it)."""
    if config.get("seed") != seed:
        raise ValueError(f"train_run: seed {seed} but config['seed'] = {config.get('seed')}")
    run = Path(run)
    execute(TRAIN, run / "train.ipynb", {"variant": variant, "config": config, "gpus": gpus},
            env=env)


def execute(notebook: str, output: Path, params: dict,
            env: dict[str, str] | None = None) -> None:
    """Run a jupytext notebook of ``notebooks/`` with papermill, then write its HTML beside
    it.

    The kernel starts in the caller's working directory: papermill's ``cwd=`` would change
    the caller's own directory for the duration, and runs executing in parallel threads
    would then restore each other's (a race that once left the runner in notebooks/).
    Every path passed is absolute, so no notebook depends on its directory. The kernel is
    started here and handed to papermill; ``env``: its environment is the caller's with
    these set (``os.environ`` is the whole process's, so parallel runs must not change
    it)."""
    import jupytext
    import nbformat
    import papermill as pm
    from jupyter_client.manager import KernelManager

    # papermill's own log lines (kernel start, parameters a notebook does not declare)
    # would interleave with the progress lines of parallel runs; a grid's parameters are
    # checked against each notebook's parameters cell by srlib.grid instead.
    logging.getLogger("papermill").setLevel(logging.ERROR)

    nb = jupytext.read(NOTEBOOKS / notebook)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    output.parent.mkdir(parents=True, exist_ok=True)
    src = output.with_name(output.stem + ".input.ipynb")
    nbformat.write(nb, src)
    km = KernelManager(kernel_name="python3")
    try:
        # The kernel's log at ERROR: at WARNING it prints, for every notebook, that its
        # local TCP sockets are unencrypted (the other transport, IPC, would put socket
        # files in the caller's directory).
        km.start_kernel(env=os.environ | (env or {}),
                        extra_arguments=["--IPKernelApp.log_level=ERROR"])
        pm.execute_notebook(str(src), str(output), parameters=params, progress_bar=False,
                            kernel_name="python3", km=km)
    except BaseException:
        # the executed notebook shows where it failed; converting it must not replace
        # the notebook's own error with one of its own
        with contextlib.suppress(Exception):
            if output.exists():
                to_html(output, output.with_suffix(".html"), code=True)
        raise
    finally:
        src.unlink(missing_ok=True)
        if km.has_kernel:  # papermill shuts down only kernels it started
            km.shutdown_kernel(now=True)
    to_html(output, output.with_suffix(".html"), code=True)


# nbconvert's lab template, less the three scripts it loads from a CDN (MathJax,
# require.js, mermaid): the pages hold no TeX, widget or diagram, and a page read offline
# must look as it does online. Its CSS is inline already.
OFFLINE_TEMPLATE = "offline.html.j2"
OFFLINE = jinja2.DictLoader({OFFLINE_TEMPLATE: (
    "{%- extends 'lab/index.html.j2' -%}"
    "{%- block html_head_js_requirejs -%}{%- endblock -%}"
    "{%- block html_head_js_mathjax -%}{%- endblock -%}"
    "{%- block html_head_js_mermaidjs -%}{%- endblock -%}")})


def first_heading(nb) -> str | None:
    """The text of a notebook's first heading, in a Markdown cell or in the Markdown a
    cell displayed (a page whose heading comes from its grid), without Markdown's marks."""
    for cell in nb.cells:
        texts = [cell.source] if cell.cell_type == "markdown" else [
            "".join(o.get("data", {}).get("text/markdown", ""))
            for o in cell.get("outputs", [])]
        for text in texts:
            for line in text.splitlines():
                if line.startswith("#"):
                    return line.lstrip("# ").replace("`", "").strip()
    return None


def to_html(notebook: Path, html: Path, code: bool, title: str | None = None) -> None:
    """Executed notebook -> self-contained HTML (figures embedded), code cells optional;
    ``title``: the page's title (default: the notebook's first heading)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook, as_version=4)
    if title is None:
        title = first_heading(nb) or notebook.stem
    exporter = HTMLExporter(exclude_input=not code, exclude_input_prompt=not code,
                            exclude_output_prompt=True, extra_loaders=[OFFLINE],
                            template_file=OFFLINE_TEMPLATE)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    runs.write_text(html, body)


def error_text(err: BaseException) -> str:
    """The whole text of a failure, without ANSI colour codes: a notebook's own
    traceback for a papermill error, else the Python traceback."""
    if type(err).__name__ == "PapermillExecutionError":
        text = str(err)
    else:
        text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    return ANSI.sub("", text).strip()


def interrupted(err: BaseException) -> bool:
    """Whether a notebook stopped because its kernel was told to (``Interrupted``, what
    training raises on SIGTERM / SIGINT)."""
    return getattr(err, "ename", None) == "Interrupted"


# ---- the report: its notebooks, then the page ------------------------------------------------

# Each stage's inputs, hashed, as of its last success (``stage_key``): a rerun whose
# inputs are all unchanged keeps the stage's outputs instead of executing it again.
STAGE_KEYS = "stages.json"
SRLIB = Path(__file__).resolve().parent


def stage_key(out: Path, stem: str, params: dict, grid_path: Path) -> str:
    """SHA-256 of everything a report stage reads: its notebook, its parameters, the
    grid file, the library's code, the result tables and (for the page) the outputs of
    the stages before it. The runs' own files enter through ``results.csv``, whose rows
    change whenever a run does (its metrics, its training time)."""
    h = hashlib.sha256()
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    files = [NOTEBOOKS / f"{stem}.py", Path(grid_path), *sorted(SRLIB.glob("*.py"))]
    if stem != "01_manifold":  # the manifold stage reads no result
        files += [out / results.RESULTS, out / results.PER_IMAGE]
    if stem == "04_report":
        files += [out / n for outs in STAGE_OUTPUTS.values() for n in outs]
    for f in files:
        h.update(f.name.encode())
        h.update(runs.file_hash(f).encode() if f.is_file() else b"absent")
    return h.hexdigest()


def _stage_outputs_exist(out: Path, stem: str) -> bool:
    return all((out / n).is_file()
               for n in (*STAGE_OUTPUTS.get(stem, ()), f"{stem}.ipynb"))


def _read_stage_keys(out: Path) -> dict[str, str]:
    try:
        keys = json.loads((out / STAGE_KEYS).read_text())
    except (OSError, ValueError):
        return {}
    return keys if isinstance(keys, dict) else {}


def _write_stage_keys(out: Path, keys: dict[str, str]) -> None:
    runs.write_text(out / STAGE_KEYS, json.dumps(keys, indent=1))


def report_stages(out: Path, grid: dict, grid_path: Path, trained: bool,
                  stages: dict[str, float], stop: Stop) -> int:
    """The report's notebooks over the result folder ``out`` (``03_artifacts`` only when a
    trained run finished), then ``index.html``; each stage's wall time goes into
    ``stages`` and ``provenance.json``. Returns 0, 1 (a stage failed: the report is built
    without it; or the page failed: ``index.html`` says so) or 130 (stopped)."""
    common = {"results": str(out / results.RESULTS), "runs": str(out / "runs"),
              "grid": str(grid_path)}
    stage_params = {"01_manifold": {"out": str(out / results.MANIFOLD)},
                    "03_artifacts": {**common, "out": str(out / results.ARTIFACTS)},
                    "04_report": common}
    problems = []
    done = _read_stage_keys(out)
    for stem in NOTEBOOK_STAGES:
        if stop.signum is not None:
            break
        if stem == "03_artifacts" and not trained:
            _remove_outputs(out, stem, notebook=True)
            done.pop(stem, None)
            print(f"{stem}.py: skipped (no trained run has finished)", flush=True)
            continue
        # the runner's own paths last: nothing a grid says moves them out of ``out``
        params = {**grid["notebook_params"].get(stem, {}), **stage_params[stem]}
        key = stage_key(out, stem, params, grid_path)
        if done.get(stem) == key and _stage_outputs_exist(out, stem):
            print(f"{stem}.py: unchanged inputs, kept", flush=True)
            continue
        done.pop(stem, None)
        _write_stage_keys(out, done)  # a stage stopped half-way is not kept next time
        t0 = time.perf_counter()
        if stem == "04_report":
            results.record_stages(out, stages)  # the page shows the times so far
        try:
            execute(f"{stem}.py", out / f"{stem}.ipynb", params)
        except Exception as err:
            if stop.signum is not None:
                break
            why = f"{stem}.py failed: {_short(runs.last_line(error_text(err)))}"
            if stem == "04_report":
                return _report_failed(out, why)
            _remove_outputs(out, stem)
            problems.append(why)
            print(f"error: {why} (see {out / stem}.html); the report is built without it",
                  file=sys.stderr, flush=True)
            continue
        stages[stem] = time.perf_counter() - t0
        done[stem] = key
        _write_stage_keys(out, done)
        print(f"{stem}.py: done in {stages[stem]:.0f} s", flush=True)
    if stop.signum is not None:
        print(f"interrupted by {stop.name}: the report was not rebuilt; run the same command "
              "to build it", file=sys.stderr)
        return 130
    try:
        to_html(out / "04_report.ipynb", out / "index.html", code=False)
    except Exception as err:
        return _report_failed(out, f"index.html: {_short(runs.last_line(error_text(err)))}")
    print(f"report: {out / 'index.html'}", flush=True)
    if problems:
        print(f"error: {'; '.join(problems)}", file=sys.stderr)
        return 1
    return 0


def _short(line: str, n: int = 300) -> str:
    return line if len(line) <= n else line[: n - 3] + "..."


def _remove_outputs(out: Path, stem: str, notebook: bool = False) -> None:
    """A stage's outputs of an earlier invocation; with ``notebook``, its executed
    notebook too (a failed stage keeps it: it shows the error)."""
    names = STAGE_OUTPUTS.get(stem, ()) + ((f"{stem}.ipynb", f"{stem}.html") if notebook else ())
    for name in names:
        (out / name).unlink(missing_ok=True)


def _placeholder(out: Path, state: str, text: str) -> str:
    """``index.html`` as a page saying the report ``state`` (and ``text``, HTML). Where it
    cannot be written (a full disk), the old page is removed instead, never left as if
    current: returns why ('' when written)."""
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Report not current"
            f"</title></head><body><h1>The report {html.escape(state)}</h1>"
            f"<p>{html.escape(when)}: the page that was here showed results of an earlier "
            f"invocation and was removed. {text}</p></body></html>\n")
    try:
        runs.write_text(out / "index.html", page)  # atomic: whole, or not at all
        return ""
    except OSError as err:
        (out / "index.html").unlink(missing_ok=True)
        return f"{out / 'index.html'} could not be written ({err.strerror or err}) and was removed"


def mark_rebuilding(out: Path) -> None:
    """``index.html`` says the report is being rebuilt (a runner killed on the way leaves
    this page, never an old page beside new results)."""
    why = _placeholder(out, "is being rebuilt", "If this page stays, the rebuild was stopped "
                       "on the way: run the same command again.")
    if why:
        print(f"warning: {why}", file=sys.stderr)


def _report_failed(out: Path, why: str) -> int:
    """Replace ``index.html`` with a page that says the report is not current, and why."""
    unwritten = _placeholder(out, "could not be built",
                             f"{html.escape(why)}. The results table is <a href='results.csv'>"
                             "results.csv</a>; the failed notebook is <a href='04_report.html'>"
                             "04_report.html</a>. Fix the problem and run the same command "
                             "again.")
    said = unwritten or f"{out / 'index.html'} now says so (see {out / '04_report.html'})"
    print(f"error: the report could not be built: {why}; {said}", file=sys.stderr)
    return 1


# ---- signals: pass them on to the kernels -------------------------------------------------

def child_pids(parent: int | None = None) -> list[int]:
    """The processes whose parent is ``parent`` (default: this process)."""
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


class Stop:
    """SIGTERM / SIGINT: remember it, pass it on to the running kernels (each training
    saves a checkpoint and stops); the caller starts nothing new once ``signum`` is set."""

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
def signals_passed_on(stop: Stop) -> Iterator[None]:
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
