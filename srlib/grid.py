"""The grid file and what a variant is.

A grid (YAML) has ``defaults`` (any ``srlib.train.Config`` field), ``seeds``, ``variants``
(``name: {loss, upsampler, ...}``) and optionally ``notebook_params`` (papermill parameters
of the report's notebooks, ``NOTEBOOK_STAGES``), ``name``, ``hypotheses`` (a list) and
``critic`` (the health criterion of the runs with a discriminator, ``check_critic``). Any
other key is refused, with the close match. ``load_grid`` checks all of it before anything
runs, each problem naming the file and the line.

A variant is one of:

- a closed-form baseline, ``baseline: <name>`` (``srlib.evaluate.BASELINES``): evaluated
  once, with the first seed, never trained;
- a trained variant: a ``loss`` and Config fields; ``init_from: <variant>`` fine-tunes that
  variant's generator of the same seed (which then runs first, ``ordered``); its own
  ``seeds`` keeps a subset of the grid's. Every trained variant ``v`` is also evaluated
  projected, ``P(G(LR), LR)`` from the same weights, as its twin ``v+P``
  (``projected_name``).

Hypotheses (``Hypothesis``, ``parse_hypotheses``) are data: id, statement, ``a`` and ``b``
(two variants, or ``b`` a number: a fixed value), a metric of ``srlib.metrics.METRICS``, a
direction, optionally ``datasets``, ``unequal_iters_ok`` and ``primary: N``, its place in
the fixed testing sequence of the primary questions (at most ``MAX_PRIMARY``; the others
are secondary: ``srlib.stats.verdict_table``). ``answer`` is plain text by the grid's
author that the page shows first, with fields the report fills from the verdicts and
results (``answer_fields``). Everything may import this module; it imports neither the
runner nor the report.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from srlib import runs, tables
from srlib.metrics import METRICS

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
TOP_LEVEL = ("name", "title", "introduction", "questions", "declared", "defaults", "seeds",
             "variants", "notebook_params", "hypotheses", "answer", "critic", "slurm")
# The page's own words, from the grid: its heading, the paragraphs under it, and the
# questions the grid asks (Markdown); a grid without them gets a page about the grid alone.
PROSE = ("title", "introduction", "questions")
NOTEBOOK_STAGES = ("01_manifold", "03_artifacts", "04_report")
# Config fields the runner sets for each run: a grid value would be silently overridden.
RUNNER_SET = {"out": "the runner puts each run in <out>/runs/<variant>/seed<k>",
              "seed": "the runner sets it from the grid's 'seeds' (or --seeds)"}
# Notebook parameters the runner sets to paths in its --out folder: a grid never sets them
RUNNER_PARAMS = ("out", "results", "runs", "grid")
DIRECTIONS = ("greater", "less")
MAX_GRID_BYTES = 1 << 20  # a grid is a page of YAML; these bound what the loader reads
MAX_GRID_NODES = 100_000  # values, aliases expanded
PROJECTED_SUFFIX = "+P"


# ---- what a variant is --------------------------------------------------------------------

def config_fields() -> set[str]:
    """The names of ``srlib.train.Config``'s fields (imported late: training is heavy)."""
    from srlib.train import Config

    return {f.name for f in dataclasses.fields(Config)}


def projected_name(variant: str, suffix: str = PROJECTED_SUFFIX) -> str:
    """The name of a trained variant's post-hoc twin (``runs.TWINS``): ``v+P``, its
    outputs projected, ``P(G(LR), LR)``; ``v+B``, projected within [0, 1]."""
    return f"{variant}{suffix}"


def twin_source(name: str, variants: Collection[str]) -> tuple[str, str] | None:
    """``(variant, suffix)`` when ``name`` is the post-hoc twin of one of ``variants``,
    else None."""
    for suffix in runs.TWINS:
        if name.endswith(suffix) and name[:-len(suffix)] in variants:
            return name[:-len(suffix)], suffix
    return None


def variant_spec(grid: dict, name: str) -> dict:
    """The grid's fields of a variant, its ``defaults`` overridden by its own (for a
    twin ``v+P``, those of ``v``)."""
    own = grid["variants"][source_variant(grid, name)] or {}
    return {**grid.get("defaults", {}), **own}


def twins_of(grid: dict, variant: str) -> list[str]:
    """The twin suffixes a trained variant is evaluated with: its config's ``twins``
    (default ``["+P"]``), none for a baseline or a generator consistent by construction."""
    spec = variant_spec(grid, variant)
    if baseline_of(grid["variants"][variant]) or \
            spec.get("consistency", "none") not in ("none", "", None):
        return []
    return list(spec.get("twins", [PROJECTED_SUFFIX]))


def baseline_of(spec: dict | None) -> str | None:
    """The closed-form baseline a grid variant is (``srlib.evaluate.BASELINES``), or
    ``None`` for a trained one."""
    return (spec or {}).get("baseline")


FAMILIES = ("baselines", "pixel", "down", "adversarial", "projected")


