"""The install story: pyproject, binder/ (Binder), constraints, the README and the book config agree."""

from __future__ import annotations

import importlib.util
import inspect
import logging
import pathlib
import re
import subprocess
import tomllib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
README = (ROOT / "README.md").read_text()
VENV_BIN = ROOT / ".venv" / "bin"
BINDER = ROOT / "binder"
BOOK_TOOLS = {"jupyter-book", "sphinx", "sphinx-exercise", "sphinxcontrib-bibtex", "django-static-mathjax",
              "sphinx-book-theme", "pydata-sphinx-theme", "nbval", "pytest"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].strip().lower()


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def _binder_env():
    env = yaml.safe_load((BINDER / "environment.yml").read_text())
    conda, pip = {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip = dep["pip"]
        else:
            conda[_name(dep)] = dep
    return conda, pip


def test_binder_environment_has_what_a_reader_needs_at_the_pinned_versions():
    conda, pip = _binder_env()
    reqs = {_name(p): p for p in pip if not p.startswith("-")}
    needed = PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["notebooks"]
    pins = _constraints()
    for req in needed:
        name = _name(req)
        assert name in reqs, f"binder/environment.yml lacks {name} (from pyproject: {req})"
        if name in pins:
            wanted = f"{name}=={pins[name]}" + ("+cpu" if name == "torch" else "")
            assert reqs[name] == wanted, f"binder pins {reqs[name]!r}, constraints.txt {wanted!r}"
    # torch: PyTorch's CPU wheel, the build the notebooks were executed with (not conda-forge's)
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in pip
    assert not {"pytorch", "pytorch-cpu", "torch", "numpy", "scipy"} & set(conda), (
        "the numerical stack comes from pip's wheels, as in constraints.txt")
    assert not BOOK_TOOLS & (set(reqs) | set(conda)), "Binder needs no book-building or test tools"


def test_binder_installs_lossbook_and_starts_kernels_with_the_pinned_numerics():
    from lossbook.numerics import PINS

    post = (BINDER / "postBuild").read_text()
    assert "pip install --no-deps -e ." in post
    start = (BINDER / "start").read_text()
    exports = dict(re.findall(r"^export (\w+)=(\S+)$", start, re.M))
    assert exports == PINS, f"binder/start exports {exports}, lossbook.numerics.PINS is {PINS}"
    assert start.rstrip().endswith('exec "$@"')
    for script in ("postBuild", "start"):
        assert (BINDER / script).stat().st_mode & 0o111, f"binder/{script} must be executable"
    # repo2docker reads binder/ alone when it exists: a root environment.yml would be ignored
    assert not (ROOT / "environment.yml").exists()


def test_torch_is_an_open_lower_bound_and_ci_pins_the_cpu_build():
    deps = PYPROJECT["project"]["dependencies"]
    torch_req = next(d for d in deps if _name(d) == "torch")
    assert torch_req.startswith("torch>=") and "<" not in torch_req
    constraints = (ROOT / "constraints.txt").read_text()
    assert re.search(r"^torch==2\.13\.0$", constraints, re.M)
    # the README says which version is tested, since only that one is
    assert "tested with (CI, the committed notebook outputs, the benchmarks) is\n**torch 2.13.0**" in README


def test_jupyter_book_is_pinned_below_2():
    book = PYPROJECT["project"]["optional-dependencies"]["book"]
    assert any(_name(r) == "jupyter-book" and "<2" in r for r in book)


def test_toc_lists_existing_files_and_every_chapter_notebook():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        files += [c["file"] for c in part["chapters"]]
    for f in files:
        assert any((ROOT / f"{f}{ext}").exists() for ext in (".md", ".rst", ".ipynb")), f"_toc.yml names missing {f}"
    notebooks = {str(p.relative_to(ROOT).with_suffix("")) for p in (ROOT / "book").rglob("*.ipynb")
                 if ".ipynb_checkpoints" not in p.parts}
    assert notebooks <= set(files), f"notebooks missing from _toc.yml: {sorted(notebooks - set(files))}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 tools/dev.py test" in readme and "python3 tools/dev.py test" in ci
    assert "python3 tools/dev.py book" in readme


def test_version_is_one_number_everywhere():
    import lossbook

    version = PYPROJECT["project"]["version"]
    assert lossbook.__version__ == version
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert str(cff["version"]) == version and cff["license"] == "MIT"
    assert cff["repository-code"] == PYPROJECT["project"]["urls"]["Source"]
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## Unreleased" in changelog and f"## {version}" in changelog
    assert "## Versions" in README and "CHANGELOG.md" in README


def test_license_and_project_urls():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 the lossbook authors" in text
    assert PYPROJECT["project"]["license"] == "MIT" and PYPROJECT["project"]["license-files"] == ["LICENSE"]
    urls = PYPROJECT["project"]["urls"]
    assert urls["Source"] == "https://github.com/lossbook/lossbook"
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["url"] == urls["Source"]


def _reader_texts():
    paths = [ROOT / "README.md", *sorted((ROOT / "book").glob("*.md")), *sorted((ROOT / "book").glob("*.rst")),
             *sorted((ROOT / "book").glob("*.ipynb"))]
    return {p.relative_to(ROOT).as_posix(): p.read_text() for p in paths}


def test_install_instructions_name_only_what_exists():
    # lossbook is not on PyPI: no bare "pip install lossbook" (nor "lossbook[extra]") anywhere a reader looks
    for name, text in _reader_texts().items():
        assert not re.search(r"pip install (--\S+ )*[\"']?lossbook(\[|\b(?! @))", text), (
            f"{name} tells readers to install lossbook from an index where it is not published")
    assert 'pip install "lossbook @ git+https://github.com/lossbook/lossbook"' in README
    assert "pip install -c constraints.txt -e ." in README
    intro = (ROOT / "book" / "intro.md").read_text()
    assert "git+https://github.com/lossbook/lossbook" in intro and "not on PyPI" in intro


def test_book_extra_has_jupyterlab_and_pinned_themes():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert any(_name(r) == "jupyterlab" for r in extras["notebooks"])
    assert "lossbook[notebooks]" in extras["book"]
    pinned = {_name(r): r for r in extras["book"] if "==" in r}
    assert {"sphinx-book-theme", "pydata-sphinx-theme"} <= set(pinned)
    from importlib.metadata import PackageNotFoundError, version

    for name, req in pinned.items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue  # the book extra is not installed here
        assert req == f"{name}=={installed}", f"{name} {installed} is installed, pyproject pins {req}"


def test_jupyterlab_command_exists_in_the_venv():
    """The README's local step: ``python3 tools/dev.py env``, then ``.venv/bin/jupyter lab book/``."""
    assert "`.venv/bin/jupyter lab book/`" in README
    if not (VENV_BIN / "python").exists():
        pytest.skip("no .venv here (python3 tools/dev.py env creates it)")
    assert (VENV_BIN / "jupyter-lab").exists(), ".venv has no jupyter-lab: the notebooks extra is not installed"
    done = subprocess.run([str(VENV_BIN / "jupyter"), "lab", "--version"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and re.match(r"\d+\.", done.stdout), done.stdout + done.stderr


def _dev():
    spec = importlib.util.spec_from_file_location("_dev", ROOT / "tools" / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dev_env_shows_progress_and_the_book_installs_only_the_book_extra(monkeypatch):
    dev = _dev()
    source = inspect.getsource(dev.ensure_env)
    assert "--quiet" not in source and "-q" not in source.split() and '"--progress-bar", "on"' in source
    asked = []
    monkeypatch.setattr(dev, "ensure_env", lambda extras=("notebooks",): asked.append(tuple(extras)))
    monkeypatch.setattr(dev, "run", lambda *cmd, env=None: None)
    dev.book()
    dev.execute([])
    dev.main(["env"])
    assert asked == [("book",), ("book",), ("notebooks",)], asked
    assert all(extra in dev.SIZES for extra in ("", "notebooks", "book", "test"))


def test_the_kernel_warning_filter_drops_that_message_only():
    dev = _dev()
    namespace: dict = {}
    exec(dev.KERNEL_CONFIG_TEXT, namespace)  # noqa: S102 - the text dev.py writes into .venv
    flt = namespace["_NoTcpWarning"]()
    make = lambda msg: logging.LogRecord("IPKernelApp", logging.WARNING, __file__, 1, msg, None, None)  # noqa: E731
    assert not flt.filter(make("Kernel is running over TCP without encryption. All communication ..."))
    assert flt.filter(make("any other warning"))
    if (ROOT / ".venv" / "bin" / "python").exists():
        assert dev.KERNEL_CONFIG.read_text() == dev.KERNEL_CONFIG_TEXT, "run python3 tools/dev.py env"


def test_published_benchmark_tables_match_the_committed_results():
    """The appendix reads lossbook/tables/benchmarks_cpu.* (package data); benchmarks/run.py
    publishes them from benchmarks/results/, and the two must not drift apart."""
    import csv
    import json

    tables, results = ROOT / "lossbook" / "tables", ROOT / "benchmarks" / "results"
    with open(tables / "benchmarks_cpu.csv", newline="") as a, open(results / "cpu.csv", newline="") as b:
        assert list(csv.DictReader(a)) == list(csv.DictReader(b)), "run python3 benchmarks/run.py --publish"
    summary = json.loads((tables / "benchmarks_cpu.json").read_text())
    assert summary["meta"] == json.loads((results / "cpu.json").read_text())["meta"]
    assert summary["linear_ce"] == json.loads((results / "linear_ce_cpu.json").read_text())
