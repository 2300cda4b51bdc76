"""ACHL19's measurements (linflow.paper.achl19): the verdict rule on constructed per-seed errors, the fate of a run,
the stopping floor on a fully observed matrix, and the implicit continuation against the explicit solve."""

import numpy as np
import pytest

from linflow.core.sensing import CompletionProblem
from linflow.paper import achl19
from linflow.paper.achl19 import BETTER, TRACK, fate_of, flow_run, grade_claims


def _grade(deep, shallow, nuclear, deep_fates=None, shallow_fates=None):
    deep, shallow, nuclear = (np.atleast_2d(np.asarray(x, float)) for x in (deep, shallow, nuclear))
    errors = {"depth2": shallow, "depth3": deep}
    fates = {"depth2": np.full(shallow.shape, "fitted", object) if shallow_fates is None else np.atleast_2d(shallow_fates),
             "depth3": np.full(deep.shape, "fitted", object) if deep_fates is None else np.atleast_2d(deep_fates)}
    return grade_claims(errors, fates, nuclear)


def test_both_claims_in_every_seed_agree_and_neither_differs():
    nuc = [0.3, 0.2, 0.25]
    g = _grade([1e-4, 1e-4, 1e-4], [0.31, 0.19, 0.26], nuc)
    assert (g["A"]["status"], g["B"]["status"], g["verdict"]) == ("holds", "holds", "agrees")
    g = _grade([0.3, 0.2, 0.25], [1e-3, 1e-3, 1e-3], nuc)  # depth 3 no better, depth 2 far below
    assert (g["A"]["status"], g["B"]["status"], g["verdict"]) == ("fails", "fails", "differs")
    assert g["A"]["failed"] == 3 and g["B"]["failed"] == 3


def test_an_escaped_seed_is_not_hidden_by_the_median():
    # two seeds far below the nuclear norm, one escaped with error 4.2: the median (1e-4) is below 0.8 x nuclear,
    # but the claim is judged per seed and the escaped run counts as failing it
    nuc = [0.35, 0.3, 0.32]
    deep = [1e-4, 4.2, 1e-4]
    assert np.median(deep) < BETTER * np.median(nuc)
    g = _grade(deep, [0.35, 0.3, 0.32], nuc, deep_fates=["fitted", "escaping", "fitted"])
    assert g["A"] == {"held": 2, "failed": 1, "undecided": 0, "status": "mixed"}
    assert g["verdict"] == "partly"


def test_a_run_still_fitting_leaves_its_comparison_undecided():
    nuc = [0.3, 0.3]
    g = _grade([1e-4, 0.5], [0.01, 0.01], nuc, deep_fates=["still fitting", "still fitting"])
    assert g["A"]["undecided"] == 2 and g["A"]["status"] == "undecided"
    assert g["B"]["status"] == "fails"
    assert g["verdict"].startswith("inconclusive")


def test_claim_b_counts_only_where_the_nuclear_norm_does_not_recover():
    # two counts: at the second the nuclear norm recovers (error 1e-8), where depth 2's ratio is meaningless
    nuc = np.array([[0.3, 0.3], [1e-8, 1e-8]])
    shallow = np.array([[0.3 * TRACK * 0.99, 0.3 / TRACK * 1.01], [1e-4, 1e-4]])
    deep = np.array([[1e-4, 1e-4], [1e-5, 1e-5]])
    g = grade_claims({"depth2": shallow, "depth3": deep},
                     {k: np.full((2, 2), "fitted", object) for k in ("depth2", "depth3")}, nuc)
    assert g["B"] == {"held": 2, "failed": 0, "undecided": 0, "status": "holds"} and g["verdict"] == "agrees"


def test_fate_rule_on_constructed_ends():
    assert fate_of(True, 10.0, 1.0, 0.0) == "fitted"
    assert fate_of(False, achl19.ESCAPE * 1.01, 1e-4, -1e-5) == "escaping"  # the norm grows, the loss stalls
    assert fate_of(False, achl19.ESCAPE * 1.01, 1e-4, 0.0) == "escaping"
    assert fate_of(False, achl19.ESCAPE * 1.01, -1e-4, -1e-5) == "still fitting"  # large but shrinking
    assert fate_of(False, 1.0, 1e-4, -1e-5) == "still fitting"  # growing toward the target
    # large and growing, but its loss falls faster than its norm grows (the published depth-4 run at 1,500 entries,
    # seed 0: sigma_1 9.5 x, d ln sigma_1/dt = 0.0023, d ln L/dt = -0.78): on its way to a fit, not escaping
    assert fate_of(False, 9.5, 0.0023, -0.78) == "still fitting"


