"""The explorable pages (docs/explorables) in headless Chromium: every slider and menu moved, the drawn data equal to
the committed precomputed data at that setting, no console error, no request leaving the site; and their data
against independent computations."""

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from browser import built_site, needs_browser, site_pages
from conftest import strict_json

pytestmark = pytest.mark.slow  # browser pages: in the full suite, not the fast tier

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "explorables" / "data"
SHOTS = os.environ.get("LINFLOW_SCREENSHOTS")  # a folder: the screenshots the docs use are written there

MODEL = "(name) => Bokeh.documents[0].get_model_by_name(name)"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return built_site(str(tmp_path_factory.mktemp("docs")))


@pytest.fixture(scope="module")
def page_at(site):
    """``page_at(width, height)``: a fresh page of one Chromium on one server of the built site, for the module."""
    with site_pages(site) as pages:
        yield pages


def _bokeh(page, name, attr):
    return page.evaluate(f"([n, a]) => {{ const m = ({MODEL})(n); return a ? m[a] : m; }}", [name, attr])


def _set(page, name, value):
    page.evaluate(f"([n, v]) => {{ ({MODEL})(n).value = v; }}", [name, value])


def _source(page, name):
    return page.evaluate(f"""(n) => {{ const d = ({MODEL})(n).data; const out = {{}};
        for (const k of Object.keys(d)) out[k] = Array.from(d[k]); return out; }}""", name)


@contextmanager
def explorable(page_at, name: str, tmp_path):
    """The built page ``explorables/NAME/`` in Chromium once Bokeh has drawn it; on leaving, a full-page screenshot
    (``explorable-NAME.png``, underscores as dashes, in LINFLOW_SCREENSHOTS or ``tmp_path``) of its final state,
    and no console error, failed request or request that left the site."""
    visit = page_at(1200, 1100)
    page = visit.open(f"explorables/{name}/")
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0")
    yield page
    shot = Path(SHOTS or tmp_path) / f"explorable-{name.replace('_', '-')}.png"
    # the explorable alone (not the site's header, navigation and footer): the docs' front page shows these
    page.locator("[data-root-id] + *, .bk-Column, .bk-Row").first.screenshot(path=str(shot))
    assert not visit.outside and not visit.errors and not visit.failed, (visit.outside, visit.errors, visit.failed)


