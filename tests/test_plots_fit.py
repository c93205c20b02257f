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
