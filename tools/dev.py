"""The project's two commands (and their parts), with nothing but Python and pip.

    python3 tools/dev.py book    # build the web book into _build/html (executes every chapter)
    python3 tools/dev.py test    # every test: package, strict nbval on every notebook, browser check

Both create ``.venv`` (once) and install lossbook with what they need: ``book``
the ``book`` extra, ``test`` the ``book`` and ``test`` extras; ``constraints.txt``
pins the CPU build of torch and the numerical stack. Everything that executes
or checks a notebook runs under the pinned numerics of ``lossbook/numerics.py``
(CPU code paths, one thread, hash seed), and so does the Jupyter kernel that
``env`` installs. Parts:

    python3 tools/dev.py env [EXTRA ...]  # create/update .venv: lossbook + JupyterLab (extra "notebooks")
    python3 tools/dev.py lint             # ruff (the small rule set of pyproject.toml)
    python3 tools/dev.py test-package     # lint, then pytest tests/ (unit, property, cross-check), no browser
    python3 tools/dev.py test-notebooks   # strict nbval on book/**/*.ipynb (pinned)
    python3 tools/dev.py test-unpinned    # every chapter runs to the end without the pins (nothing saved)
    python3 tools/dev.py test-browser     # build the book from the stored outputs, then the headless-Chromium check
    python3 tools/dev.py execute [NB ...] # re-execute notebooks and save their outputs
    python3 tools/dev.py calibrate NB ... # run a chapter with FULL = True: rewrite its calibration files
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import venv

ROOT = pathlib.Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
STAMP = VENV / ".lossbook-installed"
KERNEL = VENV / "share" / "jupyter" / "kernels" / "python3" / "kernel.json"


def _pins() -> dict[str, str]:
    """lossbook.numerics.PINS, read from the source file (no venv, no torch needed)."""
    spec = importlib.util.spec_from_file_location("_lossbook_numerics", ROOT / "lossbook" / "numerics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.PINS)


PINS = _pins()
# The same environment for the book build, notebook execution and nbval, so outputs compare.
NB_ENV = {**PINS, "LOSSBOOK_STATIC": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}


def run(*cmd: str | os.PathLike, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], cwd=ROOT, check=True, env={**os.environ, **(env or {})})


# What each extra adds, roughly (measured on the CI machines with the CPU build of torch); shown
# before pip starts, so that a first run says why it takes minutes.
SIZES = {
    "": "lossbook, torch 2.13.0 (CPU build), numpy, scipy, scikit-learn, matplotlib: ~900 MB, 2-6 min",
    "notebooks": "JupyterLab, ipykernel, ipywidgets: ~110 MB, about a minute",
    "book": "Jupyter Book 1.x, Sphinx and its themes, sphinx-exercise, sphinxcontrib-bibtex, MathJax: ~170 MB, "
            "about a minute",
    "test": "pytest, hypothesis, nbval, selenium, ruff, build and the peer libraries of the cross-checks "
            "(kornia, torchmetrics, entmax, pytorch-metric-learning): ~130 MB, about a minute",
}
# Extras that pull in others (pyproject.toml: "book" includes "notebooks").
IMPLIES = {"book": ("notebooks",)}


def _installed() -> dict:
    try:
        return json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return {}


def ensure_env(extras: tuple[str, ...] = ("notebooks",)) -> None:
    """Create .venv and install lossbook with ``extras``; skipped when pyproject and constraints are
    unchanged and those extras are already in."""
    wanted = set(extras)
    for extra in extras:
        wanted |= set(IMPLIES.get(extra, ()))
    key = "".join((ROOT / f).read_text() for f in ("pyproject.toml", "constraints.txt"))
    stamp = _installed()
    have = set(stamp.get("extras", ())) if stamp.get("key") == key else None
    if have is not None and wanted <= have:
        pin_kernel()
        return
    if not PY.exists():
        print(f"+ creating the virtual environment {VENV.relative_to(ROOT)}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    todo = sorted(wanted - (have or set()))
    print("+ installing into .venv (pip's progress below; later runs skip this while pyproject.toml and "
          "constraints.txt are unchanged):", flush=True)
    for extra in ([""] if have is None else []) + todo:
        print(f"    {extra or 'lossbook'}: {SIZES.get(extra, 'extra ' + extra)}", flush=True)
    spec = ".[" + ",".join(sorted(wanted)) + "]"
    run(PY, "-m", "pip", "install", "--progress-bar", "on", "-c", "constraints.txt", "-e", spec)
    run(PY, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3", "--display-name", "Python 3")
    quiet_kernel()
    STAMP.write_text(json.dumps({"key": key, "extras": sorted(wanted | (have or set()))}))
    pin_kernel()


# The kernel's one warning at start, "Kernel is running over TCP without encryption", is noise
# for a notebook executed on this machine (the kernel listens on 127.0.0.1 only) and appears in
# every execution path: dev.py execute (nbclient), the book build (myst-nb) and nbval, each of
# which starts its kernel differently. What they share is the interpreter of .venv, and IPython
# loads .venv/etc/ipython/ipython_kernel_config.py for any kernel it starts: the filter there
# drops that one message and nothing else.
KERNEL_CONFIG = VENV / "etc" / "ipython" / "ipython_kernel_config.py"
KERNEL_CONFIG_TEXT = '''# Written by tools/dev.py (quiet_kernel): drop the kernel's "running over TCP without encryption"
# warning (the kernels of this venv listen on 127.0.0.1 only); every other message stays.
import logging


class _NoTcpWarning(logging.Filter):
    def filter(self, record):
        return "running over TCP without encryption" not in record.getMessage()


logging.getLogger("IPKernelApp").addFilter(_NoTcpWarning())
'''


def quiet_kernel() -> None:
    KERNEL_CONFIG.parent.mkdir(parents=True, exist_ok=True)
    if not KERNEL_CONFIG.exists() or KERNEL_CONFIG.read_text() != KERNEL_CONFIG_TEXT:
        KERNEL_CONFIG.write_text(KERNEL_CONFIG_TEXT)


def pin_kernel() -> None:
    """Put the numerics pins into the venv kernel's spec, so that Jupyter starts it pinned."""
    quiet_kernel()
    spec = json.loads(KERNEL.read_text())
    if spec.get("env") != PINS:
        spec["env"] = PINS
        KERNEL.write_text(json.dumps(spec, indent=1) + "\n")


