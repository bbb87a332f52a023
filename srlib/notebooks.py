"""Executing the notebooks: papermill, jupytext, nbconvert, and the kernels' signals.

Notebooks live in ``notebooks/`` as jupytext ``.py`` files; ``execute`` runs one with
papermill (parameters injected after its ``parameters`` cell) and writes the executed
``.ipynb`` and its self-contained HTML (``to_html``). One run's unit of work is
``train_run(variant, seed, config, run)``: a plain, picklable call that executes
``02_train.py`` into the run folder, the same wherever it is called.

Papermill starts each kernel in a session of its own, so a terminal's Ctrl-C or a
scheduler's SIGTERM to the caller never reaches it: ``Stop`` remembers the signal and passes
it on to the kernels (``child_pids``), whose training then saves a checkpoint and stops.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path

from srlib import runs
from srlib.grid import NOTEBOOKS

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
TRAIN = "02_train.py"


def train_run(variant: str, seed: int, config: dict, run: str | Path) -> None:
    """One trained run: ``02_train.py`` with papermill into ``run/train.ipynb`` (and
    ``train.html``), its parameters the variant's label and its ``Config`` fields
    (``srlib.grid.run_config``); ``seed`` is ``config['seed']``, named for the caller's
    logs. A failure raises (the notebook's error, ``error_text`` words it)."""
    if config.get("seed") != seed:
        raise ValueError(f"train_run: seed {seed} but config['seed'] = {config.get('seed')}")
    run = Path(run)
    execute(TRAIN, run / "train.ipynb", {"variant": variant, "config": config})


def execute(notebook: str, output: Path, params: dict) -> None:
    """Run a jupytext notebook of ``notebooks/`` with papermill, then write its HTML beside
    it.

    The kernel starts in the caller's working directory: papermill's ``cwd=`` would change
    the caller's own directory for the duration, and runs executing in parallel threads
    would then restore each other's (a race that once left the runner in notebooks/).
    Every path passed is absolute, so no notebook depends on its directory."""
    import jupytext
    import nbformat
    import papermill as pm

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
