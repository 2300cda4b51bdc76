"""The command line's commands: each builds its inputs from the parsed options, runs one study, writes its files
atomically and prints its numbers."""

from __future__ import annotations

import sys
import time
from pathlib import Path

STEP_SIZE_HORIZON = 200.0  # flow time: past convergence, where explicit steps are stability-limited


def build(args):
    from ..core import specs

    if args.depth < 1:
        raise ValueError(f"--depth must be >= 1, got {args.depth}")
    if args.widths is not None and len(args.widths) != args.depth - 1:
        raise ValueError(f"--widths must list depth - 1 = {args.depth - 1} hidden widths, got {_show(args.widths)}")
    problem = specs.problem("synthetic", m=args.m, d=args.d, p=args.p, weight_decay=args.weight_decay, seed=args.seed)
    return problem, start(problem, args, args.widths)


def _data_or_synthetic(args) -> tuple:
    """``(problem, start, label)``: the UCI Ethanol problem of ``--data`` (standardized) or the synthetic one of
    ``--m``, ``--d``, ``--seed``, with the network of ``--depth``, ``--widths``, ``--init``, ``--scale``."""
    if not args.data:
        problem, layers = build(args)
        return problem, layers, _problem_label(args)
    from ..core import specs

    if args.widths is not None and len(args.widths) != args.depth - 1:
        raise ValueError(f"--widths must list depth - 1 = {args.depth - 1} hidden widths, got {_show(args.widths)}")
    problem = specs.problem("gas_sensor", p=args.p, weight_decay=args.weight_decay, data=args.data)
    label = f"gas sensor (Ethanol, standardized, m={problem.m}, d={problem.d}, p={args.p:g})"
    return problem, start(problem, args, args.widths), label


def start(problem, args, widths):
    """The start of ``--init``, ``--scale``, ``--seed``; refused where it is a critical point of the loss (no run leaves
    it: ``--scale 0`` puts every layer at 0, a saddle for depth >= 2)."""
    from ..core import specs
    from ..core.fields import network_gradient

    layers = specs.start(problem, args.depth, widths, args.init, args.scale, args.seed)
    if not any(bool((g != 0).any()) for g in network_gradient(problem, layers)):
        raise ValueError(f"--scale {args.scale:g} with --init {args.init} starts at a critical point of the loss (its "
                         f"gradient is exactly 0, e.g. every layer 0 at depth >= 2: a saddle), which no run leaves; give "
                         f"--scale > 0")
    return layers


def _progress(total: int, desc: str = "linflow run"):
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="stage", delay=1.0, disable=None, file=sys.stderr)

    def tick(label: str) -> None:
        bar.set_postfix_str(label, refresh=False)
        bar.update(1)

    return bar, tick


def solver_settings(args):
    """The continuous runs' :class:`~linflow.SolverSettings`, built once from ``--solver``, ``--rtol``, ``--atol``."""
    from ..core.settings import SolverSettings

    return SolverSettings(args.solver, rtol=args.rtol, atol=args.atol)


def _labelled_study(args, stages: int, desc: str, study) -> tuple:
    """``study(tick)`` under a progress bar of ``stages`` stages: its Dataset, labelled with the problem and the start,
    and the wall time."""
    started = time.perf_counter()
    bar, tick = _progress(stages, desc)
    try:
        ds = study(tick)
    finally:
        bar.close()
    elapsed = time.perf_counter() - started
    ds.attrs["problem"] = _problem_label(args)
    ds.attrs["init"] = f"{args.init}(scale={args.scale:g})"
    return ds, elapsed


