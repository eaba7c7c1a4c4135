"""Re-execute chapter notebooks in place and save them without timing metadata.

    python tools/execute_notebooks.py [book/regression.ipynb ...]   (default: every notebook in book/)

Runs each notebook top to bottom in a fresh kernel (in the notebook's folder,
with the same environment variables as the book build and the nbval run:
``PYTHONHASHSEED=0``, ``LOSSBOOK_STATIC=1``), then strips what changes from
run to run without meaning anything: execution timestamps, widget state. The
stored outputs are what strict nbval compares against.
"""

from __future__ import annotations

import os
import pathlib
import sys
import time

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENV = {"PYTHONHASHSEED": "0", "LOSSBOOK_STATIC": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}


def notebooks(args: list[str]) -> list[pathlib.Path]:
    if args:
        return [pathlib.Path(a).resolve() for a in args]
    return sorted(p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def strip(nb: nbformat.NotebookNode) -> None:
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("ExecuteTime", None)


def execute(path: pathlib.Path, timeout: int = 300) -> float:
    nb = nbformat.read(path, as_version=4)
    os.environ.update(ENV)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                            record_timing=False, store_widget_state=False)
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    strip(nb)
    nbformat.write(nb, path)
    return elapsed


def main(argv: list[str]) -> int:
    for path in notebooks(argv):
        elapsed = execute(path)
        print(f"{path.relative_to(ROOT)}: executed in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
