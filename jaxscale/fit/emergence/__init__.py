"""Emergence analysis: where does a capability appear along a scale axis, how sharply, is the
sharpness in the model or in the metric, and can it be forecast from smaller models?

Pure functions of arrays returning frozen results; no plotting. Modules:

* ``series``   — validation, isotonic smoothing, threshold crossing in log scale, BIG-bench
  breakthroughness and linearity;
* ``verdict``  — the per-task verdict (metric-induced or not), its agreement over seed
  resamples and the sizes whose seeds split;
* ``sigmoid``  — logistic and Gompertz fits by binomial likelihood (midpoint, 10–90% width,
  hierarchical-bootstrap intervals, "not identified");
* ``forecast`` — the two-stage (scale → answer loss → exact match) forecast and its backtest;
* ``table``    — one-series analysis and external score tables (``measure_emergent_ability``);
* ``resample`` — the hierarchical bootstrap (seeds, then examples).
"""

from jaxscale.fit.emergence.forecast import Backtest, Forecast, backtest, forecast_crossing
from jaxscale.fit.emergence.resample import hierarchical_resample
from jaxscale.fit.emergence.series import (
    Crossing, breakthroughness, isotonic_increasing, linearity, sharpness_ratio, threshold_crossing,
)
from jaxscale.fit.emergence.sigmoid import SIGMOID_KINDS, SigmoidFit, fit_sigmoid
from jaxscale.fit.emergence.table import (
    EmergenceReport, ScoreTable, SeriesAnalysis, analyze_score_table, analyze_series,
    measure_emergent_ability, read_score_table,
)
from jaxscale.fit.emergence.verdict import (
    EM_ONLY_VERDICTS, VERDICT_AGREEMENT, VERDICTS, SeedSplit, Verdict, emergence_verdict,
)

__all__ = [
    "Backtest", "Forecast", "backtest", "forecast_crossing", "hierarchical_resample", "VERDICTS",
    "VERDICT_AGREEMENT", "EM_ONLY_VERDICTS", "SeedSplit",
    "Crossing", "Verdict", "breakthroughness", "emergence_verdict", "isotonic_increasing",
    "linearity", "sharpness_ratio", "threshold_crossing", "SIGMOID_KINDS", "SigmoidFit",
    "fit_sigmoid", "EmergenceReport", "ScoreTable", "SeriesAnalysis", "analyze_score_table",
    "analyze_series", "measure_emergent_ability", "read_score_table",
]