def cmd_run(args) -> int:
    from ..core import files as _io
    from ..studies import overview
    from .. import plot

    problem, layers = build(args)
    out = Path(args.out)
    ds, elapsed = _labelled_study(args, 4, "linflow run", lambda tick: overview.overview(
        problem, layers, args.etas, args.t1, points=args.points, settings=solver_settings(args), progress=tick))
    table = overview.summary_table(ds)
    fig = plot.overview_figure(ds)
    paths = [_io.write_netcdf(ds, out / "run.nc"), _io.write_figure(fig, out / "run.png")]
    summary = {**overview.summary(ds), "wall_time_s": round(elapsed, 3)}
    paths.append(_io.write_json(summary, out / "summary.json"))
    print(table)
    if ds.attrs["warnings"]:
        print(f"\nwarning: {ds.attrs['warnings']}")
    print(f"\nwall time {elapsed:.1f} s; wrote " + ", ".join(str(p) for p in paths))
    return 0


def cmd_compare(args) -> int:
    from ..core import files as _io
    from ..studies import comparison
    from .. import plot

    from ..core.measures import divisor_etas

    problem, layers = build(args)
    etas = args.etas if args.etas else divisor_etas(args.t1, args.points, args.eta_divisors)
    out = Path(args.out)
    ds, elapsed = _labelled_study(args, 6 + len(args.orders), "linflow compare", lambda tick: comparison.compare(
        problem, layers, etas, args.t1, points=args.points, tol=args.tol, orders=args.orders,
        settings=solver_settings(args), progress=tick))
    paths = [_io.write_netcdf(ds, out / "compare.nc")]
    for name, make in plot.COMPARE_FIGURES.items():
        paths.append(_io.write_figure(make(ds), out / f"{name}.png"))
    summary = {**comparison.report(ds), "wall_time_s": round(elapsed, 3)}
    paths.append(_io.write_json(summary, out / "compare_summary.json"))
    print(comparison.summary_text(ds))
    print(f"\nwall time {elapsed:.1f} s; wrote {len(paths)} files to {out}")
    return 0


