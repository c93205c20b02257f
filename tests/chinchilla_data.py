"""Synthetic Chinchilla data shared by the Approach 1-3 tests (not a test module)."""

import numpy as np

from jaxscale.fit import HOFFMANN_2022


def isoflop_data(law, budgets, span=16.0, n=15, centre_shift=1.0):
    Ns, Ds, Ls = [], [], []
    for C in budgets:
        n_grid = law.n_opt(C) * centre_shift * np.geomspace(1 / span, span, n)
        d = C / (6 * n_grid)
        Ns += list(n_grid)
        Ds += list(d)
        Ls += list(law.loss(n_grid, d))
    return np.array(Ns), np.array(Ds), np.array(Ls)


def isoflop_single_runs(budgets=np.geomspace(1e17, 1e21, 5), n=21, span=10.0):
    """IsoFLOP-style data: every size run once (a size of its own per budget), ±span around the
    true N_opt, so each budget's best run is its true optimum."""
    return isoflop_data(HOFFMANN_2022, budgets, span=span, n=n)
