r"""Momentum methods (heavy ball, Nesterov) and their continuous-time models (docs/math.md section 13).

The methods, with step $\eta$ and momentum $\beta \in [0, 1)$, on the network loss $L^N$ (weight decay included)
in the layers $\theta$, iterate $k$ at flow time $t = k \eta$:

* heavy ball: $\theta_{k+1} = \theta_k - \eta \nabla L(\theta_k) + \beta (\theta_k - \theta_{k-1})$ (13.1);
* Nesterov, in the form optax and PyTorch run (the iterate is the look-ahead point):
  $b_{k+1} = \beta b_k - \eta \nabla L(\theta_k)$, $\theta_{k+1} = \theta_k - \eta \nabla L(\theta_k) + \beta b_{k+1}$
  (13.6), i.e. heavy ball with the gradient correction $-\eta \beta (\nabla L(\theta_k) - \nabla L(\theta_{k-1}))$.

Both start from rest in optax and PyTorch (a zero buffer). Their models, each a field of the one solve path:

* ``"leading"``: $\dot\theta = -\nabla L / (1 - \beta)$ (13.2), order 1 in $\eta$, the same for both;
* ``"second_order"``: $\frac{\eta (1 + \beta)}{2} \ddot\theta + (1 - \beta) \dot\theta
  [+ \eta \beta H \dot\theta]_{\text{Nesterov}} = -\nabla L$ (13.3, 13.7), a first-order system in
  $(\theta, v = \dot\theta)$, order 2 from a start on its slow manifold;
* ``"modified"``: that manifold's flow, $\dot\theta = -(g + \eta c H g) / (1 - \beta)$ with
  $c = \frac{1 + \beta}{2 (1 - \beta)^2}$ for heavy ball (13.4) and $c = \frac{1 - \beta + 2 \beta^2}{2 (1 - \beta)^2}$
  for Nesterov (13.8), order 2.

A run from rest is not on the slow manifold: its velocity relaxes like $\beta^k$ and leaves a net displacement
$\eta s \nabla L(\theta_0)$ behind the manifold's flow, $s = \beta / (1 - \beta)^2$ for heavy ball (13.5) and
$\beta^2 / (1 - \beta)^2$ for Nesterov (13.9); a flow started that far behind (``start="initial_layer"``) follows it at
order 2 again.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp

from . import checks as _checks, runs as _runs
from .catalog import MOMENTUM_METHODS
from .descent import AbstractRule, descend
from .fields import AbstractField, LayerFlow, hessian_vector_product, layer_field, network_gradient, observe_layers
from .integrate import solve
from .problems import Problem
from .trajectory import Trajectory

__all__ = ["MomentumRule", "MomentumFlow", "heavy_ball", "heavy_ball_flow", "nesterov", "nesterov_flow",
           "slow_velocity", "initial_layer_shift", "correction", "checked_momentum", "checked_method",
           "initial_layer_steps", "LAYER_DECAY", "METHODS", "MODELS", "FLOW_STARTS", "DISCRETE_STARTS"]

#: the momentum methods
METHODS = MOMENTUM_METHODS
#: their continuous models (:class:`MomentumFlow`)
MODELS = ("leading", "modified", "second_order")
#: where a model's flow starts: at theta_0, behind it by the initial layer's displacement (13.5, 13.9), or (the
#: second-order model only) at theta_0 with zero velocity
FLOW_STARTS = ("plain", "initial_layer", "rest")
#: where a discrete run starts: from rest (a zero buffer, as optax and PyTorch) or on the slow manifold (its buffer
#: set to eta times the manifold's velocity (13.4, 13.8))
DISCRETE_STARTS = ("rest", "manifold")


#: the initial layer is over once beta^k is below this (docs/math.md section 13)
LAYER_DECAY = 1e-3


def initial_layer_steps(beta: float) -> int:
    """The steps after which ``beta^k <= LAYER_DECAY``: the initial layer's length (0 for ``beta = 0``)."""
    return math.ceil(math.log(LAYER_DECAY) / math.log(beta)) if beta > 0 else 0


