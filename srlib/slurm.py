"""A grid's runs as SLURM jobs, through submitit: the settings, one job, its state.

``python -m srlib.ablate GRID --executor slurm`` (``srlib.ablate``) submits each run that
is not done as one SLURM job. The job runs the same unit of work as a local run (``RunJob``:
``02_train.py`` through papermill into the run folder, or a closed-form baseline's
evaluation), so its files and numbers are those of a local run. Per run folder:

=================  ===========================================================================
``slurm.json``     the run's last job: its id, when it was submitted, the job it waits for
``slurm/``         submitit's folder: the batch script, the pickled call, the job's log
                   (``<id>_0_log.out`` / ``.err``) and its result
=================  ===========================================================================

The settings (``slurm:`` in the grid, ``--slurm KEY=VALUE`` on the command line) are
``srlib.sbatch.KEYS``; each becomes an ``#SBATCH`` line through submitit's
``SlurmExecutor``.

Preemption and time limits: submitit asks SLURM for SIGUSR2 90 s before the kill; its
handler in the job calls ``RunJob.checkpoint``, which passes the signal on to the kernel
(training saves a checkpoint and stops on SIGUSR2, SIGTERM or SIGINT) and waits for the
checkpoint; submitit then requeues the job, which resumes from it. ``scontrol requeue``
and ``scancel`` send SIGTERM, which the job passes on to its kernel the same way.

Job states come from ``sacct`` (accounting through slurmdbd); where accounting is off,
from ``squeue``, which lists only queued and running jobs: a job it no longer lists has
ended, and the run folder says how (finished, or not).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from srlib import runs
from srlib.sbatch import minutes

JOB, JOBS = "slurm.json", "slurm"
# job states in which a job still holds its run (it will, or may yet, train)
LIVE = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING",
        "COMPLETING", "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED",
        "RESV_DEL_HOLD", "SPECIAL_EXIT", "POWER_UP_NODE", "UPDATE_DB"}


def is_live(state: str) -> bool:
    """Whether a job in ``state`` still holds its run: ``LIVE``, and any held or requeued
    state (``*_HOLD``, ``REQUEUE_*``) a SLURM version adds; ``sacct`` may append a reason
    (``CANCELLED by 0``), so the first word counts."""
    word = state.split()[0] if state.strip() else ""
    return word in LIVE or word.endswith("_HOLD") or word.startswith("REQUEUE")
CHECKPOINT_WAIT_S = 60.0  # how long a preempted job waits for its kernel's checkpoint


def check_cluster(settings: dict, gpus_needed: int = 0) -> None:
    """Before anything is submitted: submitit imports, ``sbatch`` is on the PATH, the
    partition exists and has nodes with the GPUs a job asks for (``sinfo``).
    ``ValueError`` says which and what was expected."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise ValueError("--executor slurm: the Python package submitit is not installed "
                         "(pip install submitit, or `pip install -e .[slurm]`)") from None
    for tool in ("sbatch", "sinfo"):
        if shutil.which(tool) is None:
            raise ValueError(f"--executor slurm: `{tool}` is not found on the PATH: run from "
                             "a machine that can submit SLURM jobs (a login node)")
    part = settings.get("partition")
    cmd = ["sinfo", "-h", "-o", "%P|%G|%l"] + (["-p", part] if part else [])
    rows = [r.split("|") for r in _call(cmd).splitlines() if "|" in r]
    if part and not rows:
        raise ValueError(f"slurm: partition: {part!r} is not a partition of this cluster "
                         f"(sinfo -p {part} lists nothing)")
    if not part:  # the default partition is the one sinfo marks with '*'
        rows = [r for r in rows if r[0].endswith("*")] or rows
    where = f"partition {part}" if part else "the default partition"
    want = max(int(settings.get("gpus") or 0), gpus_needed)
    have = max((_gpus(r[1]) for r in rows), default=0)
    if want > have:
        raise ValueError(f"slurm: gpus: a job asks for {want} GPU(s) but the nodes of {where} "
                         f"have at most {have} (sinfo's GRES)")
    limit = max((_limit(r[2]) for r in rows if len(r) > 2), default=math.inf)
    if minutes(settings.get("time", 60)) > limit:
        raise ValueError(f"slurm: time: {settings.get('time')} is more than {where}'s limit of "
                         f"{limit:.0f} minutes (sinfo's TIMELIMIT)")
    if gpus_needed > 1 and shutil.which("srun") is None:
        raise ValueError("--executor slurm: a variant's gpus: N > 1 starts its ranks with "
                         "`srun`, which is not found on the PATH")


