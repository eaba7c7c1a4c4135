"""One look for every figure in the book.

Colours are the Okabe–Ito palette, which readers with any common form of colour-vision
deficiency can tell apart, and every colour of the cycle comes with its own line style, so
that curves differ in print and in greyscale too. Figures are rendered at twice their
nominal resolution (:data:`HIDPI`): sharp on high-density screens and when zoomed, while the
``<Figure size ...>`` text that strict nbval compares stays what ``figure.dpi`` says.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib
from cycler import cycler

# Okabe & Ito (2008), "Color Universal Design": blue, orange, bluish green, vermillion,
# reddish purple, sky blue, black, grey (their yellow is too light on white; C7 stays a grey).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#7F7F7F")
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1.5)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 2.5)), (0, (6, 2, 1, 2)))
# The inline backend's PNGs are rendered at HIDPI x figure.dpi.
HIDPI = 2

STYLE = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 90,
    "savefig.dpi": 90 * HIDPI,
    "axes.prop_cycle": cycler(color=list(PALETTE)) + cycler(linestyle=list(LINESTYLES)),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "font.size": 10,
    # a fixed hash salt keeps SVG/PNG output byte-stable between runs
    "svg.hashsalt": "lossbook",
}


def apply_style() -> None:
    """Set the book's rcParams, and have Jupyter's inline backend render PNGs at HIDPI x."""
    matplotlib.rcParams.update(STYLE)
    try:
        from matplotlib_inline.backend_inline import InlineBackend
    except ImportError:  # pragma: no cover - outside Jupyter
        return
    # set_matplotlib_formats() (lossbook.book.setup) starts from these keyword arguments;
    # print_figure takes dpi from here instead of fig.dpi, so the figure's repr is unchanged.
    InlineBackend.instance().print_figure_kwargs.update(dpi=STYLE["figure.dpi"] * HIDPI)


def curves(x, ys: Mapping[str, Sequence[float]], *, ax=None, title: str = "", xlabel: str = "", ylabel: str = "",
           logy: bool = False):
    """Plot several named curves over a shared ``x``; return the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    for label, y in ys.items():
        ax.plot(_np(x), _np(y), label=label)
    if logy:
        ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if len(ys) > 1:
        ax.legend()
    return ax


def bars(values: Mapping[str, float], errors: Mapping[str, float] | None = None, *, ax=None, title: str = "",
         ylabel: str = "", reference: float | None = None):
    """A bar chart of named values with optional error bars and a horizontal reference line."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    names = list(values)
    err = [errors[n] for n in names] if errors else None
    ax.bar(names, [values[n] for n in names], yerr=err, capsize=3, color=PALETTE[0], alpha=0.8)
    if reference is not None:
        ax.axhline(reference, color=PALETTE[3], lw=1, ls="--")
    ax.set(title=title, ylabel=ylabel)
    ax.tick_params(axis="x", rotation=30)
    return ax


def _np(v):
    import numpy as np
    import torch

    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    return np.asarray(v)
