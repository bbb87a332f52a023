"""The run folder: its layout, atomic writes, the metrics writer, reading a finished run.

One run (a variant x a seed) lives in one folder, written by ``srlib.train`` (or, for the
closed-form baselines, by ``srlib.ablate``) and read by everything else through this
module:

====================  ==================================================================
``config.json``       the resolved ``Config`` (written with the run's first checkpoint)
``checkpoint.pt``     while training: weights (and their EMA), optimisers, sampler RNG, iteration
                      (and torch's RNG state, for a generator with a noise input)
``losses.csv``        each loss term every ``log_every`` iterations
``validation.csv``    with ``val_every``: metrics of fixed validation crops during training
``source.json``       a fine-tune only: the run it started from and the SHA-256 of its
                      ``generator.pt`` (a changed source makes this run stale)
``generator.pt``      the trained generator's state dict
``metrics.json``      means per test set and how they were made (one writer: ``write_metrics``)
``eval/<set>/``       ``per_image.csv`` and the SR images as 8-bit PNGs; with ``noise``,
                      ``samples.csv`` (one row per image) and ``samples/<image>/<k>.png``
``projected/eval/``   the same for ``P(SR, LR)``, the post-hoc projection of the outputs
                      (twin ``+P``; ``projected-box/eval/``: twin ``+B``, ``TWINS``)
``error.txt``         a failed run: the error's last line; ``traceback.txt``: the whole text
``.lock``             held (advisory ``flock``) by the process working in the folder;
                      ``.lock.owner`` names it (host, pid, SLURM job, start; ``locked``)
``torchrun.log``      a run on several GPUs (a variant's ``gpus``): torchrun's output
``slurm.json``        ``--executor slurm``: the run's last job; ``slurm/``: submitit's files
                      and the job's log (``srlib.slurm``)
====================  ==================================================================

Every file is written to a temporary name in the same folder and renamed into place, so
a reader (or a resumed run) never sees half a file, whatever kills the writer.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from srlib.models import GENERATOR_FIELDS, build_generator

CONFIG, CHECKPOINT, LOSSES, SOURCE = "config.json", "checkpoint.pt", "losses.csv", "source.json"
GENERATOR, METRICS, ERROR, TRACEBACK = "generator.pt", "metrics.json", "error.txt", "traceback.txt"
# what the runner writes into error.txt when it does not run a run (its source failed, or
# its folder holds another config): the run is `not run`, and a later invocation that
# finds it valid again drops the file
NOT_RUN = "not run: "
VALIDATION, LOCK, PROJECTED = "validation.csv", ".lock", "projected"
# A trained variant's post-hoc twins: suffix -> (the consistency of srlib.models.CONSISTENCY
# applied to its raw outputs after training, from the same weights; the run's sub-folder
# that holds the twin's eval/). A config's ``twins`` names which it gets.
TWINS = {"+P": ("project", PROJECTED), "+B": ("project-box", "projected-box")}
EVAL, PER_IMAGE, SAMPLES, SAMPLES_CSV = "eval", "per_image.csv", "samples", "samples.csv"
# Config keys renamed since, and their names now: a grid that gives the old name is told.
RENAMED = {"lr": "learning_rate"}


class RunLocked(RuntimeError):
    """Another process holds the folder's lock."""


def run_dir(root: str | Path, variant: str, seed: int) -> Path:
    """Where the runner puts a run: ``<root>/runs/<variant>/seed<k>``."""
    return Path(root) / "runs" / variant / f"seed{seed}"


def eval_dir(run: str | Path, dataset: str) -> Path:
    """Where a run's evaluation on one test set lives: ``<run>/eval/<dataset>/``
    (``per_image.csv``, ``<image>.png``; ``samples.csv`` and ``samples/`` with noise). The
    projected twin's is ``eval_dir(<run>/projected, dataset)``."""
    return Path(run) / EVAL / dataset


def eval_sets(run: str | Path) -> list[str]:
    """The test sets a run folder holds a ``per_image.csv`` of, sorted by name."""
    return sorted(p.parent.name for p in (Path(run) / EVAL).glob(f"*/{PER_IMAGE}"))


def sample_dir(run: str | Path, dataset: str, image: str) -> Path:
    """The K saved samples of one image: ``eval/<dataset>/samples/<image>/<k>.png``."""
    return eval_dir(run, dataset) / SAMPLES / image


def last_line(text: object) -> str:
    """The last non-empty line of an error text (what a table shows of it); '' for none
    (an empty text, or NaN as a CSV reads an empty cell)."""
    if not isinstance(text, str):
        return ""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


