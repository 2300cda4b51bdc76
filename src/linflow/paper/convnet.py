r"""ACH18 Section 8: the convnet of TensorFlow's MNIST tutorial and its overparameterized twin.

The network (NHWC, pixels in ``[-0.5, 0.5]``): conv 5x5x32 (ReLU, SAME) -> max-pool 2 -> conv 5x5x64 (ReLU,
SAME) -> max-pool 2 -> dense 3136 -> 512 (ReLU; dropout 0.5 when training with dropout) -> dense 512 -> 10.
The **twin** replaces each dense matrix ``W`` by a product ``B W`` with a square ``B`` initialized at the
identity (``512 x 512`` and ``10 x 10``, no bias), so both networks compute the same function at
initialization and can express the same functions; only the parameterization, hence gradient descent's
dynamics, differs (ACH18: "overparameterization as acceleration"). Parameter counts: 1,663,370 and
1,925,614 (+15.8%).

Training as in the tutorial: mini-batches of 64 taken in order from a once-shuffled training set,
softmax cross-entropy, an optional L2 penalty ``5e-4 * (1/2) sum ||.||^2`` on the dense layers (here on the
end-to-end dense maps ``B W`` and their biases, so that both networks minimize the same objective), SGD with
momentum 0.9 or without, learning rate ``lr * 0.95^epoch`` (staircase). Computation is in float32,
unlike the rest of linflow: one gradient of a batch of 64 took 0.20 s in float32 and 0.38 s in float64
on the 2-core CPU machine (measured while another job ran).
"""

from __future__ import annotations

import functools
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["ConvNet", "tutorial_net", "param_count", "data_loss", "objective", "train"]


class ConvNet(eqx.Module):
    """The tutorial's convnet; ``fc1_extra`` / ``fc2_extra`` are the twin's square matrices (``None``: original)."""

    conv1_w: jax.Array
    conv1_b: jax.Array
    conv2_w: jax.Array
    conv2_b: jax.Array
    fc1_w: jax.Array
    fc1_b: jax.Array
    fc2_w: jax.Array
    fc2_b: jax.Array
    fc1_extra: jax.Array | None
    fc2_extra: jax.Array | None

    def dense_maps(self) -> tuple[jax.Array, jax.Array]:
        """The end-to-end dense matrices ``(B_1 W_1, B_2 W_2)`` (input x output convention: ``x @ W``)."""
        w1 = self.fc1_w if self.fc1_extra is None else self.fc1_w @ self.fc1_extra
        w2 = self.fc2_w if self.fc2_extra is None else self.fc2_w @ self.fc2_extra
        return w1, w2

    def features(self, x: jax.Array) -> jax.Array:
        """The convolutional part: images ``(B, 28, 28)`` -> features ``(B, 3136)``."""
        h = jnp.asarray(x, self.conv1_w.dtype)[..., None]  # images in the network's precision
        for w, b in ((self.conv1_w, self.conv1_b), (self.conv2_w, self.conv2_b)):
            h = jax.lax.conv_general_dilated(h, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
            h = jax.nn.relu(h + b)
            h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "SAME")
        return h.reshape(h.shape[0], -1)

    def __call__(self, x: jax.Array, dropout_key=None) -> jax.Array:
        """Logits ``(B, 10)``; with ``dropout_key`` the hidden dense layer is dropped out with rate 0.5."""
        h = self.features(x) @ self.fc1_w
        if self.fc1_extra is not None:
            h = h @ self.fc1_extra
        h = jax.nn.relu(h + self.fc1_b)
        if dropout_key is not None:
            keep = jax.random.bernoulli(dropout_key, 0.5, h.shape)
            h = jnp.where(keep, h / 0.5, 0.0)
        h = h @ self.fc2_w
        if self.fc2_extra is not None:
            h = h @ self.fc2_extra
        return h + self.fc2_b


EXTRAS = ("identity", "dense")


def tutorial_net(overparameterized: bool = False, seed: int = 0, dtype=jnp.float32, extras: str = "identity") -> ConvNet:
    """The tutorial's initialization (truncated normal, std 0.1; biases 0 for conv1, 0.1 elsewhere); the twin of
    the same seed has the same weights, and its square extras at the identity (``extras="identity"``: the same
    function at initialization) or initialized as the tutorial initializes a dense matrix (``"dense"``: truncated
    normal, std 0.1, from keys of their own; another function at initialization)."""
    if extras not in EXTRAS:
        raise ValueError(f"extras must be one of {', '.join(EXTRAS)}; got {extras!r}")
    keys = jax.random.split(jax.random.PRNGKey(seed), 4)

    def normal(key, shape):
        return (0.1 * jax.random.truncated_normal(key, -2.0, 2.0, shape)).astype(dtype)

    extra_keys = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), 1_000_003), 2)
    if not overparameterized:
        eye = lambda n: None  # noqa: E731
    elif extras == "identity":
        eye = lambda n: jnp.eye(n, dtype=dtype)  # noqa: E731
    else:
        eye = lambda n: normal(extra_keys[0 if n == 512 else 1], (n, n))  # noqa: E731
    return ConvNet(
        conv1_w=normal(keys[0], (5, 5, 1, 32)), conv1_b=jnp.zeros(32, dtype),
        conv2_w=normal(keys[1], (5, 5, 32, 64)), conv2_b=jnp.full(64, 0.1, dtype),
        fc1_w=normal(keys[2], (7 * 7 * 64, 512)), fc1_b=jnp.full(512, 0.1, dtype),
        fc2_w=normal(keys[3], (512, 10)), fc2_b=jnp.full(10, 0.1, dtype),
        fc1_extra=eye(512), fc2_extra=eye(10),
    )


