"""The project's two commands (and their parts), with nothing but Python and pip.

    python3 tools/dev.py book    # build the web book into _build/html (executes every chapter)
    python3 tools/dev.py test    # every test: package, strict nbval on every notebook, browser check

Both create ``.venv`` (once) and install lossbook with what the book and the
tests need; ``constraints.txt`` pins the CPU build of torch and the numerical
stack. Everything that executes or checks a notebook runs under the pinned
numerics of ``lossbook/numerics.py`` (CPU code paths, one thread, hash seed),
and so does the Jupyter kernel that ``env`` installs. Parts:

    python3 tools/dev.py env              # create/update .venv only
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


def ensure_env() -> None:
    """Create .venv and install lossbook[book,test]; skipped when pyproject and constraints are unchanged."""
    if not PY.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    key = "".join((ROOT / f).read_text() for f in ("pyproject.toml", "constraints.txt"))
    if not (STAMP.exists() and STAMP.read_text() == key):
        run(PY, "-m", "pip", "install", "--quiet", "-c", "constraints.txt", "-e", ".[book,test]")
        run(PY, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3", "--display-name", "Python 3")
        STAMP.write_text(key)
    pin_kernel()


def pin_kernel() -> None:
    """Put the numerics pins into the venv kernel's spec, so that Jupyter starts it pinned."""
    spec = json.loads(KERNEL.read_text())
    if spec.get("env") != PINS:
        spec["env"] = PINS
        KERNEL.write_text(json.dumps(spec, indent=1) + "\n")


def book(execute: bool = True) -> None:
    """Build the web book; ``execute=False`` builds from the stored (nbval-verified) notebook outputs."""
    ensure_env()
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


def lint() -> None:
    ensure_env()
    run(PY, "-m", "ruff", "check", ".")


def test_package() -> None:
    lint()
    run(PY, "-m", "pytest", "tests", "-m", "not browser", "-n", "2", "--dist", "loadfile")


def test_notebooks() -> None:
    ensure_env()
    # Two workers, one notebook each at a time: every kernel is pinned to one thread.
    run(PY, "-m", "pytest", "--nbval", "--nbval-current-env", "--nbval-sanitize-with", "book/nbval_sanitize.cfg",
        "--nbval-cell-timeout", "300", "-n", "2", "--dist", "loadfile", "book", env=NB_ENV)


def test_unpinned() -> None:
    """Every chapter runs to the end as a reader's unpinned kernel runs it: its claims hold off the pins."""
    ensure_env()
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
    book(execute=False)
    run(PY, "-m", "pytest", "tests", "-m", "browser", "-v")


def execute(paths: list[str]) -> None:
    ensure_env()
    run(PY, "tools/execute_notebooks.py", *paths, env=NB_ENV)


def calibrate(paths: list[str]) -> None:
    ensure_env()
    run(PY, "tools/execute_notebooks.py", "--full", *paths, env=NB_ENV)


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