def family(grid: dict, variant: str) -> str:
    """The family a variant (or a ``+P`` twin) belongs to on the page's facets, one of
    ``FAMILIES``: a closed-form baseline; ``projected``, consistent by construction (a
    ``+P`` twin, or ``consistency`` other than none); ``adversarial``, any other with an
    ``adv`` term; ``down``, any other with a ``down`` term; else ``pixel``; ``other`` for
    a name the grid does not have (a result folder's run from another grid)."""
    from srlib.losses import parse_spec

    if variant not in grid["variants"]:
        return "projected" if twin_source(variant, grid["variants"]) else "other"
    spec = variant_spec(grid, variant)
    if baseline_of(grid["variants"][variant]):
        return "baselines"
    if spec.get("consistency", "none") not in ("none", "", None):
        return "projected"
    terms = {t.name for t in parse_spec(str(spec.get("loss", "pixel")))}
    return "adversarial" if "adv" in terms else "down" if "down" in terms else "pixel"


def variant_gpus(spec: dict | None) -> int:
    """How many GPUs (torchrun ranks) one run of a variant trains on: its ``gpus``, else 1."""
    return int((spec or {}).get("gpus", 1))


def variant_seeds(spec: dict | None, seeds: list[int]) -> list[int]:
    """The seeds a variant runs with, of ``seeds``: a closed-form baseline does not depend
    on the seed (evaluated once, with the first); a variant's own ``seeds`` keeps those of
    ``seeds`` it names (a sweep given fewer seeds than the grid); else all of them."""
    spec = spec or {}
    if baseline_of(spec):
        return seeds[:1]
    if "seeds" in spec:
        return [s for s in seeds if s in spec["seeds"]]
    return list(seeds)


def total_iters(grid: dict, variant: str) -> int:
    """Iterations behind a variant's generator: its own, plus its sources' for a fine-tune;
    0 for a baseline."""
    from srlib.train import preset_value

    spec = grid["variants"][variant] or {}
    if baseline_of(spec):
        return 0
    own = int(preset_value(grid["defaults"] | spec, "iters"))
    src = spec.get("init_from")
    return own + (total_iters(grid, src) if src else 0)


def iteration_label(grid: dict, variant: str) -> str:
    """A variant's training length as text: ``'2000'``, or for a fine-tune its source's
    total and its own, ``'2000 + 200'``; ``'0'`` for a baseline."""
    own = total_iters(grid, variant)
    src = (grid["variants"][variant] or {}).get("init_from")
    if not src:
        return str(own)
    before = total_iters(grid, src)
    return f"{before} + {own - before}"


def ordered(variants: list[str], grid: dict) -> list[str]:
    """Variants with every ``init_from`` source before its users (sources added)."""
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


def run_config(grid: dict, variant: str, seed: int, out: Path) -> dict:
    """The ``Config`` fields of one trained run, as plain data (the grid's, then the
    runner's): its folder ``<out>/runs/<variant>/seed<k>``, its source's folder."""
    fields = config_fields()
    spec = {k: v for k, v in {**grid["defaults"], **grid["variants"][variant]}.items()
            if k in fields}  # not the runner's own keys (baseline, seeds, gpus)
    if spec.get("init_from"):
        spec["init_from"] = str(runs.run_dir(out, spec["init_from"], seed).resolve())
    spec.update(seed=seed, out=str(runs.run_dir(out, variant, seed).resolve()), progress=False)
    return spec


def baseline_config(grid: dict, variant: str, seed: int, out: Path) -> dict:
    """The config a closed-form baseline's folder records (``Config`` fields, as JSON
    reads them back): its name as the loss, no upsampler, the grid's test sets."""
    import json

    from srlib.train import Config

    spec = {**grid["defaults"], **grid["variants"][variant]}
    fields = {k: v for k, v in spec.items() if k in config_fields()}
    if isinstance(fields.get("test_data"), str):  # one set, as Config reads it
        fields["test_data"] = [fields["test_data"]]
    c = Config(**{**fields, "loss": baseline_of(grid["variants"][variant]),
                  "upsampler": "", "init_from": None, "seed": seed,
                  "out": str(runs.run_dir(out, variant, seed))})
    return json.loads(json.dumps(dataclasses.asdict(c)))


def test_sets(grid: dict) -> list[str]:
    """The names of every test set the grid's variants are evaluated on."""
    from srlib.data import dataset_name
    from srlib.train import Config

    sets = [grid["defaults"].get("test_data", Config().test_data),
            *((spec or {}).get("test_data", []) for spec in grid["variants"].values())]
    names = [dataset_name(s) for x in sets for s in ([x] if isinstance(x, str) else x or [])]
    return list(dict.fromkeys(names))


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


# ---- hypotheses -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Hypothesis:
    """A claim ``metric(a) <direction> metric(b)``: direction ``greater`` means a is greater
    than b in ``metric``, ``less`` that it is less. ``b`` is a variant's name, or, when
    ``value`` is set, that number as text (a fixed value to beat, in the metric's unit).
    ``datasets``: the test sets it is evaluated on (empty: every test set in the table).
    ``unequal_iters_ok``: the grid accepts that a and b were trained for different numbers
    of iterations. ``every``: a claim about every test image against the fixed value (its
    statistic is the share that meet it; ``srlib.stats.share_meeting``). ``floor``: with
    ``b: noise-floor``, the column of the metric's calibrated null (``Metric.floor``) that
    ``a`` is compared with, image by image. ``primary``: its place (1, 2, ...) in the fixed
    testing sequence of the primary hypotheses; None: secondary."""

    id: str
    statement: str
    a: str
    b: str
    metric: str
    direction: str
    datasets: tuple[str, ...] = ()
    unequal_iters_ok: bool = False
    value: float | None = None
    every: bool = False
    floor: str | None = None
    primary: int | None = None

    @property
    def variants(self) -> tuple[str, ...]:
        """The variants the claim needs: a and b, or a alone against a fixed value."""
        return (self.a,) if self.value is not None or self.floor else (self.a, self.b)


