r"""Heavy-ball momentum and its continuous-time models (docs/math.md section 13).

The method, with step $\eta$ and momentum $\beta \in [0, 1)$, on the network loss $L^N$ (weight decay included)
in the layers $\theta$, iterate $k$ at flow time $t = k \eta$:

$$\theta_{k+1} = \theta_k - \eta \nabla L(\theta_k) + \beta (\theta_k - \theta_{k-1}) \tag{13.1}$$

(optax's ``sgd(eta, momentum=beta)`` and PyTorch's SGD with momentum start from rest, $\theta_{-1} = \theta_0$).
Its models, each a field of the one solve path:

* ``"leading"``: $\dot\theta = -\nabla L / (1 - \beta)$ (13.2), order 1 in $\eta$;
* ``"second_order"``: $\frac{\eta (1 + \beta)}{2} \ddot\theta + (1 - \beta) \dot\theta = -\nabla L$ (13.3)
  (Kovachki & Stuart 2021), a first-order system in $(\theta, v = \dot\theta)$, order 2 from a start on its slow
  manifold;
* ``"modified"``: that manifold's flow, $\dot\theta = -\nabla \tilde L / (1 - \beta)$ with
  $\tilde L = L + \frac{\eta (1 + \beta)}{4 (1 - \beta)^2} \lVert \nabla L \rVert^2$ (13.4), order 2.

A run from rest is not on the slow manifold: its velocity relaxes like $\beta^k$ and leaves a net displacement
$\eta \beta \nabla L(\theta_0) / (1 - \beta)^2$ (13.5) behind the manifold's flow; a flow started that far behind
(``start="initial_layer"``) follows it at order 2 again.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from . import checks as _checks, runs as _runs
from .descent import AbstractRule, descend
from .fields import AbstractField, LayerFlow, hessian_vector_product, layer_field, network_gradient, observe_layers
from .integrate import solve
from .problems import Problem
from .trajectory import Trajectory

__all__ = ["HeavyBallRule", "HeavyBallFlow", "heavy_ball", "heavy_ball_flow", "slow_velocity",
           "initial_layer_shift", "MODELS", "FLOW_STARTS", "DISCRETE_STARTS"]

#: the continuous models of heavy ball (:class:`HeavyBallFlow`)
MODELS = ("leading", "modified", "second_order")
#: where a model's flow starts: at theta_0, behind it by the initial layer's displacement (13.5), or (the
#: second-order model only) at theta_0 with zero velocity
FLOW_STARTS = ("plain", "initial_layer", "rest")
#: where a discrete run starts: from rest (theta_{-1} = theta_0, optax's zero momentum buffer) or on the slow
#: manifold (theta_0 - theta_{-1} = eta times the velocity (13.4))
DISCRETE_STARTS = ("rest", "manifold")


def _scaled(c, tree):
    return jax.tree_util.tree_map(lambda x: c * x, tree)


def slow_velocity(problem: Problem, layers, eta, beta):
    r"""The velocity of the slow manifold, docs/math.md (13.4):
    $v = -\frac{1}{1 - \beta}\left(g + \frac{\eta (1 + \beta)}{2 (1 - \beta)^2} H g\right)$ with $g = \nabla L$ and
    $H$ its Hessian (a Hessian-vector product; no Hessian formed)."""
    g = network_gradient(problem, layers)
    hg = hessian_vector_product(problem, layers, g)
    c = eta * (1.0 + beta) / (2.0 * (1.0 - beta) ** 2)
    return jax.tree_util.tree_map(lambda a, b: -(a + c * b) / (1.0 - beta), g, hg)


def initial_layer_shift(problem: Problem, layers, eta, beta):
    r"""Where the slow manifold's flow starts to follow a run from rest, docs/math.md (13.5):
    $\theta_0 + \frac{\eta \beta}{(1 - \beta)^2} \nabla L(\theta_0)$."""
    g = network_gradient(problem, layers)
    c = eta * beta / (1.0 - beta) ** 2
    return jax.tree_util.tree_map(lambda w, a: w + c * a, layers, g)


class HeavyBallFlow(AbstractField):
    r"""A continuous model of heavy ball with step ``eta`` and momentum ``beta`` (docs/math.md section 13):
    ``model`` one of :data:`MODELS`. The ``"second_order"`` state is ``(layers, velocity)``; the others' the layers.

    ``eta`` and ``beta`` are array leaves (traced under ``jax.vmap``/``jax.grad``: new values do not recompile).
    """

    problem: Problem
    eta: jax.Array
    beta: jax.Array
    model: str = eqx.field(static=True, default="modified")
    kind: ClassVar[str] = "heavy_ball_flow"
    discrete_kind: ClassVar[str] = "heavy_ball"

    def __call__(self, t, y, args=None):
        if self.model == "leading":  # (13.2)
            return _scaled(1.0 / (1.0 - self.beta), layer_field(self.problem, y))
        if self.model == "modified":  # (13.4)
            return slow_velocity(self.problem, y, self.eta, self.beta)
        layers, v = y  # (13.3): v' = (-g - (1 - beta) v) / (eta (1 + beta) / 2)
        rate = 2.0 / (self.eta * (1.0 + self.beta))
        g = network_gradient(self.problem, layers)
        return v, jax.tree_util.tree_map(lambda a, b: -rate * (a + (1.0 - self.beta) * b), g, v)

    @property
    def modelled_step(self):
        return self.eta

    def layers_of(self, y):
        """The layers of a state (or of saved states)."""
        return y[0] if self.model == "second_order" else y

    def depth_of(self, y) -> int:
        return len(self.layers_of(y))

    def observe(self, ys):
        return observe_layers(self.problem, self.layers_of(ys))

    def split(self, ys):
        """The second-order model's saves as layers and two extras: ``speed``, the velocity's norm, and
        ``off_manifold``, its distance from the slow manifold's velocity (13.4) (the initial layer decaying)."""
        if self.model != "second_order":
            return ys, {}
        layers, v = ys
        slow = jax.vmap(lambda w: slow_velocity(self.problem, w, self.eta, self.beta))(layers)
        norm = lambda tree: jnp.sqrt(sum(jnp.sum(x * x, axis=tuple(range(1, x.ndim))) for x in tree))  # noqa: E731
        return layers, {"speed": norm(v), "off_manifold": norm(jax.tree_util.tree_map(jnp.subtract, v, slow))}

    def start(self, layers0, start: str):
        """The state a flow starts from (:data:`FLOW_STARTS`)."""
        theta = initial_layer_shift(self.problem, layers0, self.eta, self.beta) if start == "initial_layer" else layers0
        if self.model != "second_order":
            return theta
        if start == "rest":
            return theta, jax.tree_util.tree_map(jnp.zeros_like, theta)
        return theta, slow_velocity(self.problem, theta, self.eta, self.beta)


