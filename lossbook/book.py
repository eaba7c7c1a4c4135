"""Helpers the chapter notebooks share: setup, showing the package's source, the loss explorer.

The book never copies package code into a notebook: :func:`show_source`
displays the real source of a function, so what a reader sees is what
``import lossbook`` runs.
"""

from __future__ import annotations

import csv
import dataclasses
import inspect
import math
import os
import pathlib
import statistics
import textwrap
from typing import Callable, Iterable, Sequence

import torch

from lossbook import numerics
from lossbook.plotting import apply_style
from lossbook.utils import seed_everything

STATIC_ENV = "LOSSBOOK_STATIC"


def setup(seed: int = 0, threads: int = 1) -> torch.Generator:
    """One call at the top of every chapter: seeds, determinism, threads, plot style, print precision.

    One thread by default: the chapters' models are tiny, where extra threads only add
    synchronisation (and spin badly when the machine is busy), and a fixed thread count
    keeps float results identical between runs.

    It also checks the pinned numerics (:mod:`lossbook.numerics`). They must be set
    before torch is imported, so this function cannot set them; where they are not in
    force it prints one line saying so and how to get the pinned kernel, and goes on.

    Returns a ``torch.Generator`` seeded with ``seed``.
    """
    found = numerics.problems()
    if found:
        print(f"Numerics not pinned ({'; '.join(found)}): numbers may differ from the book's in the last "
              f"digits, and trained models slightly more. To match them, {numerics.PIN_HELP}.")
    torch.set_num_threads(threads)
    torch.set_printoptions(precision=4, sci_mode=False)
    apply_style()
    try:  # inline PNG figures with stable metadata
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("png")
    except ImportError:  # pragma: no cover - outside Jupyter
        pass
    return seed_everything(seed)


def show_source(obj: Callable) -> object:
    """Display the source code of a lossbook object (as highlighted Markdown in Jupyter)."""
    src = textwrap.dedent(inspect.getsource(obj))
    module = inspect.getmodule(obj).__name__
    header = f"`{module}.{obj.__name__}`, from `{module.replace('.', '/')}.py`"
    try:
        from IPython.display import Markdown

        return Markdown(f"{header}\n\n```python\n{src}```")
    except ImportError:  # pragma: no cover
        return src


def table_path(name: str) -> pathlib.Path:
    """The path of a data file the chapters read or write (calibration tables, benchmark results).

    They ship inside the package (``lossbook/tables/``), so a chapter finds them wherever it
    runs: from a clone, an installed wheel, Colab, or a notebook downloaded on its own. A
    calibration run (``FULL = True``) rewrites them in place, in the clone it runs from.
    """
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"table_path takes a bare file name such as 'robust_calibration.csv', got {name!r}")
    return pathlib.Path(__file__).resolve().parent / "tables" / name


def calibration_table(name: str, records: Sequence[tuple[str, int, str, float]], *, full: bool,
                      digits: int | None = 6) -> dict[tuple[str, str], dict[int, float]]:
    """A chapter's calibration table, ``{(experiment, quantity): {seed: value}}``.

    With ``full`` (the chapter's ``FULL = True`` run) it first rewrites the table from this
    run's ``(experiment, seed, quantity, value)`` records, with ``digits`` decimals (``None``:
    every digit); then it reads the committed table (:func:`table_path`) back. Compare the
    run with it through :func:`check_calibration`.
    """
    path = table_path(name)
    if full:
        path.parent.mkdir(exist_ok=True)
        with path.open("w", newline="") as fh:
            csv.writer(fh).writerows([
                ("experiment", "seed", "quantity", "value"),
                *[(e, s, q, repr(float(v)) if digits is None else f"{v:.{digits}f}") for e, s, q, v in records],
            ])
    table: dict[tuple[str, str], dict[int, float]] = {}
    with path.open() as fh:
        for row in csv.DictReader(fh):
            table.setdefault((row["experiment"], row["quantity"]), {})[int(row["seed"])] = float(row["value"])
    return table


def mean_std(values: Iterable[float], digits: int = 3, seeds: Sequence[int] | None = None) -> str:
    """``"m ± s"`` over seeds (sample standard deviation).

    One value is not a spread: it is labelled with its seed (``seeds``, if given).
    Values equal on every seed say so instead of printing ``± 0``, and a spread that
    rounds to zero is printed as a bound (``± <0.0005``).
    """
    vals = [float(v) for v in values]
    if len(vals) == 1:
        return f"{vals[0]:.{digits}f} ({f'seed {seeds[0]}' if seeds else 'one seed'})"
    if min(vals) == max(vals):
        return f"{vals[0]:.{digits}f} (all {len(vals)} seeds)"
    sd = statistics.stdev(vals)
    spread = f"{sd:.{digits}f}" if round(sd, digits) > 0 else f"<{5 * 10 ** -(digits + 1):.{digits + 1}f}"
    return f"{statistics.fmean(vals):.{digits}f} ± {spread}"


@dataclasses.dataclass(frozen=True)
class Paired:
    """Paired differences ``a - b`` over seeds: the comparison a chapter's comparative claim rests on.

    ``ci`` is the two-sided 95% Student-t interval of the mean difference (``None`` for one
    seed); ``wins`` counts the seeds on which ``a > b``.
    """

    diffs: tuple[float, ...]
    seeds: tuple[int, ...]
    digits: int = 3

    @property
    def mean(self) -> float:
        return statistics.fmean(self.diffs)

    @property
    def sd(self) -> float:
        return statistics.stdev(self.diffs) if len(self.diffs) > 1 else float("nan")

    @property
    def ci(self) -> tuple[float, float] | None:
        n = len(self.diffs)
        if n < 2:
            return None
        half = _t975(n - 1) * self.sd / math.sqrt(n)
        return self.mean - half, self.mean + half

    @property
    def wins(self) -> int:
        return sum(d > 0 for d in self.diffs)

    def __str__(self) -> str:
        d = self.digits
        head = mean_std(self.diffs, d, self.seeds)
        if self.ci is None:
            return head
        lo, hi = self.ci
        return f"{head}, 95% CI [{lo:.{d}f}, {hi:.{d}f}], a > b on {self.wins}/{len(self.diffs)} seeds"


