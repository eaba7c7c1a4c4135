"""One look for every figure in the book."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib

STYLE = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 90,
    "savefig.dpi": 90,
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
    matplotlib.rcParams.update(STYLE)


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
    ax.bar(names, [values[n] for n in names], yerr=err, capsize=3, color="C0", alpha=0.8)
    if reference is not None:
        ax.axhline(reference, color="C3", lw=1, ls="--")
    ax.set(title=title, ylabel=ylabel)
    ax.tick_params(axis="x", rotation=30)
    return ax


def _np(v):
    import numpy as np
    import torch

    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    return np.asarray(v)
