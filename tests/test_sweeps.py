import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from linflow import cli, sweeps

ROOT = Path(__file__).resolve().parents[1]
GRID = {"depth": [1, 2], "p": [2.0, 4.0], "seed": [0, 1]}
FIXED = {"m": 60, "d": 3, "t1": 2.0, "points": 11, "eta": 0.05}


def same(a: xr.Dataset, b: xr.Dataset) -> bool:
    if set(a.data_vars) != set(b.data_vars):
        return False
    for v in a.data_vars:
        x, y = a[v].values, b[v].values
        if x.dtype.kind in "USO":
            if not np.array_equal(x.astype(str), y.astype(str)):
                return False
        elif not np.array_equal(x, y, equal_nan=True):
            return False
    return True


def test_invalid_grids_are_rejected_before_anything_runs(tmp_path):
    store = tmp_path / "s"
    cases = [
        ({"depht": [1]}, None, "unknown parameter 'depht'"),
        ({"depth": []}, None, "axis 'depth' must be a non-empty list"),
        ({"depth": [1, "2"]}, None, "'depth' must be an integer"),
        ({"p": [2, "four"]}, None, "'p' must be a finite number"),
        ({"init": ["orthogonal"]}, None, "'init' must be one of"),
        ({"problem": ["mnist"]}, None, "'problem' must be one of synthetic, whitened, gas_sensor"),
        ({"depth": [1]}, {"depth": 2}, "'depth' is also a grid axis"),
        ({"depth": [1]}, {"widht": 2}, "unknown parameter 'widht'"),
        ({"depth": [1, 1]}, None, "repeats a value"),
        ({"depth": [1, 0]}, None, "'depth' must be >= 1, got 0"),
        ({"eta": [0.1, -0.1]}, None, "'eta' must be > 0, got -0.1"),
        ({"p": [0.5]}, None, "'p' must be >= 1, got 0.5"),
        ({"depth": [1]}, {"points": 1}, "'points' must be >= 2, got 1"),
        ({"depth": [1]}, {"rtol": 0.0}, "'rtol' must be > 0, got 0.0"),
    ]
    for grid, fixed, match in cases:
        with pytest.raises((ValueError, TypeError), match=match):
            sweeps.sweep(grid, "run", store, fixed=fixed, progress=False)
    with pytest.raises(ValueError, match="task must be one of"):
        sweeps.sweep({"depth": [1]}, "train", store, progress=False)
    assert not store.exists()


@pytest.mark.slow
def test_failed_points_are_recorded_and_the_rest_completes(tmp_path):
    fixed = {"m": 60, "d": 3, "t1": 100.0, "points": 11, "p": 4.0, "scale": 1.0}
    ds = sweeps.sweep({"eta": [0.05, 20.0]}, "run", tmp_path / "s", fixed=fixed, progress=False)
    assert list(ds.status.values) == ["ok", "failed"]
    assert "gradient descent diverged" in str(ds.reason.values[1]) and "step" in str(ds.reason.values[1])
    assert np.isfinite(ds.flow_final_loss.values).all()
    assert ds.diverged.values.tolist() == [0.0, 1.0] and np.isnan(ds.gd_final_loss.values[1])


def test_problem_axis_varies_the_data(tmp_path):
    fixed = {"m": 40, "d": 3, "depth": 2, "scale": 0.5, "t1": 50.0, "points": 5, "eta": 0.05}
    ds = sweeps.sweep({"problem": ["synthetic", "whitened", "gas_sensor"]}, "run", tmp_path / "s", fixed=fixed,
                      progress=False)
    assert list(ds.status.values) == ["ok", "ok", "failed"]
    assert "needs 'data'" in str(ds.reason.values[2])  # a point without its data fails alone, saying why
    # whitened targets are realizable (Y = X Phi^T exactly): the flow drives the loss to zero; the
    # synthetic targets carry noise, so their loss stays at the least-squares floor
    assert ds.flow_final_loss.values[1] < 1e-12
    assert ds.flow_final_loss.values[0] > 1e-4


@pytest.mark.slow
def test_local_sweep_result_and_resume_without_recomputation(tmp_path):
    ds = sweeps.sweep(GRID, "run", tmp_path / "s", fixed=FIXED, progress=False)
    assert ds.sizes == {"depth": 2, "p": 2, "seed": 2}
    assert (ds.status.values == "ok").all()
    again = xr.open_dataset(tmp_path / "s" / "result.nc", engine="scipy")
    assert same(ds, again)
    stamps = {f.name: f.stat().st_mtime_ns for f in (tmp_path / "s" / "points").iterdir()}
    ds2 = sweeps.sweep(GRID, "run", tmp_path / "s", fixed=FIXED, progress=False)
    assert same(ds, ds2)
    assert stamps == {f.name: f.stat().st_mtime_ns for f in (tmp_path / "s" / "points").iterdir()}
    with pytest.raises(ValueError, match="holds a different sweep"):
        sweeps.sweep({"depth": [1]}, "run", tmp_path / "s", fixed=FIXED, progress=False)