def _scaled(c, tree):
    return jax.tree_util.tree_map(lambda x: c * x, tree)


def checked_method(method: str) -> str:
    """``method`` when it is one of :data:`METHODS`, else a ValueError naming them."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}")
    return method


def correction(beta, method: str = "heavy_ball"):
    r"""The coefficient $c$ of $\eta H g$ in the slow manifold's velocity: $\frac{1 + \beta}{2 (1 - \beta)^2}$ for heavy
    ball (13.4), $\frac{1 - \beta + 2 \beta^2}{2 (1 - \beta)^2}$ for Nesterov (13.8); both $\frac12$ at $\beta = 0$ (GD's
    modified flow, 5.1)."""
    top = (1.0 + beta) if checked_method(method) == "heavy_ball" else (1.0 - beta + 2.0 * beta**2)
    return top / (2.0 * (1.0 - beta) ** 2)


def slow_velocity(problem: Problem, layers, eta, beta, method: str = "heavy_ball"):
    r"""The velocity of the slow manifold, docs/math.md (13.4) and (13.8):
    $v = -\frac{1}{1 - \beta}\left(g + \eta c H g\right)$ with $g = \nabla L$, $H$ its Hessian (a Hessian-vector
    product; no Hessian formed) and $c$ :func:`correction`."""
    g = network_gradient(problem, layers)
    hg = hessian_vector_product(problem, layers, g)
    c = eta * correction(beta, method)
    return jax.tree_util.tree_map(lambda a, b: -(a + c * b) / (1.0 - beta), g, hg)


def initial_layer_shift(problem: Problem, layers, eta, beta, method: str = "heavy_ball"):
    r"""Where the slow manifold's flow starts to follow a run from rest, docs/math.md (13.5) and (13.9):
    $\theta_0 + \eta s \nabla L(\theta_0)$ with $s = \beta / (1 - \beta)^2$ (heavy ball) or $\beta^2 / (1 - \beta)^2$
    (Nesterov)."""
    g = network_gradient(problem, layers)
    c = eta * (beta if checked_method(method) == "heavy_ball" else beta**2) / (1.0 - beta) ** 2
    return jax.tree_util.tree_map(lambda w, a: w + c * a, layers, g)


class MomentumFlow(AbstractField):
    r"""A continuous model of a momentum method (``method``: heavy ball or Nesterov) with step ``eta`` and momentum
    ``beta`` (docs/math.md section 13): ``model`` one of :data:`MODELS`. The ``"second_order"`` state is
    ``(layers, velocity)``; the others' the layers.

    ``eta`` and ``beta`` are array leaves (traced under ``jax.vmap``/``jax.grad``: new values do not recompile).
    """

    problem: Problem
    eta: jax.Array
    beta: jax.Array
    model: str = eqx.field(static=True, default="modified")
    method: str = eqx.field(static=True, default="heavy_ball")

    @property
    def kind(self) -> str:
        """``heavy_ball_flow`` or ``nesterov_flow``."""
        return f"{self.method}_flow"

    @property
    def discrete_kind(self) -> str:
        return self.method

    def __call__(self, t, y, args=None):
        if self.model == "leading":  # (13.2)
            return _scaled(1.0 / (1.0 - self.beta), layer_field(self.problem, y))
        if self.model == "modified":  # (13.4), (13.8)
            return slow_velocity(self.problem, y, self.eta, self.beta, self.method)
        layers, v = y  # (13.3), (13.7): v' = -(g + (1 - beta) v [+ eta beta H v]) / (eta (1 + beta) / 2)
        rate = 2.0 / (self.eta * (1.0 + self.beta))
        g = network_gradient(self.problem, layers)
        if self.method == "nesterov":
            g = jax.tree_util.tree_map(lambda a, b: a + self.eta * self.beta * b, g,
                                       hessian_vector_product(self.problem, layers, v))
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
        ``off_manifold``, its distance from the slow manifold's velocity (the initial layer decaying)."""
        if self.model != "second_order":
            return ys, {}
        layers, v = ys
        slow = jax.vmap(lambda w: slow_velocity(self.problem, w, self.eta, self.beta, self.method))(layers)
        return layers, {"speed": _runs.save_norms(v),
                        "off_manifold": _runs.save_norms(jax.tree_util.tree_map(jnp.subtract, v, slow))}

    def start(self, layers0, start: str):
        """The state a flow starts from (:data:`FLOW_STARTS`)."""
        theta = (initial_layer_shift(self.problem, layers0, self.eta, self.beta, self.method)
                 if start == "initial_layer" else layers0)
        if self.model != "second_order":
            return theta
        if start == "rest":
            return theta, jax.tree_util.tree_map(jnp.zeros_like, theta)
        return theta, slow_velocity(self.problem, theta, self.eta, self.beta, self.method)