def _t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (scipy; a table without it)."""
    try:
        from scipy.stats import t

        return float(t.ppf(0.975, df))
    except ImportError:  # pragma: no cover
        table = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
        return table.get(df, 1.96)


def paired_difference(a: dict[int, float], b: dict[int, float], digits: int = 3) -> Paired:
    """Differences ``a[s] - b[s]`` on the seeds both runs share (an error if they share none)."""
    seeds = tuple(sorted(set(a) & set(b)))
    if not seeds:
        raise ValueError("paired_difference needs at least one seed present in both runs")
    return Paired(tuple(float(a[s]) - float(b[s]) for s in seeds), seeds, digits)


def assert_below(label: str, value: float, bound: float) -> None:
    """Assert ``value < bound`` and print ``label < bound``.

    For residuals at machine precision: their last digits depend on the CPU's code
    paths, the bound does not, so the bound is what a chapter prints.
    """
    value = float(value)
    assert value < bound, f"{label.strip()} = {value:.3g}, not below {bound:g}"
    print(f"{label} < {bound:g}")


def assert_quoted(label: str, got: object, quoted: object) -> None:
    """A value the text quotes from a run in this notebook: strict under the pinned numerics.

    Training turns the last bits of the CPU's code paths into other accuracies, so the
    exact value holds only under the pins (:mod:`lossbook.numerics`). Elsewhere a
    difference is printed and the notebook goes on; the claims' thresholds are asserted
    separately and hold everywhere.
    """
    if got == quoted:
        return
    if numerics.pinned():
        raise AssertionError(f"{label}: this run gives {got!r}, the text quotes {quoted!r}")
    print(f"{label}: this run gives {got!r}, the text quotes {quoted!r} (numerics not pinned)")


def check_calibration(records: Sequence[tuple[str, int, str, float]],
                      committed: dict[tuple[str, str], dict[int, float]], tol: float = 1e-4) -> None:
    """Compare this run's ``(experiment, seed, quantity, value)`` records with the committed file.

    Under the pinned numerics the run must reproduce every value within ``tol``
    (an ``AssertionError`` names the first that does not). Elsewhere the float
    paths differ, training amplifies the last bits, and the function prints the
    differences and returns: the chapter's own claims are asserted separately.
    """
    def differs(exp, seed, quantity, value):
        ref = committed.get((exp, quantity), {}).get(seed)
        return ref is None or not abs(ref - value) < tol  # NaN differs

    diffs = [(e, s, q, v) for e, s, q, v in records if differs(e, s, q, v)]
    if numerics.pinned():
        assert not diffs, f"not reproduced within {tol}: {diffs[0]}"
        print(f"This run reproduces its {len(records)} values of the committed file within {tol:g}.")
        return
    print(f"Numerics not pinned: {len(diffs)} of {len(records)} values differ from the committed file "
          f"by {tol:g} or more.")
    for exp, seed, quantity, value in diffs:
        ref = committed.get((exp, quantity), {}).get(seed)
        print(f"  {exp} seed {seed} {quantity}: this run {value:.4f}, file {ref}")


def is_static() -> bool:
    """True while the book is built or tested (no live widget frontend): explorers draw a static figure."""
    return os.environ.get(STATIC_ENV, "") == "1"


def explorer(
    losses: dict[str, Callable[[torch.Tensor, float], torch.Tensor]],
    *,
    param: str,
    values: tuple[float, float, float],
    init: float,
    r: torch.Tensor | None = None,
    title: str = "",
    xlabel: str = "residual r",
):
    """An interactive loss explorer: a slider over one hyperparameter, live curves of ℓ(r) and ℓ'(r).

    ``losses`` maps a label to ``f(r, value) -> per-element loss``; the
    derivative is taken by autograd. ``r`` is the grid of the horizontal axis
    (default ``[-4, 4]``) and ``xlabel`` its name (a residual, a margin, a logit). In a live Jupyter kernel this returns an
    ``ipywidgets`` slider; in the static web book (``LOSSBOOK_STATIC=1``) it
    draws the curves at ``init`` and says how to get the live version.
    """
    import matplotlib.pyplot as plt

    grid = torch.linspace(-4, 4, 401, dtype=torch.float64) if r is None else r.double()

    def draw(value: float):
        # constrained layout keeps the figure's title above the panel titles (no overlap)
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
        for label, f in losses.items():
            x = grid.clone().requires_grad_(True)
            y = f(x, value)
            (g,) = torch.autograd.grad(y.sum(), x)
            ax1.plot(grid, y.detach(), label=label)
            ax2.plot(grid, g, label=label)
        ax1.set(title=f"loss, {param} = {value:g}", xlabel=xlabel)
        ax2.set(title=f"derivative dℓ/d{xlabel.split()[-1]}", xlabel=xlabel)
        ax1.legend()
        fig.suptitle(title)
        plt.show()

    if is_static():
        from IPython.display import Markdown, display

        draw(init)
        display(Markdown(
            f"*Static view at {param} = {init:g}. Open this chapter in Jupyter, Binder or Colab "
            f"(rocket icon at the top of the page) to move the {param} slider.*"
        ))
        return None
    import ipywidgets as widgets

    lo, hi, step = values
    return widgets.interact(draw, value=widgets.FloatSlider(value=init, min=lo, max=hi, step=step, description=param))
