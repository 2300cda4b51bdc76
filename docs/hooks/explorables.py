"""MkDocs hook: the explorable pages, drawn with Bokeh from the committed data in docs/explorables/data.

A page asks for an explorable with the line ``<!-- explorable: NAME -->``; the hook replaces it by a standalone Bokeh
document (sliders and menus with JavaScript callbacks: everything runs in the browser, no kernel) and the BokehJS
files, copied at build time from the installed ``bokeh`` package into ``assets/bokeh`` (nothing is fetched from
elsewhere when a page is viewed). Why Bokeh: its standalone documents carry their data and callbacks in the page,
its JavaScript ships inside the Python package (offline by construction), and its document model can be read back
in a browser test (``Bokeh.documents``), so the tests check the drawn numbers, not pixels.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

MARK = re.compile(r"<!--\s*explorable:\s*([a-z_]+)\s*-->")
BOKEH_JS = ("bokeh.min.js", "bokeh-widgets.min.js")


def on_page_markdown(markdown: str, page, config, files) -> str:
    if not MARK.search(markdown):
        return markdown
    depth = page.url.rstrip("/").count("/") + (1 if page.url else 0)
    up = "../" * depth
    scripts = "\n".join(f'<script src="{up}assets/bokeh/{name}"></script>' for name in BOKEH_JS)

    def draw(match) -> str:
        name = match.group(1)
        data = json.loads((Path(config["docs_dir"]) / "explorables" / "data" / f"{name}.json").read_text())
        script, div = _components(DRAWERS[name](data))
        return f"\n\n{div}\n\n{script}\n\n"

    return scripts + "\n\n" + MARK.sub(draw, markdown)


def on_post_build(config) -> None:
    from bokeh.util.paths import bokehjs_path

    dest = Path(config["site_dir"]) / "assets" / "bokeh"
    dest.mkdir(parents=True, exist_ok=True)
    for name in BOKEH_JS:
        shutil.copyfile(Path(bokehjs_path()) / "js" / name, dest / name)


def _components(layout):
    from bokeh.embed import components

    return components(layout)


def leaving_the_flow(data: dict):
    """Left: W_e in the plane (the flow's path, GD's iterates); right: loss and sharpness against flow time, 2/eta."""
    from bokeh.layouts import column, row
    from bokeh.models import ColumnDataSource, CustomJS, CustomJSTickFormatter, Div, Label, Range1d, Slider, Span
    from bokeh.plotting import figure

    runs, etas, crit = data["runs"], data["etas"], data["eta_crit"]
    flat = {k: [] for k in ("eta_index", "t", "w1", "w2", "loss", "sharpness")}
    for i, r in enumerate(runs):
        flat["eta_index"] += [i] * len(r["t"])
        for k in ("t", "w1", "w2", "loss", "sharpness"):
            flat[k] += r[k]
    start = min(range(len(etas)), key=lambda i: abs(etas[i] - 0.3 * crit))
    flow = ColumnDataSource(data["flow"], name="flow")
    every = ColumnDataSource(flat, name="gd_all")
    shown = ColumnDataSource({k: runs[start][k] for k in ("t", "w1", "w2", "loss", "sharpness")}, name="gd")
    statuses = ColumnDataSource({"eta": etas, "status": [r["status"] for r in runs]}, name="runs")
    # fixed axes on the flow's range (and the runs that stay near it): a diverging run leaves them, said in words,
    # instead of stretching them to 1e5 and 1e8
    kept = [r for r in runs if not r["status"].startswith("diverged")]
    x0, x1 = _span(data["flow"]["w1"], [r["w1"] for r in kept])
    y0, y1 = _span(data["flow"]["w2"], [r["w2"] for r in kept])
    l0, l1 = _span(data["flow"]["loss"], [r["loss"] for r in kept], log=True)
    top = max(data["flow"]["sharpness"])  # the flow's largest sharpness; the threshold 2 / eta joins it
    opts = dict(height=330, sizing_mode="stretch_width", tools="pan,wheel_zoom,box_zoom,reset,hover")
    plane = figure(title="W_e in the plane", x_axis_label="W_e[0]", y_axis_label="W_e[1]",
                   x_range=Range1d(x0, x1, name="plane_x"), y_range=Range1d(y0, y1, name="plane_y"), **opts)
    plane.line("w1", "w2", source=flow, color="black", line_width=2, legend_label="gradient flow")
    plane.scatter("w1", "w2", source=shown, color="crimson", size=5, alpha=0.8, legend_label="gradient descent")
    plane.scatter([data["flow"]["w1"][0]], [data["flow"]["w2"][0]], marker="square", size=9, color="gray",
                  legend_label="start")
    loss = figure(title="loss against t = k eta", x_axis_label="t", y_axis_label="loss", y_axis_type="log",
                  y_range=Range1d(l0, l1, name="loss_range"), **opts)
    loss.line("t", "loss", source=flow, color="black", line_width=2, legend_label="gradient flow")
    loss.scatter("t", "loss", source=shown, color="crimson", size=4, legend_label="gradient descent")
    sharp = figure(title="sharpness S, and 2 / eta (dashed)", x_axis_label="t", y_axis_label="S",
                   y_range=Range1d(0, _sharpness_top(top, etas[start], runs[start]), name="sharpness_range"), **opts)
    sharp.line("t", "sharpness", source=flow, color="black", line_width=2, legend_label="gradient flow")
    sharp.scatter("t", "sharpness", source=shown, color="crimson", size=4, legend_label="gradient descent")
    threshold = Span(location=2 / etas[start], dimension="width", line_color="royalblue", line_dash="dashed",
                     line_width=2, name="two_over_eta")
    sharp.add_layout(threshold)
    notes = []
    for fig, where in ((plane, "bottom_left"), (loss, "top_right"), (sharp, "top_left")):
        fig.legend.location = where
        fig.legend.label_text_font_size = "9pt"
        notes.append(Label(x=0.5, y=0.5, x_units="data", y_units="data", text=_diverged_note(runs[start]["status"]),
                           text_color="crimson", text_font_style="bold", text_font_size="12pt", text_align="center",
                           name=f"diverged_{len(notes)}"))
        fig.add_layout(notes[-1])
    for note, fig in zip(notes, (plane, loss, sharp)):  # centred on each plot's fixed ranges
        note.x = (fig.x_range.start + fig.x_range.end) / 2 if isinstance(fig.x_range, Range1d) else data["horizon"] / 2
        note.y = (fig.y_range.start + fig.y_range.end) / 2 if fig is not loss else math.sqrt(l0 * l1)
    slider = Slider(start=0, end=len(etas) - 1, value=start, step=1, title="learning rate eta",
                    name="eta_slider", sizing_mode="stretch_width",
                    format=CustomJSTickFormatter(args=dict(etas=etas), code="return etas[Math.round(tick)].toPrecision(3)"))
    readout = Div(name="readout", text=_readout(etas[start], crit, runs[start]["status"]))
    callback = CustomJS(args=dict(every=every, shown=shown, threshold=threshold, readout=readout, runs=statuses,
                                  crit=crit, yrange=sharp.y_range, top=top, notes=notes), code="""
        const i = cb_obj.value, d = every.data, keys = ["t", "w1", "w2", "loss", "sharpness"];
        const out = {}; for (const k of keys) out[k] = [];
        for (let j = 0; j < d.eta_index.length; j++) {
            if (d.eta_index[j] === i) { for (const k of keys) out[k].push(d[k][j]); }
        }
        shown.data = out;
        const eta = runs.data.eta[i], status = runs.data.status[i], diverged = status.startsWith("diverged");
        threshold.location = 2 / eta;
        const gd = diverged ? 0 : Math.min(Math.max(...out.sharpness), 3 * top);
        yrange.end = 1.1 * Math.max(top, 2 / eta, gd);
        for (const n of notes) n.text = diverged ? "GD diverged: off these axes" : "";
        notes[2].y = yrange.end / 2;
        readout.text = `eta = ${eta.toPrecision(3)} = ${(eta / crit).toFixed(2)} x 2/S (S = sharpness of the flow's `
            + `limit) &nbsp; | &nbsp; GD: ${status}`;
    """)
    slider.js_on_change("value", callback)
    return column(slider, readout, row(plane, column(loss, sharp, sizing_mode="stretch_width"),
                                       sizing_mode="stretch_width"), sizing_mode="stretch_width")


def _span(flow, runs, log: bool = False, reach: float = 3.0) -> tuple[float, float]:
    """An axis range over the flow's values and the runs' (those within ``reach`` spans of the flow's), padded."""
    lo, hi = min(flow), max(flow)
    if log:
        near = [v for r in runs for v in r if lo / 10 ** reach <= v <= hi * 10 ** reach]
        return min([lo, *near]) / 2, max([hi, *near]) * 2
    width = hi - lo or 1.0
    near = [v for r in runs for v in r if lo - reach * width <= v <= hi + reach * width]
    lo, hi = min([lo, *near]), max([hi, *near])
    return lo - 0.08 * (hi - lo), hi + 0.08 * (hi - lo)


def _sharpness_top(top: float, eta: float, run: dict) -> float:
    gd = 0.0 if run["status"].startswith("diverged") else min(max(run["sharpness"]), 3 * top)
    return 1.1 * max(top, 2 / eta, gd)


def _diverged_note(status: str) -> str:
    return "GD diverged: off these axes" if status.startswith("diverged") else ""


def _readout(eta: float, crit: float, status: str) -> str:
    return (f"eta = {eta:.3g} = {eta / crit:.2f} x 2/S (S = sharpness of the flow's limit) &nbsp; | &nbsp; "
            f"GD: {status}")


def solver_accuracy(data: dict):
    """Work-precision lines per solver, the chosen (solver, tolerance) highlighted, its numbers in words."""
    from bokeh.layouts import column, row
    from bokeh.models import ColumnDataSource, CustomJS, Div, Select, Slider
    from bokeh.palettes import Category10
    from bokeh.plotting import figure

    solvers, tols = data["solvers"], data["tolerances"]
    fig = figure(title="work-precision: RMS error of W_e against function evaluations",
                 x_axis_type="log", y_axis_type="log", x_axis_label="function evaluations",
                 y_axis_label="RMS error (closed-form reference)", height=420, sizing_mode="stretch_width",
                 tools="pan,wheel_zoom,box_zoom,reset,hover")
    for s, color in zip(solvers, Category10[10]):
        d = data["data"][s]
        src = ColumnDataSource({"nfev": d["nfev"], "err": d["rms_error"], "tol": tols}, name=f"wp_{s}")
        fig.line("nfev", "err", source=src, color=color, line_width=2, legend_label=s)
        fig.scatter("nfev", "err", source=src, color=color, size=6)
    s0, k0 = "tsit5" if "tsit5" in solvers else solvers[0], len(tols) // 2
    chosen = ColumnDataSource({"nfev": [data["data"][s0]["nfev"][k0]], "err": [data["data"][s0]["rms_error"][k0]]},
                              name="chosen")
    fig.scatter("nfev", "err", source=chosen, size=18, fill_alpha=0, line_color="black", line_width=3,
                legend_label="your choice")
    fig.legend.location = "top_right"
    table = ColumnDataSource({s: [json.dumps(data["data"][s])] for s in solvers}, name="table")
    select = Select(title="solver", value=s0, options=list(solvers), name="solver_select")
    slider = Slider(start=tols[0], end=tols[-1], value=tols[k0], step=1, title="tolerance exponent k (rtol = 10^-k)",
                    name="tol_slider", sizing_mode="stretch_width")
    readout = Div(name="readout", text=_accuracy_readout(s0, tols[k0], data["data"][s0], k0))
    code = """
        const s = select.value, k = slider.value - tols[0], d = JSON.parse(table.data[s][0]);
        chosen.data = {nfev: [d.nfev[k]], err: [d.rms_error[k]]};
        const err = d.rms_error[k] === null ? "none (the solve failed: " + d.status[k] + ")" : d.rms_error[k].toExponential(2);
        readout.text = `${s} at rtol = 1e-${tols[k]}, atol = 1e-${tols[k] + 3}: RMS error ${err}, `
            + `${d.nfev[k]} function evaluations, ${d.steps[k]} steps (${d.rejected[k]} rejected)`;
    """
    callback = CustomJS(args=dict(select=select, slider=slider, table=table, chosen=chosen, readout=readout,
                                  tols=tols), code=code)
    select.js_on_change("value", callback)
    slider.js_on_change("value", callback)
    return column(row(select, slider, sizing_mode="stretch_width"), readout, fig, sizing_mode="stretch_width")


def _accuracy_readout(solver: str, k: int, d: dict, i: int) -> str:
    err = f"{d['rms_error'][i]:.2e}" if d["rms_error"][i] is not None else f"none (the solve failed: {d['status'][i]})"
    return (f"{solver} at rtol = 1e-{k}, atol = 1e-{k + 3}: RMS error {err}, {d['nfev'][i]:.0f} function "
            f"evaluations, {d['steps'][i]:.0f} steps ({d['rejected'][i]:.0f} rejected)")


def attractor_map(data: dict):
    """The bifurcation diagram and the Lyapunov exponent over eta / eta_crit, the chosen eta marked, its orbit."""
    from bokeh.layouts import column, row
    from bokeh.models import ColumnDataSource, CustomJS, CustomJSTickFormatter, Div, Slider, Span
    from bokeh.plotting import figure

    ratios, orbits = data["ratios"], data["orbit"]
    xs = [r for r, orbit in zip(ratios, orbits) for _ in orbit]
    ys = [y for orbit in orbits for y in orbit]
    start = min(range(len(ratios)), key=lambda i: abs(ratios[i] - 1.3))
    opts = dict(sizing_mode="stretch_width", tools="pan,wheel_zoom,box_zoom,reset")
    diagram = figure(title="GD's attractor: last 128 iterates of u v", height=300,
                     x_axis_label="eta / eta_crit", y_axis_label="u v", **opts)
    diagram.scatter(xs, ys, size=2, color="black", alpha=0.5)
    lyap = figure(title="Lyapunov exponent (positive: chaos)", height=220, x_range=diagram.x_range,
                  x_axis_label="eta / eta_crit", y_axis_label="Lyapunov exponent", **opts)
    lyap.line(ratios, [x if x is not None else float("nan") for x in data["lyapunov"]], color="purple", line_width=2)
    lyap.add_layout(Span(location=0, dimension="width", line_color="gray"))
    marks = [Span(location=ratios[start], dimension="height", line_color="crimson", line_width=2, name=f"chosen_{k}")
             for k in ("diagram", "lyapunov")]
    diagram.add_layout(marks[0])
    lyap.add_layout(marks[1])
    orbit = ColumnDataSource({"k": list(range(len(orbits[start]))), "y": orbits[start]}, name="orbit")
    panel = figure(title="the chosen eta's orbit", height=300, x_axis_label="iterate (last 128)",
                   y_axis_label="u v", **opts)
    panel.line("k", "y", source=orbit, color="crimson")
    panel.scatter("k", "y", source=orbit, color="crimson", size=4)
    table = ColumnDataSource({"orbit": [json.dumps(o) for o in orbits], "ratio": ratios, "eta": data["etas"],
                              "period": data["period"], "attractor": data["attractor"],
                              "lyapunov": [x if x is not None else float("nan") for x in data["lyapunov"]],
                              "central": [x if x is not None else float("nan") for x in data["central_deviation"]]},
                             name="attractors")
    slider = Slider(start=0, end=len(ratios) - 1, value=start, step=1, title="eta / eta_crit", name="eta_slider",
                    sizing_mode="stretch_width",
                    format=CustomJSTickFormatter(args=dict(r=ratios), code="return r[Math.round(tick)].toFixed(3)"))
    readout = Div(name="readout", text=_attractor_readout(data, start))
    code = """
        const i = cb_obj.value, d = table.data, ys = JSON.parse(d.orbit[i]);
        orbit.data = {k: ys.map((_, j) => j), y: ys};
        for (const m of marks) m.location = d.ratio[i];
        const lyap = Number.isNaN(d.lyapunov[i]) ? "not measured (diverged)" : d.lyapunov[i].toExponential(2);
        const central = Number.isNaN(d.central[i]) ? "" : ` | central flow: GD's mean ${(100 * d.central[i]).toFixed(1)}% away`;
        readout.text = `eta = ${d.eta[i].toPrecision(4)} = ${d.ratio[i].toFixed(3)} x eta_crit | attractor: `
            + `${d.attractor[i]} | Lyapunov exponent: ${lyap}${central}`;
    """
    slider.js_on_change("value", CustomJS(args=dict(table=table, orbit=orbit, marks=marks, readout=readout), code=code))
    return column(slider, readout, row(column(diagram, lyap, sizing_mode="stretch_width"), panel,
                                       sizing_mode="stretch_width"), sizing_mode="stretch_width")


def _attractor_readout(data: dict, i: int) -> str:
    lyap = data["lyapunov"][i]
    central = data["central_deviation"][i]
    return (f"eta = {data['etas'][i]:.4g} = {data['ratios'][i]:.3f} x eta_crit | attractor: {data['attractor'][i]} | "
            f"Lyapunov exponent: {'not measured (diverged)' if lyap is None else f'{lyap:.2e}'}"
            + ("" if central is None else f" | central flow: GD's mean {100 * central:.1f}% away"))


def plateaus(data: dict):
    """Singular values of W_e and the loss against t (log) for the chosen depth and alpha; the closed-form escapes."""
    from bokeh.layouts import column, row
    from bokeh.models import ColumnDataSource, CustomJS, Div, Select, Slider, Span
    from bokeh.palettes import Category10
    from bokeh.plotting import figure

    s, alphas, depths = data["s"], data["alphas"], [str(d) for d in data["depths"]]
    exponents = [round(-math.log10(a)) for a in alphas]
    d0, k0 = "3", exponents.index(6) if 6 in exponents else len(alphas) // 2

    def columns(run):  # t > 0 only: the time axis is logarithmic
        keep = [j for j, t in enumerate(run["t"]) if t > 0]
        cols = {"t": [run["t"][j] for j in keep], "loss": [run["loss"][j] for j in keep]}
        cols.update({f"sigma{i}": [run["sigma"][i][j] for j in keep] for i in range(len(s))})
        return cols

    shown = ColumnDataSource(columns(data["runs"][d0][k0]), name="plateau_run")
    table = ColumnDataSource({d: [json.dumps(columns(r)) for r in data["runs"][d]] for d in depths}, name="plateau_table")
    escapes = ColumnDataSource({d: [r["escapes"] for r in data["runs"][d]] for d in depths}, name="plateau_escapes")
    opts = dict(height=340, sizing_mode="stretch_width", x_axis_type="log", x_axis_label="flow time t",
                tools="pan,wheel_zoom,box_zoom,reset,hover")
    sig = figure(title="singular values of W_e", y_axis_label="sigma_i",
                 **opts)
    colors = Category10[10]
    for i, si in enumerate(s):
        sig.line("t", f"sigma{i}", source=shown, color=colors[i], line_width=2, legend_label=f"sigma_{i + 1} (s = {si:g})")
        sig.add_layout(Span(location=si / 2, dimension="width", line_color=colors[i], line_dash="dotted"))
    marks = []
    for i, e in enumerate(data["runs"][d0][k0]["escapes"]):
        marks.append(Span(location=e, dimension="height", line_color="crimson", line_alpha=0.6, name=f"escape_{i}"))
        sig.add_layout(marks[-1])
    sig.legend.location = "top_left"
    loss = figure(title="loss (dotted: the plateaus)", y_axis_label="loss", y_axis_type="log",
                  **opts)
    loss.line("t", "loss", source=shown, color="black", line_width=2)
    for level in data["plateaus"][:-1]:
        loss.add_layout(Span(location=level, dimension="width", line_color="gray", line_dash="dotted"))
    select = Select(title="depth N", value=d0, options=depths, name="depth_select")
    slider = Slider(start=exponents[0], end=exponents[-1], value=exponents[k0], step=1,
                    title="k in alpha = 10^-k (initial singular values)", name="alpha_slider",
                    sizing_mode="stretch_width")
    readout = Div(name="readout", text=_plateau_readout(d0, alphas[k0], data["runs"][d0][k0]["escapes"]))
    code = """
        const d = select.value, k = slider.value - first, cols = JSON.parse(table.data[d][k]);
        shown.data = cols;
        const e = escapes.data[d][k];
        for (let i = 0; i < marks.length; i++) marks[i].location = e[i];
        readout.text = `depth ${d}, alpha = 1e-${slider.value}: closed-form escapes at t = `
            + e.map((x) => x.toPrecision(4)).join(", ");
    """
    callback = CustomJS(args=dict(select=select, slider=slider, table=table, shown=shown, escapes=escapes, marks=marks,
                                  readout=readout, first=exponents[0]), code=code)
    select.js_on_change("value", callback)
    slider.js_on_change("value", callback)
    return column(row(select, slider, sizing_mode="stretch_width"), readout,
                  row(sig, loss, sizing_mode="stretch_width"), sizing_mode="stretch_width")


def _plateau_readout(depth: str, alpha: float, escapes) -> str:
    return (f"depth {depth}, alpha = 1e-{round(-math.log10(alpha))}: closed-form escapes at t = "
            + ", ".join(f"{x:.4g}" for x in escapes))


DRAWERS = {"leaving_the_flow": leaving_the_flow, "solver_accuracy": solver_accuracy, "attractor_map": attractor_map,
           "plateaus": plateaus}
