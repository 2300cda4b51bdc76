"""The command line's options: the parser of every command, ``--quick`` defaults settled after parsing (an option the
user typed always wins), the problem, network, solver and output groups."""

from __future__ import annotations

import argparse
import math
import re

from ..core import catalog as _catalog
from . import commands
from .commands import STEP_SIZE_HORIZON

__all__ = ["build_parser", "settle"]

RUN_DESCRIPTION = (
    "The main job: on the embedded default problem (a synthetic gas-sensor-like regression) with a depth-3 "
    "network, the layer flow, the end-to-end flow (ACH18 Theorem 1), and gradient descent and the end-to-end "
    "update (Eq. 10) for a few learning rates, all on one time grid. Prints a table and writes run.nc (every "
    "trajectory), run.png (figure) and summary.json to --out. --quick changes only the defaults of the options "
    "you leave out (each option lists its quick value); the printed settings say which values were used.")

class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``linflow CMD: error: argument --OPTION: ...`` and exit 2, no usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def number(kind=float, low: float | None = None, *, above: bool = False, form: str | None = None):
    """An option's value converter: a finite ``kind`` (float or int) ``>= low`` (``> low`` with ``above``); a wrong
    value is refused by argparse as ``argument --OPTION: expected FORM, got 'TEXT'``."""
    what = "an integer" if kind is int else "a number"
    form = form or (what if low is None else f"{what} {'>' if above else '>='} {low:g}")

    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {form}, got {text!r}") from None
        if not math.isfinite(value) or (low is not None and (value <= low if above else value < low)):
            raise argparse.ArgumentTypeError(f"expected {form}, got {text!r}")
        return value

    convert.__name__ = form  # argparse names the converter in some messages
    convert.kind, convert.low, convert.above, convert.form = kind, low, above, form  # for tests and docs
    return convert


def listing(kind=float, low: float | None = None, *, above: bool = False, empty: bool = False):
    """A comma-separated list of :func:`number` values (``empty``: may be empty, for "none")."""
    item = number(kind, low, above=above)
    what = "integers" if kind is int else "numbers"
    form = f"comma-separated {what}" + ("" if low is None else f" {'>' if above else '>='} {low:g}")

    def convert(text: str):
        values = []
        parts = [x.strip() for x in text.split(",")] if text.strip() else []
        for part in parts:
            try:
                values.append(item(part))  # an empty entry ("1,,2", "1,") is refused: a typo, not "nothing"
            except argparse.ArgumentTypeError:
                raise argparse.ArgumentTypeError(f"expected {form}, got {text!r}") from None
        if not values and not empty:
            raise argparse.ArgumentTypeError(f"expected {form} (at least one), got {text!r}")
        return values

    convert.__name__ = form
    convert.kind, convert.low, convert.above, convert.form, convert.item, convert.empty = kind, low, above, form, item, empty
    return convert


def names(choices, *, empty: bool = False):
    """A comma-separated list of names from ``choices``."""
    form = "comma-separated names from " + ", ".join(choices)

    def convert(text: str):
        values = [x.strip() for x in text.split(",") if x.strip()]
        wrong = [v for v in values if v not in choices]
        if wrong or (not values and not empty):
            raise argparse.ArgumentTypeError(f"expected {form}, got {text!r}")
        return values

    convert.__name__ = form
    convert.choices, convert.form, convert.empty = tuple(choices), form, empty
    return convert


POSITIVE = number(float, 0, above=True)
NONNEGATIVE = number(float, 0)
SEED = number(int, 0)
_floats = listing(float)
_ints = listing(int)


def _show(value) -> str:
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) if isinstance(value, list) else \
        f"{value:g}" if isinstance(value, float) else str(value)


def _defaulted(parser, g, flag: str, default, quick=None, help: str = "", **kw) -> None:
    """An option whose default ``--quick`` may change: stored as None until :func:`settle` fills it in, so an
    option the user typed always wins (and is validated) over both defaults."""
    dest = flag.lstrip("-").replace("-", "_")
    if default is not None:
        help += f" (default {_show(default)}" + (f"; with --quick {_show(quick)})" if quick is not None else ")")
    g.add_argument(flag, default=None, help=help, **kw)
    table = parser.get_default("_defaults") or {}
    parser.set_defaults(_defaults={**table, dest: (default, quick)})