# ---- atomic writes ----------------------------------------------------------------------

def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place. The
    temporary name is unique per process and thread: concurrent writers never share it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=1, default=str) + "\n")


def write_torch(path: str | Path, obj) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes(path, buf.getvalue())


def write_png(path: str | Path, img: torch.Tensor) -> None:
    """A ``(3, H, W)`` image in ``[0, 1]`` as an 8-bit PNG (clipped and rounded: the
    literature's convention for an SR output)."""
    import numpy as np
    from PIL import Image

    from srlib.metrics import quantize

    a = (quantize(img.detach().float().cpu()) * 255).round().byte().permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a)).save(buf, format="PNG")
    write_bytes(path, buf.getvalue())


# ---- reading ----------------------------------------------------------------------------

def read_json(path: str | Path) -> dict:
    """A JSON object from ``path``; ``ValueError`` names the file when it is not one."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); fix or delete the file") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def read_config(run: str | Path) -> dict:
    """The ``config.json`` of a run (``ValueError`` naming it when it is not a mapping)."""
    return read_json(Path(run) / CONFIG)


def read_metrics(run: str | Path) -> dict:
    return read_json(Path(run) / METRICS)


def is_finished(run: str | Path) -> bool:
    """Whether ``run`` holds a finished run: its ``config.json`` and ``metrics.json`` and,
    for a trained run, its ``generator.pt`` (without it, the run's command trains it again).
    A closed-form baseline has none: its config names no upsampler (``""``). A
    ``metrics.json`` that is not a JSON object (cut short, edited) is not finished: the run
    is resumed from its checkpoint and evaluated again."""
    run = Path(run)
    if not ((run / METRICS).is_file() and (run / CONFIG).is_file()):
        return False
    try:
        read_json(run / METRICS)
    except ValueError:
        return False
    try:
        trained = bool(read_json(run / CONFIG).get("upsampler"))
    except ValueError:  # unreadable: whoever reads it says so; trained, to be safe
        trained = True
    return not trained or (run / GENERATOR).is_file()


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict:
    """A training checkpoint, loaded as data only (``weights_only``: tensors, numbers,
    strings and containers; a pickled object that would run code is refused, not run).
    A damaged or foreign file raises ``ValueError`` naming it and saying how to restart."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises many types for a truncated or foreign file
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if found:  # an object of some class or function: loading it could run code
            raise ValueError(
                f"{path} is not a checkpoint this project wrote (it holds the Python object "
                f"{found[1]}, which loading would run); delete it to restart the run from "
                "iteration 0"
            ) from None
        raise ValueError(
            f"{path} is damaged ({type(err).__name__}: {_reason(err)}); delete it to restart "
            "the run from iteration 0"
        ) from None
    if not isinstance(state, dict) or "iter" not in state:
        raise ValueError(f"{path} is not a training checkpoint; delete it to restart the run")
    return state


def _reason(err: Exception) -> str:
    """The line of a (torch) error message that says what was wrong, not how to work around
    it: the unpickler's own reason when there is one, else the first line."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    for i, ln in enumerate(lines[:-1]):
        if ln.endswith("WeightsUnpickler error:"):
            return lines[i + 1]
    return lines[0] if lines else "no details"


def load_generator(run: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The trained generator of a finished run folder, in eval mode on ``device``. A
    ``generator.pt`` that does not fit the generator of the run's config (another size,
    keys missing) raises ``ValueError`` naming the file."""
    run = Path(run)
    if not (run / CONFIG).is_file() or not (run / GENERATOR).is_file():
        raise FileNotFoundError(f"{run}: not a finished run (needs {CONFIG} and {GENERATOR})")
    c = read_config(run)
    missing = [k for k in ("preset", *GENERATOR_FIELDS) if k not in c]
    if missing:
        raise ValueError(f"{run / CONFIG} lacks {', '.join(missing)}: a run from before "
                         "these fields existed; delete the folder and run its command again")
    g = build_generator(c["preset"], **{k: c[k] for k in GENERATOR_FIELDS})
    path = run / GENERATOR
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path}: cannot be loaded ({type(err).__name__}: {_reason(err)})"
                         ) from None
    why = state_mismatch(g, state)
    if why:
        raise ValueError(f"{path} was written by a different model ({why}): delete it to "
                         "restart (the run's command then trains it again)")
    g.load_state_dict(state)
    return g.to(device).eval()


