"""Compute-optimal allocation of a training budget C = 6·N·D between parameters N and tokens D.

All arithmetic here is numpy float64 (no JAX, no global ``jax_enable_x64``): allocations are
exact closed forms, and C = 6·N·D holds to rounding. They are computed in log space (G's power
1/(α+β) over- or underflows for small exponents, and C/(6·r) for a tiny ratio r, where the
allocation itself may still be a float), and an allocation that is no finite positive number
is refused with a ``ValueError`` saying why, never returned as inf, 0 or NaN.

* The rule of thumb with r tokens per parameter: D = r·N and C = 6·N·D give
  N = (C / (6·r))^½ and D = r·N. (A formula circulating in course material, N = 0.6·C^½ and
  D = 20·C^½, violates C = 6·N·D by a factor of 72; it is not reproduced here.)
* A fitted Chinchilla law L(N, D) = E + A/N^α + B/D^β: minimising L along C = 6·N·D gives
  N_opt(C) = G·(C/6)^a and D_opt(C) = G⁻¹·(C/6)^b with a = β/(α+β), b = α/(α+β) and
  G = (αA / (βB))^(1/(α+β)) (Hoffmann et al. 2022, Appendix D).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

__all__ = [
    "Allocation", "ChinchillaLaw", "HOFFMANN_2022", "chinchilla_optimal_allocation",
    "allocation_from_law", "allocation_table", "law_from_json", "load_law",
]


class Allocation(NamedTuple):
    """Parameters and tokens for a compute budget (numpy float64; scalars for scalar input)."""
    params: Any
    tokens: Any


def _budgets(compute, name: str = "compute") -> np.ndarray:
    arr = np.asarray(compute, dtype=np.float64)
    if arr.size == 0:
        raise ValueError(f"{name}: no compute budget given")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: budgets must be finite, got {compute!r}")
    if np.any(arr <= 0):
        raise ValueError(f"{name}: budgets must be > 0 FLOPs, got {compute!r}")
    return arr


def _out(x: np.ndarray):
    return float(x) if np.ndim(x) == 0 else x


def _exp_checked(log_v: np.ndarray, C: np.ndarray, what: str, cause: str) -> np.ndarray:
    """exp(``log_v``), refused (``ValueError`` naming the budget, ``what`` and ``cause``) where it
    is no finite positive float64: beyond ~1.8e308 it was inf (and NaN further on: D/N), below
    ~5e-324 it was 0 (and D = C/(6·N) inf)."""
    log_v = np.asarray(log_v, np.float64)
    with np.errstate(over="ignore", under="ignore"):
        v = np.exp(log_v)
    bad = ~(np.isfinite(v) & (v > 0))
    if np.any(bad):
        i = int(np.argmax(bad.ravel()))
        lv, c = float(log_v.ravel()[i]), float(np.broadcast_to(C, log_v.shape).ravel()[i])
        size = f"e^{lv:.6g}" if math.isfinite(lv) else str(lv)
        raise ValueError(f"the allocation at C = {c:g} FLOPs is not a finite number: {what} = {size} is "
                         f"beyond float64's range ({'over' if lv > 0 else 'under'}flow); {cause}")
    return v


def _prefer_finite(direct: np.ndarray, via_logs: np.ndarray) -> np.ndarray:
    """``direct`` where it is a finite positive float, else ``via_logs`` (checked finite)."""
    return np.where(np.isfinite(direct) & (direct > 0), direct, via_logs)


def chinchilla_optimal_allocation(compute, tokens_per_param: float = 20.0) -> Allocation:
    """Rule-of-thumb allocation: N = (C / (6·r))^½ parameters and D = r·N tokens, r tokens per
    parameter (20 by default, Hoffmann et al.'s ratio), so that C = 6·N·D exactly.

    >>> n, d = chinchilla_optimal_allocation(1e21)
    >>> round(6 * n * d / 1e21, 12)
    1.0
    """
    C = _budgets(compute)
    r = float(tokens_per_param)
    if not math.isfinite(r) or r <= 0:
        raise ValueError(f"tokens_per_param: must be a finite number > 0, got {tokens_per_param!r}")
    # in logs: C/(6r) overflowed to inf for r = 1e-300, and D = r*N was then inf, D/N NaN
    cause = f"tokens_per_param = {r:g} is too extreme for this budget"
    log_n = 0.5 * (np.log(C) - math.log(6.0) - math.log(r))
    N = _exp_checked(log_n, C, "N", cause)
    D = _exp_checked(log_n + math.log(r), C, "D", cause)
    with np.errstate(all="ignore"):  # the direct forms, where they are floats: D = r·N exactly
        N = _prefer_finite(np.sqrt(C / (6.0 * r)), N)
        D = _prefer_finite(r * N, D)
    return Allocation(_out(N), _out(D))


@dataclasses.dataclass(frozen=True)
class ChinchillaLaw:
    """Point values of L(N, D) = E + A/N^α + B/D^β and its compute-optimal frontier."""
    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def __post_init__(self):
        for k in ("E", "A", "B", "alpha", "beta"):
            v = getattr(self, k)
            if not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v):
                raise ValueError(f"{k}: must be a finite number, got {v!r}")
        for k in ("A", "B", "alpha", "beta"):
            if getattr(self, k) <= 0:
                raise ValueError(f"{k}: must be > 0, got {getattr(self, k)!r}")

    @property
    def a(self) -> float:
        """Exponent of N_opt ∝ C^a: β/(α+β)."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """Exponent of D_opt ∝ C^b: α/(α+β)."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def log_G(self) -> float:
        """log G = (log(αA) − log(βB)) / (α+β), finite for every valid law (G itself may not be)."""
        return ((math.log(self.alpha) + math.log(self.A) - math.log(self.beta) - math.log(self.B))
                / (self.alpha + self.beta))

    @property
    def G(self) -> float:
        """G = (αA/(βB))^(1/(α+β)), computed as exp(``log_G``): inf or 0.0 where it is beyond
        float64's range (small α+β), never an ``OverflowError``; ``n_opt`` and ``d_opt`` then work
        in logs, and refuse a budget whose allocation is itself beyond that range."""
        try:
            return math.exp(self.log_G)
        except OverflowError:
            return math.inf

    def loss(self, N, D):
        N = np.asarray(N, np.float64)
        D = np.asarray(D, np.float64)
        return _out(self.E + self.A / N ** self.alpha + self.B / D ** self.beta)

    def _cause(self) -> str:
        return (f"G = (alpha*A/(beta*B))^(1/(alpha+beta)) = e^{self.log_G:.6g} (alpha = {self.alpha:g}, "
                f"beta = {self.beta:g}, A = {self.A:g}, B = {self.B:g}): no finite compute-optimal allocation")

    def _log_n_opt(self, C: np.ndarray) -> np.ndarray:
        return self.log_G + self.a * (np.log(C) - math.log(6.0))

    def _allocate(self, compute):
        """(C, N_opt, D_opt) arrays, in logs; ``ValueError`` where either is beyond float64's
        range. D_opt = C/(6·N_opt) where that is finite, so C = 6·N·D holds to rounding."""
        C = _budgets(compute)
        log_n = self._log_n_opt(C)
        N = _exp_checked(log_n, C, "N_opt", self._cause())
        D = _exp_checked(np.log(C) - math.log(6.0) - log_n, C, "D_opt", self._cause())
        with np.errstate(all="ignore"):
            D = _prefer_finite(C / (6.0 * N), D)
        return C, N, D

    def n_opt(self, compute):
        return _out(self._allocate(compute)[1])

    def d_opt(self, compute):
        # D = C/(6N) exactly, so C = 6·N·D holds to rounding (G⁻¹·(C/6)^b is the same number).
        return _out(self._allocate(compute)[2])

    def loss_opt(self, compute):
        return self.loss(self.n_opt(compute), self.d_opt(compute))

    def to_json(self) -> dict:
        return {"E": self.E, "A": self.A, "B": self.B, "alpha": self.alpha, "beta": self.beta,
                "a": self.a, "b": self.b, "G": self.G}


#: Hoffmann et al. (2022), Approach 3, unrounded values from the paper's LaTeX source.
HOFFMANN_2022 = ChinchillaLaw(E=1.6933737, A=406.401, B=410.723, alpha=0.33917084, beta=0.2849083)


def allocation_from_law(compute, law: ChinchillaLaw) -> Allocation:
    """Compute-optimal (N, D) under a fitted law; C = 6·N·D holds to rounding. ``ValueError``
    where the allocation is beyond float64's range (``ChinchillaLaw._allocate``)."""
    _, N, D = law._allocate(compute)
    return Allocation(_out(N), _out(D))


def allocation_table(budgets: Sequence[float], *, tokens_per_param: float = 20.0,
                     law: ChinchillaLaw | None = None) -> list[dict]:
    """One row per budget: ``compute``, ``params``, ``tokens``, ``tokens_per_param``, and the
    predicted ``loss`` when a law is given (the law's allocation is used then)."""
    C = np.atleast_1d(_budgets(budgets, "budgets"))
    if law is None:
        N, D = chinchilla_optimal_allocation(C, tokens_per_param)
    else:
        N, D = allocation_from_law(C, law)
    N, D = np.atleast_1d(N), np.atleast_1d(D)
    rows = []
    for i, c in enumerate(C):
        with np.errstate(all="ignore"):
            row = {"compute": float(c), "params": float(N[i]), "tokens": float(D[i]),
                   "tokens_per_param": float(D[i] / N[i])}
            if law is not None:
                row["loss"] = float(law.loss(N[i], D[i]))
        bad = [k for k, v in row.items() if not math.isfinite(v)]
        if bad:  # every value of a table row is a finite number, or the table is refused
            raise ValueError(f"the allocation at C = {float(c):g} FLOPs is not finite: {', '.join(bad)} "
                             f"= {', '.join(str(row[k]) for k in bad)}"
                             + ("" if law is None else f"; {law._cause()}"))
        rows.append(row)
    return rows


def _num(obj, key: str, where: str = "fit file") -> float:
    if key not in obj:
        raise ValueError(f"{where}: approach-3 entry lacks {key!r}")
    v = obj[key]
    if isinstance(v, dict):
        v = v.get("value")
    if not isinstance(v, (int, float)):
        raise ValueError(f"{where}: {key!r} is not a number: {v!r}")
    return float(v)


def law_from_json(obj: dict, *, where: str = "fit file") -> ChinchillaLaw:
    """A law from ``jaxscale fit chinchilla --json`` output (its ``approach3`` entry) or from a
    flat object with ``E``, ``A``, ``B``, ``alpha``, ``beta`` (numbers or ``{"value": ...}``).
    ``where`` begins every error (``load_law`` gives the file's path there).

    An ``approach3`` entry that is an ``{"error": ...}`` (``--approach all`` when Approach 3
    failed) is refused with that error: it holds no law, and "lacks 'E'" would not say why."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object")
    if "approach3" in obj:
        obj = obj["approach3"]
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: the approach3 entry is not a JSON object")
        if "error" in obj:
            raise ValueError(f"{where}: Approach 3 was not fitted ({obj['error']}); no law to allocate by")
    values = {k: _num(obj, k, where) for k in ("E", "A", "B", "alpha", "beta")}
    try:
        return ChinchillaLaw(**values)
    except ValueError as err:  # a value no law has (alpha <= 0, say): name the file too
        raise ValueError(f"{where}: {err}") from None


def load_law(path: str | os.PathLike) -> ChinchillaLaw:
    """The law in a fit file (see ``law_from_json``). A folder, and bytes that are not UTF-8,
    are refused naming the path (``read_text`` said only "[Errno 21] Is a directory" or
    "'utf-8' codec can't decode byte ...")."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"fit file {str(path)!r} does not exist")
    if path.is_dir():
        raise ValueError(f"fit file {str(path)!r} is a folder; a JSON file is expected")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"fit file {str(path)!r}: not UTF-8 text (byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"fit file {str(path)!r} is not JSON: {err}") from err
    return law_from_json(obj, where=f"fit file {str(path)!r}")
