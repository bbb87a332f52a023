"""The ablation runner: a grid of variants x seeds, then the report.

    python -m srlib.ablate configs/quick.yaml [--only VARIANT ...] [--seeds 0 1] [--force]
    python -m srlib.ablate GRID --executor slurm [--slurm KEY=VALUE ...] [--wait]

The grid file and what a variant is: ``srlib.grid``. Each trained run is one call of
``srlib.notebooks.train_run`` (``notebooks/02_train.py`` through papermill) into
``<out>/runs/<variant>/seed<k>/``; a closed-form baseline is evaluated in its folder. A
finished run with an unchanged config is skipped; an interrupted one resumes from its
checkpoint; a failed one writes ``error.txt`` (last line) and ``traceback.txt`` and the
others go on. ``--force`` clears a run's outputs, then reruns it. A fine-tune whose source
was retrained since is rerun; one whose source failed is not run. One runner at a time per
output folder (``<out>/.lock``). SIGTERM / SIGINT are passed on to the running trainings,
which save a checkpoint; the runner exits 130 and says the command that resumes. Then the
result folder is written (``srlib.results``) and ``01_manifold``, ``03_artifacts`` and
``04_report`` run; the report becomes ``<out>/index.html`` (no code cells, figures
embedded). With ``--executor slurm`` each run that is not done is a SLURM job instead
(``srlib.slurm``), and the report is built once no job is queued or running. Nothing but
``__main__`` and the tests imports this module.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import errno
import os
import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import torch

from srlib import grid as gr
from srlib import results, runs
from srlib.evaluate import baseline_done, baseline_run
from srlib.notebooks import (
    Stop,
    error_text,
    interrupted,
    mark_rebuilding,
    report_stages,
    signals_passed_on,
    train_run,
)


@dataclasses.dataclass
class Outcome:
    """What became of one run: ``kind`` (done, skipped, failed, refused, not run,
    interrupted, not started) and the line the progress shows."""

    kind: str
    text: str
    job: str | None = None  # --executor slurm: the run's SLURM job, while it is live

    @property
    def usable(self) -> bool:
        """Whether a fine-tune may start from this run's generator (on SLURM: a job that
        will write it, which the fine-tune's job waits for)."""
        return self.kind in ("done", "skipped") or self.job is not None


@dataclasses.dataclass
class Plan:
    """A checked invocation: the grid and what of it to run, where, how many at a time;
    ``command``: the command line that resumes it."""

    config: Path
    grid: dict
    names: list[str]
    seeds: list[int]
    forced: set[str]
    out: Path
    jobs: int
    command: str = ""
    gpus: list[str] = dataclasses.field(default_factory=list)  # one per trained run at a time
    executor: str = "local"
    slurm: dict = dataclasses.field(default_factory=dict)  # srlib.sbatch.check_settings
    wait: bool = False

    @property
    def report_seeds(self) -> list[int]:
        """The seeds the result folder shows: the grid's, then any other asked for (a run
        of fewer seeds never hides the others' finished runs)."""
        return list(dict.fromkeys([*self.grid["seeds"], *self.seeds]))


# ---- one run --------------------------------------------------------------------------------

def config_differences(d: Path, config: dict) -> list[str]:
    """What differs (``'field: old -> new'``) between the run in folder ``d`` and
    ``config`` (``Config`` fields); empty where it may resume or, finished, be skipped."""
    from srlib import train

    return train.config_differences(d, train.Config(**config).resolved())


# how a run is started when it must be: (run folder, work, the source's outcome) -> outcome;
# the work is srlib.slurm.RunJob's: ("train", variant, seed, config, gpus) or
# ("baseline", config)
Submit = Callable[[Path, tuple, "Outcome | None"], Outcome]