def state_mismatch(model: torch.nn.Module, state) -> str | None:
    """How the state dict ``state`` does not fit ``model`` (its missing and unexpected keys,
    its shapes that differ: a few of each), or ``None`` when it fits."""
    if not isinstance(state, dict):
        return f"a {type(state).__name__}, not a state dict"
    mine = model.state_dict()
    shapes = [f"{k} {tuple(v.shape)} in the file, {tuple(mine[k].shape)} here"
              for k, v in state.items()
              if k in mine and getattr(v, "shape", None) != mine[k].shape]
    why = [f"{what} {_few(keys, n)}" for what, keys, n in (
        ("missing", [k for k in mine if k not in state], 3),
        ("unexpected", [k for k in state if k not in mine], 3),
        ("shape of", shapes, 1)) if keys]
    return "; ".join(why) or None


def _few(items: list[str], n: int) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def load_sr(run: str | Path, dataset: str, image: str) -> torch.Tensor:
    """The saved 8-bit SR image of a run, ``(3, H, W)`` float in ``[0, 1]``."""
    from srlib.data import load_image, to_float

    return to_float(load_image(eval_dir(run, dataset) / f"{image}.png"))


def file_hash(path: str | Path) -> str:
    """SHA-256 of a file (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def generator_hash(run: str | Path) -> str | None:
    """SHA-256 of a run's ``generator.pt``; ``None`` when it has none."""
    p = Path(run) / GENERATOR
    return file_hash(p) if p.is_file() else None


def recorded_source(run: str | Path) -> dict | None:
    """``{"run": ..., "generator_sha256": ...}`` of a fine-tune, else ``None``."""
    p = Path(run) / SOURCE
    return read_json(p) if p.is_file() else None


# Config fields a run may change and still be the same run (where and how it runs)
RESUMABLE_CHANGES = {"out", "ckpt_every", "log_every", "device", "compile", "progress"}


def config_changed(run: str | Path) -> str | None:
    """What differs between a finished run's ``config.json`` and the config its
    ``metrics.json`` recorded when it finished (``'iters: 40 -> 1000'``): the folder's
    config was edited since, so its weights and numbers are not that config's. ``None``
    when they agree (``RESUMABLE_CHANGES`` aside) or either is unreadable."""
    run = Path(run)
    try:
        was, now = read_metrics(run).get("config"), read_config(run)
    except (OSError, ValueError):
        return None
    if not isinstance(was, dict):
        return None
    diff = [f"{k}: {was.get(k, '(absent)')!r} -> {now.get(k, '(absent)')!r}"
            for k in sorted(set(was) | set(now))
            if k not in RESUMABLE_CHANGES and was.get(k) != now.get(k)]
    return "; ".join(diff) or None


def is_stale(run: str | Path) -> str | None:
    """Why a finished run's outputs no longer follow from its config or its source: its
    ``config.json`` was edited after it finished (``config_changed``), or a fine-tune's
    source generator changed or is gone; ``None`` when they do. The source's folder is
    recorded relative to the run's (``source.json``)."""
    run = Path(run)
    edited = config_changed(run)
    if edited:
        return f"its {CONFIG} was edited after it finished ({edited})"
    src = recorded_source(run)
    if src is None:
        return None
    where = os.path.normpath(run / src["run"])  # relative to the run folder
    now = generator_hash(where)
    if now is None:
        return f"its source {where} has no {GENERATOR} (failed or removed)"
    return f"its source {where} was retrained after it" \
        if now != src["generator_sha256"] else None


# ---- the one metrics writer -------------------------------------------------------------

def write_metrics(run: str | Path, per_set: dict[str, dict], *, lpips_kind: str, config: dict,
                  first_set: str, iters: int, train_seconds: float = 0.0,
                  its_per_second: float | None = None, eval_seconds: float | None = None,
                  device: str = "cpu",
                  precision: str | None = None, resumed_from_iter: int | None = None,
                  perc_backend: str | None = None,
                  twins: dict[str, dict[str, dict]] | None = None,
                  samples: dict[str, dict] | None = None) -> dict:
    """Write ``metrics.json``: the first test set's means at the top level (what tables
    read), every set under ``datasets``, and how the numbers were made. ``twins``: per
    twin suffix (``TWINS``), the post-hoc consistent outputs' means per set; ``samples``:
    a stochastic generator's K-sample statistics per set
    (``srlib.evaluate.evaluate_samples``); None otherwise. ``precision``: the autocast
    training ran under (``bf16`` or ``fp32``; None for a baseline); ``eval_seconds``: the
    wall time of the evaluation (test sets, twins, samples), for budgets."""
    results = {
        **per_set[first_set],
        "lpips_kind": lpips_kind,
        "datasets": per_set,
        "twins": twins or None,
        "samples": samples,
        "iters": iters,
        "train_seconds": train_seconds,
        "its_per_second": its_per_second,
        "eval_seconds": eval_seconds,
        "device": device,
        "precision": precision,
        "resumed_from_iter": resumed_from_iter,
        "perc_backend": perc_backend,
        "placement": placement(),
        "source": recorded_source(run),
        "torch": torch.__version__,
        "config": config,
    }
    write_json(Path(run) / METRICS, results)
    return results


