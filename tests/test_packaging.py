"""The install story: pyproject, environment.yml (Binder), constraints and the book config agree."""

from __future__ import annotations

import pathlib
import re
import tomllib

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# conda-forge names where they differ from PyPI's
CONDA_NAMES = {"torch": "pytorch-cpu"}
PIP_ONLY = {"django-static-mathjax"}  # not on conda-forge: installed by pip inside environment.yml


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].strip().lower()


def _conda_env():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip = {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip = dep["pip"]
        else:
            conda[_name(dep)] = dep
    return conda, pip


def test_environment_yml_has_every_runtime_and_book_dependency():
    conda, pip = _conda_env()
    pip_names = {_name(p) for p in pip}
    needed = PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["book"]
    for req in needed:
        name = _name(req)
        if name in PIP_ONLY:
            assert name in pip_names, f"{name} must be a pip dependency in environment.yml"
            continue
        conda_name = CONDA_NAMES.get(name, name)
        assert conda_name in conda, f"environment.yml lacks {conda_name} (from pyproject: {req})"
        spec = req[len(name):].split(";")[0].strip()
        if spec:
            assert conda[conda_name].replace(" ", "").endswith(spec.replace(" ", "")), (
                f"environment.yml pins {conda[conda_name]!r} but pyproject says {req!r}"
            )
    assert "-e ." in pip, "Binder must install lossbook itself from the repository"


def test_torch_is_an_open_lower_bound_and_ci_pins_the_cpu_build():
    deps = PYPROJECT["project"]["dependencies"]
    torch_req = next(d for d in deps if _name(d) == "torch")
    assert torch_req.startswith("torch>=") and "<" not in torch_req
    constraints = (ROOT / "constraints.txt").read_text()
    assert re.search(r"^torch==2\.13\.0$", constraints, re.M)


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
