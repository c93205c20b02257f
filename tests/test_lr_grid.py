"""Learning-rate grids: a selection at an end of the rates tried is reported, a bracketed one is not."""

import pytest

from jaxscale.lr_grid import lr_edge_note, lr_grid_edges


def _row(name, lr, val, seed=0, tokens=1000, diverged=False):
    return {"name": name, "lr": lr, "val_loss": None if diverged else val, "seed": seed, "steps": 10,
            "budget": {"kind": "tokens", "value": tokens}, "diverged": diverged}


def _grid(name, losses, tokens=1000):
    return [_row(name, lr, v, seed, tokens) for lr, v in losses.items() for seed in (0, 1)]


def test_bracketed_selection_is_not_reported():
    rows = _grid("f/a", {1e-3: 2.0, 3e-3: 1.8, 1e-2: 1.9})
    assert lr_grid_edges(rows) == ([], 1)
    assert lr_edge_note(rows) == ""


def test_ends_of_the_grid_are_reported_per_size_and_budget():
    rows = (_grid("f/small", {1e-3: 2.0, 3e-3: 1.9, 1e-2: 1.7})          # largest wins
            + _grid("f/big", {1e-3: 1.2, 3e-3: 1.3, 1e-2: 1.5})          # smallest wins
            + _grid("f/big", {1e-3: 1.4, 3e-3: 1.1, 1e-2: 1.5}, tokens=5000)  # bracketed at another budget
            + _grid("f/mid", {1e-3: 1.6, 3e-3: 1.5, 1e-2: 1.55}))
    edges, groups = lr_grid_edges(rows)
    assert groups == 4
    assert sorted((e["name"], e["edge"], e["lr"]) for e in edges) == [
        ("f/big", "smallest", 1e-3), ("f/small", "largest", 1e-2)]
    note = lr_edge_note(rows)
    assert "largest rate tried for 1 of 4 choices (small)" in note
    assert "smallest rate tried for 1 of 4 choices (big)" in note
    assert "does not bracket" in note


def test_two_rates_cannot_bracket_and_the_note_says_so():
    rows = _grid("f/a", {1e-3: 2.0, 1e-2: 1.9}) + _grid("f/b", {1e-3: 1.5, 1e-2: 1.6})
    note = lr_edge_note(rows)
    assert note.startswith("Learning-rate grid: two rates per choice cannot bracket")
    assert "largest rate tried for 1 of 2 choices (a)" in note and "smallest rate tried for 1 of 2 choices (b)" in note


def test_a_diverged_rate_brackets_the_optimum_and_single_rates_need_no_choice():
    # the 1e-2 runs diverged: 3e-3 is selected, and the optimum lies below 1e-2, so it is bracketed
    # (a diverged rate must not be proposed again as "the next rate out")
    from jaxscale.lr_grid import rates_beyond

    diverged = [_row("f/a", 1e-2, None, seed, diverged=True) for seed in (0, 1)]
    rows = _grid("f/a", {1e-3: 2.0, 3e-3: 1.8}) + diverged + _grid("f/solo", {1e-3: 2.0})
    assert lr_grid_edges(rows) == ([], 1)
    assert lr_edge_note(rows) == "" and rates_beyond(rows, 2.5) == []
    # the other side stays open: with 1e-3 selected below a diverged 3e-3, step down
    rows = _grid("f/b", {1e-3: 2.0}) + [_row("f/b", 3e-3, None, seed, diverged=True) for seed in (0, 1)]
    assert [(e["edge"], e["tried"]) for e in lr_grid_edges(rows)[0]] == [("smallest", [1e-3, 3e-3])]
    assert rates_beyond(rows, 2.5) == [("f/b", 4e-4)]


def test_rates_beyond_step_out_of_the_grid_by_the_factor():
    from jaxscale.lr_grid import rates_beyond

    rows = (_grid("f/small", {1e-3: 2.0, 4e-3: 1.7})
            + _grid("f/big", {1e-3: 1.2, 4e-3: 1.3})
            + _grid("f/mid", {1e-3: 1.6, 2e-3: 1.5, 4e-3: 1.55}))
    assert rates_beyond(rows, 2.5) == [("f/small", 1e-2), ("f/big", 4e-4)]
    with pytest.raises(ValueError, match="factor must be > 1"):
        rates_beyond(rows, 1.0)
