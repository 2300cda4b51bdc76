r"""Adam's and RMSProp's continuous-time models with their moment averages as state (docs/math.md section 14).

Adam (optax's ``adam(eta, b1, b2, eps)``) in the scaling regime where $1 - \beta_1 = a \eta$ and $1 - \beta_2 = b \eta$
(Barakat & Bianchi 2021): at flow time $t = k \eta$, $\beta_1^k \to e^{-a t}$ and the iterates follow

$$\dot m = a (g - m), \quad \dot v = b (g^{\odot 2} - v), \quad
\dot\theta = -\frac{\hat m}{\sqrt{\hat v} + \varepsilon}, \quad \hat m = \frac{m}{1 - e^{-a t}}, \;
\hat v = \frac{v}{1 - e^{-b t}} \tag{14.1}$$

from $m = v = 0$, with $g = \nabla L(\theta)$: the bias corrections are the time-dependent factors, and at $t = 0$
$\hat m = g$, $\hat v = g^{\odot 2}$ (their limits). The discrete method stays $O(\eta)$ from it on a fixed horizon.

Adam at fixed $\beta_1, \beta_2$ as $\eta \to 0$ (the other regime; optax's ``eps_root`` $\varepsilon_r$ inside the
root): its averages follow $g$ within a few steps and it follows the memoryless flow
$\dot\theta = -F$, $F = g / (\sqrt{g^{\odot 2} + \varepsilon_r} + \varepsilon)$ (order 1), corrected at first order in
$\eta$ by its memory and its steps (14.8), the perturbed one-norm term of Cattaneo, Klusowski & Shigida (order 2).

RMSProp (optax's ``rmsprop(eta, decay, eps)``: no bias correction, ``eps`` inside the root) with
$1 - \text{decay} = b\eta$ follows $\dot v = b (g^{\odot 2} - v)$, $\dot\theta = -g / \sqrt{v + \varepsilon}$
(14.2); from $v = 0$ its speed is $|g| / \sqrt{v} \approx 1/\sqrt{b t}$ at first, so it is integrated in the clock
$s = \sqrt t$, where it is regular (14.3), and the method trails it by an initial layer of order $\sqrt\eta$ (14.4).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from . import checks as _checks, runs as _runs
from .fields import AbstractField, AbstractLayerField, hessian_vector_product, network_gradient, observe_layers
from .integrate import solve, time_grid
from .problems import Problem
from .trajectory import Trajectory

__all__ = ["AdamFlow", "AdamMemorylessFlow", "AdamModifiedFlow", "ADAM_MODELS", "ADAM_FIXED_BETA_MODELS",
           "adam_flow", "RMSPropFlow",
           "RMSPropModifiedFlow", "RMSPROP_MODELS",
           "checked_rmsprop_model", "rmsprop_flow"]


def _debiased(moment, t, rate, limit):
    """``moment / (1 - exp(-rate t))``, and its limit ``limit`` at ``t = 0``."""
    c = -jnp.expm1(-rate * t)
    return jax.tree_util.tree_map(lambda x, y: jnp.where(c > 0, x / jnp.where(c > 0, c, 1.0), y), moment, limit)


class _LayersAndMoments(AbstractField):
    """What Adam's and RMSProp's models share: the state ``(layers, moments...)``, observed through its layers, and
    the step ``eta`` they model (the subclasses hold ``problem`` and ``eta``)."""

    @property
    def modelled_step(self):
        return self.eta

    def depth_of(self, y) -> int:
        return len(y[0])

    def observe(self, ys):
        return observe_layers(self.problem, ys[0])


def _average_rate(name: str, beta, eta) -> jax.Array:
    """The rate ``(1 - beta) / eta`` of an average of weight ``beta`` (checked in ``[0, 1)`` unless traced)."""
    return (1.0 - _checks.unit_weight(name, beta, "an average's weight")) / eta


class AdamFlow(_LayersAndMoments):
    r"""Adam's continuous model (14.1) on the state ``(layers, m, v)``; ``a = (1 - beta1) / eta``,
    ``b = (1 - beta2) / eta``, ``eps`` and ``eps_root`` (inside the root: $\sqrt{\hat v + \varepsilon_r} +
    \varepsilon$) are array leaves (new values do not recompile)."""

    problem: Problem
    a: jax.Array
    b: jax.Array
    eps: jax.Array
    eta: jax.Array
    eps_root: jax.Array = eqx.field(default_factory=lambda: jnp.zeros(()))
    kind = "adam_flow"
    discrete_kind = "adam"

    def __call__(self, t, y, args=None):
        layers, m, v = y
        g = network_gradient(self.problem, layers)
        g2 = jax.tree_util.tree_map(jnp.square, g)
        m_hat, v_hat = _debiased(m, t, self.a, g), _debiased(v, t, self.b, g2)
        step = jax.tree_util.tree_map(lambda x, w: -x / (jnp.sqrt(w + self.eps_root) + self.eps), m_hat, v_hat)
        return (step, jax.tree_util.tree_map(lambda x, z: self.a * (x - z), g, m),
                jax.tree_util.tree_map(lambda x, z: self.b * (x - z), g2, v))

    def split(self, ys):
        """The layers, and the moments' norms as extras ``m_norm``, ``v_norm`` (per save)."""
        layers, m, v = ys
        return layers, {"m_norm": _runs.save_norms(m), "v_norm": _runs.save_norms(v)}