class MomentumRule(AbstractRule):
    r"""One step of heavy ball (13.1) or Nesterov (13.6) on the state $(\theta_k, b_k)$ with the buffer
    $b_{k+1} = \beta b_k - \eta \nabla L(\theta_k)$ and $\theta_{k+1} = \theta_k + b_{k+1}$ (heavy ball: $b_k =
    \theta_k - \theta_{k-1}$) or $\theta_{k+1} = \theta_k - \eta \nabla L(\theta_k) + \beta b_{k+1}$ (Nesterov).
    ``start`` (:data:`DISCRETE_STARTS`) sets $b_0$: zero (from rest), or $\eta$ times the slow manifold's velocity."""

    field: LayerFlow
    beta: jax.Array
    start: str = eqx.field(static=True, default="rest")
    method: str = eqx.field(static=True, default="heavy_ball")

    def init(self, y0, eta):
        if self.start == "manifold":
            return y0, _scaled(eta, slow_velocity(self.field.problem, y0, eta, self.beta, self.method))
        return y0, jax.tree_util.tree_map(jnp.zeros_like, y0)

    def params(self, state):
        return state[0]

    def __call__(self, state, eta):
        theta, b = state
        f = self.field(None, theta, None)  # -grad L
        b = jax.tree_util.tree_map(lambda a, x: self.beta * a + eta * x, b, f)
        if self.method == "heavy_ball":
            return jax.tree_util.tree_map(jnp.add, theta, b), b
        return jax.tree_util.tree_map(lambda w, x, a: w + eta * x + self.beta * a, theta, f, b), b


def checked_momentum(beta):
    """``beta`` as float64 when it lies in [0, 1) (a tracer passes unchecked), else a ValueError naming it."""
    return _checks.unit_weight("beta", beta, "the momentum")