def settle(args) -> list[str]:
    """Fill the options left out with their defaults (the quick ones under ``--quick``); returns ``name=value``
    for each option with its source: typed, ``quick`` (a quick default) or the default."""
    used = []
    for dest, (default, quick) in (getattr(args, "_defaults", None) or {}).items():
        value = getattr(args, dest)
        source = "typed"
        if value is None:
            source, value = ("quick", quick) if args.quick and quick is not None else ("default", default)
            setattr(args, dest, value)
        if value is not None:
            used.append(f"{dest}={_show(value)}" + {"typed": " (typed)", "quick": " (--quick)", "default": ""}[source])
    return used


def _add_problem_options(p: argparse.ArgumentParser, quick_m: int | None = None, quick_d: int | None = None,
                         scale: float = 0.2) -> None:
    g = p.add_argument_group("problem (the embedded synthetic gas-sensor-like regression)")
    _defaulted(p, g, "--m", 2000, quick_m, type=number(int, 2), help="number of samples")
    _defaulted(p, g, "--d", 32, quick_d, type=number(int, 1), help="number of features")
    g.add_argument("--p", type=number(float, 1), default=2.0, help="exponent of the lp loss, >= 1 (default 2)")
    g.add_argument("--weight-decay", type=NONNEGATIVE, default=0.0, help="lambda >= 0 (default 0)")
    g.add_argument("--seed", type=SEED, default=0, help="seed of the data and the initialization (>= 0)")
    g = p.add_argument_group("network")
    g.add_argument("--depth", type=number(int, 1), default=3, help="number of layers N >= 1 (default 3)")
    g.add_argument("--widths", type=listing(int, 1), default=None,
                   help="hidden widths, comma-separated, depth-1 of them (default 16 each)")
    g.add_argument("--init", choices=_catalog.INITS, default="balanced", help="initialization (default balanced)")
    g.add_argument("--scale", type=NONNEGATIVE, default=scale,
                   help=f"balanced: spectral norm of each layer; near_zero/identity: std of the noise (default {scale:g})")


def _add_output_options(g, folder: str) -> None:
    g.add_argument("--out", default=folder, help=f"output folder (default ./{folder})")
    g.add_argument("--quick", action="store_true", help="smaller defaults, a fast version (for smoke tests): "
                   "changes only the options left out; each option's help gives its quick default")


def _add_solver_options(g, rtol: float, atol: float) -> None:
    g.add_argument("--solver", choices=_catalog.SOLVER_NAMES, default="tsit5", help="ODE solver (default tsit5)")
    g.add_argument("--rtol", type=POSITIVE, default=rtol, help=f"relative tolerance (default {rtol:g})")
    g.add_argument("--atol", type=POSITIVE, default=atol, help=f"absolute tolerance (default {atol:g})")


def _plain(text: str) -> str:
    """A docstring as plain text for ``--help``: RST roles and literals without their markup."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text)
    return text.replace("``", "")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; ``linflow --help`` lists the commands from the parser itself (never by hand)."""
    from .. import __version__

    parser = Parser(prog="linflow", description="linflow: deep linear networks in continuous and in discrete time.",
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"linflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_run, _add_compare, _add_accuracy, _add_saddles, _add_atlas, _add_sgd, _add_momentum,
                _add_reproduce, _add_sweep):
        add(sub)
    parser.description += "\n\ncommands: " + ", ".join(sub.choices) + " (linflow COMMAND --help for each)"
    return parser


def _add_run(sub) -> None:
    """``linflow run``: the main job."""
    run = sub.add_parser("run", help="the four trajectories on the default problem (the main job)",
                         description=RUN_DESCRIPTION)
    _add_problem_options(run, quick_m=300, quick_d=8)
    g = run.add_argument_group("runs")
    _defaulted(run, g, "--etas", [0.2, 0.1, 0.05, 0.02], [0.1, 0.05], type=listing(float, 0, above=True),
               help="learning rates, comma-separated; each must divide t1/(points-1)")
    _defaulted(run, g, "--t1", 100.0, 10.0, type=POSITIVE, help="horizon in flow time t = k eta")
    g.add_argument("--points", type=number(int, 2), default=101, help="saved time points (default 101)")
    _add_solver_options(g, *_catalog.FLOW_TOLERANCES)
    _add_output_options(g, "linflow-out")
    run.set_defaults(func=commands.cmd_run)


