"""The one result type of every run, continuous or discrete: a pytree of fixed-shape arrays."""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np
import xarray as xr

__all__ = ["Trajectory", "KINDS", "STATUSES", "descent_message", "ensemble_statistics"]

KINDS = ("gradient_flow", "end_to_end_flow", "modified_flow", "central_flow", "gradient_descent", "end_to_end_descent")

#: ``Trajectory.result`` is an index into this tuple (diffrax's manner: an integer code, traced under jit).
STATUSES = ("ok", "max_steps", "dt_min", "nonfinite", "implicit_failure", "diverged", "failed")


def _concrete(x) -> np.ndarray:
    if isinstance(x, jax.core.Tracer):
        raise TypeError("this property needs concrete values: read it outside jax.jit / jax.vmap / jax.grad "
                        "(inside, use the arrays `result` and `stop`)")
    return np.asarray(x)


def _single(x, what: str) -> np.ndarray:
    """A concrete per-run value of one run (a batch from ``jax.vmap`` has one per run)."""
    x = _concrete(x)
    if x.ndim:
        raise ValueError(f"a batch of {x.size} runs has no single {what}: split it with .unstack() (one Trajectory "
                         f"per run); the arrays (`result`, `stop`, `loss`, ...) hold every run along axis 0")
    return x