def _choice(name: str, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def _descent(method, problem, layers0, eta, beta, steps, save_every, start) -> Trajectory:
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    rule = MomentumRule(LayerFlow(problem), checked_momentum(beta), _choice("start", start, DISCRETE_STARTS), method)
    return descend(rule, layers0, eta, steps, save_every=save_every, kind=method)


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
    return _descent("heavy_ball", problem, layers0, eta, beta, steps, save_every, start)


def nesterov(problem: Problem, layers0, eta, beta, steps: int, *, save_every: int = 1,
             start: str = "rest") -> Trajectory:
    r"""Nesterov's method on the layers as optax (``sgd(eta, momentum=beta, nesterov=True)``) and PyTorch run it,
    docs/math.md (13.6): ``b <- beta b - eta grad L(theta)``, ``theta <- theta - eta grad L(theta) + beta b``, iterate
    ``k`` saved at flow time ``t = k eta``. ``start="rest"``: ``b_0 = 0`` (optax, PyTorch); ``"manifold"``: ``b_0 = eta
    v(theta_0)`` with ``v`` the slow manifold's velocity (13.8).

    Examples:
        >>> import linflow
        >>> prob = linflow.problems.whitened([2.0, 1.0])
        >>> nag = linflow.nesterov(prob, linflow.init.balanced((2, 3, 2), 0.5), eta=0.05, beta=0.5, steps=100)
        >>> nag.kind, nag.status
        ('nesterov', 'ok')
    """
    return _descent("nesterov", problem, layers0, eta, beta, steps, save_every, start)


def _flow(method, problem, layers0, eta, beta, t1, model, start, options) -> Trajectory:
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    eta = _checks.f64(_checks.positive("eta", eta))
    field = MomentumFlow(problem, eta, checked_momentum(beta), _choice("model", model, MODELS), method)
    _choice("start", start, FLOW_STARTS)
    if start == "rest" and model != "second_order":
        raise ValueError(f"start='rest' (zero velocity) needs model='second_order'; model={model!r} has no velocity")
    _runs.flow_time_only(f"{method}_flow", options)
    return solve(field, field.start(layers0, start), t1, **options)


_FLOW_DOC = r"""A continuous model of {name} with step ``eta`` and momentum ``beta`` on ``[0, t1]`` (flow time
    ``t = k eta``), docs/math.md section 13.

    ``model``: ``"leading"`` (13.2, order 1), ``"modified"`` ({modified}, order 2) or ``"second_order"`` ({second},
    order 2 on its slow manifold; its Trajectory's ``extras`` hold ``speed`` and ``off_manifold``). ``start``:
    ``"plain"`` (``theta_0``; the second-order model with the slow manifold's velocity) follows a run started on the
    manifold; ``"initial_layer"`` (``theta_0`` moved back by the initial layer's displacement, {shift}) follows a run
    from rest at order 2; ``"rest"`` (second-order model only: ``theta_0`` at zero velocity) is the equation started
    as the method is. Solver options as :func:`linflow.gradient_flow` (the second-order model relaxes at rate
    ``2 (1 - beta) / (eta (1 + beta))``: stiff for small ``eta``, where an implicit solver such as ``"kvaerno5"`` pays).
"""


def heavy_ball_flow(problem: Problem, layers0, eta, beta, t1, *, model: str = "modified", start: str = "plain",
                    **options) -> Trajectory:
    """{doc}
    Examples:
        >>> import linflow
        >>> prob = linflow.problems.whitened([2.0, 1.0])
        >>> layers = linflow.init.balanced((2, 3, 2), 0.5)
        >>> flow = linflow.heavy_ball_flow(prob, layers, eta=0.05, beta=0.5, t1=5.0, start="initial_layer")
        >>> flow.kind, flow.status
        ('heavy_ball_flow', 'ok')
    """
    return _flow("heavy_ball", problem, layers0, eta, beta, t1, model, start, options)


def nesterov_flow(problem: Problem, layers0, eta, beta, t1, *, model: str = "modified", start: str = "plain",
                  **options) -> Trajectory:
    """{doc}
    Examples:
        >>> import linflow
        >>> prob = linflow.problems.whitened([2.0, 1.0])
        >>> layers = linflow.init.balanced((2, 3, 2), 0.5)
        >>> flow = linflow.nesterov_flow(prob, layers, eta=0.05, beta=0.5, t1=5.0, model="second_order")
        >>> flow.kind, flow.status
        ('nesterov_flow', 'ok')
    """
    return _flow("nesterov", problem, layers0, eta, beta, t1, model, start, options)


heavy_ball_flow.__doc__ = heavy_ball_flow.__doc__.replace("{doc}", _FLOW_DOC.format(
    name="heavy ball", modified="13.4", second="13.3", shift="13.5"))
nesterov_flow.__doc__ = nesterov_flow.__doc__.replace("{doc}", _FLOW_DOC.format(
    name="Nesterov's method (optax's form, :func:`nesterov`)", modified="13.8", second="13.7", shift="13.9"))
