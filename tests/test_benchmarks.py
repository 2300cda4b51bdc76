"""The benchmark script runs (quick mode); no timing is asserted here, only that it works and reports."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_quick(module: str, tmp_path):
    """``python -m MODULE --quick --out FILE`` from the repository root: ``(its JSON, its stdout)``."""
    out = tmp_path / "result.json"
    res = subprocess.run([sys.executable, "-m", module, "--quick", "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(out.read_text()), res.stdout


@pytest.mark.slow
def test_benchmarks_quick(tmp_path):
    data, stdout = run_quick("benchmarks", tmp_path)
    assert all(r["recompilations"] == 0 for r in data["compile_latency"].values())
    assert {"startup", "vs_scipy", "overhead", "vs_numpy_loop", "sweeps32", "scaling"} <= set(data)
    assert data["startup"]["linflow --help"]["vs_bare_interpreter"] > 0
    assert "32-wide sweeps" in stdout


@pytest.mark.slow
def test_plateau_benchmark_quick(tmp_path):
    rows = run_quick("benchmarks.plateaus", tmp_path)[0]["rows"]
    assert [(r["depth"], r["alpha"]) for r in rows] == [(3, 1e-4), (3, 1e-6)]
    for r in rows:  # every method reached the escapes; the errors are against the closed form
        assert r["gd_status"] == "ok" and r["tsit5_error"] < 1e-5 and r["kvaerno5_newton_error"] < 1e-5
        assert r["gd_over_kvaerno5_newton_steps"] > 1


@pytest.mark.slow
def test_atlas_benchmark_quick(tmp_path):
    r = run_quick("benchmarks.atlas", tmp_path)[0]
    assert r["etas"] == 12 and r["steps"] == 1000 and r["diverged"] == 0
    assert r["batched_s"] > 0 and r["separate_s"] > 0 and r["largest_lyapunov_difference"] < 1e-3


@pytest.mark.slow
def test_live_controls_benchmark_quick(tmp_path):
    r = run_quick("benchmarks.live", tmp_path)[0]
    eta = r["rows"]["eta_slider"]
    assert eta["compiled_after"] == eta["compiled_before"]  # a slider move never recompiles
    assert all(row["move_compute_s"] > 0 for row in r["rows"].values())


@pytest.mark.slow
def test_sde_benchmark_quick(tmp_path):
    r = run_quick("benchmarks.sde", tmp_path)[0]
    methods = {row["method"] for row in r["rows"]}
    assert methods == {"diffrax_virtual", "diffrax_unsafe", "scan", "pair_two_calls", "pair_one_loop", "sgd",
                       "explicit_factor_loop"}
    assert all(row["per_path_ms"] > 0 for row in r["rows"]) and r["pair_two_calls_over_one_loop"] > 0


def test_central_flows_side_by_side_refuses_a_missing_checkout_in_one_line(tmp_path):
    """benchmarks/central_flows_authors.py needs the authors' code (fetched, never vendored), cvxpy and cvxopt: without
    them it names the option, in one line, exit 2, before running anything."""
    res = subprocess.run([sys.executable, "-m", "benchmarks.central_flows_authors", "--authors", str(tmp_path),
                          "--out", str(tmp_path / "o.json")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.startswith("--authors") and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.json").exists()
    fake = tmp_path / "checkout" / "src" / "central_flows_jax"
    fake.mkdir(parents=True)
    (fake / "flows.py").write_text("")
    res = subprocess.run([sys.executable, "-m", "benchmarks.central_flows_authors", "--authors",
                          str(tmp_path / "checkout"), "--python", str(tmp_path / "none")], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.startswith("--python") and "cannot be run" in res.stderr


def test_authors_side_by_side_refuses_a_missing_checkout_in_one_line(tmp_path):
    """benchmarks/achl19_authors.py needs the authors' code (fetched, never vendored) and PyTorch: without them it says
    which option is wrong, in one line, exit 2, before running anything (it runs in full only by hand: hours of GD)."""
    res = subprocess.run([sys.executable, "-m", "benchmarks.achl19_authors", "--authors", str(tmp_path), "--out",
                          str(tmp_path / "o.json")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.startswith("--authors") and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.json").exists()
    fake = tmp_path / "checkout"
    (fake / "lunzi").mkdir(parents=True)
    (fake / "main.py").write_text("")
    res = subprocess.run([sys.executable, "-m", "benchmarks.achl19_authors", "--authors", str(fake), "--python",
                          str(tmp_path / "none")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.startswith("--python") and "cannot be run" in res.stderr