class _AdamFixedBeta(AbstractLayerField):
    r"""What Adam's fixed-$\beta$ models share (docs/math.md (14.8)): the state is the layers alone, and the leading
    field is $-F$ with $F = g / D$, $D = \sqrt{g^{\odot 2} + \varepsilon_r} + \varepsilon$ (Adam's step at a constant
    argument, where the bias-corrected averages are exact). ``beta1``, ``beta2``, ``eps``, ``eps_root`` and ``eta``
    are array leaves."""

    problem: Problem
    beta1: jax.Array
    beta2: jax.Array
    eps: jax.Array
    eps_root: jax.Array
    eta: jax.Array
    discrete_kind = "adam"

    @property
    def modelled_step(self):
        return self.eta

    def _quotient(self, layers):
        """``(F, g, r, D)``: the step direction, the gradient, ``r = sqrt(g^2 + eps_root)`` and ``D = r + eps``."""
        g = network_gradient(self.problem, layers)
        r = jax.tree_util.tree_map(lambda gi: jnp.sqrt(gi * gi + self.eps_root), g)
        d = jax.tree_util.tree_map(lambda ri: ri + self.eps, r)
        return jax.tree_util.tree_map(jnp.divide, g, d), g, r, d


class AdamMemorylessFlow(_AdamFixedBeta):
    r"""Adam's memoryless flow at fixed $\beta_1, \beta_2$ (docs/math.md (14.8), leading term):
    $\dot\theta = -g / (\sqrt{g^{\odot 2} + \varepsilon_r} + \varepsilon)$, a perturbed sign descent; optax's Adam
    leaves it at order 1 in ``eta``. Run it through :func:`adam_flow` with ``model="memoryless"``."""

    kind = "adam_memoryless_flow"

    def __call__(self, t, y, args=None):
        return jax.tree_util.tree_map(jnp.negative, self._quotient(y)[0])


