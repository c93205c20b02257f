"""The notebook's power-law panel set, from a :class:`~jaxscale.fit.PowerLawFit`."""

from __future__ import annotations

import warnings

import numpy as np

from jaxscale.plots._common import plt, save

__all__ = ["plot_power_law"]

#: the log-log panel draws the floor only when it is at least this share of the smallest loss
FLOOR_SHOWN_FRACTION = 1e-2


def plot_power_law(fit, path=None, *, backtest=None, title: str | None = None,
                   factors=(2, 5, 10, 100, 1000)):
    """Four panels: log-log fit with its 95% band (and backtest points), the same on linear
    axes, the "k× more parameters → % lower loss" bars, and log-space residuals. Points are
    labelled by size name when the fit has labels. Returns the saved path (or the figure when
    ``path`` is None)."""
    from jaxscale.fit.power_law import ExtrapolationWarning
    compute = fit.form == "compute"
    xname = "training compute C (FLOPs)" if compute else "parameters N"
    sym = ("k", "γ", "E") if compute else ("A", "α", "B")
    x, y = fit.x, fit.y
    lo_x = x.min() / 1.5
    hi_x = x.max() * 1.5
    if backtest is not None:
        hi_x = max(hi_x, backtest.x_held.max() * 1.5)
    grid = np.geomspace(lo_x, hi_x, 200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        pred, band_lo, band_hi = fit.predict(grid, band=True)
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    law = (f"L = {fit.A.value:.4g}·{'C' if compute else 'N'}^-{fit.alpha.value:.4f} "
           f"+ {fit.B.value:.4f}")
    fig.suptitle(title or f"Power law fit: {law}  (R² log-loss {fit.r2_log:.4f}, n={fit.n})")

    # A floor far below the data (a fit that puts B at ~0, as small ladders do) is left off the
    # log-log panel: drawn at ~1e-12, it stretched the axis over twelve decades and flattened
    # the data into one line. The legend says so instead.
    floor_on_log = fit.B.value >= FLOOR_SHOWN_FRACTION * float(np.min(y))

    def draw(ax, log: bool):
        ax.fill_between(grid, band_lo, band_hi, color="C0", alpha=0.2,
                        label=f"95% band ({fit.n_bootstrap} bootstrap)" if fit.n_bootstrap
                        else None)
        ax.plot(grid, pred, color="C0", label=law)
        if floor_on_log or not log:
            ax.axhline(fit.B.value, color="grey", ls=":", label=f"irreducible {sym[2]}")
        else:
            ax.plot([], [], " ", label=f"irreducible {sym[2]} = {fit.B.value:.2g} (off the axis)")
        ax.scatter(x, y, color="C3", zorder=3, label="fitted points")
        if backtest is not None:
            ax.scatter(backtest.x_held, backtest.y_held, marker="s", facecolor="none",
                       edgecolor="k", zorder=3, label="held out (backtest)")
            ax.scatter(backtest.x_held, backtest.predicted, marker="x", color="k", zorder=3,
                       label="backtest prediction")
        if fit.labels:
            for xi, yi, lab in zip(x, y, fit.labels):
                ax.annotate(lab, (xi, yi), textcoords="offset points", xytext=(4, 4),
                            fontsize=7)
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlabel(xname)
        ax.set_ylabel("loss (nats/token)")
        ax.grid(True, which="both", alpha=0.3)

    draw(axes[0, 0], True)
    axes[0, 0].set_title("log-log view")
    axes[0, 0].legend(fontsize=7)
    draw(axes[0, 1], False)
    axes[0, 1].set_xscale("log")
    axes[0, 1].set_title("linear loss axis (log x)")

    imp = fit.improvement(factors)
    ax = axes[1, 0]
    labels = [f"{k:g}×" for k in imp]
    totals = [v["total_pct"] for v in imp.values()]
    reduc = [v["reducible_pct"] for v in imp.values()]
    pos = np.arange(len(labels))
    ax.bar(pos - 0.2, totals, 0.4, label="total loss")
    ax.bar(pos + 0.2, reduc, 0.4, label="reducible part")
    for p, t in zip(pos, totals):
        ax.annotate(f"{t:.1f}%", (p - 0.2, t), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(pos)
    ax.set_xticklabels(labels)
    ax.set_xlabel(f"{'compute' if compute else 'parameters'} multiplier from the largest "
                  f"fitted {'C' if compute else 'N'} = {x.max():.3g}")
    ax.set_ylabel("loss reduction (%)")
    ax.set_title(f"k× more {'compute' if compute else 'parameters'} → % lower loss")
    ax.legend(fontsize=7)

    ax = axes[1, 1]
    ax.axhline(0, color="grey", lw=1)
    ax.scatter(x, fit.residuals, color="C3")
    if fit.labels:
        for xi, ri, lab in zip(x, fit.residuals, fit.labels):
            ax.annotate(lab, (xi, ri), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlim(lo_x, hi_x)  # aligned with the panels above (and no crowded minor-tick labels)
    ax.set_xlabel(xname)
    ax.set_ylabel("residual log L̂ − log L (nats)")
    ax.set_title(f"residuals in log space (RMSE {fit.rmse_log:.3g})")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig if path is None else save(fig, path)