class HeavyBallRule(AbstractRule):
    r"""One heavy-ball step (13.1) on the state $(\theta_k, m_k = \theta_k - \theta_{k-1})$:
    $m_{k+1} = \beta m_k - \eta \nabla L(\theta_k)$, $\theta_{k+1} = \theta_k + m_{k+1}$. ``start`` (:data:`DISCRETE_STARTS`)
    sets $m_0$: zero (from rest), or $\eta$ times the slow manifold's velocity (13.4)."""

    field: LayerFlow
    beta: jax.Array
    start: str = eqx.field(static=True, default="rest")

    def init(self, y0, eta):
        if self.start == "manifold":
            return y0, _scaled(eta, slow_velocity(self.field.problem, y0, eta, self.beta))
        return y0, jax.tree_util.tree_map(jnp.zeros_like, y0)

    def params(self, state):
        return state[0]

    def __call__(self, state, eta):
        theta, m = state
        m = jax.tree_util.tree_map(lambda a, f: self.beta * a + eta * f, m, self.field(None, theta, None))
        return jax.tree_util.tree_map(jnp.add, theta, m), m


def _momentum(beta):
    beta = _checks.real_scalar("beta", beta, minimum=0.0)
    if not _checks.is_traced(beta) and not beta < 1.0:
        raise ValueError(f"beta must be in [0, 1) (the momentum of heavy ball); got {beta}")
    return _checks.f64(beta)