class AdamModifiedFlow(_AdamFixedBeta):
    r"""Adam's modified equation at fixed $\beta_1, \beta_2$ (docs/math.md (14.8)):
    $\dot\theta = -F - \eta\, c \odot H F$ with
    $c = \bigl(\tfrac{\beta_1}{1 - \beta_1} + \tfrac12\bigr) / D - \bigl(\tfrac{\beta_2}{1 - \beta_2} + \tfrac12\bigr)
    g^{\odot 2} / (D^2 r)$, $HF = \nabla_\theta \sum_i \Phi(g_i)$ (the perturbed one-norm's gradient when
    $\varepsilon = 0$) a Hessian-vector product; optax's Adam leaves it at order 2. Run it through :func:`adam_flow`
    with ``model="modified"``."""

    kind = "adam_modified_flow"

    def __call__(self, t, y, args=None):
        f, g, r, d = self._quotient(y)
        hf = hessian_vector_product(self.problem, y, f)
        k1, k2 = self.beta1 / (1 - self.beta1) + 0.5, self.beta2 / (1 - self.beta2) + 0.5

        def velocity(fi, gi, ri, di, hi):
            return -fi - self.eta * (k1 / di - k2 * gi * gi / (di * di * ri)) * hi

        return jax.tree_util.tree_map(velocity, f, g, r, d, hf)


#: the models of :func:`adam_flow` at fixed betas: (14.8)'s leading term and the corrected equation
ADAM_FIXED_BETA_MODELS = ("memoryless", "modified")
#: the models of :func:`adam_flow`: (14.1) in the scaling regime, and :data:`ADAM_FIXED_BETA_MODELS`
ADAM_MODELS = ("scaling", *ADAM_FIXED_BETA_MODELS)


def adam_flow(problem: Problem, layers0, eta, beta1, beta2, t1, *, eps: float = 1e-8, eps_root: float = 0.0,
              model: str = "scaling", **options) -> Trajectory:
    r"""Adam's continuous model for step ``eta`` and averages ``beta1``, ``beta2`` on ``[0, t1]`` (flow time
    ``t = k eta``), docs/math.md section 14; ``eps`` and ``eps_root`` as optax's ``adam`` (the step
    $\hat m / (\sqrt{\hat v + \varepsilon_r} + \varepsilon)$).

    ``model="scaling"`` (14.1): ``a = (1 - beta1) / eta``, ``b = (1 - beta2) / eta``, the moments from 0 with optax's
    bias corrections as ``1 - exp(-a t)``, ``1 - exp(-b t)``; optax's Adam stays ``O(eta)`` from it when ``beta1``,
    ``beta2`` scale with ``eta`` (``1 - beta_i`` proportional to ``eta``). At fixed ``beta_i`` as ``eta -> 0`` the
    averages become instantaneous: ``model="memoryless"`` is that limit (order 1 at fixed betas) and
    ``model="modified"`` its first correction (14.8) (order 2), both on the layers alone. Solver options as
    :func:`linflow.gradient_flow`.

    Examples:
        >>> import linflow
        >>> prob = linflow.problems.whitened([2.0, 1.0])
        >>> flow = linflow.adam_flow(prob, linflow.init.balanced((2, 3, 2), 0.5), 0.01, 0.99, 0.98, t1=2.0)
        >>> flow.kind, flow.status, sorted(flow.extras)
        ('adam_flow', 'ok', ['m_norm', 'v_norm'])
        >>> flow = linflow.adam_flow(prob, linflow.init.balanced((2, 3, 2), 0.5), 0.01, 0.9, 0.99, t1=2.0,
        ...                          eps_root=1.0, model="modified")
        >>> flow.kind, flow.status
        ('adam_modified_flow', 'ok')
    """
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    if model not in ADAM_MODELS:
        raise ValueError(f"model must be one of {', '.join(ADAM_MODELS)}; got {model!r}")
    eta = _checks.f64(_checks.positive("eta", eta))
    eps = _checks.f64(_checks.real_scalar("eps", eps, minimum=0.0))
    eps_root = _checks.f64(_checks.real_scalar("eps_root", eps_root, minimum=0.0))
    _runs.flow_time_only("adam_flow", options)
    if model != "scaling":
        betas = [_checks.f64(_checks.unit_weight(n, v, "an average's weight")) for n, v in
                 (("beta1", beta1), ("beta2", beta2))]
        field = (AdamMemorylessFlow if model == "memoryless" else AdamModifiedFlow)(problem, *betas, eps, eps_root, eta)
        return solve(field, layers0, t1, **options)
    rates = [_average_rate(name, beta, eta) for name, beta in (("beta1", beta1), ("beta2", beta2))]
    zeros = jax.tree_util.tree_map(jnp.zeros_like, layers0)
    return solve(AdamFlow(problem, rates[0], rates[1], eps, eta, eps_root), (layers0, zeros, zeros), t1, **options)