def cmd_accuracy(args) -> int:
    from ..core import files as _io
    from ..studies import accuracy
    from .. import plot

    problem, layers, t1 = accuracy.case(args.case, depth=args.depth)
    if args.t1 is not None:
        t1 = args.t1
    tolerances, solvers, scipy_solvers, repeats = args.tolerances, args.solvers, args.scipy, args.repeats
    out = Path(args.out)
    started = time.perf_counter()
    bar, tick = _progress(1 + len(solvers) + len(scipy_solvers), "linflow accuracy")
    try:
        ds = accuracy.work_precision(problem, layers, t1, flow=args.flow, solvers=solvers, scipy_solvers=scipy_solvers,
                                     tolerances=tolerances, repeats=repeats, progress=tick)
        steps = accuracy.step_sizes(problem, layers, args.steps_t1 or max(t1, STEP_SIZE_HORIZON), max_steps=20_000)
    finally:
        bar.close()
    elapsed = time.perf_counter() - started
    ds.attrs["case"] = f"{args.case}: {accuracy.CASES[args.case][0]}"
    paths = [_io.write_netcdf(ds, out / "accuracy.nc"), _io.write_netcdf(steps, out / "step_sizes.nc"),
             _io.write_figure(plot.work_precision_nfev(ds), out / "work_precision_nfev.png"),
             _io.write_figure(plot.work_precision_time(ds), out / "work_precision_time.png"),
             _io.write_figure(plot.step_size_figure(steps), out / "step_size.png")]
    levels = [k for k in (tolerances[0], tolerances[len(tolerances) // 2], tolerances[-1])]
    summary = {**accuracy.summary(ds), "wall_time_s": round(elapsed, 3)}
    paths.append(_io.write_json(summary, out / "accuracy_summary.json"))
    print(f"case {ds.attrs['case']}\n")
    print(accuracy.table(ds, levels))
    print(f"\nwall time {elapsed:.1f} s; wrote {len(paths)} files to {out}")
    return 0


def cmd_saddles(args) -> int:
    from ..core import files as _io
    from ..studies import saddles
    from .. import plot

    if "aligned" not in args.starts:
        raise ValueError(f"--starts must include 'aligned' (the closed form's start) and may add 'random'; got "
                         f"{','.join(args.starts)}")
    if len(set(args.values)) != len(args.values):
        raise ValueError(f"--values must be distinct singular values; got {_show(args.values)}")
    out = Path(args.out)
    started = time.perf_counter()
    runs = len(args.starts) * len(saddles.FLOWS) * len(args.depths) * len(args.alphas)
    bar, tick = _progress(runs + bool(args.gd_etas), "linflow saddles")
    try:
        ds = saddles.saddle_to_saddle(args.values, depths=args.depths, alphas=args.alphas, starts=tuple(args.starts),
                                      seed=args.seed, progress=tick)
        gd = (saddles.gd_escapes(args.values, depth=args.gd_depth, alpha=args.gd_alpha, etas=args.gd_etas,
                                 seed=args.seed) if args.gd_etas else None)
        if gd is not None:
            tick("gradient descent")
    finally:
        bar.close()
    elapsed = time.perf_counter() - started
    depth, alpha = max(args.depths), min(args.alphas)
    paths = [_io.write_netcdf(ds, out / "saddles.nc"),
             _io.write_figure(plot.saddle_curves(ds, depth=depth, alpha=alpha), out / "saddle_curves.png"),
             _io.write_figure(plot.escape_scaling(ds), out / "escape_scaling.png")]
    summary = saddles.summary(ds)
    if gd is not None:
        paths += [_io.write_netcdf(gd, out / "saddles_gd.nc"),
                  _io.write_figure(plot.gd_escape_shift(gd), out / "gd_escape_shift.png")]
        summary["gd"] = saddles.gd_summary(gd)
    summary["wall_time_s"] = round(elapsed, 3)
    paths.append(_io.write_json(summary, out / "saddles_summary.json"))
    print(saddles.summary_text(summary))
    print(f"\nwall time {elapsed:.1f} s; wrote {len(paths)} files to {out}")
    return 0


def cmd_sgd(args) -> int:
    from ..core import files as _io
    from ..studies import stochastic
    from .. import plot

    eta0 = min(args.etas)  # the linear scaling rule from the smallest eta, saved at every step of its largest k
    spacing = args.t1 / (args.points - 1)
    for eta in args.etas:  # the weak-error study saves where every run steps: SGD, SVAG (eta / ell), the SMEs (eta / 4)
        if not all(_whole(spacing, h) for h in (eta / 4, eta / args.ell)):
            raise ValueError(f"--etas: each learning rate must divide the save spacing --t1 / (--points - 1) = "
                             f"{spacing:g} four times over and --ell = {args.ell} times; {eta:g} does not")
    if args.ks:
        if args.ks[0] != 1 or any(b <= a for a, b in zip(args.ks, args.ks[1:])):
            raise ValueError(f"--ks must start at 1 (the base run) and increase, e.g. 1,2,4; got {_show(args.ks)}")
        if not _whole(args.t1, max(args.ks) * eta0):
            raise ValueError(f"--t1 {args.t1:g} must be a whole multiple of max(--ks) x min(--etas) = {max(args.ks)} x "
                             f"{eta0:g} (the linear-scaling runs save at every step of the largest k)")
    problem, layers, label = _data_or_synthetic(args)
    lsr_points = int(round(args.t1 / (max(*args.ks, 1) * eta0))) + 1 if args.ks else 0
    if args.ks:  # checked before the weak-error study runs (which checks its own grid before it runs)
        stochastic.scaling_grid(problem, eta0, args.batch, args.ks, args.t1, lsr_points)
    out = Path(args.out)
    started = time.perf_counter()
    bar, tick = _progress(len(args.etas) * (1 + len(args.models)) + (len(args.ks) + 1 if args.ks else 0), "linflow sgd")
    try:
        weak = stochastic.weak_errors(problem, layers, args.etas, args.t1, batch=args.batch, paths=args.paths,
                                      points=args.points, ell=args.ell, seed=args.seed, methods=args.models,
                                      progress=tick)
        scaling = (stochastic.linear_scaling(problem, layers, eta0, args.batch, args.ks, args.t1, paths=args.paths,
                                             points=lsr_points, seed=args.seed, progress=tick)
                   if args.ks else None)
    finally:
        bar.close()
    elapsed = time.perf_counter() - started
    for ds in (weak, scaling):
        if ds is not None:
            ds.attrs["problem"] = label
            ds.attrs["init"] = f"{args.init}(scale={args.scale:g}), depth {args.depth}"
    paths = [_io.write_netcdf(weak, out / "weak_errors.nc"),
             _io.write_figure(plot.weak_error_orders(weak), out / "weak_error_orders.png"),
             _io.write_figure(plot.ensemble_means(weak), out / "ensemble_means.png")]
    if scaling is not None:
        paths += [_io.write_netcdf(scaling, out / "linear_scaling.nc"),
                  _io.write_figure(plot.linear_scaling_figure(scaling), out / "linear_scaling.png")]
    summary = stochastic.summary(weak, scaling)
    summary["start"] = weak.attrs["init"]
    summary["quick"] = bool(args.quick)
    summary["data"] = str(Path(args.data).resolve().name) if args.data else "none: the embedded synthetic problem"
    summary["wall_time_s"] = round(elapsed, 3)
    paths.append(_io.write_json(summary, out / "sgd_summary.json"))
    print(stochastic.summary_text(summary))
    print(f"\nwall time {elapsed:.1f} s; wrote {len(paths)} files to {out}")
    return 0


def cmd_momentum(args) -> int:
    from ..core import files as _io
    from ..studies import momentum
    from .. import plot

    if not args.beta < 1.0:
        raise ValueError(f"--beta must be in [0, 1) (the momentum); got {args.beta:g}")
    if len(set(args.divisors)) != len(args.divisors):
        raise ValueError(f"--divisors must be distinct; got {_show(args.divisors)}")
    if "rmsprop" in args.methods and args.rmsprop_model == "modified" and not args.initial_scale > 0:
        raise ValueError("--rmsprop-model modified needs --initial-scale > 0 (from v = 0 RMSProp's initial layer is of "
                         "order sqrt(eta): docs/math.md (14.4))")
    if len(args.adam_rates) != 2:
        raise ValueError(f"--adam-rates must be two numbers a,b (1 - beta1 = a eta, 1 - beta2 = b eta); got "
                         f"{_show(args.adam_rates)}")
    if len(args.adam_betas) != 2 or not all(0 <= b < 1 for b in args.adam_betas):
        raise ValueError(f"--adam-betas must be two numbers beta1,beta2, each in [0, 1); got {_show(args.adam_betas)}")
    spacing = args.t1 / (args.points - 1)
    etas = sorted(spacing / n for n in args.divisors)
    bounds = {"adam": ("--adam-rates", 1.0 / max(args.adam_rates)), "rmsprop": ("--rmsprop-rate", 1.0 / args.rmsprop_rate)}
    grids = {m: etas if m not in bounds else [e for e in etas if e < bounds[m][1]] for m in args.methods}
    for method, grid in grids.items():
        if len(grid) < 2:
            option, bound = bounds[method]
            raise ValueError(f"{method} needs 2 etas of the grid below 1 / rate = {bound:g} ({option}); the grid "
                             f"t1/(points-1)/divisors = {_show(etas)} has {len(grid)}: add larger --divisors")
    if {"heavy_ball", "nesterov"} & set(args.methods):  # the initial layer must leave saves: before computing
        momentum.check_grid(etas, args.beta, args.t1, args.points)
    problem, layers, label = _data_or_synthetic(args)
    settings = solver_settings(args)
    out = Path(args.out)
    started = time.perf_counter()
    bar, tick = _progress(len(args.methods), "linflow momentum")
    try:
        studies = {}
        for method in args.methods:
            if method == "adam":
                ds = momentum.adam_breakdown(problem, layers, grids[method], *args.adam_rates, args.t1,
                                             points=args.points, level=args.level, settings=settings)
            elif method == "adam_fixed":
                ds = momentum.adam_fixed_breakdown(problem, layers, etas, *args.adam_betas, args.t1,
                                                   eps_root=args.eps_root, points=args.points, level=args.level,
                                                   settings=settings)
            elif method == "rmsprop":
                ds = momentum.rmsprop_breakdown(problem, layers, grids[method], args.rmsprop_rate, args.t1,
                                                initial_scale=args.initial_scale, model=args.rmsprop_model,
                                                points=args.points,
                                                level=args.level, settings=settings)
            else:
                ds = momentum.breakdown(problem, layers, etas, args.beta, args.t1, points=args.points,
                                        level=args.level, method=method, settings=settings)
            studies[method] = ds
            tick(method)
    finally:
        bar.close()
    elapsed = time.perf_counter() - started
    paths, summary = [], {"problem": label, "beta": args.beta, "etas": etas, "t1": args.t1,
                          "rule": momentum.RULE, "methods": {}}
    for method, ds in studies.items():
        ds.attrs["problem"] = label
        paths += [_io.write_netcdf(ds, out / f"momentum_{method}.nc"),
                  _io.write_figure(plot.momentum_breakdown(ds), out / f"momentum_{method}.png")]
        summary["methods"][method] = {"after": float(ds.attrs["after"]), "etas": [float(e) for e in ds.eta.values],
                                      "pairs": momentum.summary(ds)}
        if method == "adam_fixed":
            summary["methods"][method]["betas"] = {"beta1": args.adam_betas[0], "beta2": args.adam_betas[1],
                                                   "eps_root": args.eps_root, "eps": 0.0}
        if method in bounds:
            option, bound = bounds[method]
            summary["methods"][method]["rates"] = ({"a": args.adam_rates[0], "b": args.adam_rates[1]}
                                                   if method == "adam" else
                                                   {"b": args.rmsprop_rate, "initial_scale": args.initial_scale,
                                                    "model": args.rmsprop_model})
            left = [e for e in etas if e >= bound]
            if left:
                summary["methods"][method]["etas_left_out"] = (
                    f"{_show(left)}: at or above 1 / rate = {bound:g} ({option}; an average's weight 1 - rate x eta "
                    "must be > 0)")
                print(f"{method}: etas {_show(left)} left out (at or above 1 / rate = {bound:g}, {option})")
        print(momentum.summary_text(ds) + "\n")
    summary["wall_time_s"] = round(elapsed, 3)
    paths.append(_io.write_json(summary, out / "momentum_summary.json"))
    print(f"wall time {elapsed:.1f} s; wrote {len(paths)} files to {out}")
    return 0


def cmd_atlas(args) -> int:
    import numpy as np

    from ..core import files as _io, problems, specs
    from ..studies import atlas
    from .. import plot

    if len(args.ratios) != 2 or not 0 < args.ratios[0] < args.ratios[1]:
        raise ValueError(f"--ratios must be two numbers 0 < low < high, got {_show(args.ratios)}")
    if args.problem == "synthetic":
        problem = specs.problem("synthetic", seed=args.seed)
        label = f"synthetic(m=2000, d=32, seed={args.seed}): the default problem"
    else:
        problem = problems.whitened(sorted(args.values, reverse=True), seed=args.seed)
        label = f"whitened regression, square target with singular values {_show(args.values)}"
    layers = start(problem, args, [args.width] * (args.depth - 1))
    out = Path(args.out)
    started = time.perf_counter()
    ratios = np.linspace(args.ratios[0], args.ratios[1], args.points)
    bar, tick = _progress(-(-args.points // 64) + args.central_points, "linflow atlas")
    try:
        ds = atlas.atlas(problem, layers, ratios=ratios, transient=args.transient, record=args.record,
                         central_points=args.central_points, seed=args.seed, progress=tick)
    finally:
        bar.close()
    elapsed = time.perf_counter() - started
    ds.attrs["problem"] = label
    ds.attrs["network"] = f"depth {args.depth}, hidden width {args.width}, {args.init}(scale={args.scale:g}, seed={args.seed})"
    summary = {**atlas.summary(ds), "problem": ds.attrs["problem"], "network": ds.attrs["network"],
               "wall_time_s": round(elapsed, 3)}
    paths = [_io.write_netcdf(ds, out / "atlas.nc"), _io.write_figure(plot.bifurcation_diagram(ds), out / "bifurcation.png"),
             _io.write_json(summary, out / "atlas_summary.json")]
    print(f"{ds.attrs['problem']}; {ds.attrs['network']}")
    print(atlas.summary_text(summary))
    print(f"\nwall time {elapsed:.1f} s; wrote " + ", ".join(str(p) for p in paths))
    return 0


def _whole(span: float, step: float) -> bool:
    """``span`` is a whole positive number of ``step`` (to round-off)."""
    n = span / step
    return n >= 1 - 1e-9 and abs(n - round(n)) <= 1e-9 * max(1.0, n)


def _show(values) -> str:
    return ", ".join(f"{v:g}" for v in values)


def cmd_reproduce(args) -> int:
    from ..core import files as _io
    from ..paper import reproduce

    names = list(reproduce.EXPERIMENTS) if args.name == "all" else [args.name]
    if args.name != "all" and args.name not in reproduce.EXPERIMENTS:
        raise ValueError(f"experiment must be one of {', '.join(reproduce.EXPERIMENTS)} or 'all'; got {args.name!r}")
    reproduce.check_published(args.name, args.quick, args.published)
    out = Path(args.out)
    started = time.perf_counter()
    bar, tick = _progress(len(names), "linflow reproduce")
    report = {}
    try:
        for name in names:
            t0 = time.perf_counter()
            ds, summary, figs = reproduce.run(name, data=args.data, quick=args.quick, published=args.published)
            summary["wall_time_s"] = round(time.perf_counter() - t0, 2)
            _io.write_netcdf(ds, out / f"{name}.nc")
            for fname, fig in figs.items():
                _io.write_figure(fig, out / f"{fname}.png")
            _io.write_json(summary, out / f"{name}.json")
            report[name] = summary
            tick(name)
    finally:
        bar.close()
    for name, summary in report.items():
        print(f"[{name}] ({summary['wall_time_s']:.0f} s) verdict: {summary['verdict']}\n  paper:    {summary['paper']}\n"
              f"  measured: {summary['measured']}\n  rule:     {summary['verdict_rule']}\n")
    data = report[names[0]].get("data")
    print(f"data: {data if isinstance(data, str) else data[0]}")
    print(f"wall time {time.perf_counter() - started:.0f} s; wrote {out}")
    return 0


def cmd_sweep(args) -> int:
    from ..core import files as _io
    from ..studies import sweeps

    cfg = sweeps.load_config(args.config)
    store = Path(args.store or cfg["store"])
    _io.check_output_folder(store, "--store" if args.store else f"store (in {args.config})")
    started = time.perf_counter()
    ds = sweeps.sweep(cfg["grid"], cfg["task"], store, fixed=cfg["fixed"], executor=args.executor,
                      scheduler=args.scheduler, n_workers=args.workers)
    elapsed = time.perf_counter() - started
    if (cfg["task"] == "compare" and "depth" in ds.dims) or (cfg["task"] == "regime" and
                                                           {"depth", "eta_ratio"} <= set(ds.dims)):
        figure = _io.write_figure(sweeps.phase_diagram(ds), store / f"{cfg['name']}.png")
        print(f"phase diagram: {figure}")
    print(sweeps.table(ds))
    print(f"\ndone {ds.attrs['done']} of {ds.attrs['total']} points, failed {ds.attrs['failed']}; "
          f"wall time {elapsed:.1f} s ({args.executor}); store {store}")
    return 0


def _problem_label(args) -> str:
    return f"synthetic(m={args.m}, d={args.d}, p={args.p:g}, weight_decay={args.weight_decay:g}, seed={args.seed})"


