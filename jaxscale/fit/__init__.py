"""Fits of scaling laws: pure functions of arrays returning frozen results.

* :func:`fit_power_law`, :func:`fit_compute_law`, :func:`backtest_power_law` — L = A·N^-α + B
  and L = E + k·C^-γ, with bootstrap intervals.
* :func:`fit_approach1`, :func:`fit_approach2`, :func:`fit_approach3` — Chinchilla (Hoffmann et al.
  2022); :func:`surface_isoflop_optima` is Approach 2's unbiased alternative.
* :func:`chinchilla_optimal_allocation`, :func:`allocation_from_law`, :func:`allocation_table`.
* :func:`load_source`, :func:`load_csv`, :func:`rows_to_data` — data in.
"""

from jaxscale.fit._optim import Estimate
from jaxscale.fit.allocation import (
    HOFFMANN_2022, Allocation, ChinchillaLaw, allocation_from_law, allocation_table,
    chinchilla_optimal_allocation, law_from_json, load_law,
)
from jaxscale.fit.chinchilla import Approach3Fit, ConvergenceWarning, NoFrontierWarning, fit_approach3, hoffmann_grid
from jaxscale.fit.chinchilla_optima import (
    AllocationFit, IntermediatePointsWarning, IsoFLOPGridWarning, fit_approach1, fit_approach2,
    group_isoflops, surface_isoflop_optima,
)
from jaxscale.fit.power_law import (
    BacktestResult, ExtrapolationWarning, NoDecreaseWarning, PowerLawFit, backtest_power_law, fit_compute_law,
    fit_power_law,
)
from jaxscale.fit.sizes import SIZE_RTOL
from jaxscale.fit.sources import (
    DivergedRowsWarning, DuplicateRunsWarning, FitData, load_csv, load_source, rows_to_data,
)

__all__ = [
    "Estimate", "HOFFMANN_2022", "Allocation", "ChinchillaLaw", "allocation_from_law",
    "allocation_table", "chinchilla_optimal_allocation", "law_from_json", "load_law",
    "AllocationFit", "Approach3Fit", "ConvergenceWarning", "NoFrontierWarning", "IntermediatePointsWarning",
    "IsoFLOPGridWarning", "fit_approach1", "fit_approach2", "fit_approach3", "group_isoflops",
    "hoffmann_grid", "surface_isoflop_optima", "BacktestResult", "ExtrapolationWarning",
    "PowerLawFit", "NoDecreaseWarning", "backtest_power_law", "fit_compute_law", "fit_power_law", "SIZE_RTOL",
    "DivergedRowsWarning", "DuplicateRunsWarning", "FitData", "load_csv", "load_source", "rows_to_data",
]