def _choice(name: str, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def heavy_ball(problem: Problem, layers0, eta, beta, steps: int, *, save_every: int = 1,
               start: str = "rest") -> Trajectory:
    r"""Heavy ball on the layers, docs/math.md (13.1): ``theta_{k+1} = theta_k - eta grad L + beta (theta_k -
    theta_{k-1})``, iterate ``k`` saved at flow time ``t = k eta`` every ``save_every`` steps (and at the last).

    ``start="rest"``: ``theta_{-1} = theta_0`` (optax's ``sgd(eta, momentum=beta)``, PyTorch's SGD);
    ``"manifold"``: ``theta_0 - theta_{-1} = eta v(theta_0)`` with ``v`` the slow manifold's velocity (13.4).
    Works under ``jax.jit``, ``jax.vmap`` and ``jax.grad``.

    Examples:
        >>> import linflow
        >>> prob = linflow.problems.whitened([2.0, 1.0])
        >>> hb = linflow.heavy_ball(prob, linflow.init.balanced((2, 3, 2), 0.5), eta=0.05, beta=0.5, steps=100)
        >>> hb.kind, hb.status, float(hb.ts[-1])
        ('heavy_ball', 'ok', 5.0)
    """
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    rule = HeavyBallRule(LayerFlow(problem), _momentum(beta), _choice("start", start, DISCRETE_STARTS))
    return descend(rule, layers0, eta, steps, save_every=save_every, kind="heavy_ball")


def heavy_ball_flow(problem: Problem, layers0, eta, beta, t1, *, model: str = "modified", start: str = "plain",
                    **options) -> Trajectory:
    r"""A continuous model of heavy ball with step ``eta`` and momentum ``beta`` on ``[0, t1]`` (flow time
    ``t = k eta``), docs/math.md section 13.

    ``model``: ``"leading"`` (13.2, order 1), ``"modified"`` (13.4, order 2) or ``"second_order"`` (13.3, order 2 on
    its slow manifold; its Trajectory's ``extras`` hold ``speed`` and ``off_manifold``). ``start``: ``"plain"``
    (``theta_0``; the second-order model with the slow manifold's velocity) follows a run started on the manifold;
    ``"initial_layer"`` (``theta_0 + eta beta grad L / (1 - beta)^2``, 13.5) follows a run from rest at order 2;
    ``"rest"`` (second-order model only: ``theta_0`` at zero velocity) is the equation started as the method is.
    Solver options as :func:`linflow.gradient_flow` (the second-order model relaxes at rate
    ``2 (1 - beta) / (eta (1 + beta))``: stiff for small ``eta``, an implicit solver such as ``"kvaerno5"`` pays there).

    Examples:
        >>> import linflow
        >>> prob = linflow.problems.whitened([2.0, 1.0])
        >>> layers = linflow.init.balanced((2, 3, 2), 0.5)
        >>> flow = linflow.heavy_ball_flow(prob, layers, eta=0.05, beta=0.5, t1=5.0, start="initial_layer")
        >>> flow.kind, flow.status
        ('heavy_ball_flow', 'ok')
    """
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    eta = _checks.f64(_checks.positive("eta", eta))
    field = HeavyBallFlow(problem, eta, _momentum(beta), _choice("model", model, MODELS))
    if _choice("start", start, FLOW_STARTS) == "rest" and model != "second_order":
        raise ValueError(f"start='rest' (zero velocity) needs model='second_order'; model={model!r} has no velocity")
    if "time_unit" in options:
        raise TypeError("heavy_ball_flow runs in flow time (t = k * eta); time_unit is not an option here")
    return solve(field, field.start(layers0, start), t1, **options)