def book(execute: bool = True) -> None:
    """Build the web book; ``execute=False`` builds from the stored (nbval-verified) notebook outputs."""
    ensure_env(("book",))
    config = []
    if not execute:
        config = ["--config", stored_outputs_config()]
    run(VENV / "bin" / "jupyter-book", "build", ".", "--all", "--warningiserror", "--nitpick", "--keep-going",
        *config, env=NB_ENV)
    print(f"\nThe book is in {ROOT / '_build' / 'html' / 'index.html'}")


def stored_outputs_config() -> pathlib.Path:
    """_config.yml with every .ipynb excluded from execution: they keep their stored outputs,
    while pages with code and no stored outputs (the status page) still run.

    Written under _build/; jupyter-book resolves ``local_extensions`` against the config's
    folder, so that path is made absolute.
    """
    text = (ROOT / "_config.yml").read_text()
    for old, new in (("\nexecute:\n", '\nexecute:\n  exclude_patterns: ["*.ipynb"]\n'),
                     ("lossbook_sphinx: book/_ext", f"lossbook_sphinx: {ROOT / 'book' / '_ext'}")):
        if old not in text:
            raise SystemExit(f"_config.yml has no {old!r}: update tools/dev.py stored_outputs_config()")
        text = text.replace(old, new)
    path = ROOT / "_build" / "_config_stored_outputs.yml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


TEST = ("book", "test")


def lint() -> None:
    ensure_env(TEST)
    run(PY, "-m", "ruff", "check", ".")


def test_package() -> None:
    lint()
    run(PY, "-m", "pytest", "tests", "-m", "not browser", "-n", "2", "--dist", "loadfile")


def test_notebooks() -> None:
    ensure_env(TEST)
    # Two workers, one notebook each at a time: every kernel is pinned to one thread.
    run(PY, "-m", "pytest", "--nbval", "--nbval-current-env", "--nbval-sanitize-with", "book/nbval_sanitize.cfg",
        "--nbval-cell-timeout", "300", "-n", "2", "--dist", "loadfile", "book", env=NB_ENV)


def test_unpinned() -> None:
    """Every chapter runs to the end as a reader's unpinned kernel runs it: its claims hold off the pins."""
    ensure_env(TEST)
    nbs = sorted((p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts),
                 key=lambda p: -p.stat().st_size)
    shares = [nbs[0::2], nbs[1::2]]  # two workers, one thread each
    print("+ two workers:", " | ".join(" ".join(p.name for p in share) for share in shares), flush=True)
    procs = [subprocess.Popen([str(PY), "tools/execute_notebooks.py", "--unpinned", *map(str, share)], cwd=ROOT,
                              env={**os.environ, **NB_ENV}) for share in shares if share]
    codes = [proc.wait() for proc in procs]
    if any(codes):
        raise subprocess.CalledProcessError(max(codes), "execute_notebooks.py --unpinned")


def test_browser() -> None:
    ensure_env(TEST)
    book(execute=False)
    run(PY, "-m", "pytest", "tests", "-m", "browser", "-v")


def execute(paths: list[str]) -> None:
    ensure_env(("book",))
    run(PY, "tools/execute_notebooks.py", *paths, env=NB_ENV)


def calibrate(paths: list[str]) -> None:
    ensure_env(("book",))
    run(PY, "tools/execute_notebooks.py", "--full", *paths, env=NB_ENV)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "env":
        ensure_env(tuple(rest) or ("notebooks",))
    elif command == "book":
        book()
    elif command == "test":
        test_package()
        test_notebooks()
        test_unpinned()
        test_browser()
    elif command == "test-package":
        test_package()
    elif command == "lint":
        lint()
    elif command == "test-notebooks":
        test_notebooks()
    elif command == "test-unpinned":
        test_unpinned()
    elif command == "test-browser":
        test_browser()
    elif command == "execute":
        execute(rest)
    elif command == "calibrate":
        if not rest:
            print("calibrate needs the notebooks to run, e.g. book/robust.ipynb", file=sys.stderr)
            return 2
        calibrate(rest)
    else:
        print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode)
