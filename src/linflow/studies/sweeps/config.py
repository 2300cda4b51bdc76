"""A sweep's settings: the parameters with their types, defaults and ranges, the grid's validation, the TOML
file."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path


from ...core.catalog import COMPARE_TOLERANCES, FLOW_TOLERANCES, INITS, PROBLEMS, SWEEP_MOMENTUM_METHODS




# parameter -> (type, default); every grid axis and fixed value must be one of these
PARAMETERS: dict[str, tuple[type, object]] = {
    "problem": (str, "synthetic"),
    "data": (str, ""),
    "m": (int, 500),
    "d": (int, 8),
    "p": (float, 2.0),
    "weight_decay": (float, 0.0),
    "seed": (int, 0),
    "depth": (int, 3),
    "width": (int, 8),
    "init": (str, "balanced"),
    "scale": (float, 0.3),
    "t1": (float, 10.0),
    "points": (int, 41),
    "eta": (float, 0.05),
    "eta_divisors": (list, [1, 2, 4, 8, 16]),
    "tol": (float, 1e-2),
    "solver": (str, "tsit5"),
    "rtol": (float, FLOW_TOLERANCES[0]),
    "atol": (float, FLOW_TOLERANCES[1]),
    "eta_ratio": (float, 1.0),
    "singular_values": (str, "3,1,0.3"),
    "start": (str, "aligned"),
    "transient": (int, 20_000),
    "record": (int, 4_000),
    "batch": (int, 8),
    "paths": (int, 500),
    "beta": (float, 0.5),
    "method": (str, "heavy_ball"),
    "beta2": (float, 0.8),
    "eps_root": (float, 1.0),
}


TASKS = ("run", "compare", "accuracy", "regime", "saddles", "atlas", "sgd", "momentum")
#: the starts of task ``saddles`` (:func:`linflow.studies.saddles.saddle_to_saddle`)
SADDLE_STARTS = ("aligned", "random")

#: a task's own defaults where they differ from :data:`PARAMETERS`: ``compare`` measures modified-flow errors of
#: order eta^3 and takes ``linflow compare``'s tight tolerances (a value the TOML gives always wins)
#: ``saddles`` resolves escape times to 1e-6 relative: the saddle study's tolerances, and a small start
TASK_DEFAULTS: dict[str, dict] = {"compare": {"rtol": COMPARE_TOLERANCES[0], "atol": COMPARE_TOLERANCES[1]},
                                  "saddles": {"rtol": 1e-10, "atol": 1e-12, "scale": 1e-6},
                                  "sgd": {"t1": 2.0, "scale": 1.0},
                                  "momentum": {"rtol": 1e-10, "atol": 1e-12, "t1": 5.0, "points": 21}}


def defaults(task: str) -> dict:
    """Every parameter's default for ``task``: :data:`PARAMETERS` with :data:`TASK_DEFAULTS` over it."""
    return {k: v for k, (_, v) in PARAMETERS.items()} | TASK_DEFAULTS.get(task, {})


# the range of each numeric parameter: (lower bound, whether the bound itself is allowed)
_BOUNDS: dict[str, tuple[float, bool]] = {
    "m": (1, True), "d": (1, True), "p": (1.0, True), "weight_decay": (0.0, True), "seed": (0, True),
    "depth": (1, True), "width": (1, True), "scale": (0.0, False), "t1": (0.0, False), "points": (2, True),
    "eta": (0.0, False), "tol": (0.0, False), "rtol": (0.0, False), "atol": (0.0, False),
    "eta_ratio": (0.0, False), "transient": (1, True), "record": (128, True), "batch": (1, True), "paths": (2, True),
    "beta": (0.0, True), "beta2": (0.0, True), "eps_root": (0.0, True),
}


def _check_bound(key: str, value, where: str) -> None:
    if key not in _BOUNDS:
        return
    low, inclusive = _BOUNDS[key]
    if value < low or (value == low and not inclusive):
        raise ValueError(f"{where}: {key!r} must be {'>=' if inclusive else '>'} {low:g}, got {value!r}")