def run_one(plan: Plan, variant: str, seed: int, sources: dict[tuple[str, int], Future],
            stop: Stop, gpus: GpuPool | None = None, submit: Submit | None = None
            ) -> Outcome:
    """Skip, resume, rerun or refuse one run, as its folder and its source say; a run to
    (re)start is trained here, or handed to ``submit`` (``--executor slurm``)."""
    d = runs.run_dir(plan.out, variant, seed)
    start = submit or _here(stop, gpus)
    spec = plan.grid["variants"][variant]
    src = spec.get("init_from")
    src_outcome = sources[(src, seed)].result() if src else None  # submitted earlier
    if stop.signum is not None:
        return Outcome("not started", "not started (stopping)")
    if gr.baseline_of(spec):
        config = gr.baseline_config(plan.grid, variant, seed, plan.out)
        if variant not in plan.forced and baseline_done(d, config):
            return Outcome("skipped", "finished earlier, skipped")
        return start(d, ("baseline", config), None)
    config = gr.run_config(plan.grid, variant, seed, plan.out)
    if src_outcome is not None:
        why = _unusable_source(runs.run_dir(plan.out, src, seed), src, seed, src_outcome)
        if why:
            # its old outputs, if any, no longer follow from its source: error.txt makes
            # the table show the reason instead of those numbers
            _record(d, runs.NOT_RUN + why)
            return Outcome("not run", f"NOT RUN ({why})")
    note = ""
    if variant in plan.forced:
        with runs.locked(d, "run folder"):
            runs.clear(d)  # before the rerun: a failed rerun leaves no old generator behind
        note = " (forced: old outputs removed)"
    elif (d / runs.CONFIG).is_file():
        diff = config_differences(d, config)
        if diff:
            msg = (f"{d} holds a run of another config ({'; '.join(diff)}); rerun with "
                   "--force to replace it, or put the grid back")
            _record(d, runs.NOT_RUN + msg)
            return Outcome("refused", f"NOT RUN ({msg})")
        stale = runs.is_stale(d) if src else None
        if stale:
            with runs.locked(d, "run folder"):
                runs.clear(d)
            note = f" (rerun from scratch: {stale})"
        elif runs.is_finished(d):
            _drop_runner_error(d)
            return Outcome("skipped", "finished earlier, skipped")
    outcome = start(d, ("train", variant, seed, config, gr.variant_gpus(spec)), src_outcome)
    outcome.text += note
    return outcome


def _here(stop: Stop, gpus: GpuPool | None) -> Submit:
    """The local executor's way to run a run: in this process's kernels, now (trained on
    as many GPUs of the pool as its variant's ``gpus``, when there is a pool)."""

    def start(d: Path, work: tuple, _src: Outcome | None) -> Outcome:
        if work[0] == "baseline":
            return _attempt(d, stop, lambda: baseline_run(d, work[1]))
        _, variant, seed, config, n = work
        with _gpus_of(gpus, n) as env:
            if stop.signum is not None:  # stopped while it waited for its GPUs
                return Outcome("not started", "not started (stopping)")
            outcome = _attempt(d, stop, lambda: train_run(variant, seed, config, d, env=env,
                                                          gpus=n))
        if env:
            many = "," in env["CUDA_VISIBLE_DEVICES"]
            outcome.text += f" on GPU{'s' if many else ''} {env['CUDA_VISIBLE_DEVICES']}"
        return outcome

    return start


class GpuPool:
    """The GPUs of ``--gpus``, lent to runs ``n`` at a time (``n``: a variant's ``gpus``)."""

    def __init__(self, gpus: list[str]) -> None:
        self.free = list(gpus)
        self.changed = threading.Condition()

    @contextlib.contextmanager
    def take(self, n: int) -> Iterator[list[str]]:
        """``n`` GPUs for one run alone (waiting until they are free), back when it ends."""
        with self.changed:
            self.changed.wait_for(lambda: len(self.free) >= n)
            got, self.free = self.free[:n], self.free[n:]
        try:
            yield got
        finally:
            with self.changed:
                self.free += got
                self.changed.notify_all()


@contextlib.contextmanager
def _gpus_of(pool: GpuPool | None, n: int) -> Iterator[dict[str, str] | None]:
    """``n`` GPUs of the pool as the kernel's environment (``CUDA_VISIBLE_DEVICES``);
    None without a pool (CPU)."""
    if pool is None:
        yield None
        return
    with pool.take(n) as got:
        yield {"CUDA_VISIBLE_DEVICES": ",".join(got)}


