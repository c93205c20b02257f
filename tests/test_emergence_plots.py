"""The emergence figures are written from fit results (smoke tests: files exist and are PNGs)."""

import numpy as np

from jaxscale.fit.emergence import backtest, fit_sigmoid
from jaxscale.metrics import wilson_interval
from jaxscale.plots.emergence import plot_em_vs_loss, plot_forecast, plot_metrics_vs_scale


def test_metric_loss_and_forecast_figures(tmp_path):
    rng = np.random.default_rng(0)
    scale = np.repeat(np.logspace(3, 7, 9), 3)
    loss = 6 * (scale / 1e4) ** -0.5
    n = np.full(scale.size, 1000.0)
    s = rng.binomial(1000, np.exp(-loss)).astype(float)
    em = s / n
    lo, hi = wilson_interval(s, n)
    fit = fit_sigmoid(scale, s, n, kind="gompertz", n_boot=200)
    paths = [
        plot_metrics_vs_scale(scale, {"exact match": (em, lo, hi), "answer NLL": (loss, None,
                              None)}, tmp_path / "m.png", fits={"exact match": [fit]},
                              log_y=("answer NLL",)),
        plot_em_vs_loss(loss, em, tmp_path / "l.png", link=fit_sigmoid(
            loss, s, n, kind="gompertz", decreasing=True, n_boot=0), scale=scale),
        plot_forecast(scale, em, backtest(scale, loss, s, n, n_holdout=3, n_boot=200),
                      tmp_path / "f.png"),
    ]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