class Trajectory(eqx.Module):
    """A run saved at times ``ts``: an ``equinox.Module``, so it passes through ``jax.jit``, ``jax.vmap``
    and ``jax.grad`` like any pytree.

    Every array has the shape of the requested save grid, whatever happened. A run that stops early
    (divergence, solver failure) has ``stop < len(ts)``: rows ``stop, stop + 1, ...`` were not reached
    and repeat the last reached row (row ``stop - 1``), its time included, so ``ts[-1]`` is the last
    time reached and no array holds NaN or inf. :meth:`reached` returns the reached rows only,
    :meth:`masked` any per-row array with NaN on the rows not reached.

    Attributes:
        ts: flow time of each save, shape ``(n,)`` (the requested grid up to the stop). Discrete runs use
            ``t = k * eta`` for iterate ``k`` (linflow's convention; ACH18 counts iterations: :attr:`iterations`).
        end_to_end: ``W_e`` at each save, shape ``(n, k, d)``.
        loss: ``L1(W_e)``, the data loss without weight decay, shape ``(n,)``.
        layers: tuple of ``(n, n_j, n_{j-1})`` arrays for layer runs, ``None`` for end-to-end runs.
        imbalance: ``max_j ||D_j||_F`` per save for layer runs, ``None`` for end-to-end runs.
        result: integer code, an index into :data:`STATUSES` (``status`` is its name).
        stop: number of saved rows reached (``len(ts)`` for a complete run).
        stats: integer arrays. Flows: ``num_steps``, ``num_accepted_steps``, ``num_rejected_steps``,
            ``nfev`` (-1 where a solver's evaluations are not known in closed form). Discrete runs:
            ``num_steps``, ``nfev`` (gradient evaluations), ``diverged_at`` (first step whose iterate
            was non-finite, -1 if none) and ``first_unreached_step`` (the step of the first save not
            reached, -1 if none).
        eta: the learning rate of a discrete run or of the GD a modified flow models (``None`` for flows).
        t1: the requested final time.
        extras: further per-save arrays of a kind of run, by name (leading axis: saves), e.g. the central
            flow's ``sharpness`` and ``sigma2``; empty for the other runs.
        kind: ``gradient_flow``, ``end_to_end_flow``, ``modified_flow``, ``central_flow``,
            ``heavy_ball_flow``, ``gradient_descent``, ``end_to_end_descent``, ``heavy_ball``, or an optimizer's name.
        depth: the depth ``N`` of the network (the end-to-end runs use it in their preconditioner).
        solver: the ODE solver of a flow (``None`` for discrete runs).
    """

    ts: jax.Array
    end_to_end: jax.Array
    loss: jax.Array
    layers: tuple | None
    imbalance: jax.Array | None
    result: jax.Array
    stop: jax.Array
    stats: dict
    eta: jax.Array | None
    t1: jax.Array
    extras: dict
    kind: str = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    solver: str | None = eqx.field(static=True, default=None)

    # ---- status (concrete values only)
    @property
    def status(self) -> str:
        """``"ok"``, or why the run stopped early: ``"diverged"`` (non-finite iterate), ``"max_steps"``,
        ``"dt_min"``, ``"nonfinite"``, ``"implicit_failure"``, ``"failed"``."""
        return STATUSES[int(_single(self.result, "status"))]

    @property
    def ok(self) -> bool:
        """True when the run reached its final time."""
        return self.status == "ok"

    @property
    def n_reached(self) -> int:
        """How many saved rows were reached (``stop`` as a Python int)."""
        return int(_single(self.stop, "n_reached (and the views built on it: reached, masked, final_loss, to_xarray)"))

    @property
    def message(self) -> str:
        """A sentence saying what happened and where (step and time); empty when ``ok``."""
        status = self.status
        if status == "ok":
            return ""
        ts, keep = np.asarray(self.ts), self.n_reached
        stats = {k: int(v) for k, v in self.stats.items()}
        if self.eta is not None and "diverged_at" in stats:
            return descent_message(self.kind, float(self.eta), ts, keep, stats)
        reached = f"t = {ts[keep - 1]:.6g}" if keep else "the start"
        message = (f"{self.kind} with solver {self.solver!r} stopped ({status.replace('_', ' ')}) after "
                   f"{stats.get('num_steps', -1)} steps; last saved point reached: {reached} "
                   f"({keep} of {len(ts)} saves, t1 = {float(self.t1):.6g}); rows {keep} to {len(ts) - 1} "
                   f"repeat the last reached row")
        if status == "max_steps":
            message += "; raise max_steps or loosen rtol/atol"
        return message

    @property
    def final_loss(self) -> float:
        """``L1(W_e)`` at the last reached save."""
        return float(np.asarray(self.loss)[max(self.n_reached - 1, 0)])

    @property
    def iterations(self) -> np.ndarray:
        """Iteration counts ``k = t / eta`` (ACH18's time) of a discrete run (of every run of a batch)."""
        if self.eta is None:
            raise ValueError("iterations are defined for discrete runs only; divide ts by your eta")
        return np.rint(np.asarray(self.ts) / np.asarray(self.eta)[..., None]).astype(np.int64)

    def __len__(self) -> int:
        return int(np.shape(self.ts)[-1])

    # ---- views
    def masked(self, values) -> np.ndarray:
        """``values`` (rows along the save axis, like ``loss``) as float NumPy, NaN on the rows not reached."""
        out = np.array(values, dtype=float, copy=True)
        out[self.n_reached:] = np.nan
        return out

    def reached(self) -> Trajectory:
        """The same run cut to the rows reached (NumPy arrays; the shapes now depend on where it stopped)."""
        keep = self.n_reached
        cut = lambda x: None if x is None else np.asarray(x)[:keep]  # noqa: E731
        return Trajectory(
            ts=cut(self.ts), end_to_end=cut(self.end_to_end), loss=cut(self.loss),
            layers=None if self.layers is None else tuple(cut(w) for w in self.layers),
            imbalance=cut(self.imbalance), result=self.result, stop=self.stop, stats=self.stats, eta=self.eta,
            t1=self.t1, extras={k: cut(v) for k, v in self.extras.items()}, kind=self.kind, depth=self.depth,
            solver=self.solver,
        )

    def unstack(self) -> list[Trajectory]:
        """One Trajectory per run of a batch (the result of ``jax.vmap`` over a public run)."""
        n = int(np.shape(self.result)[0]) if np.ndim(self.result) else None
        if n is None:
            return [self]
        return [jax.tree_util.tree_map(lambda x, i=i: np.asarray(x)[i], self) for i in range(n)]

    def __repr__(self) -> str:
        if isinstance(self.result, jax.core.Tracer) or np.ndim(self.result):
            return f"Trajectory({self.kind}, depth={self.depth}, batch or traced, ts shape {np.shape(self.ts)})"
        k, d = np.shape(self.end_to_end)[1:]
        extra = f", eta={float(self.eta):g}" if self.eta is not None else f", solver={self.solver!r}"
        ts, loss, keep = np.asarray(self.ts), np.asarray(self.loss), self.n_reached
        last = max(keep - 1, 0)
        where = (f"{len(ts)} points on [{ts[0]:g}, {ts[-1]:g}]" if keep == len(ts) else
                 f"{keep} of {len(ts)} points reached, on [{ts[0]:g}, {ts[last]:g}] (t1 = {float(self.t1):g})")
        return (f"Trajectory({self.kind}, depth={self.depth}, k={k}, d={d}{extra}, {where}, "
                f"loss {loss[0]:.4g} -> {loss[last]:.4g}, status={self.status!r})")

    def ensemble_summary(self, quantiles=(0.05, 0.5, 0.95)) -> xr.Dataset:
        """Statistics over the paths of an ensemble (a Trajectory with a leading ensemble axis, as ``sgd_ensemble``,
        ``svag_ensemble`` and ``sme_ensemble`` return) at every save time: mean, standard error
        (``std / sqrt(n)``, ``ddof = 1``) and ``quantiles`` of the loss ``L1(W_e)`` and of ``|W_e|_F``.

        A path that stopped early (diverged, non-finite) disqualifies the ensemble: the statistics are then NaN and
        attribute ``status`` says how many paths stopped, and where (never an average over the survivors).
        """
        if np.ndim(self.result) != 1:
            raise ValueError("ensemble_summary needs a Trajectory with a leading ensemble axis (sgd_ensemble, "
                             "svag_ensemble, sme_ensemble, or jax.vmap of a run); this one is a single run")
        ts = np.asarray(self.ts)[0]
        w = np.asarray(self.end_to_end)
        ok = np.asarray(self.result) == 0
        data = {}
        for name, values in (("loss", np.asarray(self.loss)), ("norm", np.sqrt(np.sum(w * w, axis=(-2, -1))))):
            mean, se, q = ensemble_statistics(values, ok, quantiles)
            data[f"{name}_mean"], data[f"{name}_se"] = ("t", mean), ("t", se)
            data[f"{name}_quantile"] = (("quantile", "t"), q)
        bad = int(np.sum(~ok))
        why = ", ".join(sorted({STATUSES[int(r)] for r in np.asarray(self.result)[~ok]}))
        status = "ok" if not bad else (
            f"{bad} of {len(ok)} paths stopped early ({why}; first stopped path: {int(np.flatnonzero(~ok)[0])}): no "
            f"ensemble statistics, a stopped path disqualifies the ensemble")
        return xr.Dataset(data, coords={"t": ts, "quantile": list(quantiles)},
                          attrs={"kind": self.kind, "paths": len(ok), "not_ok": bad, "status": status,
                                 "loss": "L1(W_e), the data term", "norm": "|W_e|_F"})

    def to_xarray(self) -> xr.Dataset:
        """The reached rows as an ``xarray.Dataset`` with dimension ``t`` (flow time) and the metadata as attributes.

        Matrix dimensions are named after the layer widths ``n_j`` of ``dims = (n_0, ..., n_N)``:
        ``W_j`` has dims ``(t, n_j, n_{j-1})`` and ``W_e`` has ``(t, n_N, n_0)``, so a dimension shared by
        two variables has one name (``n0`` is the input dimension d, ``n{N}`` the output dimension k).
        Attribute ``points_requested`` is the length of the save grid.
        """
        run = self.reached()
        data = {
            "end_to_end": (("t", f"n{self.depth}", "n0"), run.end_to_end),
            "loss": (("t",), run.loss),
        }
        if run.imbalance is not None:
            data["imbalance"] = (("t",), run.imbalance)
        if run.layers is not None:
            for j, w in enumerate(run.layers, start=1):
                data[f"W{j}"] = (("t", f"n{j}", f"n{j - 1}"), w)
        data.update({name: (("t",), v) for name, v in run.extras.items()})
        attrs = {"kind": self.kind, "depth": self.depth, "status": self.status, "message": self.message,
                 "points_requested": len(self), "time_convention": "flow time t; discrete iterate k sits at t = k * eta",
                 "t1": float(self.t1)}
        if self.eta is not None:
            attrs["eta"] = float(self.eta)
        if self.solver is not None:
            attrs["solver"] = self.solver
        attrs.update({f"stats_{k}": np.asarray(v).item() for k, v in self.stats.items()})
        return xr.Dataset(data, coords={"t": run.ts}, attrs=attrs)