SCRIPT = """
import sys, linflow
from linflow import sweeps
sweeps.sweep({grid!r}, "run", sys.argv[1], fixed={fixed!r}, progress=False)
"""


@pytest.mark.slow
def test_resume_after_kill_gives_the_same_store(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(grid=GRID, fixed=FIXED))
    store = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(script), str(store)], cwd=ROOT)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        done = len(list((store / "points").glob("p*.json"))) if (store / "points").exists() else 0
        if done >= 2:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list((store / "points").glob("p*.json")))
    assert 2 <= done < 8, done  # killed mid-sweep
    assert not list((store / "points").glob("*.tmp"))  # atomic writes: no half-written point
    resumed = sweeps.sweep(GRID, "run", store, fixed=FIXED, progress=False)
    clean = sweeps.sweep(GRID, "run", tmp_path / "clean", fixed=FIXED, progress=False)
    assert same(resumed, clean)
    for f in (tmp_path / "clean" / "points").iterdir():
        assert json.loads(f.read_text()) == json.loads((store / "points" / f.name).read_text())


@pytest.mark.slow
def test_local_and_dask_agree_exactly(tmp_path):
    pytest.importorskip("dask.distributed")
    grid, fixed = {"depth": [1, 2]}, {**FIXED, "p": 4.0}  # one point per worker (each compiles its own)
    local = sweeps.sweep(grid, "run", tmp_path / "local", fixed=fixed, progress=False)
    dask = sweeps.sweep(grid, "run", tmp_path / "dask", fixed=fixed, executor="dask", n_workers=2, progress=False)
    assert same(local, dask)


@pytest.mark.slow
def test_local_process_pool_agrees_exactly(tmp_path):
    grid, fixed = {"depth": [1, 2]}, {**FIXED, "p": 4.0}
    one = sweeps.sweep(grid, "run", tmp_path / "one", fixed=fixed, progress=False)
    pool = sweeps.sweep(grid, "run", tmp_path / "pool", fixed=fixed, n_workers=2, progress=False)
    assert same(one, pool)
    with pytest.raises(ValueError, match="n_workers must be a positive integer"):
        sweeps.sweep(grid, "run", tmp_path / "bad", fixed=fixed, n_workers=0, progress=False)


@pytest.mark.slow
def test_toml_config_and_cli(tmp_path, capsys, monkeypatch):
    cfg = tmp_path / "configs" / "s.toml"
    cfg.parent.mkdir()
    cfg.write_text('task = "run"\nstore = "out"\n[grid]\ndepth = [1, 2]\n[fixed]\nm = 60\nd = 3\nt1 = 2.0\npoints = 11\n')
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # a relative store is relative to the working directory, not to the config
    assert cli.main(["sweep", str(cfg)]) == 0
    assert not (cfg.parent / "out").exists()
    ds = xr.open_dataset(work / "out" / "result.nc", engine="scipy")
    assert ds.sizes["depth"] == 2 and (ds.status.values == "ok").all()
    assert "done 2" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('[grid]\ndepth = [1]\nlr = [0.1]\n')
    with pytest.raises(SystemExit):
        cli.main(["sweep", str(bad)])
    assert "unknown parameter 'lr'" in capsys.readouterr().err


def test_store_defaults_to_the_config_name_in_the_working_directory(tmp_path, monkeypatch):
    cfg = tmp_path / "elsewhere" / "my_sweep.toml"
    cfg.parent.mkdir()
    cfg.write_text('task = "compare"\n[grid]\ndepth = [1]\n')
    monkeypatch.chdir(tmp_path)
    loaded = sweeps.load_config(cfg)
    assert loaded["store"] == "my_sweep-store" and loaded["name"] == "my_sweep"
    cfg.write_text('task = "compare"\nstore = "/abs/store"\n[grid]\ndepth = [1]\n')
    assert sweeps.load_config(cfg)["store"] == "/abs/store"


