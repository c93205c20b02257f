"""The emergence figures are written from fit results (smoke tests: files exist and are PNGs)."""

from pathlib import Path

import numpy as np

from jaxscale.fit.emergence import backtest, fit_sigmoid
from jaxscale.metrics import wilson_interval
from jaxscale.plots.emergence import plot_em_vs_loss, plot_forecast, plot_metrics_vs_scale


def _points():
    """(scale, answer loss, successes, trials): 9 sizes x 3 seeds, EM = exp(-loss)."""
    rng = np.random.default_rng(0)
    scale = np.repeat(np.logspace(3, 7, 9), 3)
    loss = 6 * (scale / 1e4) ** -0.5
    n = np.full(scale.size, 1000.0)
    return scale, loss, rng.binomial(1000, np.exp(-loss)).astype(float), n


def test_metric_loss_and_forecast_figures(tmp_path):
    scale, loss, s, n = _points()
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


def test_every_study_figure_names_the_studys_scale_axis(tmp_path, monkeypatch):
    """forecast.png said "parameters" whatever the study's scale axis, while
    metrics_vs_size.png beside it said "flops" for ``jaxscale emergence --scale-axis flops``."""
    import jaxscale.plots.emergence as plots
    from jaxscale.emergence_report import write_figures

    xlabels, save = {}, plots._save

    def record(fig, path):
        xlabels[Path(path).name] = {ax.get_xlabel() for ax in fig.axes if ax.get_visible()}
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", record)
    scale, loss, s, n = _points()
    em = s / n
    lo, hi = wilson_interval(s, n)
    pts = {"scale": scale, "exact_match": em, "exact_match_lo": lo, "exact_match_hi": hi,
           "answer_nll_per_token": loss / 2, "answer_log_likelihood": -loss,
           "edit_distance": 1 - np.exp(-loss / 2), "answer_probability": em}
    analysis = {"points": pts, "series": {}, "forecast": None, "as_json": {"scale_axis": "flops"},
                "backtest": backtest(scale, loss, s, n, n_holdout=3, n_boot=0)}
    paths = write_figures(analysis, tmp_path)
    assert [p.name for p in paths] == ["metrics_vs_size.png", "em_vs_loss.png", "forecast.png"]
    assert xlabels["metrics_vs_size.png"] == xlabels["forecast.png"] == {"flops"}
    plot_forecast(scale, em, analysis["backtest"], tmp_path / "default.png")
    assert xlabels["default.png"] == {"parameters"}  # the default, for a study in parameters