def descent_message(kind: str, eta: float, ts: np.ndarray, keep: int, stats: dict) -> str:
    """Where a discrete run with step ``eta`` diverged (its :attr:`Trajectory.message`): the first non-finite step
    ``stats["diverged_at"]`` (-1: none), the first save whose ``W_e`` or loss overflowed
    (``stats["first_unreached_step"]``, optional) and the last of the ``keep`` saved rows kept, on the save times
    ``ts`` (``t = k eta``). Public for studies that run GD without building Trajectories (``linflow.compare``)."""
    saved_steps = np.rint(ts / eta).astype(np.int64)
    bad_at, unreached = stats["diverged_at"], stats.get("first_unreached_step", -1)
    causes = []
    if unreached >= 0 and (bad_at < 0 or unreached < bad_at):
        causes.append(f"W_e or the loss overflowed by saved step {unreached} (t = {unreached * eta:.6g})")
    if bad_at >= 0:
        causes.append(f"the iterate became non-finite at step {bad_at} (t = {bad_at * eta:.6g})")
    kept = (f"the trajectory reached {keep} saved points, up to step {saved_steps[keep - 1]} (t = {ts[keep - 1]:.6g}); "
            f"rows {keep} to {len(ts) - 1} repeat that point" if keep else "no saved point is finite")
    return f"{kind} diverged (eta = {eta:g}): {' and '.join(causes)}; {kept}"


def ensemble_statistics(values, ok, quantiles=()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, standard error (``ddof = 1``) and ``quantiles`` over axis 0 (the paths) of ``values``; all NaN when any
    path is not ``ok`` (a stopped path disqualifies the ensemble: never skipped)."""
    values = np.asarray(values, dtype=float)
    if values.shape[0] < 2:
        raise ValueError(f"an ensemble needs at least 2 paths for a standard error; got {values.shape[0]}")
    if not np.all(ok):
        nothing = np.full(values.shape[1:], np.nan)
        return nothing, nothing.copy(), np.full((len(quantiles), *values.shape[1:]), np.nan)
    return (values.mean(axis=0), values.std(axis=0, ddof=1) / np.sqrt(values.shape[0]),
            np.quantile(values, list(quantiles), axis=0) if len(quantiles) else np.empty((0, *values.shape[1:])))
