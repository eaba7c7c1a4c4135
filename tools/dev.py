"""The project's two commands (and their parts), with nothing but Python and pip.

    python3 tools/dev.py book    # build the web book into _build/html (executes every chapter)
    python3 tools/dev.py test    # every test: package, strict nbval on every notebook, browser check

Both create ``.venv`` (once) and install lossbook with what the book and the
tests need; ``constraints.txt`` pins the CPU build of torch. Parts:

    python3 tools/dev.py env              # create/update .venv only
    python3 tools/dev.py test-package     # pytest tests/ (unit, property, cross-check), no browser
    python3 tools/dev.py test-notebooks   # strict nbval on book/**/*.ipynb
    python3 tools/dev.py test-browser     # build the book, then the headless-Chromium check
    python3 tools/dev.py execute [NB ...] # re-execute notebooks and save their outputs
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import venv

ROOT = pathlib.Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
# The same environment for the book build, notebook execution and nbval, so outputs compare.
NB_ENV = {"PYTHONHASHSEED": "0", "LOSSBOOK_STATIC": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
STAMP = VENV / ".lossbook-installed"


def run(*cmd: str | os.PathLike, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], cwd=ROOT, check=True, env={**os.environ, **(env or {})})


def ensure_env() -> None:
    """Create .venv and install lossbook[book,test]; skipped when pyproject and constraints are unchanged."""
    if not PY.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    key = "".join((ROOT / f).read_text() for f in ("pyproject.toml", "constraints.txt"))
    if STAMP.exists() and STAMP.read_text() == key:
        return
    run(PY, "-m", "pip", "install", "--quiet", "-c", "constraints.txt", "-e", ".[book,test]")
    run(PY, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3", "--display-name", "Python 3")
    STAMP.write_text(key)


def book() -> None:
    ensure_env()
    run(VENV / "bin" / "jupyter-book", "build", ".", "--all", "--warningiserror", "--nitpick", "--keep-going",
        env=NB_ENV)
    print(f"\nThe book is in {ROOT / '_build' / 'html' / 'index.html'}")


def test_package() -> None:
    ensure_env()
    run(PY, "-m", "pytest", "tests", "-m", "not browser", "-n", "2", "--dist", "loadfile")


def test_notebooks() -> None:
    ensure_env()
    run(PY, "-m", "pytest", "--nbval", "--nbval-current-env", "--nbval-sanitize-with", "book/nbval_sanitize.cfg",
        "--nbval-cell-timeout", "300", "book", env=NB_ENV)


def test_browser() -> None:
    book()
    run(PY, "-m", "pytest", "tests", "-m", "browser", "-v")


def execute(paths: list[str]) -> None:
    ensure_env()
    run(PY, "tools/execute_notebooks.py", *paths)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "env":
        ensure_env()
    elif command == "book":
        book()
    elif command == "test":
        test_package()
        test_notebooks()
        test_browser()
    elif command == "test-package":
        test_package()
    elif command == "test-notebooks":
        test_notebooks()
    elif command == "test-browser":
        test_browser()
    elif command == "execute":
        execute(rest)
    else:
        print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode)
