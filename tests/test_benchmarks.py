"""The benchmark script runs (quick mode); no timing is asserted here, only that it works and reports."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmarks_quick(tmp_path):
    out = tmp_path / "bench.json"
    res = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    data = json.loads(out.read_text())
    assert all(r["recompilations"] == 0 for r in data["compile_latency"].values())
    assert {"startup", "vs_scipy", "overhead", "vs_numpy_loop", "sweeps32", "scaling"} <= set(data)
    assert data["startup"]["linflow --help"]["vs_bare_interpreter"] > 0
    assert "32-wide sweeps" in res.stdout


def test_plateau_benchmark_quick(tmp_path):
    out = tmp_path / "plateaus.json"
    res = subprocess.run([sys.executable, "-m", "benchmarks.plateaus", "--quick", "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["depth"], r["alpha"]) for r in rows] == [(3, 1e-4), (3, 1e-6)]
    for r in rows:  # every method reached the escapes; the errors are against the closed form
        assert r["gd_status"] == "ok" and r["tsit5_error"] < 1e-5 and r["kvaerno5_newton_error"] < 1e-5
        assert r["gd_over_kvaerno5_newton_steps"] > 1


def test_atlas_benchmark_quick(tmp_path):
    out = tmp_path / "atlas.json"
    res = subprocess.run([sys.executable, "-m", "benchmarks.atlas", "--quick", "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    r = json.loads(out.read_text())
    assert r["etas"] == 40 and r["steps"] == 2000 and r["diverged"] == 0
    assert r["batched_s"] > 0 and r["separate_s"] > 0 and r["largest_lyapunov_difference"] < 1e-3


def test_live_controls_benchmark_quick(tmp_path):
    out = tmp_path / "live.json"
    res = subprocess.run([sys.executable, "-m", "benchmarks.live", "--quick", "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    r = json.loads(out.read_text())
    eta = r["rows"]["eta_slider"]
    assert eta["compiled_after"] == eta["compiled_before"]  # a slider move never recompiles
    assert all(row["move_compute_s"] > 0 for row in r["rows"].values())