def _add_compare(sub) -> None:
    """``linflow compare``."""
    cmp = sub.add_parser("compare", help="where GD leaves the flow: orders, breakdown eta, stability thresholds",
                         description="Gradient descent and Eq. 10 against the flows and the modified flows for a "
                                     "range of learning rates (see linflow.compare).")
    _add_problem_options(cmp, quick_m=300, quick_d=6)
    g = cmp.add_argument_group("comparison")
    _defaulted(cmp, g, "--etas", None, type=listing(float, 0, above=True),
               help="learning rates, comma-separated; each must divide t1/(points-1) (default: see --eta-divisors)")
    _defaulted(cmp, g, "--eta-divisors", [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 25, 32, 40, 50, 64], [2, 4, 8],
               type=listing(int, 1), help="etas = t1/(points-1)/n for these n, used when --etas is not given (16 etas)")
    _defaulted(cmp, g, "--t1", 50.0, 4.0, type=POSITIVE, help="horizon in flow time")
    _defaulted(cmp, g, "--points", 101, 21, type=number(int, 2), help="time grid points")
    g.add_argument("--tol", type=POSITIVE, default=1e-2, help="relative deviation defining the breakdown eta (default 0.01)")
    g.add_argument("--orders", type=listing(int, 1, empty=True), default=[1, 2],
                   help="modified-flow orders, 1 and/or 2 (default 1,2)")
    _add_solver_options(g, *_catalog.COMPARE_TOLERANCES)
    _add_output_options(g, "linflow-compare")
    cmp.set_defaults(func=commands.cmd_compare)


def _add_accuracy(sub) -> None:
    """``linflow accuracy``."""
    CASES, DEFAULT_SOLVERS, SCIPY_SOLVERS = _catalog.ACCURACY_CASES, _catalog.ACCURACY_SOLVERS, _catalog.SCIPY_SOLVERS
    acc = sub.add_parser("accuracy", help="work-precision diagrams of the ODE solvers on a gradient flow",
                         description="Work-precision of linflow's solvers and SciPy's solve_ivp on a named case: "
                                     + "; ".join(f"{k}: {v}" for k, v in CASES.items()))
    acc.add_argument("--case", choices=list(CASES), default="exact", help="named problem (default exact)")
    acc.add_argument("--depth", type=number(int, 1), default=3, help="network depth (default 3)")
    acc.add_argument("--flow", choices=["layers", "end_to_end"], default="layers", help="which flow (default layers)")
    acc.add_argument("--t1", type=POSITIVE, default=None, help="horizon (default: the case's)")
    _defaulted(acc, acc, "--tolerances", [4, 5, 6, 7, 8, 9, 10], [5, 7, 9], type=listing(int, 1),
               help="k values, rtol = 10^-k, atol = 10^-(k+3)")
    _defaulted(acc, acc, "--solvers", list(DEFAULT_SOLVERS), ["euler", "tsit5", "dopri8"],
               type=names(_catalog.SOLVER_NAMES), help="linflow solvers, comma-separated")
    _defaulted(acc, acc, "--scipy", list(SCIPY_SOLVERS), ["RK45"], type=names(SCIPY_SOLVERS, empty=True),
               help="solve_ivp methods, comma-separated; empty for none")
    acc.add_argument("--steps-t1", type=POSITIVE, default=None,
                     help=f"horizon of the step-size figure (default max(t1, {STEP_SIZE_HORIZON:g}): long enough for the "
                          "step to settle at the stability limit 3.5 / sharpness after convergence)")
    _defaulted(acc, acc, "--repeats", 3, None, type=number(int, 1),
               help="timed repeats after the warm-up; the minimum is reported, the spread drawn")
    _add_output_options(acc, "linflow-accuracy")
    acc.set_defaults(func=commands.cmd_accuracy)