def _limit(text: str) -> float:
    """sinfo's TIMELIMIT in minutes (``infinite``, ``UNLIMITED`` or unreadable: no limit)."""
    try:
        return float(minutes(text.strip()))
    except (AttributeError, ValueError):
        return math.inf


def _gpus(gres: str) -> int:
    """GPUs per node in sinfo's GRES column: ``gpu:8``, ``gpu:a100:4(S:0-1)``; 0: none."""
    total = 0
    for part in gres.split(","):
        m = re.match(r"gpu(?::[^:(]+)?:(\d+)", part.strip())
        if m:
            total += int(m.group(1))
    return total


def _call(cmd: list[str]) -> str:
    """A SLURM command's stdout; ``ValueError`` with its message when it fails."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ValueError(f"`{' '.join(cmd)}` failed: {err}") from None
    if p.returncode != 0:
        raise ValueError(f"`{' '.join(cmd)}` failed: {runs.last_line(p.stderr) or p.returncode}")
    return p.stdout


# ---- one job --------------------------------------------------------------------------------

def submit(run: Path, work: tuple, settings: dict, name: str,
           after: str | None = None, failures: int = 0) -> str:
    """Submit ``RunJob()(work, run)`` as one job (``after``: the job id it waits for, with
    ``afterok``; if that job fails, SLURM cancels this one); records it in ``slurm.json``
    with ``failures``, how many of the run's jobs in a row ended before it finished, and
    returns its id."""
    import submitit

    ex = submitit.SlurmExecutor(folder=run / JOBS)
    # requeue: eligible for requeueing (a preempted job, submitit's requeue) where the
    # cluster's default (JobRequeue) says otherwise
    extra = {"kill_on_invalid_dep": "yes", "requeue": True} \
        | ({"dependency": f"afterok:{after}"} if after else {})
    for opt in settings.get("extra") or []:
        key, _, value = opt.strip()[2:].partition("=")
        extra[key] = value or True
    # a variant's gpus (torchrun ranks) over the settings'; a baseline is evaluated on the CPU
    gpus = (max(settings["gpus"], work[4]) if work[4] > 1 else settings["gpus"]) \
        if work[0] == "train" else 0
    ex.update_parameters(
        job_name=name, time=minutes(settings["time"]), cpus_per_task=settings["cpus"],
        ntasks_per_node=1, additional_parameters=extra,
        **({"gpus_per_node": gpus} if gpus else {}),
        **{k: settings[k] for k in ("partition", "account", "qos", "constraint", "setup", "mem")
           if settings.get(k)})
    job = ex.submit(RunJob(), work, str(run))
    runs.write_json(run / JOB, {"job_id": str(job.job_id), "after": after,
                                "failures": failures,
                                "submitted": time.strftime("%Y-%m-%d %H:%M:%S")})
    return str(job.job_id)


def recorded_job(run: Path) -> str | None:
    """The id of the run's last job (``slurm.json``), or None."""
    try:
        return str(runs.read_json(run / JOB)["job_id"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def recorded_failures(run: Path) -> int:
    """How many of the run's jobs in a row had ended before it finished, when its last
    job was submitted (``slurm.json``)."""
    try:
        return int(runs.read_json(run / JOB).get("failures", 0))
    except (FileNotFoundError, ValueError, TypeError, AttributeError):
        return 0


def job_log(run: Path, job_id: str) -> str:
    """The job's log (submitit's stdout and stderr files), for a failure's record."""
    parts = []
    for suffix in ("out", "err"):
        p = run / JOBS / f"{job_id}_0_log.{suffix}"
        if p.is_file():
            parts.append(f"---- {p} ----\n{p.read_text(errors='replace')}")
    return "\n".join(parts)


class RunJob:
    """One run's unit of work inside a SLURM job: ``work`` is ``("train", variant, seed,
    config, gpus)`` (``notebooks.train_run``; ``gpus`` > 1: torchrun ranks in the job) or
    ``("baseline", config)`` (``evaluate.baseline_run``), into the run folder ``run``. A
    failure is recorded in the run folder as a local one is (``error.txt``,
    ``traceback.txt``) and raised, so the job ends FAILED. SIGTERM (``scancel``,
    ``scontrol requeue``) is passed on to the kernel, which saves a checkpoint; submitit's
    SIGUSR2 calls ``checkpoint``."""

    def __call__(self, work: tuple, run: str) -> None:
        import torch

        from srlib.evaluate import baseline_run
        from srlib.notebooks import Stop, error_text, interrupted, signals_passed_on, train_run

        d = Path(run)
        for name in (runs.ERROR, runs.TRACEBACK):  # a resubmitted run starts without them
            (d / name).unlink(missing_ok=True)
        cpus = os.environ.get("SLURM_CPUS_PER_TASK")
        if cpus:  # the kernel inherits it: as many threads as the job has CPUs
            os.environ.update(OMP_NUM_THREADS=cpus, MKL_NUM_THREADS=cpus)
            torch.set_num_threads(int(cpus))
        stop = Stop()
        try:
            with signals_passed_on(stop):
                if work[0] == "baseline":
                    baseline_run(d, work[1])
                else:
                    _, variant, seed, config, gpus = work
                    train_run(variant, seed, config, d, gpus=gpus)
        except Exception as err:
            if stop.signum is None and not interrupted(err):
                runs.write_error(d, error_text(err))
            raise

    def checkpoint(self, work: tuple, run: str):
        """Preempted or at the time limit (submitit's SIGUSR2): pass the signal on to the
        kernel, wait (``CHECKPOINT_WAIT_S`` at most) until its checkpoint is written or it
        is gone, then return the same call for submitit to requeue."""
        import submitit

        from srlib.notebooks import child_pids

        ckpt = Path(run) / runs.CHECKPOINT

        def stamp() -> tuple | None:  # a new checkpoint is a new file (renamed into place)
            with contextlib.suppress(OSError):
                st = ckpt.stat()
                return st.st_ino, st.st_mtime_ns, st.st_size
            return None

        before, t0 = stamp(), time.monotonic()
        kids = child_pids()
        for pid in kids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGUSR2)
        while time.monotonic() - t0 < CHECKPOINT_WAIT_S and work[0] == "train":
            now = stamp()
            if now is not None and now != before:
                break
            if not any(Path(f"/proc/{p}").exists() for p in kids):
                break
            time.sleep(0.2)
        return submitit.helpers.DelayedSubmission(self, work, run)


# ---- job states -------------------------------------------------------------------------------

def job_states(ids: list[str]) -> tuple[dict[str, str], str]:
    """Each job's state (``PENDING``, ``RUNNING``, ``COMPLETED``, ``FAILED``,
    ``CANCELLED``, ``TIMEOUT``, ``PREEMPTED``, ...; ``ENDED``: gone from ``squeue`` where
    ``sacct`` cannot say), and where the states came from. ``ValueError`` when neither
    command answers (a job's state is then unknown, not ended)."""
    ids = [i for i in dict.fromkeys(ids) if i]
    if not ids:
        return {}, "no jobs"
    states, source = {}, "sacct"
    try:  # -X: the allocation, not its steps; the latest record of a requeued job
        out = _call(["sacct", "-X", "-n", "-P", "-o", "JobIDRaw,State", "-j", ",".join(ids)])
        for row in out.splitlines():
            jid, _, state = row.partition("|")
            if jid in ids and state:
                states[jid] = state.split()[0]  # "CANCELLED by 0" -> CANCELLED
    except ValueError:
        source = "squeue (sacct failed: no accounting?)"
    missing = [i for i in ids if i not in states]
    if missing:  # not yet in the accounting database, or no accounting at all
        queued = {}  # squeue failing raises: a job it cannot see is not known to have ended
        for row in _call(["squeue", "-h", "-a", "-o", "%i|%T"]).splitlines():
            jid, _, state = row.partition("|")
            queued[jid.strip()] = state.strip()
        for i in missing:
            states[i] = queued.get(i, "ENDED")
    return states, source