def placement() -> dict:
    """Where this process runs: its host and the ``CUDA_VISIBLE_DEVICES`` it was given
    (the runner pins each run to one GPU that way; None: not set). The GPU's name is
    ``metrics.json``'s ``device``."""
    return {"host": socket.gethostname(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def write_error(run: str | Path, text: str) -> str:
    """Record a failure: the whole text in ``traceback.txt``, its last non-empty line in
    ``error.txt`` (what tables show). Returns that line, also when it cannot be recorded
    (a full disk, say): a warning on stderr says so, and the caller goes on."""
    run = Path(run)
    last = last_line(text) or "unknown error"
    try:
        run.mkdir(parents=True, exist_ok=True)
        write_text(run / TRACEBACK, text.rstrip() + "\n")
        write_text(run / ERROR, last + "\n")
    except OSError as err:
        print(f"warning: the failure of {run} could not be recorded in {ERROR} "
              f"({err.strerror or err}): {last}", file=sys.stderr)
    return last


def clear(run: str | Path, keep: tuple[str, ...] = ()) -> None:
    """Remove a run's outputs (before ``--force`` reruns it): every file the layout names
    and ``eval/``, except those in ``keep``; the folder and its lock stay."""
    import shutil

    run = Path(run)
    for name in (CONFIG, CHECKPOINT, LOSSES, VALIDATION, SOURCE, GENERATOR, METRICS, ERROR,
                 TRACEBACK):
        if name not in keep:
            (run / name).unlink(missing_ok=True)
    for folder in (EVAL, *(f for _, f in TWINS.values())):
        if folder not in keep:
            shutil.rmtree(run / folder, ignore_errors=True)


# ---- locks ------------------------------------------------------------------------------

OWNER = LOCK + ".owner"  # the lock-file half of ``locked``: who holds the folder
# flock's answers on file systems that do not lock (Lustre without flock, some FUSE and
# NFS mounts): the owner file alone guards the folder there
_NO_FLOCK = {errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, errno.EINVAL}


def _owner_line() -> str:
    job = os.environ.get("SLURM_JOB_ID")
    incarnation = f" job {job}.{os.environ.get('SLURM_RESTART_COUNT', '0')}" if job else ""
    return (f"host {socket.gethostname()} pid {os.getpid()}{incarnation} "
            f"since {time.strftime('%Y-%m-%d %H:%M:%S')}")


_OWNER_LINE = re.compile(r"host (\S+) pid (\d+)(?: job (\d+)\.(\d+))? since (.*)")


def _garbled(owner: str) -> bool:
    """Whether an owner file holds no owner line (empty, or garbage)."""
    return _OWNER_LINE.fullmatch(owner) is None


def _started_after(pid: int, since: str) -> bool:
    """Whether the process ``pid`` started after ``since`` (an owner line's local time):
    a pid the system reused for another process since the owner wrote its line. False
    where ``/proc`` cannot tell."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        started = boot + ticks / os.sysconf("SC_CLK_TCK")
        return started > time.mktime(time.strptime(since.strip(), "%Y-%m-%d %H:%M:%S")) + 2
    except (OSError, ValueError, IndexError, StopIteration):
        return False


def _is_stale(owner: str) -> bool:
    """Whether an owner line names a process that is gone: on this host, a pid that no
    longer runs, or runs a process started after the line was written (the pid reused);
    in a SLURM job, the same job's earlier incarnation (SLURM ends a job
    before it requeues it, perhaps onto another node). Otherwise a line from another host
    is never called stale (its process cannot be checked from here); neither is an
    unreadable one, which a writer may be writing."""
    m = _OWNER_LINE.fullmatch(owner)
    if not m:
        return False
    host, pid, job, restart, since = m.groups()
    if job and job == os.environ.get("SLURM_JOB_ID") \
            and restart != os.environ.get("SLURM_RESTART_COUNT", "0"):
        return True
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    return _started_after(int(pid), since)


def release_ended_job(folder: str | Path, job_id: str) -> bool:
    """Remove ``folder``'s owner file if it names SLURM job ``job_id``, which the caller
    knows has ended (killed without cleanup, perhaps on another node); True if removed."""
    path = Path(folder) / OWNER
    try:
        m = _OWNER_LINE.fullmatch(path.read_text().strip())
    except FileNotFoundError:
        return False
    if m and m.group(3) == str(job_id):
        path.unlink(missing_ok=True)
        return True
    return False


def _take_owner_file(path: Path, what: str, folder: Path, flock_held: bool = False) -> None:
    """Create ``path`` exclusively (``O_EXCL``, atomic on local file systems, NFS v3+ and
    Lustre) with this process's owner line; a stale one (``_is_stale``) is replaced once.
    With ``flock_held`` (this process holds the folder's flock), an owner file that is
    empty or garbled is stale too (a line cut by a crash: a live writer would hold the
    flock)."""
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = path.read_text().strip()
            except FileNotFoundError:
                continue  # released between the two calls: try again
            if _is_stale(holder) or (flock_held and _garbled(holder)):
                path.unlink(missing_ok=True)
                continue
            raise RunLocked(
                f"{what} {folder} is in use by {holder or 'another process'} ({path}); wait "
                "for it to finish, or stop it, then run again (if that process is gone, "
                f"remove {path})") from None
        with os.fdopen(fd, "w") as f:
            f.write(_owner_line())
        return
    raise RunLocked(f"{what} {folder}: its lock {path} keeps changing hands; run again")


@contextlib.contextmanager
def locked(folder: str | Path, what: str = "folder") -> Iterator[Path]:
    """Hold a lock on ``folder`` (created if needed) for the ``with`` block. A second
    holder, in this process, another process or on another host, gets ``RunLocked`` at
    once, naming the holder: two writers in one folder would corrupt each other's files.

    Two halves. ``flock`` on ``.lock``, released by the kernel whatever ends the process.
    And ``.lock.owner``, created with ``O_EXCL`` and holding ``host H pid P since T``,
    removed at the end of the block: it guards where ``flock`` fails (``ENOSYS`` on
    Lustre) or locks nothing across hosts (NFS mounted ``nolock``). A process killed
    without cleanup leaves it behind; on the same host it is taken over once its pid no
    longer runs, from another host the message says which file to remove."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{what} {folder} cannot be created ({err.strerror})") from None
    # The flock lives as long as the file is open: closing it (the end of the block, or
    # the process dying) releases it.
    with open(folder / LOCK, "a+") as f:
        flock_held = False
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            flock_held = True
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise RunLocked(
                f"{what} {folder} is in use by {holder}; wait for it to finish, or stop it, "
                "then run again"
            ) from None
        except OSError as err:
            if err.errno not in _NO_FLOCK:
                raise
        owner = folder / OWNER
        _take_owner_file(owner, what, folder, flock_held)
        try:
            f.seek(0)
            f.truncate()
            f.write(_owner_line())
            f.flush()
            yield folder
        finally:
            owner.unlink(missing_ok=True)


PATH_ROOM = 512  # bytes the runner's own paths add under --out (runs/<variant>/seed<k>/eval/...)


def check_writable_folder(out: str | Path, what: str = "--out") -> Path:
    """``out`` as a folder that can be created and written, checked before anything is
    written: refuses an empty name, an existing file, a path under a file, and a folder
    that cannot be written, each with a message naming it; and a path the file system
    would reject once the run's own files are under it: a part over 255 bytes, or a path
    within ``PATH_ROOM`` bytes of the system's limit."""
    if str(out).strip() == "":
        raise ValueError(f"{what} is empty: name a folder for the run")
    p = Path(out)
    long = [x for x in p.parts if len(x.encode()) > 255]
    if long:
        raise ValueError(f"{what} {str(p)[:80]}...: a part is {len(long[0].encode())} bytes; "
                         "a file or folder name holds at most 255")
    limit = os.pathconf("/", "PC_PATH_MAX") if hasattr(os, "pathconf") else 4096
    if len(str(p.absolute()).encode()) + PATH_ROOM > limit:
        raise ValueError(f"{what} {str(p)[:80]}...: {len(str(p.absolute()).encode())} bytes "
                         f"long; the run's files under it need about {PATH_ROOM} more within "
                         f"the system's {limit}")
    if p.exists() and not p.is_dir():
        raise ValueError(f"{what} {p} is an existing file, not a folder")
    parent = p
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{what} {p} lies under {parent}, which is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {p}: {parent} cannot be written (permission denied)")
    return p