def _add_saddles(sub) -> None:
    """``linflow saddles``."""
    sad = sub.add_parser("saddles", help="learning from a small start: saddle-to-saddle escapes, their scaling, GD's shift",
                         description="Each singular mode's escape time from a small start along the layer flow and the "
                                     "end-to-end flow against the closed form, the fitted scaling with the start, the loss "
                                     "plateaus, and GD's escapes against the flow's (see linflow.studies.saddles).")
    g = sad.add_argument_group("study")
    _defaulted(sad, g, "--values", [3.0, 1.0, 0.3], type=listing(float, 0, above=True),
               help="the target's singular values (distinct, positive), comma-separated")
    _defaulted(sad, g, "--depths", [2, 3, 4], [2, 3], type=listing(int, 2), help="depths (>= 2), comma-separated")
    _defaulted(sad, g, "--alphas", [float(10.0 ** -k) for k in range(1, 11)], [1e-2, 1e-4, 1e-6, 1e-8],
               type=listing(float, 0, above=True),
               help="start scales (every initial singular value of W_e), comma-separated")
    _defaulted(sad, g, "--starts", ["aligned", "random"], ["aligned"], type=names(("aligned", "random")),
               help="aligned (on the target's singular vectors: closed form) and/or random, comma-separated")
    _defaulted(sad, g, "--gd-etas", [0.04, 0.02, 0.01, 0.005], [0.04, 0.02],
               type=listing(float, 0, above=True, empty=True),
               help="GD's learning rates against the flow's escapes, comma-separated; empty for none")
    _defaulted(sad, g, "--gd-depth", 3, type=number(int, 2), help="GD's depth")
    _defaulted(sad, g, "--gd-alpha", 1e-6, 1e-3, type=POSITIVE, help="GD's start scale")
    g.add_argument("--seed", type=SEED, default=0, help="seed of the problem and the random starts (default 0)")
    _add_output_options(g, "linflow-saddles")
    sad.set_defaults(func=commands.cmd_saddles)


def _add_sgd(sub) -> None:
    """``linflow sgd``."""
    sg = sub.add_parser("sgd", help="SGD against its SDEs: weak errors and their orders, the linear scaling rule",
                        description="Ensembles of SGD against the gradient flow, the first- and second-order stochastic "
                                    "modified equations and SVAG over the learning rate (weak errors with 95% "
                                    "intervals and fitted orders), and the linear scaling rule over (k eta, k B) with "
                                    "the noise-to-signal ratio that predicts its failure (see linflow.studies.stochastic).")
    _add_problem_options(sg, quick_m=200, quick_d=8, scale=1.0)  # from 0.2, depth 3 sits on a plateau until t ~ 10
    g = sg.add_argument_group("study")
    g.add_argument("--data", default=None, help="folder of the UCI gas-sensor files: the Ethanol problem (standardized) "
                                                "instead of the synthetic one (--m, --d and --seed's data then unused)")
    _defaulted(sg, g, "--etas", [0.1, 0.05, 0.025, 0.0125], [0.1, 0.05, 0.025], type=listing(float, 0, above=True),
               help="learning rates, comma-separated; each must divide t1/(points-1) four times over")
    _defaulted(sg, g, "--t1", 2.0, 1.0, type=POSITIVE, help="horizon in flow time t = k eta")
    _defaulted(sg, g, "--points", 5, 3, type=number(int, 2), help="save times on [0, t1]")
    _defaulted(sg, g, "--batch", 8, 4, type=number(int, 1), help="minibatch size B (drawn with replacement)")
    _defaulted(sg, g, "--paths", 2000, 400, type=number(int, 2), help="paths per model and eta")
    _defaulted(sg, g, "--ell", 4, type=number(int, 1), help="SVAG's l")
    _defaulted(sg, g, "--models", ["gf", "sme1", "sme2", "svag"], type=names(("gf", "sme1", "sme2", "svag")),
               help="models against SGD, comma-separated: gf, sme1, sme2, svag")
    _defaulted(sg, g, "--ks", [1, 2, 4, 8, 16], [1, 2, 4], type=listing(int, 1, empty=True),
               help="linear-scaling factors from the smallest eta (starting at 1; t1 a multiple of max(ks) x that eta); "
                    "empty for none")
    _add_output_options(g, "linflow-sgd")
    sg.set_defaults(func=commands.cmd_sgd)