def _unusable_source(src_dir: Path, src: str, seed: int, outcome: Outcome) -> str:
    """Why a fine-tune cannot start from its source run, or '' when it can."""
    if not outcome.usable:
        what = {"refused": "holds a run of another config",
                "interrupted": "was interrupted"}.get(outcome.kind, outcome.kind)
        return f"its source {src} seed {seed} {what}"
    if outcome.job is None and not (src_dir / runs.GENERATOR).is_file():
        return (f"its source {src} seed {seed} has no {runs.GENERATOR}: rerun it with "
                f"`--only {src} --force`, then this one")
    return ""


def _record(d: Path, text: str) -> str:
    """``runs.write_error``, with a full disk said in words (the run's files stay as they
    were); returns the line the progress shows."""
    try:
        return runs.write_error(d, text)
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        line = runs.last_line(text) or "unknown error"
        print(f"error: no space left on {d} to record its error ({line}); free space and "
              "run the same command", file=sys.stderr, flush=True)
        return line


def _attempt(d: Path, stop: Stop, work: Callable[[], None]) -> Outcome:
    """Run ``work`` for the run folder ``d``; a failure is recorded, never raised."""
    d.mkdir(parents=True, exist_ok=True)
    for name in (runs.ERROR, runs.TRACEBACK):  # a resumed run starts without its old error
        (d / name).unlink(missing_ok=True)
    try:
        work()
        return Outcome("done", "done")
    except Exception as err:  # one failed variant must not stop the grid
        text = error_text(err)
        if stop.signum is not None or interrupted(err):
            return Outcome("interrupted", f"interrupted ({runs.last_line(text)})")
        line = _record(d, text)
        return Outcome("failed", f"FAILED ({_short(line)}; see {d / runs.TRACEBACK})")


def _drop_runner_error(d: Path) -> None:
    """A run found valid again loses the error.txt the runner wrote when it did not run
    it (its source had failed, or its config differed); a training error stays."""
    err = d / runs.ERROR
    if err.is_file() and err.read_text().startswith(runs.NOT_RUN):
        err.unlink()
        (d / runs.TRACEBACK).unlink(missing_ok=True)


def _short(line: str, n: int = 300) -> str:
    return line if len(line) <= n else line[: n - 3] + "..."


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


def _runs(plan: Plan) -> list[tuple[str, int]]:
    """The plan's runs (variant, seed), sources before their fine-tunes."""
    return [(v, s) for v in plan.names
            for s in gr.variant_seeds(plan.grid["variants"][v], plan.seeds)]


def run_grid(plan: Plan, stop: Stop, t_start: float) -> dict[tuple[str, int], Outcome]:
    """Every run of the plan, ``plan.jobs`` at a time, sources before their fine-tunes;
    prints one progress line per run."""
    jobs = _runs(plan)
    lock, progress = threading.Lock(), {"done": 0, "spent": 0.0, "ran": 0}
    gpus = GpuPool(plan.gpus) if plan.gpus else None

    def one(variant: str, seed: int) -> Outcome:
        t0 = time.perf_counter()
        d = runs.run_dir(plan.out, variant, seed)
        try:
            outcome = run_one(plan, variant, seed, futures, stop, gpus)
        except runs.RunLocked as err:  # someone trains in it: leave its files alone
            outcome = Outcome("not run", f"NOT RUN ({err})")
        except Exception as err:  # e.g. a config that does not validate
            line = _record(d, error_text(err))
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


def _interrupted(plan: Plan, outcomes: dict[tuple[str, int], Outcome], stop: Stop) -> int:
    """Say which runs stopped and the command that resumes them; exit status 130."""
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
    how = " without --force (which would discard what was trained)" if plan.forced else ""
    print(f"to resume, run the same command{how}: {plan.command}", file=sys.stderr,
          flush=True)
    return 130


# ---- on SLURM ---------------------------------------------------------------------------------

POLL_S = 15.0  # --wait: seconds between two looks at the jobs' states
# a run whose jobs ended this many times in a row before it finished is not resubmitted
# (a deterministic failure would otherwise keep a job live, and the report unbuilt)
MAX_FAILURES = 3


