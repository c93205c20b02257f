"""Chinchilla figures: IsoFLOP profiles with their parabolas, N_opt and D_opt against compute
with fits and 95% bands, and loss contours in (N, D) with the efficient frontier."""

from __future__ import annotations

import numpy as np

from jaxscale.plots._common import plt, save

__all__ = ["plot_isoflops", "plot_optimal_allocation", "plot_loss_contours"]


def plot_isoflops(fit2, N, D, loss, path=None, *, labels=None, title: str | None = None):
    """Loss against N for each IsoFLOP budget of an Approach-2 fit, its parabola in log N and
    the vertex (N_opt)."""
    N, D, loss = (np.asarray(v, np.float64) for v in (N, D, loss))
    fig, ax = plt.subplots(figsize=(8, 6))
    cmap = plt.get_cmap("viridis")
    k = max(len(fit2.isoflop_groups), 1)
    for i, (idx, coef, c) in enumerate(zip(fit2.isoflop_groups, fit2.parabolas, fit2.budgets)):
        col = cmap(i / max(k - 1, 1))
        ax.scatter(N[idx], loss[idx], color=col, s=18, label=f"C = {c:.2g} FLOPs")
        g = np.linspace(np.log(N[idx]).min(), np.log(N[idx]).max(), 100)
        ax.plot(np.exp(g), np.polyval(coef, g), color=col, lw=1)
        ax.scatter([fit2.n_opt_points[i]], [fit2.loss_opt_points[i]], color=col, marker="*",
                   s=120, edgecolor="k", zorder=4)
        if labels is not None:
            for j in idx:
                ax.annotate(str(labels[j]), (N[j], loss[j]), textcoords="offset points",
                            xytext=(3, 3), fontsize=6)
    ax.set_xscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title or f"IsoFLOP profiles (Approach 2): N_opt ∝ C^{fit2.a.value:.3f}  "
                          "(★ parabola minimum)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig if path is None else save(fig, path)


def plot_optimal_allocation(fits: dict, path=None, *, budgets=None, title: str | None = None):
    """N_opt(C) and D_opt(C) for each fitted approach ({'1': AllocationFit, '2': ..., '3':
    Approach3Fit}) with its fitted line and 95% band, and the per-budget optima as points."""
    # the compute the fits saw: Approaches 1 and 2's budgets, or Approach 3's runs (C = 6·N·D);
    # a fixed 1e17-1e25 range put Approach 3 alone 8-16 decades beyond its data, with no points
    cs = [getattr(f, "budgets", None) for f in fits.values()]
    cs += [6.0 * np.asarray(f.N) * np.asarray(f.D) for f in fits.values() if getattr(f, "budgets", None) is None
           and getattr(f, "N", None) is not None and getattr(f, "D", None) is not None]
    cs = [np.asarray(c, np.float64) for c in cs if c is not None and len(c)]
    if budgets is None:
        if cs:
            lo = min(c.min() for c in cs) / 10
            hi = max(c.max() for c in cs) * 100
        else:
            lo, hi = 1e17, 1e25
        budgets = np.geomspace(lo, hi, 100)
    C = np.asarray(budgets, np.float64)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for ap, fit in sorted(fits.items()):
        col = f"C{int(ap) - 1}"
        for ax, tokens in ((axes[0], False), (axes[1], True)):
            val, lo, hi = fit.d_opt_band(C) if tokens else fit.n_opt_band(C)
            exp = (fit.b if tokens else fit.a).value
            ax.plot(C, val, color=col, label=f"Approach {ap}: ∝ C^{exp:.3f}")
            ax.fill_between(C, lo, hi, color=col, alpha=0.15)
            pts = getattr(fit, "d_opt_points" if tokens else "n_opt_points", None)
            if pts is not None:
                ax.scatter(fit.budgets, pts, color=col, s=15, zorder=3)
    for ax, what in ((axes[0], "parameters N_opt"), (axes[1], "tokens D_opt")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training compute C (FLOPs)")
        ax.set_ylabel(f"compute-optimal {what}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title("N_opt(C) with 95% bands")
    axes[1].set_title("D_opt(C) with 95% bands")
    fig.suptitle(title or "Compute-optimal allocation, C = 6·N·D")
    fig.tight_layout()
    return fig if path is None else save(fig, path)


def plot_loss_contours(fit3, path=None, *, title: str | None = None, levels: int = 20):
    """Contours of the fitted L(N, D) over the data's range, the data coloured by loss, the
    efficient frontier N_opt(C), D_opt(C) and a few IsoFLOP lines."""
    N, D = fit3.N, fit3.D
    n_grid = np.geomspace(N.min() / 3, N.max() * 3, 150)
    d_grid = np.geomspace(D.min() / 3, D.max() * 3, 150)
    NN, DD = np.meshgrid(n_grid, d_grid)
    LL = fit3.predict(NN, DD)
    fig, ax = plt.subplots(figsize=(8, 6.5))
    cs = ax.contourf(NN, DD, np.log(LL), levels=levels, cmap="magma_r", alpha=0.85)
    cb = fig.colorbar(cs, ax=ax)
    cb.set_label("log fitted loss (log nats/token)")
    ax.scatter(N, D, c=np.log(fit3.loss), cmap="magma_r", edgecolor="w", s=16,
               vmin=cs.levels[0], vmax=cs.levels[-1], label="runs")
    c_lo = 6 * N.min() * D.min()
    c_hi = 6 * N.max() * D.max()
    C = np.geomspace(c_lo, c_hi, 100)
    ax.plot(fit3.n_opt(C), fit3.d_opt(C), color="c", lw=2.5,
            label=f"efficient frontier N_opt ∝ C^{fit3.a.value:.3f}")
    for c in np.geomspace(c_lo, c_hi, 5)[1:-1]:
        ax.plot(n_grid, c / (6 * n_grid), color="w", ls="--", lw=0.8)
        ax.annotate(f"C={c:.1g}", (fit3.n_opt(c), fit3.d_opt(c)), color="w", fontsize=7,
                    textcoords="offset points", xytext=(5, 5))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(n_grid[0], n_grid[-1])
    ax.set_ylim(d_grid[0], d_grid[-1])
    ax.set_xlabel("parameters N")
    ax.set_ylabel("training tokens D")
    ax.set_title(title or f"Approach 3: L = {fit3.E.value:.3f} + {fit3.A.value:.4g}/N^"
                          f"{fit3.alpha.value:.3f} + {fit3.B.value:.4g}/D^{fit3.beta.value:.3f}")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig if path is None else save(fig, path)