class _RMSPropModel(_LayersAndMoments):
    """What RMSProp's models share: the state ``(layers, v)``, the rate ``b = (1 - decay) / eta`` and ``eps`` as array
    leaves, the step ``eta``, and the second moment's norm recorded beside the layers."""

    problem: Problem
    b: jax.Array
    eps: jax.Array
    eta: jax.Array
    discrete_kind = "rmsprop"

    def split(self, ys):
        """The layers, and the second moment's norm as the extra ``v_norm`` (per save)."""
        layers, v = ys
        return layers, {"v_norm": _runs.save_norms(v)}


class RMSPropFlow(_RMSPropModel):
    r"""RMSProp's continuous model (14.2) on the state ``(layers, v)`` in the clock ``s = sqrt(t)`` (14.3):
    ``d theta / ds = -2 s g / sqrt(v + eps)``, ``dv / ds = 2 s b (g^2 - v)``; at ``s = 0`` with ``v = eps = 0`` the
    velocity is its limit ``-2 sign(g) / sqrt(b)`` (``v ~ b s^2 g^2`` there). ``b = (1 - decay) / eta`` and ``eps``
    are array leaves. Run it through :func:`rmsprop_flow`, which converts the clock both ways."""

    kind = "rmsprop_flow"

    def __call__(self, s, y, args=None):
        layers, v = y
        g = network_gradient(self.problem, layers)

        def speed(gi, vi):
            positive = vi + self.eps > 0
            regular = 2 * s * gi / jnp.sqrt(jnp.where(positive, vi + self.eps, 1.0))
            return -jnp.where(positive, regular, 2 * jnp.sign(gi) / jnp.sqrt(self.b))

        return (jax.tree_util.tree_map(speed, g, v),
                jax.tree_util.tree_map(lambda gi, vi: 2 * s * self.b * (gi * gi - vi), g, v))


class RMSPropModifiedFlow(_RMSPropModel):
    r"""RMSProp's modified equation (14.7) in flow time on the state ``z = (layers, v)``: the model's field
    $F = (-g / \sqrt{v + \varepsilon},\ b (g^{\odot 2} - v))$ corrected at first order in the step,
    $\tilde F = F + \eta (G - \tfrac12 F' F)$, with $G = (\tfrac12 g \odot (v + \varepsilon)^{-3/2} \odot F_v, 0)$
    the step's $\eta^2$ term (optax divides by the second moment it has just updated) and $F' F$ a Jacobian-vector
    product. Regular where ``v + eps > 0``: run it through :func:`rmsprop_flow` with ``model="modified"``."""

    kind = "rmsprop_modified_flow"

    def _leading(self, y):
        layers, v = y
        g = network_gradient(self.problem, layers)
        return (jax.tree_util.tree_map(lambda gi, vi: -gi / jnp.sqrt(vi + self.eps), g, v),
                jax.tree_util.tree_map(lambda gi, vi: self.b * (gi * gi - vi), g, v)), g

    def __call__(self, t, y, args=None):
        (f_layers, f_v), g = self._leading(y)
        g_layers = jax.tree_util.tree_map(lambda gi, vi, dv: 0.5 * gi * (vi + self.eps) ** -1.5 * dv, g, y[1], f_v)
        f_dot = jax.jvp(lambda z: self._leading(z)[0], (y,), ((f_layers, f_v),))[1]
        return (jax.tree_util.tree_map(lambda f, c, d: f + self.eta * (c - 0.5 * d), f_layers, g_layers, f_dot[0]),
                jax.tree_util.tree_map(lambda f, d: f - 0.5 * self.eta * d, f_v, f_dot[1]))


