"""The notebook's early stopping, as the runner applies it at epoch ends.

The rule (``RunSettings.early_stop`` = (epoch index, loss threshold)): after that epoch index, a
model whose mean training loss over the epoch just ended is below the threshold stops; its budget
is cut to the steps it has taken, so a stack's other models go on. The planner plans a run that
can stop early for its earliest stop (``earliest_stop``; ``sweep_plan.planning_steps``).
"""

from __future__ import annotations

import numpy as np

from jaxscale.devices import place, to_host


def _epoch_mean_losses(train_losses: np.ndarray, start: int, end: int) -> np.ndarray:
    window = train_losses[start:end]
    counts = np.sum(np.isfinite(window), axis=0)
    sums = np.sum(np.where(np.isfinite(window), window, 0.0), axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)


def earliest_stop(total: int, rule: tuple[int, float], epoch_steps: int) -> int:
    """The first step at which the early-stopping ``rule`` (``RunSettings.early_stop``) can end a
    run of ``total`` steps with epochs of ``epoch_steps``: the end of epoch index ``rule[0] + 1``
    (``apply_early_stop``), or ``total`` when that is sooner."""
    if not isinstance(epoch_steps, int) or epoch_steps <= 0:
        raise ValueError(f"earliest_stop: `epoch_steps` must be a positive int, got {epoch_steps!r}")
    return min(total, _first_stop(rule, epoch_steps))


def _first_stop(rule: tuple[int, float], epoch_steps: int) -> int:
    """The first epoch end at which ``rule`` may stop a model: after epoch index ``rule[0]``."""
    return (rule[0] + 2) * epoch_steps


def apply_early_stop(hyper, train_losses, step, epoch_steps, rule, k, val_points, evaluate, mesh, stacked):
    """The notebook's rule: after epoch index > ``rule[0]``, a model whose mean training loss over
    the epoch is below ``rule[1]`` stops (its budget is cut to the steps it has taken);
    ``evaluate()`` gives every model's validation loss now, recorded at the stop."""
    threshold = rule[1]
    if step < _first_stop(rule, epoch_steps):  # called at epoch ends only
        return hyper
    means = _epoch_mean_losses(train_losses, step - epoch_steps, step)
    ends = np.asarray(to_host(hyper.total_steps)).reshape(k).copy()
    stop = (means < threshold) & (ends > step)
    if not stop.any():
        return hyper
    vals = evaluate()
    for i in np.nonzero(stop)[0]:
        ends[i] = step
        if not val_points[i] or val_points[i][-1][0] != step:
            val_points[i].append((step, float(vals[i])))
    new = ends.reshape(np.shape(hyper.total_steps)).astype(np.int32)
    return hyper._replace(total_steps=place(new, mesh, stacked=stacked))