def test_compare_sweep_writes_the_phase_diagram_named_after_the_config(tmp_path, monkeypatch, capsys):
    # the command line's part only: the sweep itself is tested above, so it is replaced by its result here
    cfg = tmp_path / "tiny_phase.toml"
    cfg.write_text('task = "compare"\n[grid]\ndepth = [1, 2, 3]\np = [2.0, 4.0]\n')
    depth, p = [1, 2, 3], [2.0, 4.0]
    values = np.array([[0.05, 0.08], [0.03, 0.06], [0.02, 0.05]])
    ds = xr.Dataset({"breakdown_eta": (("depth", "p"), values), "stability_eta_predicted": (("depth", "p"), 3 * values)},
                    coords={"depth": depth, "p": p}, attrs={"done": 6, "total": 6, "failed": 0})
    seen = {}

    def fake_sweep(grid, task, store, **kwargs):
        seen.update(grid=grid, task=task, store=store)
        return ds

    monkeypatch.setattr(sweeps, "sweep", fake_sweep)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sweep", str(cfg)]) == 0
    assert seen["task"] == "compare" and str(seen["store"]) == "tiny_phase-store"
    png = tmp_path / "tiny_phase-store" / "tiny_phase.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "tiny_phase.png" in capsys.readouterr().out
    fig = sweeps.phase_diagram(ds)
    ticks = fig.axes[0].get_xticks()
    assert np.allclose(ticks, np.round(ticks))  # depth is an integer axis


@pytest.mark.slow
def test_per_point_io_does_not_grow_with_the_number_of_finished_points(tmp_path, monkeypatch):
    # 2,000 cheap points (the task replaced by an instant one): every point must cost the same I/O, one
    # small JSON file, whether it is the 10th or the 1,990th; the store is read once, at the start
    from linflow.core import files as _io
    from linflow.studies.sweeps import executors, store

    writes, reads = [], []
    real_write, real_read = _io.atomic_write, store.read_records
    monkeypatch.setattr(_io, "atomic_write", lambda path, write: writes.append(str(path)) or real_write(path, write))
    monkeypatch.setattr(executors, "read_records", lambda store: reads.append(1) or real_read(store))
    monkeypatch.setattr(executors, "run_points", lambda task, batch: [{
        "status": "ok", "reason": "", "results": {"x": params["seed"] * 0.5, "y": float(params["depth"])},
        "nonfinite": []} for params in batch])
    grid = {"seed": list(range(400)), "depth": [1, 2, 3, 4, 5]}
    ds = sweeps.sweep(grid, "run", tmp_path / "s", progress=False, flush_every=1e9)
    assert ds.attrs["done"] == 2000 and float(ds.x.sel(seed=399, depth=5)) == 199.5
    points = [w for w in writes if "/points/" in w]
    assert len(points) == 2000 and len(set(points)) == 2000  # one record per point, written once
    assert [w for w in writes if w.endswith("result.nc")] == [str(tmp_path / "s" / "result.nc")]  # at the end
    assert len(reads) == 1
    sizes = [(tmp_path / "s" / "points" / store.point_name(idx)).stat().st_size
             for idx in [(0, 0), (1, 0), (398, 4), (399, 4)]]
    assert max(sizes) - min(sizes) < 16  # a record's size does not grow either
    # the store as it is, at any moment, and a resumed sweep reads it once and computes nothing
    assert sweeps.load(tmp_path / "s").identical(ds)
    again = sweeps.sweep(grid, "run", tmp_path / "s", progress=False)
    assert again.identical(ds) and len([w for w in writes if "/points/" in w]) == 2000


