r"""Vector fields of the continuous dynamics (docs/math.md sections 1-3).

* Layers (docs/math.md (2.1)): $\dot W_j = -\lambda W_j - \partial L^N / \partial W_j$ with
  $\partial L^N / \partial W_j = (W_N \cdots W_{j+1})^\top \nabla L^1(W_e) (W_{j-1} \cdots W_1)^\top$ (1.2).
* End-to-end (ACH18 Theorem 1, (2.2)):
  $\dot W_e = -\lambda N W_e - \sum_j [W_e W_e^\top]^{(j-1)/N} \nabla L^1(W_e) [W_e^\top W_e]^{(N-j)/N}$.
* Single output (ACH18 Claim 2, $k = 1$, (3.2)):
  $\dot W_e = -\lambda N W_e - \lVert W_e \rVert^{2-2/N} (g + (N-1) \Pr_{W_e}(g))$.

Gradient descent and the end-to-end update (Eq. 10) are the forward Euler steps of these fields
with step ``eta``. Each field is a pure function ``field(problem, state, depth)`` and, for the solvers,
an ``equinox.Module`` with diffrax's signature ``field(t, y, args)``: :class:`LayerFlow`,
:class:`EndToEndFlow`, :class:`ModifiedFlow`. A module also knows what a run of it records
(``observe``: ``W_e``, the loss ``L1(W_e)``, the imbalance) and its name (``kind``).
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from .init import end_to_end, imbalance
from .checks import is_traced
from .linalg import apply_preconditioner, matrix_root, numerical_rank, root_power, root_preconditioned
from .problems import Problem

__all__ = [
    "AbstractField",
    "AbstractLayerField",
    "LayerFlow",
    "EndToEndFlow",
    "ModifiedFlow",
    "network_gradient",
    "hessian_vector_product",
    "modified_field_1",
    "modified_field_2",
    "layer_gradients",
    "layer_field",
    "end_to_end_field",
    "claim2_field",
    "network_loss",
    "END_TO_END_FORMS",
    "END_TO_END_STATES",
    "root_field",
]


def layer_gradients(problem: Problem, layers) -> tuple[jax.Array, ...]:
    """``G_j = dL^N/dW_j = (W_N ... W_{j+1})^T g (W_{j-1} ... W_1)^T`` with ``g = dL1/dW(W_e)`` (no decay).

    The products are chained from the narrow side: with fewer outputs than inputs (``k < d``) the
    partial products are ``k``-row matrices (``O(k * parameters)`` per evaluation, no hidden-by-hidden
    matrix products), otherwise ``d``-column ones. Same value either way, up to rounding.
    """
    if layers[-1].shape[0] < layers[0].shape[1]:
        return _gradients_from_output(problem, layers)
    prefix = [None]  # prefix[j] = W_j ... W_1
    for w in layers[:-1]:
        prefix.append(w if prefix[-1] is None else w @ prefix[-1])
    w_e = layers[-1] if prefix[-1] is None else layers[-1] @ prefix[-1]
    back = problem.grad(w_e)  # (W_N ... W_{j+1})^T g, starting at j = N
    grads = [None] * len(layers)
    for j in reversed(range(len(layers))):
        grads[j] = back if prefix[j] is None else back @ prefix[j].T
        if j:
            back = layers[j].T @ back
    return tuple(grads)


def _gradients_from_output(problem: Problem, layers) -> tuple[jax.Array, ...]:
    """:func:`layer_gradients` with ``k``-row partial products: ``suffix[j] = W_N ... W_{j+1}`` (k x n_j) and
    ``g (W_{j-1} ... W_1)^T`` (k x n_{j-1}), so ``G_j = suffix[j]^T (g (W_{j-1} ... W_1)^T)``."""
    suffix, acc = [None] * len(layers), None
    for j in reversed(range(len(layers))):
        suffix[j] = acc
        acc = layers[j] if acc is None else acc @ layers[j]
    forward = problem.grad(acc)  # acc = W_e; forward = g (W_{j-1} ... W_1)^T, starting at j = 1
    grads = []
    for j, w in enumerate(layers):
        grads.append(forward if suffix[j] is None else suffix[j].T @ forward)
        forward = forward @ w.T
    return tuple(grads)


def layer_field(problem: Problem, layers, depth: int | None = None) -> tuple[jax.Array, ...]:
    r"""Gradient flow of the layers, docs/math.md (2.1): $\dot W_j = -\lambda W_j - \partial L^N / \partial W_j$
    (``depth`` is ``len(layers)``).

    Examples:
        >>> from linflow import problems, init
        >>> prob = problems.whitened([1.0])
        >>> [f.shape for f in layer_field(prob, init.identity((1, 2, 1)))]
        [(2, 1), (1, 2)]
    """
    lam = problem.weight_decay
    return tuple(-lam * w - g for w, g in zip(layers, layer_gradients(problem, layers)))


def end_to_end_field(problem: Problem, W: jax.Array, depth: int, rank: int | None = None) -> jax.Array:
    r"""ACH18 Theorem 1, docs/math.md (2.2):
    $-\lambda N W - \sum_{j=1}^N [W W^\top]^{(j-1)/N} g\, [W^\top W]^{(N-j)/N}$ with $g = \nabla L^1(W)$.

    Examples:
        >>> import numpy as np
        >>> from linflow import problems
        >>> prob = problems.whitened([2.0])  # scalar target +-2: the field at W = 1 is N |W|^(2-2/N) (Phi - W)
        >>> bool(np.isclose(end_to_end_field(prob, np.array([[1.0]]), 2)[0, 0], 2 * (float(prob.yx[0, 0]) - 1.0)))
        True

    ``rank``: the rank of the flow's start, which the flow keeps for ``N >= 2``
    (:func:`linflow.linalg.apply_preconditioner`).
    """
    return -problem.weight_decay * depth * W - apply_preconditioner(W, problem.grad(W), depth, rank)


def claim2_field(problem: Problem, W: jax.Array, depth: int) -> jax.Array:
    r"""ACH18 Claim 2 ($k = 1$), docs/math.md (3.2):
    $-\lambda N W - \lVert W \rVert^{2-2/N} \left(g + (N-1) \langle g, W \rangle W / \lVert W \rVert^2\right)$; $O(d)$,
    no eigh.

    $\Pr_W(g) = 0$ at $W = 0$ and $\lVert W \rVert^0 = 1$ (depth 1).

    Examples:
        >>> import numpy as np
        >>> from linflow import problems
        >>> prob = problems.whitened([2.0], d=2, k=1)
        >>> W = np.array([[0.3, -0.2]])
        >>> bool(np.allclose(claim2_field(prob, W, 3), end_to_end_field(prob, W, 3)))
        True
    """
    if W.shape[0] != 1:
        raise ValueError(f"the Claim 2 form needs a single output (k = 1); W has shape {W.shape}")
    N = depth
    g = problem.grad(W)
    if N == 1:
        return -problem.weight_decay * W - g
    n2 = jnp.sum(W * W)
    nonzero = n2 > 0
    safe = jnp.where(nonzero, n2, 1.0)
    norm_pow = jnp.where(nonzero, safe ** (1.0 - 1.0 / N), 0.0)  # ||W||^(2 - 2/N)
    coef = jnp.where(nonzero, jnp.sum(g * W) / safe, 0.0)  # Pr_W(g) = coef * W
    return -problem.weight_decay * N * W - norm_pow * (g + (N - 1) * coef * W)


END_TO_END_FORMS = {"general": end_to_end_field, "claim2": claim2_field}


def network_loss(problem: Problem, layers) -> jax.Array:
    r"""$L^N = L^1(W_N \cdots W_1) + \frac{\lambda}{2} \sum_j \lVert W_j \rVert_F^2$ (the objective of the layer flow,
    docs/math.md section 1)."""
    decay = sum(jnp.sum(w * w) for w in layers)
    return problem.loss(end_to_end(layers)) + 0.5 * problem.weight_decay * decay


def network_gradient(problem: Problem, layers):
    """``grad L^N`` in the layers, weight decay included: minus the layer field."""
    return jax.tree_util.tree_map(jnp.negative, layer_field(problem, layers))


def hessian_vector_product(problem: Problem, layers, v):
    """``H v`` with ``H`` the Hessian of ``L^N`` in the layers (``jax.jvp`` of the gradient; no Hessian formed)."""
    return jax.jvp(lambda ls: network_gradient(problem, ls), (layers,), (v,))[1]


def _combine(*terms):
    """``sum_i c_i v_i`` over pytrees, for ``terms = ((c_1, v_1), ...)``."""
    return jax.tree_util.tree_map(lambda *leaves: sum(c * x for (c, _), x in zip(terms, leaves)),
                                  *(v for _, v in terms))


def modified_field_1(args, layers, depth: int | None = None):
    r"""First-order modified flow of GD with step $\eta$, docs/math.md (5.1): $-(g + \frac{\eta}{2} H g)$;
    ``args = (problem, eta)``.

    The flow of $L + \frac{\eta}{4} \lVert g \rVert^2$ (Barrett & Dherin 2021); GD stays $O(\eta^2)$ from it.
    """
    problem, eta = args
    g = network_gradient(problem, layers)
    hg = hessian_vector_product(problem, layers, g)
    return _combine((-1.0, g), (-0.5 * eta, hg))


def modified_field_2(args, layers, depth: int | None = None):
    r"""Second-order modified flow, docs/math.md (5.2):
    $-\left(g + \frac{\eta}{2} H g + \eta^2 \left(\frac13 H^2 g + \frac{1}{12} D^3 L[g, g]\right)\right)$.

    $D^3 L[g, g]$ is the derivative of $\theta \mapsto H(\theta) g$ along $g$ (nested ``jvp``); GD stays
    $O(\eta^3)$ from this flow (Hairer, Lubich & Wanner ch. IX).
    """
    problem, eta = args
    g = network_gradient(problem, layers)
    hg = hessian_vector_product(problem, layers, g)
    h2g = hessian_vector_product(problem, layers, hg)
    d3 = jax.jvp(lambda ls: hessian_vector_product(problem, ls, g), (layers,), (g,))[1]
    return _combine((-1.0, g), (-0.5 * eta, hg), (-(eta**2) / 3.0, h2g), (-(eta**2) / 12.0, d3))


MODIFIED_FIELDS = {1: modified_field_1, 2: modified_field_2}


def observe_layers(problem: Problem, ys):
    """``(W_e, loss, imbalance)`` for a batch of saved layer tuples (leading axis: saves)."""
    w_e = end_to_end(ys)
    return w_e, jax.vmap(problem.loss)(w_e), imbalance(ys)


class AbstractField(eqx.Module):
    r"""What the solve path (:func:`linflow.core.settings.flat_solve`) and the discrete engine (:mod:`linflow.core.descent`)
    ask of a vector field $\dot y = f(t, y)$: diffrax's signature ``__call__(t, y, args)``, the depth of a state,
    what a run of it records (``observe``: ``(W_e, loss, imbalance or None)`` of saved states, leading axis the saves)
    and its names (``kind`` for the flow, ``discrete_kind`` for its forward Euler steps). ``explicit_only`` says why
    an implicit solver cannot run it (``None``: any solver can)."""

    kind: ClassVar[str]
    discrete_kind: ClassVar[str] = "discrete"

    @abc.abstractmethod
    def __call__(self, t, y, args=None):
        """The field $f(t, y)$ (a pytree like ``y``)."""

    @abc.abstractmethod
    def depth_of(self, y) -> int:
        """The network's depth $N$ at state ``y``."""

    @abc.abstractmethod
    def observe(self, ys):
        """``(W_e, loss, imbalance or None)`` of saved states ``ys`` (leading axis: saves)."""

    @property
    def explicit_only(self) -> str | None:
        """Why an implicit solver cannot run this field, or ``None``."""
        return None

    @property
    def modelled_step(self):
        """The step ``eta`` of the discrete method this flow models at finite step (a modified or central flow: its
        Trajectory carries it), or ``None`` for a flow of its own."""
        return None

    def split(self, ys):
        """What a Trajectory keeps of saved states ``ys``: ``(the layers, or the state when it is not a layer tuple;
        extras by name, per save)``. Default: the states themselves and no extras."""
        return ys, {}


