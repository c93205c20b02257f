"""IsoFLOP grid edges (jaxscale/isoflop_grid.py): which budgets' minima sit at an end of their
sizes, and the family's next size out to train there."""

import pytest

from jaxscale.config import create_model_config
from jaxscale.isoflop_grid import budget_of, family_order, isoflop_edges, isoflop_extension_note, sizes_beyond

ORDER = family_order("ladder")
BUDGETS = (6e10, 1.5e11, 4e11)


def _row(size, budget, val, seed=0, diverged=False, lr=1e-2):
    name = f"ladder/{size}"
    n = create_model_config(name).param_counts().total
    return {"name": name, "params": n, "tokens": budget / (6.0 * n), "val_loss": val, "seed": seed,
            "diverged": diverged, "lr": lr}


def _grid(losses_by_budget):
    return [_row(size, b, v) for b, losses in losses_by_budget.items() for size, v in losses.items()]


def test_budget_of_matches_within_tolerance_only():
    r = _row("l3", 1.5e11, 2.0)
    assert budget_of(r, BUDGETS) == 1.5e11
    assert budget_of({**r, "tokens": r["tokens"] * 1.3}, BUDGETS) is None
    # the tokens asked for decide, not the whole steps trained (which round up)
    asked = {**r, "budget": {"kind": "tokens", "value": r["tokens"]}, "tokens": r["tokens"] * 1.3}
    assert budget_of(asked, BUDGETS) == 1.5e11


def test_edges_and_the_next_size_out():
    rows = _grid({6e10: {"l2": 2.10, "l3": 2.20, "l4": 2.30},      # minimum at the small end
                  1.5e11: {"l2": 2.05, "l3": 1.98, "l4": 2.00},    # bracketed
                  4e11: {"l2": 1.95, "l3": 1.90, "l4": 1.80}})     # minimum at the large end
    edges = isoflop_edges(rows, BUDGETS, ORDER)
    assert [(e["budget"], e["name"], e["edge"], e["next"]) for e in edges] == [
        (6e10, "ladder/l2", "smallest", "ladder/l1"), (4e11, "ladder/l4", "largest", "ladder/l5")]
    assert edges[0]["tried"] == ["ladder/l2", "ladder/l3", "ladder/l4"]
    assert sizes_beyond(rows, BUDGETS, ORDER) == [(6e10, "ladder/l1"), (4e11, "ladder/l5")]


def test_seed_means_decide_and_diverged_runs_do_not_count():
    rows = _grid({6e10: {"l2": 2.0, "l3": 2.1, "l4": 2.2}})
    # a second seed of l3 pulls its mean below l2's: bracketed; a diverged l2 run is ignored
    rows += [_row("l3", 6e10, 1.7, seed=1), _row("l2", 6e10, 0.1, seed=1, diverged=True)]
    assert isoflop_edges(rows, BUDGETS, ORDER) == []


def test_each_point_stands_at_its_best_learning_rate():
    """A grid of rates per point: a poor rate of l3 must not make l2 look like the minimum."""
    rows = _grid({6e10: {"l2": 2.0, "l3": 1.9, "l4": 2.2}})
    rows += [_row("l3", 6e10, 3.5, lr=1e-1), _row("l3", 6e10, 3.4, lr=1e-1, seed=1)]
    assert isoflop_edges(rows, BUDGETS, ORDER) == []
    rows += [_row("l2", 6e10, 1.5, lr=3e-3)]  # now l2's best rate wins: an edge
    assert sizes_beyond(rows, BUDGETS, ORDER) == [(6e10, "ladder/l1")]


def test_the_family_end_and_thin_budgets():
    first, second, third = (n.split("/")[1] for n in ORDER[:3])
    rows = _grid({6e10: {first: 1.0, second: 2.0, third: 3.0},      # at the family's smallest size
                  1.5e11: {"l4": 1.0, "l5": 2.0}})                  # two sizes: no parabola, no verdict
    edges = isoflop_edges(rows, BUDGETS, ORDER)
    assert [(e["budget"], e["next"]) for e in edges] == [(6e10, None)]
    assert sizes_beyond(rows, BUDGETS, ORDER) == []


def test_unknown_models_are_refused():
    rows = _grid({6e10: {"l2": 2.0, "l3": 2.1, "l4": 2.2}})
    with pytest.raises(ValueError, match="not in family_order"):
        isoflop_edges(rows, BUDGETS, ORDER[3:])


def test_extension_note_names_additions_and_remaining_edges():
    rows = _grid({6e10: {"l1": 2.0, "l2": 2.1, "l3": 2.2, "l4": 2.3},
                  1.5e11: {"l2": 2.05, "l3": 1.98, "l4": 2.00}})
    note = isoflop_extension_note(rows, BUDGETS, ORDER, ("l2", "l3", "l4"))
    assert "l1 at 6.0e+10" in note and "Still at an edge: 6.0e+10 (l1, its smallest size, the family's end)" in note
    assert isoflop_extension_note(_grid({1.5e11: {"l2": 2.05, "l3": 1.98, "l4": 2.0}}), BUDGETS, ORDER,
                                  ("l2", "l3", "l4")) == ""


def test_extension_note_explains_a_test_split_edge_that_validation_does_not_show():
    """Validation (which decides extensions) brackets the minimum, the test split (which the fits
    use) puts it at an edge: the note says so, with the profile's spread; when the splits agree
    it says nothing of the kind."""
    rows = _grid({1.5e11: {"l2": 2.05, "l3": 1.98, "l4": 2.00}})
    for r, test in zip(rows, (1.97, 1.99, 1.98)):
        r["test_loss"] = test
    note = isoflop_extension_note(rows, BUDGETS, ORDER, ("l2", "l3", "l4"))
    assert note.startswith("On the test split, which the fits use, the lowest loss is at an edge at 1.5e+11 "
                           "(l2; validation's lowest is l3, whose test loss is 0.020 nats higher)"), note
    for r, test in zip(rows, (1.99, 1.97, 1.98)):
        r["test_loss"] = test
    assert isoflop_extension_note(rows, BUDGETS, ORDER, ("l2", "l3", "l4")) == ""


def test_the_test_split_note_reads_each_point_at_the_rate_validation_chose():
    """The fits take each point's test loss at the rate chosen on validation: a rate that
    validation rejects must not put the test split's minimum at an edge in the note."""
    rows = _grid({1.5e11: {"l2": 2.05, "l3": 1.98, "l4": 2.00}})
    for r, test in zip(rows, (2.90, 2.80, 2.90)):
        r["test_loss"] = test
    rows.append({**_row("l2", 1.5e11, 2.30, lr=1e-1), "test_loss": 2.70})  # rejected on validation
    assert isoflop_extension_note(rows, BUDGETS, ORDER, ("l2", "l3", "l4")) == ""
