"""Every headline number the README states about the full runs is pinned to the committed outputs of those runs
(docs/results/NAME.json, written by `linflow reproduce NAME --data ...`): the README's text must contain each number
as the committed summary gives it, rounded to the digits the README prints (its tolerance: half a unit in the last
printed digit; rerunning the same command on the same data reproduces the summaries, which are deterministic on
the CPU). A README edit that drifts from the measured numbers, or a rerun whose numbers change without the README,
fails here."""

import json
import re
from pathlib import Path

import pytest

from conftest import strict_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"


def readme() -> str:
    return re.sub(r"\s+", " ", (ROOT / "README.md").read_text())


def summary(name: str) -> dict:
    return strict_json(RESULTS / f"{name}.json")


def _init(s):
    return [f"l2 near-zero {s['l2_near_zero']['iterations_to_half_gap']} iterations, identity "
            f"{s['l2_identity']['iterations_to_half_gap']}",
            f"l4 near-zero {s['l4_near_zero']['iterations_to_half_gap']}, identity "
            f"{s['l4_identity']['iterations_to_half_gap']}",
            f"gaps {s['l2_near_zero']['final_gap_to_min']:.3g} against {s['l2_identity']['final_gap_to_min']:.3g} for l2, "
            f"{s['l4_near_zero']['final_gap_to_min']:.3g} against {s['l4_identity']['final_gap_to_min']:.3g} for l4",
            f"**{s['verdict']}** at both losses"]


HEADLINES = {"init": _init}


@pytest.mark.parametrize("name", list(HEADLINES))
def test_readme_states_the_committed_full_run(name):
    s = summary(name)
    assert s["quick"] is False and "SYNTHETIC" not in json.dumps(s["data"]), f"{name}.json is not a full run on the data"
    text = readme()
    for phrase in HEADLINES[name](s):
        assert phrase in text, f"README should say {phrase!r} ({name}.json)"


def test_every_committed_result_parses_and_is_pinned():
    names = {p.stem for p in RESULTS.glob("*.json")}
    assert names == set(HEADLINES), f"committed results without headline checks: {names - set(HEADLINES)}"
    for name in names:
        strict_json(RESULTS / f"{name}.json")  # no NaN or Infinity