def _check_value(key: str, value, where: str):
    kind = PARAMETERS[key][0]
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TypeError(f"{where}: {key!r} must be a finite number, got {value!r}")
        _check_bound(key, value, where)
        if key == "beta" and not value < 1.0:
            raise ValueError(f"{where}: 'beta' must be < 1 (the momentum, 0 <= beta < 1), got {value!r}")
        if key == "beta2" and not value < 1.0:
            raise ValueError(f"{where}: 'beta2' must be < 1 (Adam's second average, 0 <= beta2 < 1), got {value!r}")
        return float(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{where}: {key!r} must be an integer, got {value!r}")
        _check_bound(key, value, where)
        return int(value)
    if kind is list:
        if not isinstance(value, list) or not value or not all(isinstance(v, int) and v > 0 for v in value):
            raise TypeError(f"{where}: {key!r} must be a non-empty list of positive integers, got {value!r}")
        return list(value)
    if not isinstance(value, str):
        raise TypeError(f"{where}: {key!r} must be a string, got {value!r}")
    if key == "init" and value not in INITS:
        raise ValueError(f"{where}: 'init' must be one of {', '.join(INITS)}, got {value!r}")
    if key == "problem" and value not in PROBLEMS:
        raise ValueError(f"{where}: 'problem' must be one of {', '.join(PROBLEMS)}, got {value!r}")
    if key == "method" and value not in SWEEP_MOMENTUM_METHODS:
        raise ValueError(f"{where}: 'method' must be one of {', '.join(SWEEP_MOMENTUM_METHODS)}, got {value!r}")
    if key == "start" and value not in SADDLE_STARTS:
        raise ValueError(f"{where}: 'start' must be one of {', '.join(SADDLE_STARTS)}, got {value!r}")
    if key == "singular_values":
        parse_singular_values(value, where)
    return value


def parse_singular_values(text: str, where: str = "singular_values") -> list[float]:
    """``"3,1,0.3"`` -> ``[3.0, 1.0, 0.3]``: distinct positive numbers, comma-separated (task ``saddles``' target)."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{where}: 'singular_values' must be comma-separated numbers such as '3,1,0.3', "
                         f"got {text!r}") from None
    if not values or any(not math.isfinite(v) or v <= 0 for v in values) or len(set(values)) != len(values):
        raise ValueError(f"{where}: 'singular_values' must be distinct positive numbers, got {text!r}")
    return values


def validate(grid: dict, fixed: dict | None = None, task: str = "run") -> tuple[dict, dict]:
    """Check a grid and fixed parameters before anything runs; returns normalized copies.

    Raises ``ValueError`` / ``TypeError`` naming the offending key: unknown parameter, empty axis, a
    value of the wrong type, an axis also given as a fixed value, an unknown task.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if not isinstance(grid, dict) or not grid:
        raise ValueError("grid must be a non-empty mapping of parameter -> list of values")
    fixed = dict(fixed or {})
    out_grid, out_fixed = {}, {}
    for key, values in grid.items():
        if key not in PARAMETERS:
            raise ValueError(f"grid: unknown parameter {key!r}; known: {', '.join(PARAMETERS)}")
        if PARAMETERS[key][0] is list:
            raise ValueError(f"grid: {key!r} cannot be a grid axis (give it in 'fixed')")
        if not isinstance(values, (list, tuple)) or len(values) == 0:
            raise ValueError(f"grid: axis {key!r} must be a non-empty list, got {values!r}")
        vals = [_check_value(key, v, f"grid axis {key!r}") for v in values]
        if len(set(vals)) != len(vals):
            raise ValueError(f"grid: axis {key!r} repeats a value: {vals}")
        out_grid[key] = vals
    for key, value in fixed.items():
        if key not in PARAMETERS:
            raise ValueError(f"fixed: unknown parameter {key!r}; known: {', '.join(PARAMETERS)}")
        if key in out_grid:
            raise ValueError(f"fixed: {key!r} is also a grid axis")
        out_fixed[key] = _check_value(key, value, "fixed")
    return out_grid, out_fixed


def load_config(path) -> dict:
    """A sweep from a TOML file: ``task``, optional ``store``, a ``[grid]`` table and a ``[fixed]`` table.

    A relative ``store`` is taken relative to the working directory (like every output path of the
    command line); without one the store is ``<config name>-store`` there. ``name`` is the file's
    stem (the figures of the sweep are named after it).
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"config {path}: no such file (expected a TOML file with task, store, [grid] and [fixed])")
    if not path.is_file():
        raise ValueError(f"config {path}: not a file (expected a TOML file with task, store, [grid] and [fixed])")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"config {path}: cannot be read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ValueError(f"config {path}: not UTF-8 text (line {line}, byte {exc.start}); TOML files are UTF-8") from None
    try:
        cfg = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(cfg) - {"task", "store", "grid", "fixed"}
    if unknown:
        raise ValueError(f"{path}: unknown top-level key(s) {sorted(unknown)}; expected task, store, grid, fixed")
    if "grid" not in cfg:
        raise ValueError(f"{path}: a [grid] table is required")
    store = cfg.get("store", f"{path.stem}-store")  # relative to the working directory unless absolute
    return {"name": path.stem, "task": cfg.get("task", "run"), "store": store, "grid": cfg["grid"],
            "fixed": cfg.get("fixed", {})}