def _add_atlas(sub) -> None:
    """``linflow atlas``."""
    at = sub.add_parser("atlas", help="past the threshold: GD's attractor (period, chaos, divergence) for every eta",
                        description="GD's long-run attractor on a fine grid of learning rates, in one batched run: its "
                                    "period, largest Lyapunov exponent and divergence, the bifurcation diagram, with "
                                    "2 / S of the flow's limit and the central flow's reach marked (see "
                                    "linflow.studies.atlas).")
    g = at.add_argument_group("problem and start")
    g.add_argument("--problem", choices=["whitened", "synthetic"], default="whitened",
                   help="whitened regression with a square target of --values (default), or the default problem of "
                        "linflow run (synthetic, m = 2000, d = 32, one output)")
    _defaulted(at, g, "--values", [1.0], type=listing(float, 0, above=True),
               help="the target's singular values, comma-separated (whitened)")
    g.add_argument("--depth", type=number(int, 1), default=2, help="number of layers N >= 1 (default 2)")
    g.add_argument("--width", type=number(int, 1), default=1, help="hidden width (default 1: with --values 1, a scalar network)")
    g.add_argument("--init", choices=_catalog.INITS, default="near_zero",
                   help="initialization (default near_zero: Gaussian entries, unbalanced)")
    g.add_argument("--scale", type=POSITIVE, default=0.5, help="its scale, > 0 (default 0.5; 0 would start at a critical point)")
    g.add_argument("--seed", type=SEED, default=0, help="seed of the start and of the tangent vector (default 0)")
    g = at.add_argument_group("map")
    _defaulted(at, g, "--ratios", [0.9, 2.1], type=listing(float, 0, above=True),
               help="lowest and highest eta / eta_crit (eta_crit = 2 / S of the gradient flow's limit)")
    _defaulted(at, g, "--points", 241, 61, type=number(int, 2), help="etas on the grid")
    _defaulted(at, g, "--transient", 20_000, 4_000, type=number(int, 1), help="GD steps discarded before recording")
    _defaulted(at, g, "--record", 4_000, 1_000, type=number(int, 128), help="GD steps recorded (Lyapunov exponent, period)")
    _defaulted(at, g, "--central-points", 8, 3, type=number(int, 0), help="etas above eta_crit where the central flow is run")
    _add_output_options(g, "linflow-atlas")
    at.set_defaults(func=commands.cmd_atlas)


def _add_momentum(sub) -> None:
    """``linflow momentum``."""
    mo = sub.add_parser("momentum", help="heavy ball, Nesterov, Adam and RMSProp against their continuous models: "
                                         "orders, where they break",
                        description="Heavy ball and Nesterov (optax's form) from rest and from their slow manifold "
                                    "against the leading flow, the second-order equation and the modified flow over a "
                                    "grid of learning rates at fixed flow time: deviations after the initial layer, "
                                    "fitted orders with 95% intervals, the eta where each reaches --level (see "
                                    "linflow.studies.momentum and docs/math.md section 13). Adam and RMSProp (optax's, "
                                    "their averages' weights 1 - rate x eta) against their models (docs/math.md "
                                    "section 14) on the etas of the grid below 1 / rate.")
    _add_problem_options(mo, quick_m=200, quick_d=8)
    g = mo.add_argument_group("study")
    g.add_argument("--data", default=None, help="folder of the UCI gas-sensor files: the Ethanol problem (standardized) "
                                                "instead of the synthetic one (--m, --d and --seed's data then unused)")
    _defaulted(mo, g, "--methods", ["heavy_ball", "nesterov"],
               type=names(("heavy_ball", "nesterov", "adam", "adam_fixed", "rmsprop")),
               help="methods, comma-separated: heavy_ball, nesterov, adam (its averages scaling with eta), adam_fixed "
                    "(Adam at fixed betas against its memoryless flow and its modified equation (14.8)), rmsprop")
    g.add_argument("--beta", type=NONNEGATIVE, default=0.5, help="momentum beta, 0 <= beta < 1 (default 0.5)")
    g.add_argument("--adam-rates", type=listing(float, 0, above=True), default=[2.0, 4.0],
                   help="Adam's a,b: 1 - beta1 = a eta, 1 - beta2 = b eta (default 2,4); its etas are the grid's "
                        "below 1 / max(a, b)")
    g.add_argument("--adam-betas", type=listing(float, 0), default=[0.5, 0.8],
                   help="adam_fixed's beta1,beta2, each in [0, 1), held as eta changes (default 0.5,0.8)")
    g.add_argument("--eps-root", type=NONNEGATIVE, default=1.0,
                   help="adam_fixed's eps_root (optax's, inside the root; eps is 0): the scale of the gradients below "
                        "which its step turns from sign(g) to g / sqrt(eps_root) (default 1)")
    g.add_argument("--rmsprop-rate", type=POSITIVE, default=4.0,
                   help="RMSProp's b: 1 - decay = b eta (default 4); its etas are the grid's below 1 / b")
    g.add_argument("--rmsprop-model", choices=("leading", "modified"), default="leading",
                   help="RMSProp's model: leading (14.2, default) or modified (its modified equation (14.7), order 2; "
                        "needs --initial-scale > 0)")
    g.add_argument("--initial-scale", type=NONNEGATIVE, default=0.0,
                   help="RMSProp's initial second moment (optax's initial_scale; default 0, from which the model's "
                        "order is 1/2)")
    _defaulted(mo, g, "--t1", 10.0, 4.0, type=POSITIVE, help="horizon in flow time t = k eta")
    _defaulted(mo, g, "--points", 21, 9, type=number(int, 3), help="save times on [0, t1]")
    _defaulted(mo, g, "--divisors", [1, 2, 4, 8, 16, 32], [2, 4, 8, 16], type=listing(int, 1),
               help="the learning rates as the save spacing t1/(points-1) divided by each, comma-separated")
    g.add_argument("--level", type=POSITIVE, default=1e-2,
                   help="relative deviation whose crossing is reported (default 0.01, as linflow compare)")
    _add_solver_options(g, 1e-10, 1e-12)
    _add_output_options(g, "linflow-momentum")
    mo.set_defaults(func=commands.cmd_momentum)