class AbstractLayerField(AbstractField):
    """A field whose state is the layer tuple itself (the gradient flow, GD's modified and central flows, Adam's
    fixed-beta models): its depth is the tuple's length and a run records ``(W_e, loss, imbalance)`` of it."""

    problem: eqx.AbstractVar[Problem]

    def depth_of(self, y) -> int:
        return len(y)

    def observe(self, ys):
        """``(W_e, loss, imbalance)`` of saved states (leading axis: saves)."""
        return observe_layers(self.problem, ys)


class LayerFlow(AbstractLayerField):
    """Gradient flow of every layer, ``dW_j/dt = -lambda W_j - dL^N/dW_j``; state: the layers.

    Examples:
        >>> import diffrax, linflow
        >>> prob = linflow.problems.whitened([1.0])
        >>> field = linflow.LayerFlow(prob)
        >>> [f.shape for f in field(0.0, linflow.init.identity((1, 2, 1)), None)]
        [(2, 1), (1, 2)]
    """

    problem: Problem
    kind: ClassVar[str] = "gradient_flow"
    discrete_kind: ClassVar[str] = "gradient_descent"

    def __call__(self, t, y, args=None):
        return layer_field(self.problem, y)


def root_field(problem: Problem, Theta: jax.Array, depth: int) -> jax.Array:
    """Theorem 1 on the root state ``Theta`` (``W_e = U diag(theta^N) V^T`` for ``Theta = U diag(theta) V^T``):
    ``dTheta/dt = -lambda Theta - root_preconditioned(Theta, dL1/dW(W_e))`` (:func:`linflow.linalg.root_preconditioned`),
    whose ``W_e`` moves exactly as :func:`end_to_end_field` says."""
    return -problem.weight_decay * Theta - root_preconditioned(Theta, problem.grad(root_power(Theta, depth)), depth)


