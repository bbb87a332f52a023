"""The settings of a SLURM job, as ``sbatch`` takes them: what a grid's ``slurm:`` section
and ``--slurm KEY=VALUE`` may give, checked when the grid is loaded (``srlib.grid``) and
again with the command line's before anything is submitted (``srlib.slurm``). Apart from
the executor, so that reading a grid never imports what runs it."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from srlib.tables import unknown

# the settings a grid's ``slurm:`` may give: key -> (what is expected, check)
# sbatch --time's formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S
_TIME = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?")


def _plain(v: str) -> bool:
    """No control character: a newline would end the ``#SBATCH`` line and start a shell
    line, after which sbatch ignores every later ``#SBATCH``."""
    return not any(ord(ch) < 32 or ord(ch) == 127 for ch in v)


def _text(v: object) -> bool:
    return isinstance(v, str) and bool(v.strip()) and _plain(v)


def _lines(v: object) -> bool:
    return isinstance(v, list) and all(_text(x) for x in v)


# sbatch options the executor sets itself (srlib.slurm): an ``extra`` one would silently
# replace them (a fine-tune's afterok dependency, the requeue on preemption, the log files)
EXECUTOR_SET = ("dependency", "requeue", "no-requeue", "signal", "output", "error",
                "job-name", "open-mode")


def _extra(v: object) -> bool:
    return _lines(v) and all(
        (m := re.fullmatch(r"--([a-z][a-z0-9-]*)(=.+)?", x.strip())) is not None
        and m.group(1) not in EXECUTOR_SET for x in v)


def _time(v: object) -> bool:
    """At least a minute: minutes as an integer > 0, or sbatch's format."""
    if isinstance(v, int) and not isinstance(v, bool):
        return v > 0
    return isinstance(v, str) and _TIME.fullmatch(v.strip()) is not None \
        and _seconds(v) >= 60


KEYS: dict[str, tuple[str, Callable[[object], bool]]] = {
    "partition": ("a partition name (one line, no control character)", _text),
    "account": ("an account name (one line, no control character)", _text),
    "qos": ("a quality of service (one line, no control character)", _text),
    "time": ("minutes (an integer > 0) or a string in sbatch --time's format (M:S, H:M:S, "
             "D-H, D-H:M, D-H:M:S) of at least a minute", _time),
    "gpus": ("GPUs per job (an integer >= 0)",
             lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0),
    "cpus": ("CPUs per job (an integer >= 1)",
             lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1),
    "mem": ("memory per job as sbatch --mem takes it, e.g. 16G or 16000M",
            lambda v: isinstance(v, str) and re.fullmatch(r"\d+[KMGT]?", v.strip()) is not None),
    "constraint": ("a node feature expression (one line, no control character)", _text),
    "extra": ("a list of sbatch options, each '--name=value' or '--flag', none of those the "
              f"executor sets itself ({', '.join('--' + o for o in EXECUTOR_SET)}), no control "
              "character", _extra),
    "setup": ("a list of shell lines run before the job's command (module load ...)", _lines),
}
# gpus 0: CPU jobs unless the grid or --slurm asks for GPUs (a variant's gpus: N > 1 does)
DEFAULTS = {"time": 60, "cpus": 1, "gpus": 0}


def check_settings(spec: object, where: str = "slurm") -> dict:
    """A ``slurm:`` mapping checked against ``KEYS`` (``ValueError`` names the key, the
    value and what was expected), with ``DEFAULTS`` for what it leaves out."""
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: expected a mapping of {', '.join(KEYS)}, got {spec!r}")
    for key, value in spec.items():
        if key not in KEYS:
            raise ValueError(f"{where}: {unknown('key', key, KEYS)}")
        expected, ok = KEYS[key]
        if not ok(value):
            raise ValueError(f"{where}: {key}: expected {expected}, got {value!r}")
    return DEFAULTS | dict(spec)


def parse_options(items: list[str]) -> dict:
    """``--slurm KEY=VALUE`` options as a mapping (values read as YAML: ``time=120`` is a
    number, ``extra=[--exclusive]`` a list), checked by ``check_settings`` later."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--slurm {item}: expected KEY=VALUE with KEY one of "
                             f"{', '.join(KEYS)}")
        value = value.strip()
        # only numbers and lists are read: YAML would read 12:00:00 as the integer 43200
        if value.isdigit():
            out[key.strip()] = int(value)
        elif value.startswith("["):
            try:
                out[key.strip()] = yaml.safe_load(value)
            except yaml.YAMLError:
                out[key.strip()] = value
        else:
            out[key.strip()] = value
    return out


def minutes(time_limit: int | str) -> int:
    """A time limit (minutes, or a string as ``sbatch --time`` reads it) in whole
    minutes, rounded up."""
    if isinstance(time_limit, int):
        return time_limit
    return max(1, -(-_seconds(time_limit) // 60))


def _seconds(time_limit: str) -> int:
    """A time limit as ``sbatch --time`` reads it, in seconds."""
    days, a, b, c = _TIME.fullmatch(time_limit.strip()).groups()
    parts = [int(x) for x in (a, b, c) if x is not None]
    if days is not None:  # D-H[:M[:S]]
        h, m, sec = (parts + [0, 0])[:3]
        total = (int(days) * 24 + h) * 60 * 60 + m * 60 + sec
    else:  # M, M:S, H:M:S
        h, m, sec = ([0] * (3 - len(parts)) + parts) if len(parts) == 3 else \
            (0, parts[0], parts[1] if len(parts) == 2 else 0)
        total = h * 3600 + m * 60 + sec
    return total