def param_count(net: ConvNet) -> int:
    """Number of trainable scalars."""
    return sum(int(np.size(x)) for x in jax.tree_util.tree_leaves(eqx.filter(net, eqx.is_array)))


def data_loss(net: ConvNet, x, y, dropout_key=None) -> jax.Array:
    """Mean softmax cross-entropy."""
    return optax.softmax_cross_entropy_with_integer_labels(net(x, dropout_key), y).mean()


def objective(net: ConvNet, x, y, l2: float = 0.0, dropout_key=None) -> jax.Array:
    """Cross-entropy plus ``l2 * (1/2) (||B_1 W_1||^2 + ||b_1||^2 + ||B_2 W_2||^2 + ||b_2||^2)`` (the tutorial's penalty,
    on the end-to-end dense maps)."""
    w1, w2 = net.dense_maps()
    penalty = 0.5 * sum(jnp.sum(a * a) for a in (w1, net.fc1_b, w2, net.fc2_b))
    return data_loss(net, x, y, dropout_key) + l2 * penalty


@functools.lru_cache(maxsize=None)
def _optimizer(momentum: float | None) -> optax.GradientTransformation:
    """SGD (with momentum) whose learning rate is a hyperparameter in its state: one compilation serves every rate
    and every step of the decay schedule."""
    return optax.inject_hyperparams(optax.sgd)(learning_rate=0.01, momentum=momentum)


@eqx.filter_jit
def _step(params, state, xb, yb, key, lr, static, opt, l2):
    """One mini-batch step of ``opt`` at learning rate ``lr`` on :func:`objective`."""
    grads = jax.grad(lambda p: objective(eqx.combine(p, static), xb, yb, l2, key))(params)
    state = eqx.tree_at(lambda s: s.hyperparams["learning_rate"], state, jnp.asarray(lr, dtype=jnp.float32))
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state


@eqx.filter_jit
def _evaluate(params, static, x, y):
    return data_loss(eqx.combine(params, static), x, y)


def train(net: ConvNet, images: np.ndarray, labels: np.ndarray, *, steps: int, lr: float = 0.01,
          momentum: float | None = 0.9, decay: float = 0.95, batch: int = 64, dropout: bool = False, l2: float = 0.0,
          seed: int = 0, eval_every: int = 50, eval_size: int = 2000, progress=None) -> dict:
    """Train ``net`` for ``steps`` mini-batch steps (learning rate ``lr * decay^epoch``); every ``eval_every`` steps
    record the training loss (mean cross-entropy, no penalty, no dropout) on a fixed subset of ``eval_size``
    training images.

    Returns ``{"iterations", "train_loss", "seconds_per_step", "net"}`` (``seconds_per_step`` measured after the
    first, compiling, step). Raises FloatingPointError, naming the step, if the loss becomes non-finite.
    One compiled step per network kind and setting serves every call (a step inside ``lax.scan`` measured 10x
    slower on the CPU, so steps are dispatched one by one).
    """
    n = len(labels)
    if n < batch:
        raise ValueError(f"need at least batch = {batch} images, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    x_all = jnp.asarray(images[order], dtype=net.fc1_w.dtype)
    y_all = jnp.asarray(labels[order])
    x_eval, y_eval = x_all[:eval_size], y_all[:eval_size]
    per_epoch = max(n // batch, 1)
    opt = _optimizer(momentum)
    params, static = eqx.partition(net, eqx.is_array)
    state = opt.init(params)
    iterations, losses = [0], [float(_evaluate(params, static, x_eval, y_eval))]
    key, timed, seconds = jax.random.PRNGKey(seed), 0, 0.0
    for k in range(steps):
        t0 = time.perf_counter()
        offset = (k * batch) % (n - batch + 1)  # the tutorial's walk through the shuffled set
        params, state = _step(params, state, x_all[offset:offset + batch], y_all[offset:offset + batch],
                              jax.random.fold_in(key, k) if dropout else None, lr * decay ** (k // per_epoch),
                              static, opt, l2)
        if k:
            jax.block_until_ready(params)
            seconds += time.perf_counter() - t0
            timed += 1
        if (k + 1) % eval_every == 0 or k + 1 == steps:
            loss = float(_evaluate(params, static, x_eval, y_eval))
            if not np.isfinite(loss):
                raise FloatingPointError(f"the training loss became non-finite by step {k + 1}")
            iterations.append(k + 1)
            losses.append(loss)
        if progress is not None:
            progress()
    return {"iterations": np.array(iterations), "train_loss": np.array(losses),
            "seconds_per_step": seconds / timed if timed else float("nan"), "net": eqx.combine(params, static)}
