"""Re-execute chapter notebooks in place and save them without timing metadata.

    python tools/execute_notebooks.py [book/regression.ipynb ...]   (default: every notebook in book/)
    python tools/execute_notebooks.py --full book/robust.ipynb      (first run it with FULL = True)

Runs each notebook top to bottom in a fresh kernel (in the notebook's folder,
under the pinned numerics of ``lossbook.numerics.PINS``, the same environment
as the book build and the nbval run), then strips what changes from run to run
without meaning anything: execution timestamps, widget state. The stored
outputs are what strict nbval compares against.

``--unpinned`` executes without the pins, in a kernel of this environment
whose spec sets nothing, and saves nothing: the chapter must still run to the
end (its claims are asserted everywhere; only the comparison with a committed
calibration file is strict under the pins alone).

``--full`` first executes the notebook with its ``FULL = False`` line switched
to ``FULL = True``: every seed, every grid point, and the chapter's calibration
files under ``lossbook/tables/`` rewritten. That run's outputs are discarded; the
notebook is then executed and saved as a reader runs it.
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import sys
import tempfile
import time

import nbformat
from nbclient import NotebookClient

from lossbook.numerics import PINS

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENV = {**PINS, "LOSSBOOK_STATIC": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
FULL_OFF = "FULL = False"


def notebooks(args: list[str]) -> list[pathlib.Path]:
    if args:
        return [pathlib.Path(a).resolve() for a in args]
    return sorted(p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def strip(nb: nbformat.NotebookNode) -> None:
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = KERNELSPEC
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("ExecuteTime", None)


def run(nb: nbformat.NotebookNode, path: pathlib.Path, timeout: int) -> float:
    os.environ.update(ENV)
    return _execute(nb, path, timeout)


def run_unpinned(nb: nbformat.NotebookNode, path: pathlib.Path, timeout: int) -> float:
    """Execute as a reader whose kernel is not pinned: the CPU's own code paths, default threads."""
    for name in PINS:
        os.environ.pop(name, None)
    os.environ.update({k: v for k, v in ENV.items() if k not in PINS})
    with tempfile.TemporaryDirectory() as tmp:
        # A "python3" spec without env, found first through JUPYTER_PATH, shadows the pinned one.
        from ipykernel.kernelspec import get_kernel_dict

        spec_dir = pathlib.Path(tmp) / "kernels" / "python3"
        spec_dir.mkdir(parents=True)
        (spec_dir / "kernel.json").write_text(json.dumps(get_kernel_dict()))
        before = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [tmp, before]))
        try:
            elapsed = _execute(nb, path, timeout)
        finally:
            os.environ.pop("JUPYTER_PATH")
            if before is not None:
                os.environ["JUPYTER_PATH"] = before
    # lossbook.book.setup() says so in an unpinned kernel: proof that this run was one.
    texts = ("".join(o.get("text", "")) for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    if not any("Numerics not pinned" in t for t in texts):
        raise SystemExit(f"{path.name}: the kernel was pinned after all (no 'Numerics not pinned' line)")
    return elapsed


def _execute(nb: nbformat.NotebookNode, path: pathlib.Path, timeout: int) -> float:
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                            record_timing=False, store_widget_state=False)
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def full_version(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy with the one ``FULL = False`` line switched on."""
    full = copy.deepcopy(nb)
    hits = [c for c in full.cells if c.cell_type == "code" and c.source.lstrip().startswith(FULL_OFF)]
    if len(hits) != 1:
        raise SystemExit(f"expected one code cell starting with {FULL_OFF!r}, found {len(hits)}")
    hits[0].source = hits[0].source.replace(FULL_OFF, "FULL = True", 1)
    return full


def execute(path: pathlib.Path, timeout: int = 300) -> float:
    nb = nbformat.read(path, as_version=4)
    elapsed = run(nb, path, timeout)
    strip(nb)
    nbformat.write(nb, path)
    return elapsed


def main(argv: list[str]) -> int:
    full, unpinned = "--full" in argv, "--unpinned" in argv
    argv = [a for a in argv if a not in ("--full", "--unpinned")]
    for path in notebooks(argv):
        if unpinned:
            elapsed = run_unpinned(nbformat.read(path, as_version=4), path, timeout=300)
            print(f"{path.relative_to(ROOT)}: ran to the end without the pins in {elapsed:.1f} s (not saved)",
                  flush=True)
            continue
        if full:
            elapsed = run(full_version(nbformat.read(path, as_version=4)), path, timeout=3600)
            print(f"{path.relative_to(ROOT)}: FULL = True run (calibration files rewritten) in {elapsed:.1f} s", flush=True)
        elapsed = execute(path)
        print(f"{path.relative_to(ROOT)}: executed in {elapsed:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
