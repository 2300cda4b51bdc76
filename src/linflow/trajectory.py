"""The one result type of every run, continuous or discrete."""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr

__all__ = ["Trajectory", "KINDS"]

KINDS = ("gradient_flow", "end_to_end_flow", "modified_flow", "gradient_descent", "end_to_end_descent")


@dataclasses.dataclass(frozen=True, repr=False)
class Trajectory:
    """A run saved at times ``ts``.

    Attributes:
        kind: one of ``gradient_flow``, ``end_to_end_flow``, ``modified_flow``, ``gradient_descent``,
            ``end_to_end_descent``.
        depth: the depth ``N`` of the network (the end-to-end runs use it in their preconditioner).
        ts: flow time of each saved point, shape ``(n,)``. Discrete runs use ``t = k * eta`` for iterate
            ``k`` (linflow's convention; ACH18 counts iterations instead: see :attr:`iterations`).
        end_to_end: ``W_e`` at each saved time, shape ``(n, k, d)``.
        loss: ``L1(W_e)``, the data loss without weight decay, shape ``(n,)``.
        layers: tuple of ``(n, n_j, n_{j-1})`` arrays for layer runs, ``None`` for end-to-end runs.
        imbalance: ``max_j ||D_j||_F`` per saved time for layer runs, ``None`` for end-to-end runs
            (they model a balanced network).
        stats: counts. Flows: ``num_steps``, ``num_accepted_steps``, ``num_rejected_steps``, ``nfev``
            (-1 where a solver's evaluations are not known in closed form). Descent: ``num_steps``,
            ``nfev`` (gradient evaluations).
        status: ``"ok"``, or why the run stopped early: ``"diverged"`` (non-finite iterate),
            ``"max_steps"``, ``"dt_min"``, ``"nonfinite"``, ``"implicit_failure"``, ``"failed"``.
            Saved values are kept up to the stop and nothing after it is returned.
        message: a sentence saying what happened and where (step and time), empty when ``ok``.
        eta: the learning rate of a discrete run or of the GD a modified flow models (``None`` for flows).
        solver: the ODE solver of a flow (``None`` for discrete runs).
        t1: the requested final time.
    """

    kind: str
    depth: int
    ts: np.ndarray
    end_to_end: np.ndarray
    loss: np.ndarray
    layers: tuple[np.ndarray, ...] | None = None
    imbalance: np.ndarray | None = None
    stats: dict = dataclasses.field(default_factory=dict)
    status: str = "ok"
    message: str = ""
    eta: float | None = None
    solver: str | None = None
    t1: float | None = None

    @property
    def ok(self) -> bool:
        """True when the run reached its final time."""
        return self.status == "ok"

    @property
    def final_loss(self) -> float:
        """``L1(W_e)`` at the last saved time."""
        return float(self.loss[-1])

    @property
    def iterations(self) -> np.ndarray:
        """Iteration counts ``k = t / eta`` (ACH18's time) of a discrete run."""
        if self.eta is None:
            raise ValueError("iterations are defined for discrete runs only; divide ts by your eta")
        return np.rint(self.ts / self.eta).astype(np.int64)

    def __len__(self) -> int:
        return len(self.ts)

    def __repr__(self) -> str:
        k, d = self.end_to_end.shape[1:]
        extra = f", eta={self.eta:g}" if self.eta is not None else f", solver={self.solver!r}"
        tail = f", loss {self.loss[0]:.4g} -> {self.loss[-1]:.4g}" if len(self.ts) else ""
        return (
            f"Trajectory({self.kind}, depth={self.depth}, k={k}, d={d}{extra}, "
            f"{len(self.ts)} points on [{self.ts[0]:g}, {self.ts[-1]:g}]{tail}, status={self.status!r})"
        )

    def to_xarray(self) -> xr.Dataset:
        """The run as an ``xarray.Dataset`` with dimension ``t`` (flow time) and the metadata as attributes.

        Matrix dimensions are named after the layer widths ``n_j`` of ``dims = (n_0, ..., n_N)``:
        ``W_j`` has dims ``(t, n_j, n_{j-1})`` and ``W_e`` has ``(t, n_N, n_0)``, so a dimension shared by
        two variables has one name (``n0`` is the input dimension d, ``n{N}`` the output dimension k).
        """
        data = {
            "end_to_end": (("t", f"n{self.depth}", "n0"), np.asarray(self.end_to_end)),
            "loss": (("t",), np.asarray(self.loss)),
        }
        if self.imbalance is not None:
            data["imbalance"] = (("t",), np.asarray(self.imbalance))
        if self.layers is not None:
            for j, w in enumerate(self.layers, start=1):
                data[f"W{j}"] = (("t", f"n{j}", f"n{j - 1}"), np.asarray(w))
        attrs = {"kind": self.kind, "depth": self.depth, "status": self.status, "message": self.message,
                 "time_convention": "flow time t; discrete iterate k sits at t = k * eta"}
        for name in ("eta", "solver", "t1"):
            value = getattr(self, name)
            if value is not None:
                attrs[name] = value
        attrs.update({f"stats_{k}": int(v) for k, v in self.stats.items()})
        return xr.Dataset(data, coords={"t": np.asarray(self.ts)}, attrs=attrs)