def run_slurm(plan: Plan) -> int:
    """``--executor slurm``: one look at every run and its job, a job submitted for each run
    that is not done and has none queued or running; then, once no job is live (at once,
    or after ``--wait``), the report. 0 also while jobs are live (run the same command to
    follow them); 130: stopped waiting (the jobs go on)."""
    t_start = time.perf_counter()
    print(f"{plan.grid['name']}: {len(plan.names)} variants x {len(plan.seeds)} seeds -> "
          f"{plan.out} (SLURM jobs)", flush=True)
    stop = Stop()
    with signals_passed_on(stop):
        try:
            outcomes = slurm_pass(plan, stop, submitting=True)
        except ValueError as err:  # neither sacct nor squeue answered
            print(f"error: the jobs' states cannot be read ({err}); nothing was submitted: "
                  "run the same command again when SLURM answers", file=sys.stderr)
            return 2
        live = {o.job: k for k, o in outcomes.items() if o.job}
        if live and not plan.wait:
            print(f"{len(live)} job(s) queued or running: to follow them (and resubmit failed "
                  f"and preempted runs), run: {plan.command}\nThe report is built once every "
                  "job has ended (--wait: wait for them here, then build it)", flush=True)
            return 0
        if live:
            _follow(live, stop)
            if stop.signum is not None:
                print(f"stopped waiting ({stop.name}); the jobs go on: run the same command "
                      f"to follow them: {plan.command}", file=sys.stderr, flush=True)
                return 130
            slurm_pass(plan, stop, submitting=False)  # record how the jobs ended
        return build_report(plan, {"runs": time.perf_counter() - t_start}, stop, t_start)


def slurm_pass(plan: Plan, stop: Stop, submitting: bool) -> dict[tuple[str, int], Outcome]:
    """Every run of the plan with its job's state (``sacct``, else ``squeue``); a job that
    ended before its run finished is recorded as the run's failure. ``submitting``: a job
    for each run that is not done and has no job live (sources before their fine-tunes,
    which wait for them with ``afterok``); one line per run."""
    from srlib import slurm

    keys = _runs(plan)
    jobs = {k: slurm.recorded_job(runs.run_dir(plan.out, *k)) for k in keys}
    states, source = slurm.job_states([j for j in jobs.values() if j])  # ValueError: unread
    if jobs and any(jobs.values()):
        print(f"job states from {source}", flush=True)
    sources: dict[tuple[str, int], Future] = {}
    for i, (v, s) in enumerate(keys, 1):
        try:
            outcome = _slurm_one(plan, v, s, jobs[(v, s)], states.get(jobs[(v, s)] or ""),
                                 sources, stop, submitting)
        except runs.RunLocked as err:
            outcome = Outcome("not run", f"NOT RUN ({err})")
        except Exception as err:  # sbatch refused it, or a config that does not validate
            line = _record(runs.run_dir(plan.out, v, s), error_text(err))
            outcome = Outcome("failed", f"FAILED ({_short(line)})")
        sources[(v, s)] = Future()
        sources[(v, s)].set_result(outcome)
        print(f"[{i}/{len(keys)}] {v} seed {s}: {outcome.text}", flush=True)
    return {k: f.result() for k, f in sources.items()}


