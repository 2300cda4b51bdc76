"""linflow.core.stage_sums: the term-by-term stage sum against NumPy's product, and diffrax's own product back after
a solve."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings, strategies as st

from linflow.core.stage_sums import stage_sum, stage_sums_in_place

from conftest import budget


@settings(max_examples=budget(3), deadline=None)
@given(stages=st.integers(1, 16), shape=st.lists(st.integers(1, 5), min_size=0, max_size=3), seed=st.integers(0, 999))
def test_stage_sum_is_the_product_over_the_stages(stages, shape, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(stages)
    leaves = {"k": rng.standard_normal((stages, *shape)), "f": rng.standard_normal((stages, 3))}
    got = stage_sum(jnp.asarray(a), jax.tree_util.tree_map(jnp.asarray, leaves))
    for name, b in leaves.items():
        want = np.tensordot(a, b, axes=1)
        np.testing.assert_allclose(np.asarray(got[name]), want, rtol=1e-13, atol=1e-13 * np.abs(b).sum())


def test_diffraxs_product_is_back_after_a_solve_and_a_failed_one():
    from diffrax._solver import runge_kutta

    own = runge_kutta.vector_tree_dot
    with stage_sums_in_place():
        assert runge_kutta.vector_tree_dot is stage_sum
        with stage_sums_in_place():  # nested (threads tracing at once): still the sum, restored once at the end
            assert runge_kutta.vector_tree_dot is stage_sum
        assert runge_kutta.vector_tree_dot is stage_sum
    assert runge_kutta.vector_tree_dot is own
    try:
        with stage_sums_in_place():
            raise RuntimeError("a solve that fails while traced")
    except RuntimeError:
        pass
    assert runge_kutta.vector_tree_dot is own


def test_a_tsit5_solve_with_the_sum_is_the_exact_exponential():
    # y' = A y with A = [[-1, 2], [-2, -1]]: y(t) = e^{-t} R(2t) y0 (rotation), to Tsit5's tolerance
    A = jnp.array([[-1.0, 2.0], [-2.0, -1.0]])
    y0 = jnp.array([1.0, 0.5])

    def solve(y0):
        with stage_sums_in_place():
            sol = diffrax.diffeqsolve(diffrax.ODETerm(lambda t, y, a: A @ y), diffrax.Tsit5(), 0.0, 3.0, None, y0,
                                      stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-12))
        return sol.ys[-1]

    c, s = np.cos(6.0), np.sin(6.0)
    exact = np.exp(-3.0) * np.array([[c, s], [-s, c]]) @ np.asarray(y0)
    np.testing.assert_allclose(np.asarray(jax.jit(solve)(y0)), exact, rtol=1e-8)
    np.testing.assert_allclose(np.asarray(jax.jit(jax.vmap(solve))(jnp.stack([y0, 2 * y0]))[1]), 2 * exact, rtol=1e-8)