#: the models of :func:`rmsprop_flow`: (14.2) and its modified equation (14.7)
RMSPROP_MODELS = ("leading", "modified")


def checked_rmsprop_model(model: str, initial_scale, eps) -> str:
    """``model`` when it is one of :data:`RMSPROP_MODELS` and can start from ``initial_scale`` (the modified equation
    needs ``initial_scale + eps > 0``; traced values pass unchecked), else a ValueError saying why."""
    if model not in RMSPROP_MODELS:
        raise ValueError(f"model must be one of {', '.join(RMSPROP_MODELS)}; got {model!r}")
    if model == "modified" and not _checks.is_traced(initial_scale) and not _checks.is_traced(eps) \
            and not initial_scale + float(eps) > 0:
        raise ValueError("model='modified' needs initial_scale + eps > 0: from v = 0 RMSProp's initial layer is of "
                         "order sqrt(eta) (docs/math.md (14.4)) and no first-order correction describes it")
    return model


def rmsprop_flow(problem: Problem, layers0, eta, decay, t1, *, eps: float = 1e-8, initial_scale: float = 0.0,
                 model: str = "leading", **options) -> Trajectory:
    r"""RMSProp's continuous model (14.2) for step ``eta`` and average ``decay`` on ``[0, t1]`` (flow time
    ``t = k eta``), docs/math.md (14.2)-(14.4): ``b = (1 - decay) / eta``, the second moment from ``initial_scale``
    (optax's ``rmsprop(eta, decay, eps, initial_scale)``, ``eps`` inside the root, its default). Integrated in the
    clock ``s = sqrt(t)`` (regular where ``v = 0``); the trajectory is saved and reported in flow time. From
    ``v = 0`` optax's RMSProp leaves the model at order ``1/2`` in ``eta`` (its initial layer, (14.4)); from a
    positive ``initial_scale`` at order 1. ``model="modified"`` integrates the modified equation (14.7) instead (in
    flow time; it needs ``initial_scale + eps > 0``, where there is no initial layer), which optax's RMSProp leaves at
    order 2. Solver options as :func:`linflow.gradient_flow`.

    Examples:
        >>> import linflow
        >>> prob = linflow.problems.whitened([2.0, 1.0])
        >>> flow = linflow.rmsprop_flow(prob, linflow.init.balanced((2, 3, 2), 0.5), 0.01, 0.98, t1=1.0, n_save=3)
        >>> flow.kind, flow.status, [float(t) for t in flow.ts]
        ('rmsprop_flow', 'ok', [0.0, 0.5, 1.0])
    """
    problem = _runs.check_problem(problem)
    layers0 = _runs.check_layers(problem, layers0)
    eta = _checks.f64(_checks.positive("eta", eta))
    b = _average_rate("decay", decay, eta)
    eps = _checks.f64(_checks.real_scalar("eps", eps, minimum=0.0))
    initial_scale = _checks.real_scalar("initial_scale", initial_scale, minimum=0.0)
    _runs.flow_time_only("rmsprop_flow", options)
    t1, ts = time_grid(t1, options.pop("ts", None), options.pop("n_save", 201), "flow", None)
    model = checked_rmsprop_model(model, initial_scale, eps)
    v0 = jax.tree_util.tree_map(lambda w: jnp.full_like(w, initial_scale), layers0)
    if model == "modified":
        return solve(RMSPropModifiedFlow(problem, b, eps, eta), (layers0, v0), t1, ts=ts, **options)
    field = RMSPropFlow(problem, b, eps, eta)
    run = solve(field, (layers0, v0), jnp.sqrt(t1), ts=jnp.sqrt(ts), **options)
    reached = jnp.asarray(ts)[jnp.minimum(jnp.arange(len(ts)), run.stop - 1)]  # the saves' flow times, exactly
    return eqx.tree_at(lambda r: (r.ts, r.t1), run, (reached, _checks.f64(t1)))