@pytest.mark.slow
def test_regime_task_and_its_diagram():
    """Below the threshold GD follows the flow; eta is the stated fraction of 2 / max sharpness along the flow."""
    from linflow import comparison, curvature, init, integrate, problems

    params = {"problem": "whitened", "d": 2, "m": 8, "width": 2, "depth": 2, "scale": 0.3, "t1": 20.0, "points": 11,
              "eta_ratio": 0.5}
    out = sweeps.run_point("regime", params)
    assert out["status"] == "ok", out["reason"]
    res = out["results"]
    assert comparison.REGIMES[int(res["regime"])] == "follows the flow"
    prob = problems.whitened([2.0], 2, 1, m=8)
    flow = integrate.gradient_flow(prob, init.balanced((2, 2, 1), 0.3), 20.0, n_save=11)
    s_max = float(np.max(np.asarray(curvature.sharpness(prob, flow.layers))))
    assert res["eta_crit"] == pytest.approx(2 / s_max, rel=1e-9) and res["eta"] == pytest.approx(0.5 * res["eta_crit"])
    # the diagram draws one cell per (depth, eta_ratio), failed points blank
    codes = np.array([[0.0, 1.0, 3.0], [0.0, np.nan, 2.0]])
    ds = xr.Dataset({"regime": (("depth", "eta_ratio"), codes)}, coords={"depth": [2, 3], "eta_ratio": [0.5, 1.2, 3.0]})
    fig = sweeps.phase_diagram(ds)
    assert fig.axes[0].get_xlabel() == "depth N" and [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == list(
        comparison.REGIMES)


@pytest.mark.slow
def test_points_along_the_batch_axis_share_the_flow_and_equal_single_points(tmp_path, monkeypatch):
    """A ``run`` sweep over eta is one :func:`linflow.studies.overview.overview` per batch (the flows once, not once per eta), and
    each point's numbers equal, bit for bit, those of the point run alone."""
    from linflow.studies.comparison import runs
    from linflow.studies.sweeps import store, tasks

    calls = []
    real_flow = runs.gradient_flow
    monkeypatch.setattr(runs, "gradient_flow", lambda *a, **k: calls.append(1) or real_flow(*a, **k))
    fixed = {"m": 60, "d": 3, "t1": 2.0, "points": 5}
    grid = {"depth": [1, 2], "eta": [0.05, 0.1, 0.25]}
    assert [len(b) for b in tasks.batches_of(list(store.grid_points(grid)), "run")] == [3, 3]
    ds = sweeps.sweep(grid, "run", tmp_path / "s", fixed=fixed, progress=False)
    assert ds.attrs["done"] == 6 and len(calls) == 2  # per depth: one layer flow for its three etas
    for depth in (1, 2):
        for eta in (0.05, 0.1, 0.25):
            alone = sweeps.run_point("run", {**fixed, "depth": depth, "eta": eta})["results"]
            assert all(float(ds[k].sel(depth=depth, eta=eta)) == v for k, v in alone.items())
    with pytest.raises(ValueError, match="may differ only in 'eta'"):
        sweeps.run_points("run", [{"eta": 0.1}, {"eta": 0.1, "depth": 2}])


def test_run_points_off_the_grid_run_on_the_nearest_horizon_where_gd_lands():
    """eta = 0.03 does not divide t1 / (points - 1) = 0.5: 17 steps per save, 4 saves, horizon 2.04 (the nearest to
    t1 = 2 on which GD's iterates sit on the saves); the numbers are those of the flow and GD run directly."""
    from linflow.studies.sweeps import tasks

    import linflow

    params = {"m": 60, "d": 3, "t1": 2.0, "points": 5, "eta": 0.03}
    assert sweeps.run_grid(0.05, 2.0, 5) == (2.0, 5)  # 0.05 divides 0.5: the grid as given
    assert sweeps.run_grid(0.03, 2.0, 5) == (pytest.approx(4 * 17 * 0.03), 5)
    assert sweeps.run_grid(20.0, 100.0, 11) == (100.0, 6)  # eta above the spacing: one step per save
    horizon, points = sweeps.run_grid(0.03, 2.0, 5)
    res = sweeps.run_point("run", params)
    assert res["status"] == "ok" and res["results"]["horizon"] == horizon
    prob, layers = tasks.problem_and_layers({k: v for k, (_, v) in sweeps.PARAMETERS.items()} | params)
    flow = linflow.gradient_flow(prob, layers, horizon, n_save=points, rtol=1e-8, atol=1e-10)
    gd = linflow.gradient_descent(prob, layers, 0.03, 68, save_every=17)
    assert res["results"]["flow_final_loss"] == pytest.approx(flow.final_loss, rel=1e-12)
    assert res["results"]["gd_final_loss"] == pytest.approx(gd.final_loss, rel=1e-12)
    dev = np.sqrt(np.sum((np.asarray(gd.end_to_end) - np.asarray(flow.end_to_end)) ** 2, axis=(1, 2)))
    scale = np.max(np.sqrt(np.sum(np.asarray(flow.end_to_end) ** 2, axis=(1, 2))))
    assert res["results"]["max_relative_deviation"] == pytest.approx(np.max(dev) / scale, rel=1e-9)


def test_the_sweep_table_says_in_words_what_a_number_is_not():
    """Issue 38: ``linflow sweep`` printed the raw Dataset (``nan nan``, regime codes 0.0 ... 3.0 with no legend)."""
    ds = xr.Dataset({"regime": (("depth", "eta_ratio"), np.array([[0.0, 1.0], [3.0, np.nan]])),
                     "eta": (("depth", "eta_ratio"), np.array([[0.1, 0.2], [0.3, np.nan]])),
                     "status": (("depth", "eta_ratio"), np.array([["ok", "ok"], ["ok", "failed"]])),
                     "reason": (("depth", "eta_ratio"), np.array([["", ""], ["", "the flow stopped: max_steps"]]))},
                    coords={"depth": [2, 3], "eta_ratio": [0.5, 1.5]})
    text = sweeps.table(ds)
    assert "nan" not in text.lower()
    rows = text.splitlines()
    assert rows[0].split() == ["depth", "eta_ratio", "status", "regime", "eta"]
    assert "follows the flow" in rows[1] and "edge of stability" in rows[2] and "diverged" in rows[3]
    assert rows[4].split()[:3] == ["3", "1.5", "failed"] and rows[4].split().count("failed") == 3
    assert "depth=3, eta_ratio=1.5: the flow stopped: max_steps" in text
