"""Inputs that attack (issue 39, item 2), as properties: every numeric option of every command fed what it cannot
take (NaN, inf, huge, negative, below its bound, not a number, a fraction for an integer), sweep files cut at any
byte or with a value of the wrong type, data files with one bad line, and the public API's scalar arguments. Each
must end in one line naming what the user typed and the form expected (exit 2 on the command line), never a
traceback, never an output file.
"""

from __future__ import annotations

import argparse
import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import budget
from linflow import cli

# ---- every numeric option of every command --------------------------------------------------------------------------

_POSITIONAL = {"reproduce": ["fig2"], "sweep": ["missing.toml"]}


def _options():
    """``(command, flag, converter)`` for every option of every command whose value is converted (numbers, lists,
    names) or chosen from a set."""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    found = []
    for name, command in sub.choices.items():
        for action in command._actions:  # noqa: SLF001 (argparse keeps no public list)
            if action.option_strings and action.nargs != 0 and (hasattr(action.type, "form") or action.choices):
                found.append((name, action.option_strings[-1], action.type, action.choices))
    return found


OPTIONS = _options()

NOT_NUMBERS = ["nan", "-nan", "inf", "-inf", "+inf", "1e999", "-1e999", "abc", "", " ", "1,,", "0x10", "1e", "--1",
               "\N{MINUS SIGN}1", "1_0_", "1,", ",1"]


@st.composite
def bad_value(draw, converter, choices):
    """A text the option cannot take."""
    if choices or hasattr(converter, "choices"):
        allowed = set(choices or converter.choices)
        blank = getattr(converter, "empty", False)  # a list of names that may be empty takes "" and " "
        word = draw(st.text(st.characters(codec="utf-8", exclude_characters=","), min_size=1, max_size=12)
                    .filter(lambda w: w.strip() not in allowed and not w.startswith("-") and (w.strip() or not blank)))
        return word
    item = getattr(converter, "item", converter)
    blank = getattr(converter, "empty", False)  # a list that may be empty ("none") takes "" and " "
    candidates = [st.sampled_from([t for t in NOT_NUMBERS if not (blank and not t.strip())])]
    if converter.low is not None:
        gap = st.floats(1e-12, 1e300) if item.kind is float else st.integers(1, 10**30)
        below = draw(gap)
        low = converter.low
        value = low - below if item.kind is float else int(math.floor(low)) - below
        candidates.append(st.just(repr(value) if item.kind is float else str(value)))
        if converter.above:
            candidates.append(st.just(f"{low:g}"))
    if item.kind is int:
        candidates.append(st.floats(0.1, 1e6).filter(lambda x: x != int(x)).map(repr))
        candidates.append(st.just("1e3"))
    text = draw(st.one_of(*candidates))
    if hasattr(converter, "item") and draw(st.booleans()):  # a list with one bad entry among good ones
        good = f"{max(converter.low or 0, 0) + 1:g}" if item.kind is float else str(int(max(converter.low or 0, 0)) + 1)
        text = draw(st.sampled_from([f"{good},{text}", f"{text},{good}", f"{good},{text},{good}"]))
    return text


@settings(max_examples=budget(120), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.data())
def test_every_option_refuses_a_value_it_cannot_take_in_one_line(case, tmp_path_factory, capsys, monkeypatch):
    from linflow.cli import commands

    command, flag, converter, choices = case.draw(st.sampled_from(OPTIONS))
    text = case.draw(bad_value(converter, choices))
    out = tmp_path_factory.mktemp("out") / "never"
    for name in ("run", "compare", "accuracy", "saddles", "atlas", "sgd", "reproduce", "sweep"):  # nothing may run
        monkeypatch.setattr(commands, f"cmd_{name}", lambda args: pytest.fail(f"{argv} started computing"))
    argv = [command, *_POSITIONAL.get(command, []), f"{flag}={text}"]
    if command != "sweep":
        argv += ["--out", str(out)]
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2, (argv, err)
    assert err.count("\n") == 1 and err.startswith(f"linflow {command}: error: argument {flag}"), (argv, err)
    assert ("expected" in err or "invalid choice" in err) and "Traceback" not in err
    assert not out.exists()


def test_the_attack_covers_every_numeric_option():
    """The property above draws from every converted option of every command (a new option joins by itself)."""
    flags = {(c, f) for c, f, _, _ in OPTIONS}
    assert {("run", "--t1"), ("sgd", "--ks"), ("atlas", "--record"), ("sweep", "--workers"), ("saddles", "--alphas"),
            ("accuracy", "--solvers"), ("compare", "--eta-divisors"), ("run", "--init")} <= flags
    assert len(OPTIONS) >= 70


