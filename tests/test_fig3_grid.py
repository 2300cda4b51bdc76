"""fig3's learning-rate grid (``linflow.paper.fig3.runs.descend_grid``): each piece runs only the etas still finite;
every eta's readings must be those of its own single GD run, and a diverged eta NaN from its divergence on."""

import numpy as np
import pytest

import linflow
from linflow.paper.fig3.runs import descend_grid


@pytest.mark.parametrize("depth", [1, 3])
def test_grid_equals_single_runs_and_drops_diverged_etas(depth):
    prob = linflow.problems.two_point(10.0, 1.0, p=4)
    layers0 = linflow.init.balanced((2,) + (2,) * (depth - 1) + (1,), 0.5)
    etas = [0.001, 0.004, 0.05, 0.2]  # the last two diverge within the first piece (200 single steps)
    steps = 2_000
    iters, loss, ok = descend_grid(prob, layers0, etas, steps)
    assert iters[0] == 0 and iters[-1] == steps and loss.shape == (len(etas), len(iters))
    assert ok.tolist() == [True, True, False, False]
    for i, eta in enumerate(etas):
        single = linflow.gradient_descent(prob, layers0, eta, steps, save_every=1)
        ref = np.asarray(single.loss)
        stop = int(single.stop) if single.status != "ok" else len(ref)
        want = np.where(iters < stop, ref[np.minimum(iters, len(ref) - 1).astype(int)], np.nan)
        np.testing.assert_allclose(loss[i], want, rtol=1e-12, atol=0)
        assert np.array_equal(np.isnan(loss[i]), np.isnan(want))
    assert np.isnan(loss[2:, -1]).all() and np.isfinite(loss[:2]).all()
