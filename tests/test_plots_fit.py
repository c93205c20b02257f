"""Figures from fits are written as valid PNG files."""

import warnings

import numpy as np

from jaxscale.fit import (HOFFMANN_2022, IsoFLOPGridWarning, backtest_power_law, fit_approach2,
                          fit_power_law)
from jaxscale.fit.chinchilla import AllocationFit, Approach3Fit, fit_approach3

PNG = b"\x89PNG\r\n\x1a\n"


def test_power_law_panels_png(tmp_path):
    from jaxscale.plots.power_law import plot_power_law
    N = np.geomspace(1e5, 1e8, 12)
    y = 400 * N ** -0.34 + 1.7
    fit = fit_power_law(N, y * np.exp(0.01 * np.sin(np.arange(12))), bootstrap=100,
                        labels=[f"m{i}" for i in range(12)])
    bt = backtest_power_law(N, y, holdout=2, bootstrap=0)
    path = plot_power_law(fit, tmp_path / "pl.png", backtest=bt)
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 10_000


def test_power_law_log_panel_keeps_the_data_in_view_when_the_floor_is_zero():
    from jaxscale.plots._common import plt
    from jaxscale.plots.power_law import plot_power_law
    # a small CPU ladder's test losses: they fall faster than a power law with a floor allows,
    # so the fit puts B at ~0
    N = np.array([12784, 16064, 19344, 31456, 44160, 56864, 84544, 112816], dtype=float)
    y = np.array([2.7111, 2.5372, 2.4927, 2.3289, 2.1251, 2.0212, 1.7697, 1.6291])
    fit = fit_power_law(N, y, bootstrap=0)
    assert fit.B.value < 1e-3 * y.min()
    fig = plot_power_law(fit)
    lo, hi = fig.axes[0].get_ylim()
    assert lo > y.min() / 10 and hi < y.max() * 10, (lo, hi)
    assert any("off the axis" in t.get_text() for t in fig.axes[0].get_legend().get_texts())
    plt.close(fig)


def test_chinchilla_figures_png(tmp_path):
    from jaxscale.plots import chinchilla as chp
    N, D = np.meshgrid(np.geomspace(5e7, 1.6e10, 12), np.geomspace(2.5e8, 3e11, 12))
    N, D = N.ravel(), D.ravel()
    fit3 = fit_approach3(N, D, HOFFMANN_2022.loss(N, D))
    assert isinstance(fit3, Approach3Fit)
    Ns, Ds = [], []
    for C in np.geomspace(1e18, 1e21, 4):
        n = HOFFMANN_2022.n_opt(C) * np.geomspace(1 / 4, 4, 9)
        Ns += list(n)
        Ds += list(C / (6 * n))
    Ns, Ds = np.array(Ns), np.array(Ds)
    Ls = HOFFMANN_2022.loss(Ns, Ds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IsoFLOPGridWarning)
        fit2 = fit_approach2(Ns, Ds, Ls)
    assert isinstance(fit2, AllocationFit)
    paths = [chp.plot_isoflops(fit2, Ns, Ds, Ls, tmp_path / "iso.png"),
             chp.plot_optimal_allocation({"2": fit2, "3": fit3}, tmp_path / "opt.png"),
             chp.plot_loss_contours(fit3, tmp_path / "contours.png")]
    for p in paths:
        assert p.read_bytes()[:8] == PNG


def test_allocation_figure_of_approach_3_alone_spans_its_own_data():
    # Approach 3 has no per-budget optima; the figure took a fixed 1e17-1e25 range for it, 8-16
    # decades beyond a small study's data
    from jaxscale.plots import chinchilla as chp
    from jaxscale.plots._common import plt

    N, D = np.meshgrid(np.geomspace(1e4, 1e5, 6), np.geomspace(1e5, 1e7, 6))
    N, D = N.ravel(), D.ravel()
    fit3 = fit_approach3(N, D, HOFFMANN_2022.loss(N, D))
    fig = chp.plot_optimal_allocation({"3": fit3})
    lo, hi = fig.axes[0].get_xlim()
    c = 6 * N * D
    assert lo <= c.min() and hi >= c.max() and hi < c.max() * 1e3, (lo, hi)
    plt.close(fig)
