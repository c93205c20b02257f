"""Compute-optimal allocation (numpy float64): C = 6·N·D, Hoffmann et al. 2022 closed form."""

import json

import numpy as np
import pytest

from jaxscale.fit import (HOFFMANN_2022, ChinchillaLaw, allocation_from_law, allocation_table,
                          chinchilla_optimal_allocation, law_from_json, load_law)

BUDGETS = np.geomspace(1e15, 1e27, 49)


def test_rule_of_thumb_satisfies_c_equals_6nd():
    N, D = chinchilla_optimal_allocation(BUDGETS)
    assert N.dtype == np.float64
    assert np.allclose(6 * N * D / BUDGETS, 1.0, rtol=0, atol=1e-9)
    assert np.allclose(D / N, 20.0, rtol=1e-12)
    assert np.allclose(N, np.sqrt(BUDGETS / 120.0), rtol=1e-12)
    # not the circulating N = 0.6*C^0.5, D = 20*C^0.5, which is off by 72x
    assert not np.allclose(N, 0.6 * np.sqrt(BUDGETS), rtol=0.5)


def test_rule_of_thumb_other_ratio_and_scalar():
    N, D = chinchilla_optimal_allocation(1e21, tokens_per_param=25)
    assert isinstance(N, float)
    assert 6 * N * D == pytest.approx(1e21, rel=1e-12)
    assert D / N == pytest.approx(25)


def test_t1_closed_form():
    # T1: unrounded parameters at C = 5.76e23 -> N_opt ~ 4.04e10, D_opt ~ 2.38e12, G ~ 1.3000
    law = HOFFMANN_2022
    assert law.G == pytest.approx(1.3000, abs=1e-4)
    assert law.n_opt(5.76e23) == pytest.approx(4.04e10, rel=5e-3)
    assert law.d_opt(5.76e23) == pytest.approx(2.38e12, rel=5e-3)


def test_fitted_law_allocation_satisfies_c_equals_6nd_and_exponent():
    N, D = allocation_from_law(BUDGETS, HOFFMANN_2022)
    assert np.allclose(6 * N * D / BUDGETS, 1.0, rtol=0, atol=1e-9)
    slope_n = np.polyfit(np.log(BUDGETS), np.log(N), 1)[0]
    slope_d = np.polyfit(np.log(BUDGETS), np.log(D), 1)[0]
    a = HOFFMANN_2022.beta / (HOFFMANN_2022.alpha + HOFFMANN_2022.beta)
    assert slope_n == pytest.approx(a, abs=1e-9)
    assert slope_d == pytest.approx(1 - a, abs=1e-9)
    assert np.allclose(D, (BUDGETS / 6) ** HOFFMANN_2022.b / HOFFMANN_2022.G, rtol=1e-9)


def test_law_allocation_minimises_loss_on_the_contour():
    C = 1e22
    n, d = allocation_from_law(C, HOFFMANN_2022)
    for f in (0.9, 1.1):
        assert HOFFMANN_2022.loss(n * f, C / (6 * n * f)) > HOFFMANN_2022.loss(n, d)


def test_table_and_json_roundtrip(tmp_path):
    rows = allocation_table([1e20, 1e21], law=HOFFMANN_2022)
    assert [r["compute"] for r in rows] == [1e20, 1e21]
    assert all({"params", "tokens", "tokens_per_param", "loss"} <= set(r) for r in rows)
    path = tmp_path / "fit.json"
    path.write_text(json.dumps({"approach3": {"E": {"value": 1.6933737, "ci95": [1.6, 1.8]},
                                              "A": 406.401, "B": 410.723,
                                              "alpha": 0.33917084, "beta": 0.2849083}}))
    assert load_law(path) == HOFFMANN_2022
    assert law_from_json(HOFFMANN_2022.to_json()) == HOFFMANN_2022


@pytest.mark.parametrize("call, match", [
    (lambda: chinchilla_optimal_allocation(-1.0), "compute"),
    (lambda: chinchilla_optimal_allocation(float("nan")), "compute"),
    (lambda: chinchilla_optimal_allocation(1e21, tokens_per_param=0), "tokens_per_param"),
    (lambda: ChinchillaLaw(E=1.7, A=-1.0, B=400, alpha=0.3, beta=0.3), "A"),
    (lambda: law_from_json({"approach3": {"E": 1.7}}), "'A'"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_load_law_names_the_file_of_bad_input(tmp_path):
    folder = tmp_path / "fits"
    folder.mkdir()
    with pytest.raises(ValueError, match=r"fit file '.*fits' is a folder; a JSON file is expected"):
        load_law(folder)  # was "[Errno 21] Is a directory" (exit 1)
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match=r"fit file '.*bin.json': not UTF-8 text \(byte 0\)"):
        load_law(binary)  # was "'utf-8' codec can't decode byte 0xff", no file named
    failed = tmp_path / "all.json"  # `fit chinchilla --approach all` whose Approach 3 failed
    failed.write_text(json.dumps({"approach3": {"error": "too few points"}, "approach2": {"a": 0.5}}))
    with pytest.raises(ValueError, match=r"fit file '.*all.json': Approach 3 was not fitted \(too few points\)"):
        load_law(failed)  # was "approach-3 entry lacks 'E'"
    negative = tmp_path / "neg.json"
    negative.write_text(json.dumps({"approach3": {"E": 1.7, "A": 400, "B": 400, "alpha": -0.3, "beta": 0.3}}))
    with pytest.raises(ValueError, match=r"^fit file '.*neg.json': alpha: must be > 0, got -0.3$"):
        load_law(negative)  # was "alpha: must be > 0", no file named