def _slurm_one(plan: Plan, variant: str, seed: int, job: str | None, state: str | None,
               sources: dict[tuple[str, int], Future], stop: Stop, submitting: bool
               ) -> Outcome:
    """One run on SLURM: its live job, or how its last job ended and, when ``submitting``,
    what ``run_one`` makes of it with a job as the way to run it."""
    from srlib import slurm

    d = runs.run_dir(plan.out, variant, seed)
    if job and slurm.is_live(state):
        if variant in plan.forced:
            return Outcome("refused", f"NOT RUN (--force: job {job} is {state}; `scancel "
                                      f"{job}` first)", job=job)  # still live
        return Outcome("running" if state == "RUNNING" else "queued", f"job {job} {state}",
                       job=job)
    before = ""
    if job and not runs.is_finished(d):  # the job ended, the run did not finish
        runs.release_ended_job(d, job)  # killed without cleanup: its lock file is stale
        src = plan.grid["variants"][variant].get("init_from")
        src_outcome = sources[(src, seed)].result() if src else None
        if src_outcome is not None and not src_outcome.usable:
            _record(d, f"{runs.NOT_RUN}its source {src} seed {seed} {src_outcome.kind}")
        elif not (d / runs.ERROR).is_file():  # killed from outside: the log says more
            _record(d, f"{slurm.job_log(d, job)}\nslurm job {job} ended {state} before the "
                       "run finished")
        err = d / runs.ERROR
        line = runs.last_line(err.read_text()) if err.is_file() else ""
        before = f"job {job} {state} ({_short(line, 160)}); "
        failures = slurm.recorded_failures(d) + 1
        if not submitting:
            return Outcome("failed", before.rstrip("; "))
        if failures >= MAX_FAILURES and variant not in plan.forced:
            return Outcome("failed", f"{before}not resubmitted: its last {failures} jobs "
                                     "ended before it finished; fix the cause, then run with "
                                     f"--only {variant} --force")
    else:
        failures = 0
    if not submitting:
        return Outcome("done", f"job {job} {state}" if job else "done")

    def submit(d: Path, work: tuple, src: Outcome | None) -> Outcome:
        after = src.job if src is not None else None
        new = slurm.submit(d, work, plan.slurm, f"{variant}/seed{seed}", after,
                           failures=0 if variant in plan.forced else failures)
        return Outcome("submitted", f"submitted as job {new}"
                       + (f" (after job {after})" if after else ""), job=new)

    outcome = run_one(plan, variant, seed, sources, stop, submit=submit)
    outcome.text = before + outcome.text
    return outcome


def _follow(live: dict[str, tuple[str, int]], stop: Stop) -> None:
    """Print each job's state as it changes until none is live (or a signal comes)."""
    from srlib import slurm

    seen: dict[str, str] = {}
    while stop.signum is None:
        try:
            states, _ = slurm.job_states(list(live))
        except ValueError as err:  # a controller that does not answer now: look again
            print(f"warning: the jobs' states cannot be read ({err}); trying again",
                  file=sys.stderr, flush=True)
            states = seen
        for job, state in states.items():
            if seen.get(job) != state:
                v, s = live[job]
                print(f"job {job} ({v} seed {s}): {state}", flush=True)
        seen = states
        if not any(slurm.is_live(st) for st in states.values()):
            return
        t = time.monotonic()
        while stop.signum is None and time.monotonic() - t < POLL_S:
            time.sleep(0.2)


# ---- the report -----------------------------------------------------------------------------

def _other_grid(plan: Plan) -> str:
    """The grid whose report the output folder holds, when it is not this one, else ''."""
    try:
        prov = results.read_provenance(plan.out)
    except ValueError:
        return ""
    old = (prov or {}).get("grid")
    return old if old and old != results.project_path(plan.config) else ""


def _write_results(plan: Plan, stages: dict[str, float]) -> pd.DataFrame:
    """``index.html`` marked as being rebuilt, then the result folder's tables and their
    provenance written (every notebook stage reads them); returns the results table."""
    other = _other_grid(plan)
    if other:
        print(f"warning: {plan.out} held the report of grid {other}; it is replaced by "
              f"this grid's ({results.project_path(plan.config)})", file=sys.stderr)
    mark_rebuilding(plan.out)
    table = results.write(plan.out, plan.grid, plan.report_seeds)
    runs.write_json(plan.out / results.PROVENANCE,
                    results.provenance(plan.out, stages, plan.config, table, plan.grid))
    for _, r in table[table.status == "stale"].iterrows():
        print(f"note: {r.variant} seed {r.seed} is stale ({r.error}); it is left out of the "
              f"tables: run `--only {r.variant}` to rerun it", flush=True)
    return table


