import os
import re
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from linflow.core import files as _io
from linflow import cli, init, problems
from linflow.studies import overview
from conftest import strict_json


@pytest.mark.slow
def test_linflow_run_quick_writes_data_figure_and_summary(tmp_path, capsys):
    assert cli.main(["run", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Theorem 1" in out and "max dev GD" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.nc", "run.png", "summary.json"]
    ds = xr.open_dataset(tmp_path / "run.nc", engine="scipy")
    assert ds.sizes["eta"] == 2 and ds.attrs["depth"] == 3
    summary = strict_json(tmp_path / "summary.json")
    assert summary["theorem1_relative_gap"] < 1e-6
    devs = [r["max_relative_deviation_gd"] for r in summary["runs"]]
    # GD is first order: halving eta roughly halves its distance from the flow
    assert devs[0] / devs[1] == pytest.approx(2.0, rel=0.15)
    assert (tmp_path / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_reports_bad_options_by_name(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "--quick", "--p", "0.5", "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert "argument --p: expected a number >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["run", "--depth", "3", "--widths", "4", "--out", str(tmp_path)])
    assert "--widths must list depth - 1 = 2" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_overview_rejects_a_learning_rate_off_the_grid():
    prob = problems.synthetic(m=50, d=3)
    with pytest.raises(ValueError, match="eta = 0.03 must divide the save spacing"):
        overview.overview(prob, init.balanced((3, 2, 1), 0.2), [0.03], 1.0, points=11)


@pytest.mark.slow  # seconds (measured 3.4-7.7 s): the full command only (the fast tier's 3 minutes)
def test_overview_reports_a_diverging_learning_rate():
    prob = problems.two_point(10.0, 1.0, p=4)
    ds = overview.overview(prob, init.balanced((2, 2, 1), 0.5), [0.05, 0.001], 1.0, points=11)
    assert str(ds.gd_status.values[0]) == "diverged" and "became non-finite at step" in str(ds.gd_message.values[0])
    assert str(ds.gd_status.values[1]) == "ok"
    assert np.isnan(ds.gd_loss.values[0, -1]) and np.all(np.isfinite(ds.gd_loss.values[1]))
    assert "diverged" in overview.summary_table(ds)
    summary = overview.summary(ds)  # the study's own numbers: what linflow run writes to summary.json
    assert [r["gd_status"] for r in summary["runs"]] == ["diverged", "ok"]
    assert summary["runs"][0]["gd_message"] == str(ds.gd_message.values[0]) and summary["t1"] == 1.0


@pytest.mark.slow
def test_theorem1_gap_is_not_claimed_when_a_flow_stopped_early():
    # compare refuses a failed layer flow; the end-to-end flow may stop (here: its status set as a solver would)
    prob = problems.synthetic(m=50, d=3)
    ds = overview.overview(prob, init.balanced((3, 2, 1), 0.2), [0.1], 1.0, points=11)
    full = overview.summary(ds)
    assert full["theorem1_status"] == "ok" and full["theorem1_relative_gap"] < 1e-6
    ds = ds.copy(deep=True)
    ds.attrs["e2e_flow_status"] = "max_steps"
    ds["e2e_flow_end_to_end"].values[5:] = np.nan
    summary = overview.summary(ds)
    assert summary["theorem1_relative_gap"] is None or np.isnan(summary["theorem1_relative_gap"])
    assert summary["theorem1_status"] == "not measured: the end-to-end flow stopped (max_steps)"
    table = overview.summary_table(ds)
    assert "||W_e||_F = not measured: the end-to-end flow stopped (max_steps)" in table and "nan" not in table


def test_overview_is_the_plain_configuration_of_compare():
    """``linflow run``'s study is compare without curvature, modified flows or central flow, etas in the given order."""
    from linflow import comparison

    prob, layers = problems.synthetic(m=50, d=3), init.balanced((3, 2, 1), 0.2)
    ds = overview.overview(prob, layers, [0.1, 0.05], 1.0, points=11)
    assert list(ds.eta.values) == [0.1, 0.05] and "sharpness" not in ds and "regime" not in ds
    # the stored distances are those of the stored end-to-end matrices (recomputed here), Theorem 1 holds
    gd_dev = np.sqrt(np.sum((ds.gd_end_to_end.values - ds.flow_end_to_end.values[None]) ** 2, axis=(-2, -1)))
    np.testing.assert_allclose(ds.gd_deviation.values, gd_dev, rtol=1e-12, atol=1e-15)
    assert float(ds.theorem1_gap.max()) < 1e-6 * float(np.abs(ds.flow_end_to_end.values).max())
    assert list(ds.gd_status.values) == ["ok", "ok"] and list(ds.eq10_status.values) == ["ok", "ok"]
    with pytest.raises(ValueError, match="pass orders=\\(\\) and central=False"):
        comparison.compare(prob, layers, [0.1], 1.0, points=11, curvature=False)
    # the main job runs the small side-by-side that compare extends: compare's plain configuration is the same Dataset
    plain = comparison.compare(prob, layers, [0.1, 0.05], 1.0, points=11, orders=(), central=False, curvature=False,
                               rtol=1e-8, atol=1e-10)
    assert plain.sel(eta=[0.1, 0.05]).identical(ds)


def test_atomic_write_leaves_nothing_on_interrupt(tmp_path):
    target = tmp_path / "result.nc"
    target.write_text("old")

    def interrupted(tmp):
        with open(tmp, "w") as fh:
            fh.write("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _io.atomic_write(target, interrupted)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.nc"]


def test_entry_point_runs_as_a_module():
    res = subprocess.run([sys.executable, "-m", "linflow", "--version"], capture_output=True, text=True,
                         env={**os.environ})
    assert res.returncode == 0 and res.stdout.startswith("linflow ")


@pytest.mark.slow
def test_linflow_compare_quick(tmp_path, capsys):
    assert cli.main(["compare", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "order of GD vs gradient flow" in out and "stability threshold predicted" in out
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["compare.nc", "compare_summary.json", "deviation_vs_time.png", "deviation_vs_eta.png",
                            "balancedness_drift.png", "stability.png", "bound_vs_error.png"])
    summary = strict_json(tmp_path / "compare_summary.json")
    assert summary["order_flow"]["order"] == pytest.approx(1.0, abs=0.25) and summary["order_flow"]["status"] == "ok"
    # nothing diverged on the quick grid: the observed threshold is null, and its status says why
    assert summary["stability_eta_observed"] is None
    assert summary["stability_eta_observed_status"].startswith("none: GD neither diverged nor oscillated")
    # what could not be measured is said in words, in the printed report and beside each null of the JSON
    assert not re.search(r"\bnan\b", out, re.IGNORECASE)
    assert "stability threshold observed (smallest eta where GD diverged or oscillated): none: GD neither" in out
    assert summary["order_modified2"]["order"] is None and summary["order_modified2"]["status"].startswith("not fitted")
    assert "order of GD vs 2nd-order modified flow    not fitted" in out
    assert summary["breakdown_status"].startswith("above the grid") and "above the grid" in out
    # the study's own report: settings and one entry per eta
    assert len(summary["etas"]) == len(summary["outcomes"]) == len(summary["regime_per_eta"]) == 3
    assert summary["t1"] == 4.0 and summary["problem"] and summary["outcomes"] == ["ok"] * 3
    ds = xr.open_dataset(tmp_path / "compare.nc", engine="scipy")
    assert set(ds.dims) >= {"eta", "t"} and ds.sizes["eta"] == 3


@pytest.mark.slow
def test_linflow_accuracy_quick(tmp_path, capsys):
    assert cli.main(["accuracy", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "reference: exact" in out and "dopri8" in out
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["accuracy.nc", "step_sizes.nc", "work_precision_nfev.png", "work_precision_time.png",
                            "step_size.png", "accuracy_summary.json"])
    summary = strict_json(tmp_path / "accuracy_summary.json")
    assert summary["table"]["dopri8"]["9"]["rms_error"] < 1e-7 and summary["table"]["dopri8"]["9"]["status"] == "ok"
    assert summary["flow"] == "layers" and summary["case"].startswith("exact") and summary["reference"].startswith("exact")
    assert set(summary["table"]) == {"euler", "tsit5", "dopri8", "scipy_RK45"} and summary["t1"] > 0
    # quick mode times 3 repeats; the diagram draws their spread (fastest to slowest)
    ds = xr.open_dataset(tmp_path / "accuracy.nc", engine="scipy")
    assert ds.attrs["repeats"] == 3 and bool((ds.wall_time_max >= ds.wall_time).all())


def test_with_data_the_settings_line_leaves_out_the_synthetic_problems_size(tmp_path, capsys, monkeypatch):
    """--data replaces the synthetic problem: the printed settings do not list its m and d."""
    from linflow.cli import commands

    monkeypatch.setattr(commands, "cmd_momentum", lambda args: 0)
    data = tmp_path / "data"
    data.mkdir()
    assert cli.main(["momentum", "--data", str(data), "--out", str(tmp_path / "out")]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("settings: "))
    names = [x.split("=")[0] for x in line.removeprefix("settings: ").split(", ")]
    assert "m" not in names and "d" not in names and "methods" in names


@pytest.mark.slow
def test_linflow_momentum_quick(tmp_path, capsys):
    assert cli.main(["momentum", "--quick", "--methods", "nesterov", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "nesterov (beta = 0.5) against its models" in out and "nan" not in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["momentum_nesterov.nc", "momentum_nesterov.png",
                                                          "momentum_summary.json"]
    summary = strict_json(tmp_path / "momentum_summary.json")
    assert summary["rule"].startswith("deviation:") and list(summary["methods"]) == ["nesterov"]
    rows = {r["pair"]: r for r in summary["methods"]["nesterov"]["pairs"]}
    assert rows["leading (plain) vs the method (rest)"]["theory"] == 1 and len(rows) == 7
    assert all(isinstance(r["verdict"], str) and isinstance(r["crossing"], str) for r in rows.values())
    assert len(summary["etas"]) == 4 and summary["wall_time_s"] > 0


@pytest.mark.slow
def test_linflow_momentum_runs_adam_and_rmsprop_on_the_etas_below_their_bounds(tmp_path, capsys):
    """Adam (a, b = 2, 4) and RMSProp (b = 4): the grid's 0.25 (t1 / (points - 1) / 2) is at 1 / 4, left out and said
    so; the rest run against their models, each method's etas, rates and the left-out etas in the summary. Adam at
    fixed betas has no bound: every eta of the grid, its two models (orders 1 and 2) and its betas in the summary."""
    assert cli.main(["momentum", "--quick", "--methods", "adam,rmsprop,adam_fixed", "--divisors", "2,4,8", "--t1", "2",
                     "--points", "5", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "adam: etas 0.25 left out" in out and "rmsprop: etas 0.25 left out" in out and "nan" not in out
    summary = strict_json(tmp_path / "momentum_summary.json")
    adam, rms = summary["methods"]["adam"], summary["methods"]["rmsprop"]
    assert adam["etas"] == rms["etas"] == [0.0625, 0.125]
    assert adam["rates"] == {"a": 2.0, "b": 4.0} and rms["rates"] == {"b": 4.0, "initial_scale": 0.0,
                                                                       "model": "leading"}
    assert "at or above 1 / rate = 0.25" in adam["etas_left_out"]
    assert adam["pairs"][0]["theory"] == 1 and rms["pairs"][0]["theory"] == 0.5
    assert {p.name for p in tmp_path.iterdir()} >= {"momentum_adam.png", "momentum_rmsprop.nc"}
    fixed = summary["methods"]["adam_fixed"]
    assert fixed["etas"] == [0.0625, 0.125, 0.25] and "etas_left_out" not in fixed
    assert fixed["betas"] == {"beta1": 0.5, "beta2": 0.8, "eps_root": 1.0, "eps": 0.0}
    assert [p["theory"] for p in fixed["pairs"]] == [1, 2]


@pytest.mark.parametrize("argv, match", [
    (["--methods", "adam", "--adam-rates", "2"], "--adam-rates must be two numbers a,b"),
    (["--methods", "adam_fixed", "--adam-betas", "0.9,1"], r"--adam-betas must be two numbers beta1,beta2, each in \[0, 1\)"),
    (["--methods", "adam_fixed", "--eps-root", "-1"], "--eps-root"),
    (["--methods", "rmsprop", "--rmsprop-model", "modified"], "--rmsprop-model modified needs --initial-scale > 0"),
    (["--methods", "rmsprop", "--rmsprop-rate", "40", "--divisors", "1,2"],
     r"rmsprop needs 2 etas of the grid below 1 / rate = 0.025 \(--rmsprop-rate\)"),
])
def test_linflow_momentum_names_a_bad_adaptive_option_before_running(argv, match, tmp_path, capsys):
    out = tmp_path / "never"
    with pytest.raises(SystemExit) as exc:
        cli.main(["momentum", *argv, "--out", str(out)])
    assert exc.value.code == 2 and re.search(match, capsys.readouterr().err) and not out.exists()


@pytest.mark.slow
def test_a_diverging_run_writes_standard_json_with_null_and_a_status(tmp_path, capsys):
    assert cli.main(["run", "--m", "100", "--d", "4", "--t1", "50", "--points", "11", "--etas", "5.0,0.1", "--p", "4",
                     "--scale", "1.0", "--out", str(tmp_path)]) == 0
    summary = strict_json(tmp_path / "summary.json")
    first = summary["runs"][0]
    assert first["gd_status"] == "diverged" and "became non-finite" in first["gd_message"]
    assert summary["runs"][1]["gd_status"] == "ok"
    # a diverged run has no maximum over the horizon: null beside its status, "diverged" in the table, never nan
    assert first["max_relative_deviation_gd"] is None and first["max_gd_imbalance"] is None
    assert summary["runs"][1]["max_relative_deviation_gd"] > 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.split()[:1] == ["5"])
    assert row.split()[1:6] == ["diverged"] * 5 and "nan" not in row
    for path in tmp_path.rglob("*.json"):
        strict_json(path)


@pytest.mark.parametrize("argv, typed, quick", [
    (["run", "--quick", "--etas", "0.3", "--t1", "5"], {"etas": [0.3], "t1": 5.0}, {"m": 300, "d": 8}),
    (["run", "--quick", "--m", "1000"], {"m": 1000}, {"d": 8, "t1": 10.0, "etas": [0.1, 0.05]}),
    (["compare", "--quick", "--etas", "0.01", "--points", "11"], {"etas": [0.01], "points": 11},
     {"t1": 4.0, "eta_divisors": [2, 4, 8], "m": 300, "d": 6}),
    (["accuracy", "--quick", "--solvers", "tsit5", "--tolerances", "4"], {"solvers": ["tsit5"], "tolerances": [4]},
     {"scipy": ["RK45"]}),
])
def test_quick_changes_defaults_only_a_typed_option_wins(argv, typed, quick):
    args = cli.build_parser().parse_args(argv)
    used = cli.options.settle(args)
    for name, value in {**typed, **quick}.items():
        assert getattr(args, name) == value, name
    for name in typed:
        assert any(u.startswith(f"{name}=") and u.endswith("(typed)") for u in used), used
    for name in quick:
        assert any(u.startswith(f"{name}=") and u.endswith("(--quick)") for u in used), used
    plain = cli.build_parser().parse_args([a for a in argv if a != "--quick"])
    cli.options.settle(plain)
    for name in typed:  # the same typed values without --quick
        assert getattr(plain, name) == typed[name]


@pytest.mark.parametrize("extra, message", [(["--etas", "-0.1"], "argument --etas: expected"),
                                            (["--etas", "0.3"], "eta = 0.3 must divide the save spacing"),
                                            (["--t1", "-5"], "argument --t1: expected a number > 0, got '-5'")])
def test_quick_validates_what_the_user_typed(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "--quick", *extra, "--out", str(tmp_path)])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_each_command_help_opens_with_its_own_description(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    out = capsys.readouterr().out
    description = out.split("\n\n")[1]
    assert description.startswith("The main job") and "compare" not in description
    assert "(default 2000; with --quick 300)" in " ".join(out.split())


def test_sweep_on_a_bad_config_file_exits_2_with_one_line(tmp_path, capsys):
    (tmp_path / "latin.toml").write_bytes('task = "run"\n# caf\xe9\n'.encode("latin-1"))
    for config, message in ((tmp_path / "missing.toml", "no such file"), (tmp_path, "not a file"),
                            (tmp_path / "latin.toml", "not UTF-8 text (line 2")):
        with pytest.raises(SystemExit) as exc:
            cli.main(["sweep", str(config)])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


# ---- issue 38: the new user's defects -------------------------------------------------------------------------------

COMMANDS = {"run": ["run", "--quick"], "compare": ["compare", "--quick"], "accuracy": ["accuracy", "--quick"],
            "saddles": ["saddles", "--quick"], "atlas": ["atlas", "--quick"], "sgd": ["sgd", "--quick"],
            "momentum": ["momentum", "--quick"], "reproduce": ["reproduce", "fig2", "--quick"]}


def _no_computation(monkeypatch):
    """Every command's body replaced by a failure: what is checked before it runs is all that may run."""
    from linflow.cli import commands

    for name in ("run", "compare", "accuracy", "saddles", "atlas", "sgd", "momentum", "reproduce", "sweep"):
        monkeypatch.setattr(commands, f"cmd_{name}", lambda args: pytest.fail("the command started computing"))


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_refuses_a_file_as_its_output_folder_before_computing(command, tmp_path, capsys, monkeypatch):
    _no_computation(monkeypatch)
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    for out, says in ((afile, "is a file, not a folder"), (afile / "sub", "cannot be created")):
        with pytest.raises(SystemExit) as exc:
            cli.main([*COMMANDS[command], "--out", str(out)])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"linflow {command}: error: --out" in err and says in err
    assert afile.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_the_build_parser_lists_every_command_in_the_help_and_the_docs(capsys):
    from linflow.core import catalog
    from linflow.studies import sweeps
    from linflow.cli import build_parser

    parser = build_parser()
    commands = list(parser._subparsers._group_actions[0].choices)  # noqa: SLF001 (argparse keeps no public list)
    assert commands == ["run", "compare", "accuracy", "saddles", "atlas", "sgd", "momentum", "reproduce", "sweep"]
    text = parser.format_help()
    assert "commands: " + ", ".join(commands) in text
    rep = parser._subparsers._group_actions[0].choices["reproduce"]  # noqa: SLF001
    assert all(name in rep.format_help() for name in catalog.EXPERIMENTS)
    assert sorted(n for names in catalog.EXPERIMENT_SOURCES.values() for n in names) == sorted(catalog.EXPERIMENTS)
    assert list(catalog.SWEEP_TASKS) == list(sweeps.TASKS)
    sweep_help = parser._subparsers._group_actions[0].choices["sweep"].format_help().replace("\n", " ")  # noqa: SLF001
    assert all(f" {task}" in sweep_help for task in catalog.SWEEP_TASKS)
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "cli.md").read_text()
    for name in commands:
        assert f"`linflow {name}" in doc
    row = next(line for line in doc.splitlines() if line.startswith("| `linflow reproduce"))
    assert all(f"`{name}`" in row for name in catalog.EXPERIMENTS)
    row = next(line for line in doc.splitlines() if line.startswith("| `linflow sweep"))
    assert all(f"`{task}`" in row for task in catalog.SWEEP_TASKS)
    for name in commands:  # "every command but sweep takes --out and --quick": true of the parser
        sub = parser._subparsers._group_actions[0].choices[name]  # noqa: SLF001
        flags = {s for a in sub._actions for s in a.option_strings}  # noqa: SLF001
        assert ({"--out", "--quick"} <= flags) == (name != "sweep")
    assert "every command but `sweep` takes `--out FOLDER` and `--quick`" in doc


@pytest.mark.parametrize("argv, says", [
    (["sgd", "--quick", "--data", "/nonexistent"], "--data '/nonexistent' does not exist"),
    (["sgd", "--quick", "--t1", "0"], "argument --t1: expected a number > 0, got '0'"),
    (["sgd", "--quick", "--ks", "3,1"], "--ks must start at 1 (the base run) and increase"),
    (["sgd", "--quick", "--t1", "1.05"], "--t1 1.05 must be a whole multiple of max(--ks) x min(--etas)"),
    (["sgd", "--quick", "--etas", "0.1,0.03"], "--etas: each learning rate must divide the save spacing"),
    (["atlas", "--quick", "--scale=-1"], "argument --scale: expected a number > 0, got '-1'"),
    (["atlas", "--quick", "--scale", "0"], "argument --scale: expected a number > 0, got '0'"),
    (["run", "--quick", "--scale", "0"], "--scale 0 with --init balanced starts at a critical point"),
    (["saddles", "--quick", "--gd-etas", "0"], "argument --gd-etas: expected comma-separated numbers > 0, got '0'"),
    (["saddles", "--quick", "--alphas", "-1e-3"], "argument --alphas: expected comma-separated numbers > 0, got '-1e-3'"),
    (["saddles", "--quick", "--gd-alpha", "-1e-3"], "argument --gd-alpha: expected a number > 0, got '-1e-3'"),
    (["saddles", "--quick", "--values", "1,1"], "--values must be distinct"),
    (["run", "--quick", "--t1", "nan"], "argument --t1: expected a number > 0, got 'nan'"),
    (["run", "--quick", "--etas", "0.1,inf"], "argument --etas: expected comma-separated numbers > 0, got '0.1,inf'"),
    (["compare", "--quick", "--rtol", "-1"], "argument --rtol: expected a number > 0, got '-1'"),
    (["accuracy", "--quick", "--solvers", "tsit5,nope"], "argument --solvers: expected comma-separated names from"),
    (["accuracy", "--quick", "--repeats", "0"], "argument --repeats: expected an integer >= 1, got '0'"),
    (["run", "--quick", "--m", "1e3"], "argument --m: expected an integer >= 2, got '1e3'"),
    (["run", "--quick", "--weight-decay", "-0.1"], "argument --weight-decay: expected a number >= 0, got '-0.1'"),
    (["atlas", "--quick", "--record", "100"], "argument --record: expected an integer >= 128, got '100'"),
    (["sweep", "missing.toml", "--workers", "0"], "argument --workers: expected an integer >= 1, got '0'"),
    (["momentum", "--quick", "--beta", "1"], "--beta must be in [0, 1)"),
    (["momentum", "--quick", "--beta", "0.9"], "the initial layer (beta^k <= 0.001: 66 steps"),
    (["momentum", "--quick", "--methods", "sgd"], "argument --methods: expected comma-separated names from"),
    (["momentum", "--quick", "--divisors", "2,2"], "--divisors must be distinct"),
    (["momentum", "--quick", "--data", "/nonexistent"], "--data '/nonexistent' does not exist"),
])
def test_bad_options_get_one_line_naming_the_option_before_anything_runs(argv, says, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if argv[0] not in ("run", "sgd", "saddles", "momentum"):  # these reach their own checks inside the command, before computing
        _no_computation(monkeypatch)
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and says in err and err.count("\n") == 1 and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # no output folder, no partial file


@pytest.mark.parametrize("argv", [["fig2", "--published"], ["achl19", "--quick", "--published"]])
def test_reproduce_published_is_refused_where_there_is_none_before_running(argv, tmp_path, capsys):
    out = tmp_path / "never"
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", *argv, "--out", str(out)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--published applies to achl19 without --quick" in err and not out.exists()


def test_reproduce_published_hands_achl19_its_published_configuration(monkeypatch):
    """``run("achl19", published=True)`` calls achl19 with ``config=PUBLISHED`` (100 x 100, rank 5, 1,500-5,000
    entries) and says so in the summary; without it, the default configuration (no config)."""
    from linflow.paper import achl19, reproduce

    seen = []

    def fake(data, quick, config=None):
        seen.append(config)
        return xr.Dataset(), {"verdict": "agrees"}, {}

    monkeypatch.setitem(reproduce.EXPERIMENTS, "achl19", fake)
    _, summary, _ = reproduce.run("achl19", published=True)
    assert seen[-1] is achl19.PUBLISHED and seen[-1]["n"] == 100 and seen[-1]["counts"] == (1500, 2000, 3000, 5000)
    assert summary["configuration"] == "published" and summary["experiment"] == "achl19"
    reproduce.run("achl19")
    assert seen[-1] is None