_REQUIRED = ("id", "statement", "a", "b", "metric", "direction")
_ALLOWED = (*_REQUIRED, "datasets", "unequal_iters_ok", "every", "primary")
MAX_PRIMARY = 5  # primary hypotheses per grid: a study's few declared questions
NOISE_FLOOR = "noise-floor"  # b: the metric's calibrated null, per image (Metric.floor)
_EVERY = re.compile(r"\bevery\b", re.IGNORECASE)


def parse_hypotheses(
    raw: list[dict] | None, variants: Collection[str], where: str,
    datasets: Collection[str] | None = None,
) -> list[Hypothesis]:
    """The grid file's ``hypotheses`` list -> Hypothesis objects, checked before any
    training. Refused (ValueError, every problem on its own line, each naming the hypothesis
    and the field): a non-mapping entry, unknown keys, missing or empty fields, an unknown
    variant in ``a`` / ``b`` (or the same one twice), a metric outside
    ``srlib.metrics.METRICS``, an unknown direction, unknown test sets (when ``datasets``
    is given), a non-boolean ``unequal_iters_ok``, duplicate ids, and a ``primary`` that is
    not a positive integer, is taken by another, is on an ``every`` claim, or is the sixth
    (``MAX_PRIMARY``). None: no hypotheses."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError(f"{where}: hypotheses: expected a list of mappings, got "
                         f"{type(raw).__name__}")
    errors: list[str] = []
    out: list[Hypothesis] = []
    seen: dict[str, int] = {}
    primaries: dict[int, str] = {}  # place in the sequence -> the hypothesis's name
    for i, h in enumerate(raw, 1):
        if not isinstance(h, Mapping):
            errors.append(f"{where}: hypothesis #{i}: expected a mapping with keys "
                          f"{', '.join(_ALLOWED)}, got {type(h).__name__}")
            continue
        hid = h.get("id")
        name = f"'{hid}'" if isinstance(hid, str) and hid.strip() else f"#{i}"
        ok, err = _hypothesis_fields(h, variants)
        ds, ds_err = _hypothesis_datasets(h, datasets)
        err += ds_err
        unequal = h.get("unequal_iters_ok", False)
        if not isinstance(unequal, bool):
            err.append(f"unequal_iters_ok: expected true or false, got {unequal!r}")
        every, every_err = _every(h, ok)
        err += every_err
        primary, primary_err = _primary(h, every, primaries)
        err += primary_err
        if "id" in ok:
            if ok["id"] in seen:
                err.append(f"id: duplicate (also hypothesis #{seen[ok['id']]})")
            else:
                seen[ok["id"]] = i
        errors += [f"{where}: hypothesis {name}: {e}" for e in err]
        if not err:
            out.append(Hypothesis(**ok, datasets=tuple(ds), unequal_iters_ok=unequal,
                                  every=every, primary=primary))
    if len(primaries) > MAX_PRIMARY:
        errors.append(f"{where}: {len(primaries)} primary hypotheses "
                      f"({', '.join(map(str, primaries.values()))}); at most {MAX_PRIMARY}: "
                      "a study declares its few primary questions, the rest are secondary")
    if errors:
        raise ValueError("\n".join(errors))
    return out


def _every(h: Mapping, ok: Mapping) -> tuple[bool, list[str]]:
    """The ``every`` flag of a hypothesis, and what is wrong with it: it needs a fixed value
    in ``b``; without it, the statement may not say 'every' (its test is on a mean)."""
    every = h.get("every", False)
    if not isinstance(every, bool):
        return False, [f"every: expected true or false, got {every!r}"]
    if every and "value" not in ok:
        return False, [f"every: true needs a fixed value in b (a number), got b "
                       f"{h.get('b')!r}"]
    if not every and _EVERY.search(str(h.get("statement", ""))):
        return False, ["statement: says 'every' but its test is on a mean; say what is "
                       "measured, or add 'every: true' (the share of test images that meet "
                       "the fixed value b)"]
    return every, []


def _primary(h: Mapping, every: bool, primaries: dict[int, str]
             ) -> tuple[int | None, list[str]]:
    """A hypothesis's place in the primaries' fixed sequence (None: secondary), recorded in
    ``primaries``, and what is wrong with it."""
    n = h.get("primary")
    if n is None:
        return None, []
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        return None, [f"primary: expected a positive integer (its place in the fixed "
                      f"testing sequence: 1, 2, ...), got {n!r}"]
    if every:
        return None, ["primary: an 'every' claim cannot be primary (it is decided by its "
                      "worst image, not tested at a level)"]
    name = f"'{h.get('id')}'"
    if n in primaries:
        return None, [f"primary: {n} is also hypothesis {primaries[n]}'s place; each "
                      "primary needs its own"]
    primaries[n] = name
    return n, []


def _b_side(h: Mapping) -> tuple[Mapping, list[str]]:
    """``h`` with a fixed value (a number in ``b``: ``value``, and ``b`` as text) or the
    noise floor (``b: noise-floor``: ``floor``, the metric's null column) resolved."""
    b = h.get("b")
    if isinstance(b, int | float) and not isinstance(b, bool):
        err = [] if math.isfinite(b) else [f"b: expected a variant or a finite number, got {b!r}"]
        return {**h, "b": f"{b:g}", "value": float(b)}, err
    if b != NOISE_FLOOR:
        return h, []
    floor = METRICS[h["metric"]].floor if h.get("metric") in METRICS else ""
    if floor:
        return {**h, "floor": floor}, []
    with_floor = [m for m, spec in METRICS.items() if spec.floor]
    return h, [f"b: {NOISE_FLOOR} needs a metric with a noise floor "
               f"({', '.join(with_floor) or 'none'}), got metric {h.get('metric')!r}"]


def _hypothesis_fields(h: Mapping, variants: Collection[str]) -> tuple[dict, list[str]]:
    """The well-formed required fields of one hypothesis (``_b_side``: a fixed value or the
    noise floor in ``b``), and what is wrong with it."""
    err = [unknown(k, _ALLOWED, "key") for k in h if k not in _ALLOWED]
    h, b_err = _b_side(h)
    err += b_err
    for k in _REQUIRED:
        if k not in h or h[k] is None:
            err.append(f"{k}: missing")
        elif not isinstance(h[k], str) or not h[k].strip():
            err.append(f"{k}: expected a non-empty string, got {h[k]!r}")
    ok = {k: h[k] for k in _REQUIRED if isinstance(h.get(k), str) and h[k].strip()}
    ok |= {k: h[k] for k in ("value", "floor") if k in h}
    for k in ("a",) if "value" in h or b_err or "floor" in h else ("a", "b"):
        if k in ok and ok[k] not in variants:
            err.append(unknown(ok[k], variants, k))
    if "a" in ok and ok.get("b") == ok["a"]:
        err.append(f"b: same variant as a ('{ok['a']}')")
    if "metric" in ok and ok["metric"] not in METRICS:
        err.append(unknown(ok["metric"], METRICS, "metric"))
    if "direction" in ok and ok["direction"] not in DIRECTIONS:
        err.append(unknown(ok["direction"], DIRECTIONS, "direction"))
    return ok, err


def _hypothesis_datasets(h: Mapping, datasets: Collection[str] | None
                         ) -> tuple[list[str], list[str]]:
    """The test sets a hypothesis is restricted to (none: all), and what is wrong with them."""
    ds = h.get("datasets", ())
    ds = [ds] if isinstance(ds, str) else ([] if ds is None else ds)
    if not isinstance(ds, list | tuple) or not all(isinstance(d, str) for d in ds):
        return [], [f"datasets: expected a list of test set names, got {ds!r}"]
    if datasets is None:
        return list(ds), []
    return list(ds), [unknown(d, datasets, "datasets")
                      for d in ds if d not in datasets]


def unknown(name: object, known: Collection[str], what: str) -> str:
    """``srlib.tables.unknown`` for a name a grid gives; a key renamed since says what it
    is called now."""
    k = str(name)
    if k in runs.RENAMED and runs.RENAMED[k] in known:
        return f"{what} {k!r} is now called {runs.RENAMED[k]!r}"
    return tables.unknown(what, name, known)


# ---- loading and checking the file ----------------------------------------------------------

def load_grid(path: str | Path) -> dict:
    """Read and check a grid file; ``ValueError`` names the file, the line and the bad
    entry (with the close match of an unknown key). Returns the grid as plain data with
    ``hypotheses`` as ``Hypothesis`` objects."""
    path = Path(path)
    text = _read_bounded(path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        _check_expansion(path, node)
        grid = _unshared(yaml.safe_load(text))
    except yaml.YAMLError as err:
        raise ValueError(_yaml_problem(path, err)) from None
    except RecursionError:
        raise ValueError(f"{path}: nested too deeply (or a recursive YAML alias)") from None
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
            raise ValueError(f"{where(key)}: {unknown(key, TOP_LEVEL, 'top-level key')}")
    grid.setdefault("name", path.stem)
    if not isinstance(grid["name"], str) or not grid["name"]:
        raise ValueError(f"{where('name')}: 'name' must be a non-empty string")
    grid["seeds"] = check_seeds(grid.get("seeds", [0]), f"{where('seeds')}: seeds")
    grid["defaults"] = _check_fields(grid.get("defaults"), "defaults", where)
    variants = grid["variants"] = _check_variants(grid.get("variants"), where)
    try:
        ordered(list(variants), grid)
    except ValueError as err:  # a cycle of init_from
        raise ValueError(f"{where('variants')}: {err}") from None
    _check_variant_seeds(grid, where)
    _check_values(grid, where)
    grid["notebook_params"] = _check_notebook_params(grid.get("notebook_params"), where)
    grid["hypotheses"] = _check_hypotheses(grid, where)
    grid.update({key: text_of(grid, key, where) for key in PROSE})
    # where the grid was committed before its runs: COMMIT:PATH, or a list of them, the
    # first declaration then each extension that added runs (srlib.results.declaration)
    declared = grid.setdefault("declared", None)
    entries = declared if isinstance(declared, list) else [declared]
    if declared is not None and (not entries or not all(
            isinstance(e, str) and re.fullmatch(r"[0-9a-f]{7,40}:[^:\s]+", e) for e in entries)):
        raise ValueError(f"{where('declared')}: 'declared' must be COMMIT:PATH, or a list of "
                         f"them oldest first (the commit that holds the grid as it was "
                         f"declared, e.g. 41c853c:configs/study.yaml, then each that "
                         f"extended it before the added runs ran), got {declared!r}")
    grid["answer"] = _check_answer(grid, where)
    grid["critic"] = check_critic(grid.get("critic"), where("critic"))
    # the job settings of --executor slurm, checked here as given (defaults: at submission)
    from srlib.sbatch import check_settings

    if isinstance(grid.get("slurm"), dict) and "time" in grid["slurm"]:
        grid["slurm"]["time"] = _as_written(node, ("slurm", "time"), grid["slurm"]["time"])
    check_settings(grid.get("slurm"), f"{where('slurm')}: slurm")
    grid["slurm"] = dict(grid.get("slurm") or {})
    return grid


def _as_written(node: yaml.Node, keys: tuple[str, ...], value: object) -> object:
    """A scalar as the file spells it where YAML made a number of a time: ``12:00:00``
    is base-60 to YAML 1.1 (43200), but sbatch's H:M:S to a SLURM user."""
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            return value
        node = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
    if isinstance(node, yaml.ScalarNode) and ":" in node.value and isinstance(value, int):
        return node.value
    return value


# ---- the critic's health criterion ----------------------------------------------------------

CRITIC_KEYS = ("column", "last", "between")


def loss_columns() -> tuple[str, ...]:
    """The columns of a run's ``losses.csv`` a criterion may read: the critic's loss
    ``d_loss``, the generator's ``total`` and each term of ``srlib.losses.TERMS``."""
    from srlib.losses import TERMS  # the loss table, read at each call

    return ("d_loss", "total", *TERMS)


def check_critic(spec: object, where: str = "critic") -> dict | None:
    """The grid's ``critic:`` section, the health criterion of every run with a
    discriminator: ``column`` (of ``losses.csv``, ``loss_columns``; default ``d_loss``),
    ``last`` (the share of the run's iterations at its end to average, in (0, 1]; default
    0.25) and ``between: [low, high]`` (the healthy range of that mean). ``None`` when
    absent; ``ValueError`` naming the key and what was expected."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: 'critic' must be a mapping of {', '.join(CRITIC_KEYS)}, "
                         f"got a {_kind(spec)}")
    for key in spec:
        if key not in CRITIC_KEYS:
            raise ValueError(f"{where}: critic: {unknown(key, CRITIC_KEYS, 'key')}")
    out = {"column": spec.get("column", "d_loss"), "last": spec.get("last", 0.25),
           "between": spec.get("between")}
    if out["column"] not in loss_columns():
        raise ValueError(f"{where}: critic: {unknown(out['column'], loss_columns(), 'column')}"
                         " (a column of a run's losses.csv)")
    last = out["last"]
    if not isinstance(last, (int, float)) or isinstance(last, bool) or not 0 < last <= 1:
        raise ValueError(f"{where}: critic: 'last' must be a share of the iterations in "
                         f"(0, 1], got {last!r}")
    b = out["between"]
    if not (isinstance(b, list) and len(b) == 2
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in b)
            and b[0] < b[1]):
        raise ValueError(f"{where}: critic: 'between' must be [low, high] with low < high, "
                         f"got {b!r}")
    return out


def _read_bounded(path: Path) -> str:
    """The file's text, refused when it is missing, a folder, or larger than any grid
    (``MAX_GRID_BYTES``)."""
    if path.is_dir():
        raise ValueError(f"{path} is a directory; expected a grid file (YAML), e.g. "
                         "configs/quick.yaml")
    if not path.is_file():
        raise FileNotFoundError(f"grid file not found: {path}")
    size = path.stat().st_size
    if size > MAX_GRID_BYTES:
        raise ValueError(f"{path}: {size} bytes; a grid file is at most {MAX_GRID_BYTES} "
                         "bytes")
    try:
        return path.read_text()
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a text file ({err.reason} at byte {err.start})") \
            from None


def _check_expansion(path: Path, node: yaml.Node | None) -> None:
    """Refuse a grid whose aliases (``*name``) expand beyond ``MAX_GRID_NODES`` nodes:
    nested ones expand a 1 kB file into billions ("billion laughs"). The count is memoised
    per node, so it takes time linear in the file, whatever it expands to."""
    sizes: dict[int, int] = {}

    def size(n: yaml.Node) -> int:
        if id(n) not in sizes:
            sizes[id(n)] = 0  # a node inside itself (a recursive alias) counts once
            kids = [x for kv in n.value for x in kv] if isinstance(n, yaml.MappingNode) else \
                n.value if isinstance(n, yaml.SequenceNode) else []
            sizes[id(n)] = min(1 + sum(size(k) for k in kids), MAX_GRID_NODES + 1)
        return sizes[id(n)]

    if node is not None and size(node) > MAX_GRID_NODES:
        raise ValueError(f"{path}: its YAML aliases expand to more than {MAX_GRID_NODES} "
                         "values; a grid is a page of settings: write fewer or no aliases")


def _unshared(obj: object) -> object:
    """A copy in which no two places share one mapping or list (an alias gives each use
    its own copy, so that checking one variant never changes another)."""
    if isinstance(obj, dict):
        return {k: _unshared(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unshared(v) for v in obj]
    return obj


def _check_hypotheses(grid: dict, where: Callable[..., str]) -> list[Hypothesis]:
    """``hypotheses`` -> ``Hypothesis`` objects, checked against the grid's variants and
    the ``+P`` twins of its trained ones, the metrics, the grid's test sets, the seeds the
    two sides share and their training length (``_unequal_iters``); every problem on its
    own line, each naming the hypothesis and the field."""
    if grid.get("hypotheses") is not None and not isinstance(grid["hypotheses"], list):
        raise ValueError(f"{where('hypotheses')}: 'hypotheses' must be a list, got a "
                         f"{_kind(grid['hypotheses'])}")
    variants = grid["variants"]
    trained = [v for v, spec in variants.items() if not baseline_of(spec)]
    twins = [projected_name(v, s) for v in trained for s in twins_of(grid, v)]
    clash = [t for t in twins if t in variants]
    if clash:
        raise ValueError(f"{where('variants', clash[0])}: variant name {clash[0]!r} is taken "
                         "by the post-hoc twin of a trained variant; rename it")
    names = [*variants, *twins]
    hypotheses = parse_hypotheses(grid.get("hypotheses"), names, where("hypotheses"),
                                  test_sets(grid))
    problems = [f"{where('hypotheses')}: hypothesis '{h.id}': {why}" for h in hypotheses
                if (why := _unequal_iters(h, grid) or _no_common_seed(h, grid)
                    or _no_samples(h, grid) or _no_lpips(h, grid))]
    if problems:
        raise ValueError("\n".join(problems))
    return hypotheses


# The fields an ``answer:`` may use: ``{H2.mean}`` (a hypothesis's pooled verdict row) or
# ``{pixel/nearest@Set5.psnr_y}`` (a variant's mean over its seeds on a set, results.csv).
ANSWER_FIELDS = {
    "mean": "the mean difference a - b", "abs": "its absolute value",
    "low": "the interval's lower end", "high": "its upper end",
    "interval": "'mean [low, high]'", "verdict": "the adjusted verdict",
    "unadjusted": "the verdict before adjustment", "p": "the bootstrap's p-value",
    "p_mixed": "the mixed model's p-value", "seeds": "the runs behind it",
    "images": "the test images behind it"}
_FIELD = re.compile(r"\{([^{}]*)\}")


def answer_fields(text: str) -> list[tuple[str, str, str]]:
    """The fields of an answer text: ``(as written, key, field)``, where the key is a
    hypothesis id or ``VARIANT@SET`` and the field follows the last dot."""
    out = []
    for m in _FIELD.finditer(text):
        key, _, field = m.group(1).strip().rpartition(".")
        out.append((m.group(0), key, field))
    return out


def text_of(grid: dict, key: str, where: Callable[..., str]) -> str | None:
    """The grid's ``key`` as one Markdown text: a string, or a list of strings (one
    paragraph each); None where the grid has no such key."""
    raw = grid.get(key)
    if raw is None:
        return None
    if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        raw = "\n\n".join(raw)
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(f"{where(key)}: '{key}' must be plain text (or a list of "
                         f"paragraphs), got {_kind(raw)}")
    if key == "title" and "\n" in raw.strip():
        raise ValueError(f"{where(key)}: 'title' must be one line")
    return raw.strip()


def _check_answer(grid: dict, where: Callable[..., str]) -> str | None:
    """The grid's ``answer`` (a string, or a list of strings, one paragraph each) as one
    text; each field names a hypothesis of the grid and one of ``ANSWER_FIELDS``, or a
    ``VARIANT@SET`` of the grid and a metric."""
    raw = text_of(grid, "answer", where)
    if raw is None:
        return None
    ids = [h.id for h in grid["hypotheses"]]
    names = [*grid["variants"], *(projected_name(v, s) for v in grid["variants"]
                                  for s in twins_of(grid, v))]
    errors = []
    for written, key, field in answer_fields(raw):
        variant, at, dataset = key.rpartition("@")
        if not key:
            errors.append(f"{written}: expected {{HYPOTHESIS.FIELD}} or "
                          "{VARIANT@SET.METRIC}")
        elif at:
            why = (unknown(variant, names, "variant") if variant not in names else
                   unknown(dataset, test_sets(grid), "test set")
                   if dataset not in test_sets(grid) else
                   unknown(field, METRICS, "metric") if field not in METRICS else "")
            errors += [f"{written}: {why}"] if why else []
        elif key not in ids:
            errors.append(f"{written}: {unknown(key, ids, 'hypothesis')}")
        elif field not in ANSWER_FIELDS:
            errors.append(f"{written}: {unknown(field, ANSWER_FIELDS, 'field')}")
    if errors:
        raise ValueError("\n".join(f"{where('answer')}: answer: {e}" for e in errors))
    return raw


def source_variant(grid: dict, name: str) -> str:
    """The grid variant behind a hypothesis side: ``v`` for ``v`` and for its twins
    ``v+P``, ``v+B``."""
    if name in grid["variants"]:
        return name
    twin = twin_source(name, grid["variants"])
    return twin[0] if twin else name


def _unequal_iters(h: Hypothesis, grid: dict) -> str:
    """Why hypothesis ``h`` compares two trained (or projected) variants trained for
    different numbers of iterations (a fine-tune counts its source's too), or '' when the
    counts agree, a side is a baseline, b is a fixed value, or ``h.unequal_iters_ok``."""
    if h.unequal_iters_ok or len(h.variants) < 2:
        return ""
    sides = [source_variant(grid, v) for v in (h.a, h.b)]
    if any(baseline_of(grid["variants"][v]) for v in sides):
        return ""
    totals = [total_iters(grid, v) for v in sides]
    if totals[0] == totals[1]:
        return ""
    counts = [iteration_label(grid, v) for v in sides]
    return (f"a '{h.a}' is trained for {counts[0]} iterations and b '{h.b}' for "
            f"{counts[1]}: compare variants of equal training length, or mark the "
            "hypothesis 'unequal_iters_ok: true' (the report then says so)")


def _no_lpips(h: Hypothesis, grid: dict) -> str:
    """Why ``h`` reads LPIPS of a side whose runs do not compute it (``eval_lpips:
    false``), or ''."""
    if h.metric != "lpips":
        return ""
    off = [v for v in h.variants if not variant_spec(grid, v).get("eval_lpips", True)
           and not baseline_of(variant_spec(grid, v))]
    return (f"metric lpips, but '{off[0]}' is evaluated without it (eval_lpips: false)"
            if off else "")


def _no_samples(h: Hypothesis, grid: dict) -> str:
    """Why ``h`` compares with the noise floor a variant that draws no samples, or ''."""
    if not h.floor:
        return ""
    spec = variant_spec(grid, h.a)
    if spec.get("noise") and spec.get("eval_samples"):
        return ""
    return (f"b: {NOISE_FLOOR} compares the samples of a '{h.a}' with null-space noise, but "
            "it draws none: give it 'noise: C' and 'eval_samples: K'")


def _no_common_seed(h: Hypothesis, grid: dict) -> str:
    """Why the two trained sides of ``h`` can never be paired (no seed in common), or ''."""
    sides = [source_variant(grid, v) for v in h.variants]
    specs = [grid["variants"][v] for v in sides]
    if len(sides) < 2 or any(baseline_of(s) for s in specs):
        return ""
    sa, sb = (variant_seeds(s, grid["seeds"]) for s in specs)
    if set(sa) & set(sb):
        return ""
    return (f"a '{h.a}' runs with seeds {sa} and b '{h.b}' with seeds {sb}: no seed in "
            "common, so no image can be paired; give them a seed in common")


def _check_variant_seeds(grid: dict, where: Callable[..., str]) -> None:
    """A variant's own seeds are a subset of the grid's (else they would never run), and a
    fine-tune's a subset of its source's (each seed starts from that seed's source)."""
    for name, spec in grid["variants"].items():
        extra = [s for s in spec.get("seeds", []) if s not in grid["seeds"]]
        if extra:
            raise ValueError(f"{where('variants', name, 'seeds')}: variant {name!r}: seeds "
                             f"{extra} are not among the grid's seeds {grid['seeds']}; a "
                             "variant's seeds choose among the grid's")
    for name, spec in grid["variants"].items():  # a fine-tune starts from its seed's source
        src = spec.get("init_from")
        if src in grid["variants"]:
            have = variant_seeds(grid["variants"][src], grid["seeds"])
            lack = [s for s in variant_seeds(spec, grid["seeds"]) if s not in have]
            if lack:
                raise ValueError(f"{where('variants', name)}: variant {name!r} fine-tunes "
                                 f"{src!r} with seeds {lack}, which {src!r} does not train "
                                 f"(its seeds: {have}); give {name!r} seeds: {have} or fewer")


def _check_values(grid: dict, where: Callable[..., str]) -> None:
    """Every value a trained variant gives (loss spec, upsampler, skip, consistency, loss
    operator, discriminator, sizes, test set names ...), as ``srlib.train.Config`` checks
    it, at load: a typo fails here, not after the other runs trained. Where a run trains
    (the device) is the runner's to check."""
    from srlib.train import Config

    for v, spec in grid["variants"].items():
        if baseline_of(spec):
            continue
        fields = run_config(grid, v, grid["seeds"][0], Path("runs"))
        try:
            Config(**{**fields, "device": "cpu", "init_from": None}).resolved()
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where('variants', v)}: variant {v!r}: {err}") from None


def check_variant_name(name: object) -> str:
    """Why ``name`` cannot be a variant (it becomes the folder ``runs/<name>/``, one per
    name), or '' when it can: a non-empty relative path of plain parts, no ``.`` or
    ``..`` part, no empty part (``a//b``, a trailing ``/``), no control character, no part
    named like the runner's own (``seed<k>``, hidden ``.name``), none over 255 bytes."""
    if not isinstance(name, str) or not name.strip():
        return "a variant name must be a non-empty string"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "a variant name may not hold control characters (newlines, tabs)"
    if name != name.strip():
        return "a variant name may not start or end with spaces"
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
        return ("a variant name must be a relative folder name of plain parts (no leading "
                "'/' or './', no '.' or '..' part, no empty part, no backslash)")
    # the runner's own names inside a variant's folder: seed<k>/ and hidden lock files
    own = [p for p in parts if re.fullmatch(r"seed\d+", p) or p.startswith(".")]
    if own:
        return (f"a variant name may not have a part named like the runner's own folders and "
                f"files ('seed<k>', or starting with '.'), got part {own[0]!r}: another "
                "variant's runs would live inside this one's")
    long = [p for p in parts if len(p.encode()) > 255]
    if long:
        return (f"a variant name's part is {len(long[0].encode())} bytes; a folder name "
                "holds at most 255")
    return ""


def _check_variants(variants, where) -> dict:
    """The ``variants`` mapping, each checked: a folder-safe name, Config fields, a loss
    (or a baseline), an ``init_from`` that names a trained variant."""
    if not isinstance(variants, dict) or not variants:
        raise ValueError(f"{where('variants')}: needs a non-empty mapping 'variants' "
                         "(name: {loss, upsampler, ...})")
    for name in list(variants):
        why = check_variant_name(name)
        if why:
            raise ValueError(f"{where('variants', name)}: variant name {name!r}: {why} (it "
                             "becomes runs/<variant>/)")
        raw = variants[name]
        base = raw.pop("baseline", None) if isinstance(raw, dict) else None
        own_seeds = raw.pop("seeds", None) if isinstance(raw, dict) else None
        gpus = raw.pop("gpus", None) if isinstance(raw, dict) else None
        spec = variants[name] = _check_fields(raw, f"variant {name!r}", where,
                                              ("variants", name))
        if own_seeds is not None:
            spec["seeds"] = check_seeds(own_seeds, f"{where('variants', name, 'seeds')}: "
                                                   f"variant {name!r}: seeds")
        if gpus is not None:
            if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
                raise ValueError(f"{where('variants', name, 'gpus')}: variant {name!r}: gpus: "
                                 f"expected the number of GPUs (ranks) of one run, an integer "
                                 f">= 1, got {gpus!r}")
            spec["gpus"] = gpus
        if base is not None:
            _check_baseline(base, name, spec, where)
            spec["baseline"] = base
        elif "loss" not in spec:
            raise ValueError(f"{where('variants', name)}: variant {name!r} needs a 'loss' "
                             "(or 'baseline: <name>' for a closed-form baseline)")
    for name, spec in variants.items():
        src = spec.get("init_from")
        if src is not None and src not in variants:
            raise ValueError(f"{where('variants', name, 'init_from')}: variant {name!r}: "
                             f"{unknown(src, variants, 'init_from')}")
        if src is not None and baseline_of(variants[src]):
            raise ValueError(f"{where('variants', name, 'init_from')}: variant {name!r}: "
                             f"init_from {src!r} is a closed-form baseline, which has no "
                             "generator to start from; name a trained variant")
    return variants


def _check_baseline(base: object, name: str, spec: dict, where: Callable[..., str]) -> None:
    """A closed-form baseline names one of ``evaluate.BASELINES`` and trains nothing."""
    from srlib.evaluate import BASELINES

    if base not in BASELINES:
        raise ValueError(f"{where('variants', name, 'baseline')}: variant {name!r}: "
                         f"{unknown(base, tuple(BASELINES), 'baseline')}")
    trained = sorted(set(spec) & {"loss", "upsampler", "init_from", "iters", "gpus"})
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


def _check_fields(spec: object, what: str, where: Callable[..., str],
                  keys: tuple[str, ...] = ("defaults",)) -> dict:
    """``defaults`` or a variant: a mapping (or nothing) of ``Config`` fields."""
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise ValueError(f"{where(*keys)}: {what} must be a mapping of Config fields, got a "
                         f"{_kind(spec)}")
    known = sorted(config_fields() - set(RUNNER_SET))
    for key in spec:
        if key in RUNNER_SET:
            raise ValueError(f"{where(*keys, key)}: {what}: '{key}' cannot be set in a grid: "
                             f"{RUNNER_SET[key]}")
        if key not in known:
            raise ValueError(f"{where(*keys, key)}: {what}: {unknown(key, known, 'key')}")
    return spec


def check_seeds(seeds: object, what: str) -> list[int]:
    """A non-empty list of distinct integers in [0, 2^64) (what ``torch.manual_seed``
    takes); ``what`` names the field in the message."""
    if not isinstance(seeds, list) or not seeds:
        raise ValueError(f"{what} must be a non-empty list of integers, got {seeds!r}")
    bad = [s for s in seeds if not isinstance(s, int) or isinstance(s, bool)
           or not 0 <= s < 2**64]
    if bad:
        raise ValueError(f"{what} must be integers in [0, 2^64), got {bad[0]!r} in {seeds!r}")
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
            raise ValueError(f"{where('notebook_params', stem)}: notebook_params: "
                             f"{unknown(stem, NOTEBOOK_STAGES, 'notebook')}")
        if values is None:
            params[stem] = values = {}
        if not isinstance(values, dict):
            raise ValueError(f"{where('notebook_params', stem)}: notebook_params.{stem} must "
                             f"be a mapping of its parameters, got a {_kind(values)}")
        known = sorted(notebook_parameters(stem))
        for key in values:
            if key in RUNNER_PARAMS:
                raise ValueError(f"{where('notebook_params', stem, key)}: notebook_params."
                                 f"{stem}.{key}: the runner sets it (the result folder's own "
                                 f"paths under --out); a grid may not")
            if key not in known:
                raise ValueError(f"{where('notebook_params', stem, key)}: notebook_params."
                                 f"{stem}: {unknown(key, known, 'parameter')}")
    return params