# ---- sweep files ----------------------------------------------------------------------------------------------------

GOOD_SWEEP = """task = "run"
store = "s"

[grid]
depth = [1, 2]
p = [2.0, 4.0]

[fixed]
m = 40
d = 3
t1 = 1.0
eta_divisors = [1, 2]
"""

WRONG = ['"x"', "-1", "0", "nan", "inf", "-inf", "1e999", "true", "[]", "[1, \"a\"]", "{a = 1}", "1.5", "2020-01-01",
         "\"\"", "[[1]]", "-0.0"]


class WouldRun(BaseException):
    """Raised where a sweep would start computing: the file was valid."""


@settings(max_examples=budget(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.data())
def test_a_sweep_file_cut_anywhere_or_mistyped_is_refused_in_one_line(case, tmp_path_factory, capsys, monkeypatch):
    from linflow.studies.sweeps import executors

    how = case.draw(st.sampled_from(["cut", "value", "bytes"]))
    if how == "cut":
        raw = GOOD_SWEEP.encode()[: case.draw(st.integers(0, len(GOOD_SWEEP) - 1))]
    elif how == "value":
        lines = GOOD_SWEEP.splitlines()
        i = case.draw(st.sampled_from([i for i, line in enumerate(lines) if " = " in line]))
        key = lines[i].split(" = ")[0]
        wrong = case.draw(st.sampled_from(WRONG))
        lines[i] = f"{key} = {wrong}" if not lines[i].endswith("]") or lines[i].startswith(("eta_", "task")) \
            else f"{key} = [{wrong}]"
        raw = "\n".join(lines).encode()
    else:
        raw = case.draw(st.binary(max_size=200))
    folder = tmp_path_factory.mktemp("sweep")
    config = folder / "config.toml"
    config.write_bytes(raw)
    store = folder / "store"
    monkeypatch.setattr(executors, "_sweep", lambda *a, **k: (_ for _ in ()).throw(WouldRun()))
    try:
        cli.main(["sweep", str(config), "--store", str(store)])
    except WouldRun:
        return  # a valid sweep (a cut after a whole line, a value of the right type): it would have run
    except SystemExit as exc:
        err = capsys.readouterr().err
        assert exc.code == 2, (raw, err)
        assert err.count("\n") == 1 and err.startswith("linflow sweep: error: ") and "Traceback" not in err, (raw, err)
    else:  # pragma: no cover - the patched sweep never returns
        pytest.fail("the sweep neither ran nor stopped")
    assert not store.exists() or not any(store.iterdir())


# ---- data files with a bad line -------------------------------------------------------------------------------------

def _dat_line(rng, cls=1) -> str:
    return f"{cls};{rng.uniform(1, 500):.4f} " + " ".join(f"{i}:{rng.normal():.6f}" for i in range(1, 129))


MUTATIONS = ["truncate", "character", "nan", "inf", "index0", "index129", "negative_index", "duplicate", "drop",
             "bytes", "class", "head"]


def _mutate(line: str, how: str, draw) -> bytes:
    items = line.split(" ")
    pick = draw(st.integers(1, len(items) - 1))
    if how == "truncate":
        return line[: draw(st.integers(1, len(line) - 2))].encode()
    if how == "character":
        pos = draw(st.integers(0, len(line) - 1))
        char = draw(st.sampled_from(list(":;,x#\t") + ["\x00"]))
        return (line[:pos] + char + line[pos + 1:]).encode()
    if how in ("nan", "inf"):
        key = items[pick].split(":")[0]
        items[pick] = f"{key}:{draw(st.sampled_from([how, '-' + how, how.upper()]))}"
    elif how == "index0":
        items[pick] = "0:" + items[pick].split(":")[1]
    elif how == "index129":
        items[pick] = "129:" + items[pick].split(":")[1]
    elif how == "negative_index":
        items[pick] = "-3:" + items[pick].split(":")[1]
    elif how == "duplicate":
        items[pick] = items[draw(st.integers(1, len(items) - 1).filter(lambda j: j != pick))].split(":")[0] + ":1.0"
    elif how == "drop":
        del items[pick]
    elif how == "bytes":
        return line[:10].encode() + b"\xff\xfe" + line[10:].encode()
    elif how == "class":
        items[0] = f"{draw(st.sampled_from(['0', '7', '-1', 'x', '1.5']))};{items[0].split(';')[1]}"
    elif how == "head":
        items[0] = items[0].split(";")[1] + ";" + draw(st.sampled_from(["nan", "inf", "", "x"]))
    return " ".join(items).encode()


@settings(max_examples=budget(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.data())
def test_a_data_file_with_a_bad_line_is_refused_naming_file_and_line(case, tmp_path_factory):
    from linflow import datasets

    rng = np.random.default_rng(case.draw(st.integers(0, 99)))
    lines = [_dat_line(rng) for _ in range(4)]
    bad = case.draw(st.integers(0, 3))
    how = case.draw(st.sampled_from(MUTATIONS))
    raw = [line.encode() for line in lines]
    raw[bad] = _mutate(lines[bad], how, case.draw)
    folder = tmp_path_factory.mktemp("gas")
    (folder / "batch1.dat").write_bytes(b"\n".join(raw) + b"\n")
    try:
        data = datasets.load_gas_sensor(folder)
    except ValueError as exc:
        message = str(exc)
        assert "\n" not in message and "batch1.dat, line " in message, message
        assert re.search(r"line (\d+)", message).group(1) == str(bad + 1), (how, message)
        return
    # a mutation that left a valid line (a character swapped inside a number, say): every value finite
    assert len(data) == 4 and np.isfinite(data.features).all() and np.isfinite(data.concentration).all(), how


def test_the_command_line_refuses_a_bad_data_line_in_one_line_before_computing(tmp_path, capsys):
    rng = np.random.default_rng(0)
    lines = [_dat_line(rng) for _ in range(20)]
    lines[7] = lines[7].replace(" 5:", " 5:nan x")
    (tmp_path / "batch1.dat").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        cli.main(["sgd", "--quick", "--data", str(tmp_path), "--out", str(out)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "batch1.dat, line 8" in err, err
    assert not out.exists() or not any(out.iterdir())


# ---- the API's scalar arguments --------------------------------------------------------------------------------------

BAD_SCALARS = [math.nan, math.inf, -math.inf, -1.0, 0.0, 1e309, -1e-300, None, "0.1", True, [0.1], np.nan,
               np.float64("inf"), complex(1, 1)]


def _calls():
    import jax

    import linflow
    from linflow import init

    prob = linflow.Problem(np.ones((4, 2)) + np.eye(4, 2), np.ones((4, 1)))
    layers = init.balanced((2, 2, 1), 0.5, seed=0)
    key = jax.random.PRNGKey(0)
    return {
        "gradient_flow(t1)": ("t1", lambda v: linflow.gradient_flow(prob, layers, v)),
        "end_to_end_flow(t1)": ("t1", lambda v: linflow.end_to_end_flow(prob, layers, None, v)),
        "modified_flow(eta)": ("eta", lambda v: linflow.modified_flow(prob, layers, v, 1.0)),
        "gradient_descent(eta)": ("eta", lambda v: linflow.gradient_descent(prob, layers, v, 3)),
        "end_to_end_descent(eta)": ("eta", lambda v: linflow.end_to_end_descent(prob, layers, None, v, 3)),
        "sgd(eta)": ("eta", lambda v: linflow.sgd(prob, layers, v, 3, batch=2, key=key)),
        "sme(eta)": ("eta", lambda v: linflow.sme(prob, layers, v, 1.0, batch=2, key=key)),
        "sme(t1)": ("t1", lambda v: linflow.sme(prob, layers, 0.1, v, batch=2, key=key)),
        "Problem(p)": ("p", lambda v: linflow.Problem(prob.X, prob.Y, p=v)),
        "Problem(weight_decay)": ("weight_decay", lambda v: linflow.Problem(prob.X, prob.Y, weight_decay=v)),
        "init.balanced(scale)": ("scale", lambda v: init.balanced((2, 2, 1), v, seed=0)),
    }


CALLS = _calls()
# values a parameter may take: weight decay 0, a balanced start of scale 0 (the origin, a valid if trivial start)
ALLOWED = {"Problem(weight_decay)": {0.0, -0.0}, "init.balanced(scale)": {0.0, -0.0}}


@settings(max_examples=budget(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(sorted(CALLS)), st.sampled_from(range(len(BAD_SCALARS))))
def test_the_apis_scalar_arguments_refuse_what_they_cannot_take_by_name(call, which, ):
    name, run = CALLS[call]
    value = BAD_SCALARS[which]
    if isinstance(value, float) and value in ALLOWED.get(call, ()):
        return
    with pytest.raises((ValueError, TypeError)) as exc:
        run(value)
    message = str(exc.value)
    assert name in message and "\n" not in message, (call, value, message)