@pytest.mark.slow
@needs_browser
def test_gd_leaves_the_flow_page_draws_the_precomputed_run_for_each_eta(page_at, tmp_path):
    data = strict_json(DATA / "leaving_the_flow.json")
    n = len(data["etas"])
    with explorable(page_at, "leaving_the_flow", tmp_path) as page:
        flow = _source(page, "flow")
        np.testing.assert_array_equal(flow["w1"], data["flow"]["w1"])
        for i in (0, n // 3, n // 2, n - 1):
            _set(page, "eta_slider", i)
            shown = _source(page, "gd")
            for key in ("t", "w1", "w2", "loss", "sharpness"):
                np.testing.assert_array_equal(shown[key], data["runs"][i][key], err_msg=f"eta index {i}: {key}")
            assert _bokeh(page, "two_over_eta", "location") == pytest.approx(2 / data["etas"][i], rel=1e-12)
            text = _bokeh(page, "readout", "text")
            assert f"{data['etas'][i]:.3g}"[:4] in text and data["runs"][i]["status"] in text
        past = int(np.argmin(np.abs(np.array(data["etas"]) / data["eta_crit"] - 1.2)))  # past 2/S: GD leaves
        _set(page, "eta_slider", past)
        # issue 38: a diverged run no longer stretches the axes to 2.5e5 and 1e8; the plots say "diverged" instead
        last = data["runs"][n - 1]
        assert last["status"].startswith("diverged")
        _set(page, "eta_slider", n - 1)
        flow_w1, flow_loss = np.array(data["flow"]["w1"]), np.array(data["flow"]["loss"])
        x0, x1 = _bokeh(page, "plane_x", "start"), _bokeh(page, "plane_x", "end")
        assert x0 <= flow_w1.min() and x1 >= flow_w1.max() and x1 - x0 < 10 * np.ptp(flow_w1)
        l0, l1 = _bokeh(page, "loss_range", "start"), _bokeh(page, "loss_range", "end")
        assert l0 <= flow_loss.min() and flow_loss.max() <= l1 < 1e4 * flow_loss.max()
        assert _bokeh(page, "sharpness_range", "end") < 2 * max(max(data["flow"]["sharpness"]), 2 / data["etas"][-1])
        assert _bokeh(page, "diverged_0", "text") == "GD diverged: off these axes"
        assert last["status"] in _bokeh(page, "readout", "text")  # where it diverged, in words
        _set(page, "eta_slider", 0)
        assert _bokeh(page, "diverged_0", "text") == ""
        _set(page, "eta_slider", past)  # the state the screenshot shows: GD past 2 / S


@needs_browser
@pytest.mark.parametrize("name", ["leaving_the_flow", "solver_accuracy", "attractor_map", "plateaus"])
def test_every_plot_title_fits_its_plot(page_at, name, tmp_path):
    """Issue 38: titles were clipped ("GD's iterates (", "red: esc") at the docs' width."""
    with explorable(page_at, name, tmp_path) as page:
        fit = page.evaluate("""() => { const c = document.createElement('canvas').getContext('2d');
            c.font = 'bold 13px helvetica';  // Bokeh's title font
            const out = [];
            const walk = (view) => {
              if (view.model.type === 'Figure' && view.model.title)
                out.push([view.model.title.text, c.measureText(view.model.title.text).width, view.bbox.width]);
              for (const child of (view.child_views || [])) walk(child);
            };
            Object.values(Bokeh.index).forEach(walk);
            return out; }""")
    assert fit, "no plot views measured"
    for title, needed, width in fit:
        # the title starts after the y axis (about 60 px) and must end before the toolbar (about 30 px)
        assert needed + 90 < width, f"{name}: title {title!r} needs {needed:.0f} px of a {width:.0f} px plot"


@needs_browser
def test_solver_accuracy_page_marks_the_chosen_solver_and_tolerance(page_at, tmp_path):
    data = strict_json(DATA / "solver_accuracy.json")
    tols = data["tolerances"]
    with explorable(page_at, "solver_accuracy", tmp_path) as page:
        for solver in data["solvers"]:
            _set(page, "solver_select", solver)
            for k in (tols[0], tols[len(tols) // 2], tols[-1]):
                _set(page, "tol_slider", k)
                chosen = _source(page, "chosen")
                i = tols.index(k)
                assert chosen["nfev"] == [data["data"][solver]["nfev"][i]]
                assert chosen["err"] == [data["data"][solver]["rms_error"][i]]
                text = _bokeh(page, "readout", "text")
                assert text.startswith(f"{solver} at rtol = 1e-{k},"), text


def test_explorable_data_are_small_strict_and_straddle_the_threshold():
    for path in DATA.glob("*.json"):
        assert path.stat().st_size < 2e6, f"{path.name} is over 2 MB"
        strict_json(path)
    data = strict_json(DATA / "leaving_the_flow.json")
    ratios = np.array(data["etas"]) / data["eta_crit"]
    assert ratios.min() < 0.05 and ratios.max() > 1.5  # from the first-order regime to past 2 / S
    assert data["eta_crit"] == pytest.approx(2 / data["flow_limit_sharpness"])
    # the flow's last sharpness is the limit's (the limit is reached within the horizon)
    assert data["flow"]["sharpness"][-1] == pytest.approx(data["flow_limit_sharpness"], rel=1e-2)
    assert any(r["status"].startswith("diverged") for r in data["runs"])  # the grid reaches divergence, said in words
    # small eta: GD within O(eta) of the flow (interpolated at GD's times); the distance grows with eta
    flow_t = np.array(data["flow"]["t"])
    dist = []
    for r in data["runs"][:5]:
        w1 = np.interp(r["t"], flow_t, data["flow"]["w1"])
        w2 = np.interp(r["t"], flow_t, data["flow"]["w2"])
        dist.append(np.max(np.hypot(np.array(r["w1"]) - w1, np.array(r["w2"]) - w2)) / r["eta"])
    assert max(dist) < 5 * min(dist)  # distance / eta roughly constant: first order


def test_live_gd_on_the_plane_against_a_numpy_loop():
    """The compiled run the notebook's slider calls, against gradient descent written out in NumPy (l2 loss)."""
    from linflow.studies import explorables

    prob = explorables.plane_problem()
    layers = [np.asarray(w) for w in explorables.plane_start(prob)]
    X, y = np.asarray(prob.X), np.asarray(prob.Y)[:, 0]
    eta, steps = 0.3, 25
    we, loss = explorables.gd_on_the_plane(prob, tuple(layers), eta)
    w = [x.copy() for x in layers]
    for k in range(steps):
        W1, W2, W3 = w
        r = X @ (W3 @ W2 @ W1)[0] - y
        g = (r[:, None] * X).mean(axis=0)[None]  # dL1/dW_e, L1 = (1/m) sum (1/2) r^2
        grads = [(W3 @ W2).T @ g, W3.T @ g @ W1.T, g @ (W2 @ W1).T]
        w = [a - eta * b for a, b in zip(w, grads)]
        np.testing.assert_allclose(np.asarray(we[k + 1]), w[2] @ w[1] @ w[0], rtol=1e-10, atol=1e-13)
    assert float(loss[0]) == pytest.approx(0.5 * np.mean((X @ (layers[2] @ layers[1] @ layers[0])[0] - y) ** 2))
    # a new eta reuses the compiled program (eta is traced)
    before = explorables.gd_on_the_plane._cache_size()
    explorables.gd_on_the_plane(prob, tuple(layers), 0.31)
    assert explorables.gd_on_the_plane._cache_size() == before


@pytest.mark.slow
@needs_browser
def test_attractor_map_page_shows_the_orbit_of_each_eta(page_at, tmp_path):
    data = strict_json(DATA / "attractor_map.json")
    n = len(data["ratios"])
    with explorable(page_at, "attractor_map", tmp_path) as page:
        for i in (0, n // 4, n // 2, n - 1):
            _set(page, "eta_slider", i)
            assert _source(page, "orbit")["y"] == data["orbit"][i], f"eta index {i}"
            for name in ("chosen_diagram", "chosen_lyapunov"):
                assert _bokeh(page, name, "location") == data["ratios"][i]
            text = _bokeh(page, "readout", "text")
            assert f"attractor: {data['attractor'][i]}" in text and "nan" not in text.lower()
        _set(page, "eta_slider", min(range(n), key=lambda i: abs(data["ratios"][i] - 1.3)))


def test_attractor_map_data_follow_the_period_rule():
    """Where the map says period p (of the full state (u, v)), the recorded u v repeats with period p (it may repeat
    sooner: (u, v) and (-u, -v) have one product)."""
    data = strict_json(DATA / "attractor_map.json")
    seen = set()
    for orbit, p in zip(data["orbit"], data["period"]):
        if p >= 1 and len(orbit) > 2 * p:
            y = np.array(orbit)
            assert np.max(np.abs(y[p:] - y[:-p])) <= 1e-5 * max(1.0, np.max(np.abs(y)))
            seen.add(p)
    assert {1, 2, 4} <= seen  # the cascade's first stages are on the map


@needs_browser
def test_plateaus_page_draws_the_chosen_depth_and_alpha(page_at, tmp_path):
    data = strict_json(DATA / "plateaus.json")
    exponents = [round(-np.log10(a)) for a in data["alphas"]]
    with explorable(page_at, "plateaus", tmp_path) as page:
        for depth in map(str, data["depths"]):
            _set(page, "depth_select", depth)
            for k in (exponents[0], exponents[-1]):
                _set(page, "alpha_slider", k)
                run = data["runs"][depth][exponents.index(k)]
                shown = _source(page, "plateau_run")
                keep = [j for j, t in enumerate(run["t"]) if t > 0]
                assert shown["sigma0"] == [run["sigma"][0][j] for j in keep]
                assert shown["loss"] == [run["loss"][j] for j in keep]
                assert [_bokeh(page, f"escape_{i}", "location") for i in range(3)] == run["escapes"]


def test_plateau_data_cross_half_of_each_target_at_the_closed_form_escape():
    """The flow's singular values reach s_i / 2 at the closed-form escape times (interpolated on the saved grid,
    which is dense near each escape), and from alpha <= 1e-5 the loss sits on the plateaus between escapes (halfway
    between them on the log scale)."""
    data = strict_json(DATA / "plateaus.json")
    for rows in data["runs"].values():
        for r in rows:
            assert r["status"] == "ok"
            t = np.array(r["t"])
            for i, (e, si) in enumerate(zip(r["escapes"], data["s"])):
                assert np.interp(e, t, r["sigma"][i]) == pytest.approx(si / 2, rel=1e-3)
            for j in range(1, len(data["s"]) if r["alpha"] <= 1e-5 else 1):  # plateaus are flat from small starts
                mid = np.sqrt(r["escapes"][j - 1] * r["escapes"][j])
                assert np.interp(mid, t, r["loss"]) == pytest.approx(data["plateaus"][j], rel=0.05)