@pytest.fixture(scope="module")
def full_view():
    """A rank-2 8 x 8 target with every entry observed: the flow's limit is the target itself."""
    W_star = achl19.target(8, 2, 0)
    rows, cols = np.divmod(np.arange(64), 8)
    return CompletionProblem(rows, cols, W_star[rows, cols], (8, 8), target=W_star)


def test_fully_observed_fit_is_at_the_stopping_floor(full_view):
    # every entry observed: L = (1/2) ||W - W*||_F^2 (kd/m = 1) and L(0) ~ (1/2) ||W*||_F^2, so at the stop the
    # relative error is sqrt(L / L(0)) = sqrt(FIT) to within the start's size: the stop sets it
    run = flow_run(full_view, 3, 0)
    assert run["fate"] == "fitted" and run["at_floor"] is True
    assert run["error"] == pytest.approx(np.sqrt(achl19.FIT), rel=1e-3)
    assert run["loss_rate"] < 0 and abs(run["sigma_ratio"] - 1) < 1e-4


@pytest.mark.slow  # a solve of seconds: the full command only (the fast tier's 3 minutes)
def test_the_implicit_continuation_reaches_the_explicit_solves_limit():
    # 16 x 16 rank 2 from 90 entries, the authors' Gaussian start at 1e-2: the explicit solve alone (about 7,000
    # Tsit5 steps) against 300 Tsit5 steps then Kvaerno5 (GMRES stages): the same fitted matrix to the tolerance
    prob = achl19.instance(16, 2, 90, 1)
    explicit = flow_run(prob, 3, 1, ("gaussian", 1e-2), budget=(200_000, 0))
    hybrid = flow_run(prob, 3, 1, ("gaussian", 1e-2), budget=(300, 2_000))
    assert explicit["fate"] == hybrid["fate"] == "fitted"
    assert explicit["implicit_steps"] == 0 < hybrid["implicit_steps"]
    assert np.abs(hybrid["W"] - explicit["W"]).max() <= 1e-5 * np.abs(explicit["W"]).max()
    assert hybrid["error"] == pytest.approx(explicit["error"], rel=1e-5)


@pytest.mark.slow
def test_a_run_on_a_saddle_above_the_target_is_not_called_escaping():
    # 16 x 16 rank 2 from 90 entries, depth 3 from 1e-6: after the first mode is learned the run sits on a plateau
    # with sigma_1 = 2.3 x the target's, its loss stalled at 12% of the start (measured), then fits (error 1e-4)
    prob = achl19.instance(16, 2, 90, 1)
    plateau = flow_run(prob, 3, 1, budget=(1_000, 0))
    assert 2.0 < plateau["sigma_ratio"] < achl19.ESCAPE and plateau["loss_ratio"] > 0.1
    assert plateau["fate"] == "still fitting"
    assert flow_run(prob, 3, 1)["fate"] == "fitted"


@pytest.mark.slow  # a solve of seconds: the full command only (the fast tier's 3 minutes)
def test_an_escaping_run_stops_after_the_piece_where_it_escapes():
    # 16 x 16 rank 2 from 70 entries, depth 4 from 1e-6, seed 0: after the first piece of CHUNK Tsit5 steps sigma_1
    # is 9.5 x the target's and growing (measured): the run stops there instead of spending the rest of its budget
    prob = achl19.instance(16, 2, 70, 0)
    run = flow_run(prob, 4, 0, budget=(4 * achl19.CHUNK, 0))
    assert run["fate"] == "escaping" and run["steps"] == achl19.CHUNK
    assert run["sigma_ratio"] > achl19.ESCAPE and run["sigma_rate"] > 0
    # a matrix ESCAPE x the target in norm is far from it: ||W - W*|| >= sigma_1(W) - sigma_1(W*)
    W_star = np.asarray(prob.target_matrix)
    assert run["error"] >= (run["sigma_ratio"] - 1) * np.linalg.norm(W_star, 2) / np.linalg.norm(W_star)
