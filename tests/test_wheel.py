"""The package as a user gets it: sdist and wheel build, and the wheel works outside the clone.

``python -m build`` makes the sdist and, from it, the wheel (so the sdist is complete enough to
build from). The wheel is then installed into a fresh virtual environment that has nothing but
the CPU build of torch, and the README's Python snippets run there, from a directory that is not
the clone, including one that reads a table through ``lossbook.book.table_path`` (package data).

Installing torch itself into a fresh venv took 3 minutes on the CI machine (a 190 MB wheel,
750 MB unpacked; 6.5 minutes with lossbook's other dependencies, the machine busy); instead, the venv sees torch and torch's own requirements, and nothing
else, through one ``.pth`` file that points at a folder of links to exactly those distributions
of the test's environment. Everything lossbook itself requires (numpy, scipy, scikit-learn,
matplotlib, tqdm) pip installs into the venv from the wheel's metadata, with constraints.txt.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import pathlib
import re
import subprocess
import sys
import time
import venv
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

pytest.importorskip("build", reason="the wheel test needs the 'build' package (test extra)")


def _closure(name: str) -> list[md.Distribution]:
    """``name`` and what it requires (no extras), as installed here."""
    seen: dict[str, md.Distribution] = {}
    todo = [name]
    while todo:
        req = todo.pop()
        key = re.sub(r"[-_.]+", "-", req).lower()
        if key in seen:
            continue
        try:
            dist = md.distribution(req)
        except md.PackageNotFoundError:
            continue  # e.g. setuptools on an interpreter that torch does not need it for
        seen[key] = dist
        for r in dist.requires or []:
            if "extra ==" in r:
                continue
            todo.append(re.split(r"[<>=!~\[ ;(]", r, maxsplit=1)[0])
    return list(seen.values())


def _link_farm(folder: pathlib.Path) -> list[str]:
    """Links to torch and its requirements' files, one per top-level entry in site-packages."""
    folder.mkdir()
    names = []
    for dist in _closure("torch"):
        if dist.metadata["Name"].lower() == "setuptools":
            continue  # the venv has its own; torch needs it only to compile C++ extensions
        names.append(dist.metadata["Name"])
        base = pathlib.Path(dist.locate_file(""))
        tops = {pathlib.PurePosixPath(str(f)).parts[0] for f in dist.files or []}
        for top in tops:
            src = base / top
            if top in ("..", "__pycache__") or not src.exists() or (folder / top).exists():
                continue
            (folder / top).symlink_to(src)
    return sorted(names)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
                   check=True, capture_output=True, text=True)
    print(f"sdist + wheel built in {time.perf_counter() - start:.0f} s")
    (wheel,) = out.glob("lossbook-*.whl")
    (sdist,) = out.glob("lossbook-*.tar.gz")
    return wheel, sdist


@pytest.fixture(scope="module")
def fresh_venv(built, tmp_path_factory):
    wheel, _ = built
    base = tmp_path_factory.mktemp("venv")
    start = time.perf_counter()
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)  # this interpreter's pip installs into it (--python)
    py = env_dir / "bin" / "python"
    site = pathlib.Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                       check=True, capture_output=True, text=True).stdout.strip())
    linked = _link_farm(base / "torch-only")
    (site / "_torch_only.pth").write_text(str(base / "torch-only") + "\n")
    # --no-compile: byte-compiling scipy, scikit-learn and matplotlib is most of an install's time,
    # and Python compiles what the snippets import anyway
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-compile",
                    "-c", str(ROOT / "constraints.txt"), str(wheel)], check=True, capture_output=True, text=True)
    print(f"fresh venv with {', '.join(linked)} linked, the wheel installed, in {time.perf_counter() - start:.0f} s")
    return py


def _readme_snippets() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", readme, re.S)


def test_wheel_holds_the_package_data_and_the_license(built):
    wheel, sdist = built
    names = zipfile.ZipFile(wheel).namelist()
    for table in sorted(p.name for p in (ROOT / "lossbook" / "tables").iterdir() if p.suffix in (".csv", ".json")):
        assert f"lossbook/tables/{table}" in names, f"the wheel lacks lossbook/tables/{table}"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), "the wheel carries no LICENSE"
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Project-URL: Source, https://github.com/lossbook/lossbook" in meta
    assert "License-Expression: MIT" in meta


def test_the_fresh_venv_holds_lossbook_and_its_requirements_only(fresh_venv):
    out = subprocess.run([sys.executable, "-m", "pip", "--python", str(fresh_venv), "list", "--format", "freeze"],
                         check=True, capture_output=True, text=True).stdout
    names = {line.split("==")[0].lower() for line in out.split()}
    assert {"lossbook", "torch", "numpy", "scipy", "scikit-learn", "matplotlib", "tqdm"} <= names
    assert not names & {"jupyter-book", "pytest", "kornia", "torchmetrics", "ipykernel"}, names


def test_readme_snippets_run_from_the_installed_wheel(fresh_venv, tmp_path):
    snippets = _readme_snippets()
    assert len(snippets) >= 3, "the README's Python snippets"
    assert any("table_path(" in s for s in snippets), "a README snippet reads a table through table_path"
    script = tmp_path / "readme_snippets.py"
    script.write_text("\n\n".join(snippets) + "\n\nimport lossbook\nprint('lossbook from', lossbook.__file__)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run([str(fresh_venv), str(script)], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    where = done.stdout.strip().splitlines()[-1]
    assert str(fresh_venv.parent.parent) in where and str(ROOT) not in where, where
