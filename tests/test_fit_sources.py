"""How result rows become fit points: the learning-rate choice when some seeds diverged."""

import pytest

from jaxscale.fit import DivergedRowsWarning
from jaxscale.fit.sources import rows_to_data


def _row(lr, seed, loss, diverged=False):
    return {"run_id": f"s-{lr}-{seed}", "name": "s", "config": {}, "params": 1.2e4,
            "non_embedding_params": 1e4, "seed": seed, "lr": lr, "batch_size": 8, "seq_len": 64,
            "steps": 100, "tokens": 1e6, "flops": 6e10, "val_loss": loss, "test_loss": loss,
            "diverged": diverged, "corpus": {"name": "t", "fingerprint": "x"}}


def test_a_rate_that_lost_a_seed_does_not_win_on_its_survivor():
    # lr 1e-2: seed 0 diverged, seed 1 survived with the lowest loss of all (a lucky survivor);
    # lr 1e-3 kept both seeds. Ranking by the survivors' mean alone picked the unstable rate.
    rows = [_row(1e-3, 0, 3.0), _row(1e-3, 1, 3.2),
            _row(1e-2, 0, float("nan"), diverged=True), _row(1e-2, 1, 2.5)]
    with pytest.warns(DivergedRowsWarning):
        data = rows_to_data(rows)
    assert data.loss.tolist() == [pytest.approx(3.1)]
    assert any("1 learning rate(s) whose surviving seeds scored best were passed over" in n
               for n in data.notes)


def test_when_every_rate_lost_a_seed_the_survivors_still_decide():
    rows = [_row(1e-3, 0, float("nan"), diverged=True), _row(1e-3, 1, 3.2),
            _row(1e-2, 0, float("nan"), diverged=True), _row(1e-2, 1, 2.5)]
    with pytest.warns(DivergedRowsWarning):
        data = rows_to_data(rows)
    assert data.loss.tolist() == [2.5]
    assert not any("passed over" in n for n in data.notes)