END_TO_END_STATES = ("dense", "root")


class EndToEndFlow(AbstractField):
    """End-to-end flow of ACH18 Theorem 1 (``form='general'``) or Claim 2 (``'claim2'``, ``k = 1``).

    ``form='auto'`` picks Claim 2's O(d) form when the problem has one output. ``state='dense'`` integrates ``W_e``
    itself; ``state='root'`` integrates ``Theta = U diag(s^(1/N)) V^T`` (:func:`root_field`, the general form), whose
    weak modes keep the relative accuracy of the layers'. From a small start the dense state fails: its entries sit
    below the solver's absolute tolerance, and a weak mode beside a strong one at the strong one's rounding level
    (docs/math.md section 10); from ``alpha = 1e-10`` its escape times are off by up to 3e-4 (measured, N = 2),
    the root state's by 1e-9. ``observe`` gives ``W_e`` in both. The root state's derivative goes through an SVD:
    explicit solvers only.

    ``rank`` (dense state): the rank of the start, which the flow keeps for ``N >= 2``; singular values of the state
    beyond it are rounding and are not preconditioned (:func:`linflow.linalg.apply_preconditioner`).
    :meth:`for_start` sets it from a concrete start.
    """

    problem: Problem
    depth: int = eqx.field(static=True)
    form: str = eqx.field(static=True)
    state: str = eqx.field(static=True)
    rank: int | None = eqx.field(static=True)
    kind: ClassVar[str] = "end_to_end_flow"
    discrete_kind: ClassVar[str] = "end_to_end_descent"

    def __init__(self, problem: Problem, depth: int, form: str = "auto", state: str = "dense", rank: int | None = None):
        if state not in END_TO_END_STATES:
            raise ValueError(f"state must be one of {', '.join(map(repr, END_TO_END_STATES))}; got {state!r}")
        if form == "auto":
            form = "claim2" if problem.k == 1 and state == "dense" else "general"
        if form not in END_TO_END_FORMS:
            raise ValueError(f"form must be one of 'auto', {', '.join(map(repr, END_TO_END_FORMS))}; got {form!r}")
        if form == "claim2" and problem.k != 1:
            raise ValueError(f"form='claim2' needs k = 1 output, the problem has k = {problem.k}")
        if form == "claim2" and state == "root":
            raise ValueError("state='root' integrates the general form (Theorem 1); Claim 2's form keeps W_e dense")
        self.problem, self.depth, self.form, self.state, self.rank = problem, depth, form, state, rank

    def for_start(self, W_e0) -> "EndToEndFlow":
        """This flow with ``rank`` set to the numerical rank of a concrete start ``W_e0`` when that is below
        ``min(k, d)`` (dense state, general form, ``N >= 2``: the flow keeps it); itself otherwise."""
        if self.state != "dense" or self.form != "general" or self.depth < 2 or is_traced(W_e0):
            return self
        rank = numerical_rank(W_e0)
        if rank >= min(self.problem.k, self.problem.d):
            return self
        return EndToEndFlow(self.problem, self.depth, self.form, self.state, rank)

    def __call__(self, t, y, args=None):
        if self.state == "root":
            return root_field(self.problem, y, self.depth)
        if self.form == "claim2":  # a row: its rank is 0 or 1, there is nothing to keep
            return claim2_field(self.problem, y, self.depth)
        return end_to_end_field(self.problem, y, self.depth, self.rank)

    def depth_of(self, y) -> int:
        return self.depth

    @property
    def explicit_only(self) -> str | None:
        """Why an implicit solver cannot run this field (:func:`linflow.core.settings.flat_solve` checks), or None."""
        if self.state == "root":
            return "state='root' (its derivative goes through an SVD with repeated singular values)"
        return None

    def start(self, W_e0):
        """The state of ``W_e0``: itself (dense) or its root (:func:`linflow.linalg.matrix_root`)."""
        return W_e0 if self.state == "dense" else matrix_root(W_e0, self.depth)

    def observe(self, ys):
        """``(W_e, loss, None)`` (a balanced network has no imbalance)."""
        w_e = ys if self.state == "dense" else jax.vmap(lambda y: root_power(y, self.depth))(ys)
        return w_e, jax.vmap(self.problem.loss)(w_e), None


class ModifiedFlow(AbstractLayerField):
    """Modified flow of GD with step ``eta`` on the layers, order 1 or 2 (:func:`modified_field_1`, ``_2``).

    ``eta`` is an array leaf: it may be traced (``jax.vmap`` over learning rates, ``jax.grad``).
    """

    problem: Problem
    eta: jax.Array
    order: int = eqx.field(static=True, default=1)
    kind: ClassVar[str] = "modified_flow"
    discrete_kind: ClassVar[str] = "gradient_descent"

    def __call__(self, t, y, args=None):
        return MODIFIED_FIELDS[self.order]((self.problem, self.eta), y)

    @property
    def modelled_step(self):
        return self.eta