def build_report(plan: Plan, stages: dict[str, float], stop: Stop, t_start: float) -> int:
    """The result folder, then the report's notebooks and page
    (``notebooks.report_stages``); the exit status."""
    table = _write_results(plan, stages)
    trained = bool(((table.status == "done") & (table.kind != "baseline")).any())
    code = report_stages(plan.out, plan.grid, plan.config, trained, stages, stop)
    print(f"total {_fmt(time.perf_counter() - t_start)}", flush=True)
    return code


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
                    help="runs at a time (default: one per GPU of --gpus; without CUDA, 2)")
    ap.add_argument("--executor", choices=("local", "slurm"), default="local",
                    help="where runs train: here (default), or as SLURM jobs through "
                         "submitit; run the same command again to follow the jobs")
    ap.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                    help="a SLURM setting over the grid's slurm: section (partition, account, "
                         "qos, time, gpus, cpus, mem, constraint, extra, setup); repeatable")
    ap.add_argument("--wait", action="store_true",
                    help="--executor slurm: wait until every job has ended, then build the "
                         "report")
    ap.add_argument("--gpus", default=None, metavar="0,2,3",
                    help="the GPUs to train on, one run per GPU at a time, each run's kernel "
                         "seeing only its own (CUDA_VISIBLE_DEVICES); default: every "
                         "visible GPU")
    return ap.parse_args(argv)


def _resume_command(argv: list[str]) -> str:
    """The command line that resumes this invocation: the same, without ``--force``."""
    return shlex.join(["python", "-m", "srlib.ablate", *(a for a in argv if a != "--force")])


def make_plan(a: argparse.Namespace, argv: list[str] = ()) -> Plan:
    """Check the grid and the options; ``ValueError`` / ``FileNotFoundError`` say what is
    wrong, before anything is written."""
    grid = gr.load_grid(a.config)
    seeds = gr.check_seeds(a.seeds, "--seeds") if a.seeds is not None else grid["seeds"]
    names = list(grid["variants"])
    if a.only:
        bad = [v for v in a.only if v not in grid["variants"]]
        if bad:
            raise ValueError(gr.unknown(bad[0], names, "--only"))
        names = list(dict.fromkeys(a.only))
    idle = [v for v in a.only or [] if not gr.variant_seeds(grid["variants"][v], seeds)]
    if idle:
        v = idle[0]
        raise ValueError(f"--seeds {' '.join(map(str, seeds))}: variant {v!r} runs with seeds "
                         f"{grid['variants'][v].get('seeds')} only, so it would run nothing")
    forced = set(names) if a.force else set()  # not the sources ordered() adds
    if a.jobs is not None and a.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {a.jobs}")
    names = gr.ordered(names, grid)  # with the sources of fine-tunes
    _check_test_images(grid, names)
    settings = _check_executor(a, grid, names)
    gpus = []
    if a.executor == "local":
        gpus = check_gpus(a.gpus)
        _check_run_gpus(grid, names, gpus)
    out = runs.check_writable_folder(a.out).resolve()
    jobs = a.jobs or (len(gpus) if gpus else min(2, os.cpu_count() or 1))
    return Plan(config=Path(a.config).resolve(), grid=grid, names=names,
                seeds=seeds, forced=forced, out=out, jobs=jobs,
                command=_resume_command(list(argv)), gpus=gpus, executor=a.executor,
                slurm=settings, wait=a.wait)


def _check_test_images(grid: dict, names: list[str]) -> None:
    """Every test image each variant is evaluated on, large enough for its evaluation
    (``srlib.data.check_test_images``), before anything trains; and one folder per test
    set name (tables and hypotheses pair images by the set's name: two folders named
    ``Set5`` would pair one's 'bird' with the other's)."""
    from srlib.data import DEFAULT_NAMES, check_test_images, dataset_name, resolve_dataset

    seen, folders = set(), {}
    for v in names:
        spec = {**grid["defaults"], **grid["variants"][v]}
        sets = spec.get("test_data", ["default"])
        for d in [sets] if isinstance(sets, str) else sets:
            folder = d if d in DEFAULT_NAMES else resolve_dataset(d).resolve()
            name = dataset_name(d)
            first = folders.setdefault(name, (folder, v))
            if first[0] != folder:
                raise ValueError(f"two test sets named {name!r}: {first[0]} (variant "
                                 f"{first[1]!r}) and {folder} (variant {v!r}); their images "
                                 "would be paired by name: rename one folder")
            key = (d, spec.get("scale", 4), spec.get("eval_lpips", True))
            if key not in seen:
                seen.add(key)
                check_test_images(*key)


