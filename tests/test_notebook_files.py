"""The committed notebooks as files a reader opens: kernelspec, install cell, line length, figures,
and a notebook that runs alone, from a folder that holds nothing but it."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p for p in (ROOT / "book").glob("*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]
MAX_LINE = 88
INSTALL = 'if "google.colab" in sys.modules:\n    %pip install --quiet "lossbook @ git+https://github.com/lossbook/lossbook"'


def _nb(path: pathlib.Path) -> dict:
    return json.loads(path.read_text())


def _code_cells(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_every_notebook_has_a_kernelspec(path):
    spec = _nb(path)["metadata"].get("kernelspec")
    assert spec and spec.get("name") == "python3" and spec.get("language") == "python", (
        f"{path.name} has no python3 kernelspec: re-execute it with python3 tools/dev.py execute {path.name}")


def test_execute_sets_the_kernelspec():
    sys.path.insert(0, str(ROOT / "tools"))
    import nbformat

    from execute_notebooks import KERNELSPEC, strip

    nb = nbformat.v4.new_notebook()
    strip(nb)
    assert nb.metadata["kernelspec"] == KERNELSPEC == {"display_name": "Python 3", "language": "python",
                                                       "name": "python3"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_every_notebook_starts_with_the_folded_install_cell(path):
    cells = _nb(path)["cells"]
    first = next(c for c in cells if c["cell_type"] == "code")
    assert INSTALL in "".join(first["source"]), f"{path.name}: the first code cell is not the install cell"
    assert "hide-cell" in first["metadata"].get("tags", []), f"{path.name}: the install cell is not folded"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_code_lines_fit_the_column(path):
    long = [(i, len(line), line) for i, src in enumerate(_code_cells(_nb(path)))
            for line in src.splitlines() if len(line) > MAX_LINE]
    assert not long, (f"{path.name}: {len(long)} code line(s) over {MAX_LINE} characters, e.g. "
                      + "; ".join(f"cell {i}: {n} chars" for i, n, _ in long[:5]))


def _svg(path: pathlib.Path) -> str:
    for cell in _nb(path)["cells"]:
        for out in cell.get("outputs", []):
            if "image/svg+xml" in out.get("data", {}):
                return "".join(out["data"]["image/svg+xml"])
    raise AssertionError(f"{path.name} has no SVG figure")


def legend_and_bar_colours(svg: str) -> tuple[dict[str, str], set[str]]:
    """From a matplotlib SVG: {legend label: patch fill} and the set of the other patches' fills."""
    start = svg.index('<g id="legend_1">')
    legend = svg[start:]
    patches = re.findall(r'<g id="patch_\d+">\s*<path [^>]*style="fill: (#[0-9a-fA-F]{6})', legend)
    labels = re.findall(r"<!-- (.*?) -->", legend)[1:]  # the first is the legend's title
    fills = re.findall(r'<g id="patch_\d+">\s*<path [^>]*style="fill: (#[0-9a-fA-F]{6})', svg[:start])
    bars = {f.lower() for f in fills} - {"#ffffff"}  # minus the figure's and the axes' background
    return dict(zip(labels, (p.lower() for p in patches))), bars


def test_performance_legend_has_the_bars_colours():
    legend, bars = legend_and_bar_colours(_svg(ROOT / "book" / "performance.ipynb"))
    assert set(legend) == {"builtin", "peer", "naive", "baseline"}, legend
    assert len(set(legend.values())) == 4, f"legend entries share a colour: {legend}"
    assert bars == set(legend.values()), f"bar colours {bars} vs legend {legend}"


def test_plot_style_is_colour_blind_safe_distinct_and_high_dpi():
    import matplotlib

    from lossbook import plotting

    plotting.apply_style()
    cycle = list(matplotlib.rcParams["axes.prop_cycle"])
    assert len({c["color"] for c in cycle}) == len(cycle) == len({str(c["linestyle"]) for c in cycle})
    assert [c["color"] for c in cycle] == list(plotting.PALETTE)
    from matplotlib_inline.backend_inline import InlineBackend

    assert InlineBackend.instance().print_figure_kwargs["dpi"] == 2 * matplotlib.rcParams["figure.dpi"]


def test_explorer_title_clears_the_panel_titles(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lossbook import book

    monkeypatch.setenv(book.STATIC_ENV, "1")
    figures = []
    monkeypatch.setattr(plt, "show", lambda: figures.append(plt.gcf()))
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)
    book.explorer({"l2": lambda r, v: 0.5 * r * r, "l1": lambda r, v: v * r.abs()}, param="c",
                  values=(0.1, 2.0, 0.1), init=1.0, title="A title long enough to reach both panels")
    (fig,) = figures
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    title = fig._suptitle.get_window_extent(renderer)
    for ax in fig.axes:
        assert not title.overlaps(ax.title.get_window_extent(renderer)), "figure title on a panel title"
    assert repr(fig) == "<Figure size 810x288 with 2 Axes>"  # what the committed outputs say
    plt.close(fig)


@pytest.mark.slow
def test_a_notebook_runs_from_a_folder_that_holds_only_it(tmp_path):
    """What a reader gets from the download button or Colab: the .ipynb alone, lossbook installed."""
    nb_path = tmp_path / "performance.ipynb"
    shutil.copy(ROOT / "book" / "performance.ipynb", nb_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["performance.ipynb"]
    script = (
        "import sys, nbformat\n"
        "from nbclient import NotebookClient\n"
        "nb = nbformat.read(sys.argv[1], as_version=4)\n"
        "NotebookClient(nb, timeout=300, kernel_name='python3',\n"
        "               resources={'metadata': {'path': sys.argv[2]}}).execute()\n"
        "print('ran', sum(c.cell_type == 'code' for c in nb.cells), 'code cells')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({"MPLBACKEND": "module://matplotlib_inline.backend_inline", "LOSSBOOK_STATIC": "1"})
    done = subprocess.run([sys.executable, "-c", script, str(nb_path), str(tmp_path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "ran" in done.stdout
    # nothing was saved: the folder still holds the notebook alone, unchanged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["performance.ipynb"]
    assert nb_path.read_bytes() == (ROOT / "book" / "performance.ipynb").read_bytes()
