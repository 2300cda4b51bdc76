"""Numbers and lists that the README, the user guide (docs/guide/) and the notebooks' text state, checked against the
code or against the guide's own measured tables (where a statement summarises a table, the table is the
measurement)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the README and the user guide's pages, where the README's results moved (issue 40)
README = "\n\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs" / "guide").glob("*.md"))])


def _accuracy_table() -> dict:
    """The README's work-precision table: {solver: {k: (rms error, nfev)}}."""
    block = re.search(r"```\nsolver +k=4.*?```", README, flags=re.S).group(0)
    head, *rows = [line for line in block.splitlines()[1:] if line and not line.startswith("```")]
    ks = [int(k) for k in re.findall(r"k=(\d+)", head)]
    table = {}
    for row in rows:
        name, *values = row.split()
        table[name] = {k: (float(values[2 * i]), int(values[2 * i + 1])) for i, k in enumerate(ks)}
    return table


def test_reproduce_names_listed_in_the_readme_are_the_experiments():
    from linflow.core import catalog as _catalog
    from linflow import reproduce

    listed = re.search(r"`linflow reproduce NAME --data PATH` \(NAME one of (.*?), or `all`\)", README, re.S).group(1)
    assert re.findall(r"`([\w-]+)`", listed) == list(_catalog.EXPERIMENTS) == list(reproduce.EXPERIMENTS)


def test_solver_statements_match_the_readme_table():
    table = _accuracy_table()
    # "the implicit kvaerno5 ... (24 times tsit5's evaluations at k = 10)"; notebook 02 states the same ratio
    ratio = table["kvaerno5"][10][1] / table["tsit5"][10][1]
    stated = float(re.search(r"`kvaerno5` does not pay off here \((\d+) times `tsit5`", README).group(1))
    assert stated == pytest.approx(ratio, rel=0.05)
    notebook = (ROOT / "notebooks" / "02_solver_accuracy.py").read_text()
    assert float(re.search(r"about (\d+) times the\s*#? evaluations of Tsit5", notebook).group(1)) == pytest.approx(
        ratio, rel=0.05)
    # "fewest evaluations of [linflow's solvers] up to rtol 1e-8": at k = 4 and 7 no linflow adaptive solver reaches
    # tsit5's error with fewer evaluations
    linflow_solvers = [n for n in table if not n.startswith("scipy_")]
    for k in (4, 7):
        err, nfev = table["tsit5"][k]
        assert not any(table[n][k][0] <= err and table[n][k][1] < nfev for n in linflow_solvers if n != "tsit5")
    # "LSODA needs fewer evaluations than tsit5 at equal error ... (190 against 235 at k = 4 with a smaller error)"
    assert table["scipy_LSODA"][4][0] < table["tsit5"][4][0] and table["scipy_LSODA"][4][1] < table["tsit5"][4][1]
    assert "(190 against 235 at k = 4" in README and (table["scipy_LSODA"][4][1], table["tsit5"][4][1]) == (190, 235)


def test_readme_states_the_regimes_example_as_measured():
    """The regimes paragraph and examples/regimes.toml state the same run time, and the README's regimes are words
    of the regime rule."""
    from linflow.core import catalog as _catalog  # noqa: F401 (import-free)
    from linflow.studies.comparison import REGIMES

    para = re.search(r"`examples/regimes.toml` \(task `regime`.*?\n\n", README, re.S).group(0)
    toml = (ROOT / "examples" / "regimes.toml").read_text()
    seconds = int(re.search(r"(\d+) s on the 2-core", para).group(1))
    assert f"{seconds} s" in toml
    for word in ("follows the flow", "edge of stability", "catapult", "diverge", "unclassified"):
        assert word.split()[0] in para
    assert set(REGIMES) >= {"follows the flow", "edge of stability", "catapult", "diverged", "unclassified"}


@pytest.mark.slow  # seconds (measured 3.4-7.7 s): the full command only (the fast tier's 3 minutes)
def test_readme_run_table_is_what_linflow_run_prints():
    """The README's table of `linflow run` (the main job's default settings), line by line, to the printed digits."""
    from linflow import cli
    from linflow.studies import overview

    block = re.search(r"```\nsettings: m=2000.*?```", README, flags=re.S).group(0).splitlines()[1:-1]
    args = cli.build_parser().parse_args(["run"])
    cli.options.settle(args)
    problem, layers = cli.commands.build(args)
    ds = overview.overview(problem, layers, args.etas, args.t1, points=args.points, solver=args.solver,
                           rtol=args.rtol, atol=args.atol)
    printed = overview.summary_table(ds).splitlines()
    expected = [line for line in block[1:] if line.strip()]
    got = [line for line in printed if line.strip() and not line.startswith("(deviations")]
    assert block[0] == "settings: " + ", ".join(cli.options.settle(cli.build_parser().parse_args(["run"])))
    assert got == expected