def _check_run_gpus(grid: dict, names: list[str], gpus: list[str]) -> None:
    """A variant's ``gpus: N`` needs N GPUs here (on SLURM, ``check_cluster`` checks)."""
    for v in names:
        n = gr.variant_gpus(grid["variants"][v])
        if n > max(1, len(gpus)):
            have = f"{len(gpus)} GPU(s) to train on ({', '.join(gpus)})" if gpus else \
                "no CUDA GPU"
            raise ValueError(f"variant {v!r}: gpus: {n} but this machine has {have}; "
                             "lower it, or run it where there are more (--gpus picks them)")


def _check_executor(a: argparse.Namespace, grid: dict, names: list[str]) -> dict:
    """The options of ``--executor``; on SLURM, the job settings (the grid's ``slurm:``,
    then ``--slurm``) checked against the cluster before anything is submitted."""
    if a.executor == "local":
        for given, name in ((a.slurm, "--slurm"), (a.wait, "--wait")):
            if given:
                raise ValueError(f"{name} applies to --executor slurm only")
        return {}
    from srlib import sbatch, slurm

    for given, name in ((a.jobs, "--jobs"), (a.gpus, "--gpus")):
        if given is not None:
            raise ValueError(f"{name} applies to --executor local only (on SLURM, each run is "
                             "a job: set gpus and cpus per job in slurm: or with --slurm)")
    settings = sbatch.check_settings(grid["slurm"] | sbatch.parse_options(a.slurm),
                                     "slurm (the grid's slurm: and --slurm)")
    ranks = max(gr.variant_gpus(grid["variants"][v]) for v in names)  # gpus: N, N > 1
    slurm.check_cluster(settings, ranks if ranks > 1 else 0)
    return settings


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them: its own
    list where it is set (a job's allocation), else ``0 .. n-1``; [] without CUDA."""
    if not torch.cuda.is_available():
        return []
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None and env.strip():
        return [g.strip() for g in env.split(",") if g.strip()][:torch.cuda.device_count()]
    return [str(i) for i in range(torch.cuda.device_count())]


def check_gpus(option: str | None) -> list[str]:
    """``--gpus`` checked against the visible GPUs (default: all of them; none on a CPU
    machine); ``ValueError`` naming the GPU that is not there."""
    there = visible_gpus()
    if option is None:
        return there
    asked = [g.strip() for g in option.split(",")]
    if not there:
        raise ValueError(f"--gpus {option}: this machine has no CUDA GPU (torch "
                         f"{torch.__version__}); leave --gpus out to train on the CPU")
    bad = [g for g in asked if g not in there]
    if bad or not all(asked) or len(set(asked)) != len(asked):
        got = ", ".join(bad) if bad else repr(option)
        raise ValueError(f"--gpus {option}: expected distinct GPUs among {', '.join(there)} "
                         f"(the visible ones), got {got}")
    return asked


def run(plan: Plan) -> int:
    """The runs, then the report, with SIGTERM / SIGINT passed on to the kernels."""
    if plan.executor == "slurm":
        return run_slurm(plan)
    t_start = time.perf_counter()
    print(f"{plan.grid['name']}: {len(plan.names)} variants x {len(plan.seeds)} seeds -> "
          f"{plan.out} ({plan.jobs} at a time)", flush=True)
    stop = Stop()
    with signals_passed_on(stop):
        outcomes = run_grid(plan, stop, t_start)
        if stop.signum is not None:
            return _interrupted(plan, outcomes, stop)
        rc = build_report(plan, {"runs": time.perf_counter() - t_start}, stop, t_start)
    refused = [(v, s, o) for (v, s), o in outcomes.items() if o.kind == "refused"]
    for v, s, o in refused:  # the page is built, but the grid asked for runs it cannot have
        print(f"error: {v} seed {s}: {o.text}", file=sys.stderr)
    return 2 if refused and rc == 0 else rc


def main(argv: list[str] | None = None) -> int:
    """0: report built (failed runs are in it); 1: a notebook stage or the page failed; 2:
    bad input, the output folder is in use, or a run folder holds a run of another config
    (``not run`` on the page, which is built); 130: stopped by SIGTERM / SIGINT
    (resumable)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    a = parse_args(argv)
    try:
        plan = make_plan(a, argv)
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