def _add_reproduce(sub) -> None:
    """``linflow reproduce``."""
    EXPERIMENTS = _catalog.EXPERIMENTS
    papers = "; ".join(f"{paper}: {', '.join(names)}" for paper, names in _catalog.EXPERIMENT_SOURCES.items())
    rep = sub.add_parser("reproduce", help="the papers' experiments: " + ", ".join(EXPERIMENTS),
                         description=f"Reproduce an experiment, or all of them ({papers}). Without --data the "
                                     "gas-sensor experiments run on the embedded synthetic problem (said in every "
                                     "output); the completion experiments need no data.")
    rep.add_argument("name", help=f"one of {', '.join(EXPERIMENTS)}, or all")
    rep.add_argument("--data", default=None,
                     help="gas-sensor data: a folder of batch*.dat files or with ethanol.csv, or one such file "
                          "(default: the embedded synthetic problem, said in every output); for section8 the folder "
                          "of the MNIST IDX files (section8 does not apply without them)")
    rep.add_argument("--published", action="store_true",
                     help="achl19 only: the published configuration (100 x 100, rank 5, 1,500-5,000 entries, depths 2-4, "
                          "3 seeds, with the start rows: about 90 minutes on two cores) instead of the 50 x 50 one")
    _add_output_options(rep, "linflow-reproduce")
    rep.set_defaults(func=commands.cmd_reproduce)


def _add_sweep(sub) -> None:
    """``linflow sweep``."""
    tasks = _catalog.SWEEP_TASKS
    sw = sub.add_parser("sweep", help="a resumable parameter sweep from a TOML file (local or Dask)",
                        description=f"Run a grid of {', '.join(tasks[:-1])} or {tasks[-1]} tasks (see linflow.sweeps and "
                                    "docs/sweep.md); a restart computes only the missing points. The results go to "
                                    "the store folder (no --out, no --quick: the TOML file says what to run).")
    sw.add_argument("config", help="TOML file with task, store, [grid] and [fixed]")
    sw.add_argument("--store", default=None, help="store folder (default: the config's)")
    sw.add_argument("--executor", choices=["local", "dask"], default="local", help="executor (default local)")
    sw.add_argument("--scheduler", default=None, help="Dask scheduler address (default: a LocalCluster)")
    sw.add_argument("--workers", type=number(int, 1), default=None,
                    help="local: processes (default 1, in-process); dask: workers of the LocalCluster (default 2)")
    sw.set_defaults(func=commands.cmd_sweep)


