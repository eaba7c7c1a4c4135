"""The family list (lossbook.families) is the one place chapters are named: modules, TOC and registry agree."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import yaml

from lossbook.families import BY_MODULE, FAMILIES, written
from lossbook.registry import all_losses, all_modules

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "lossbook"


def registering_modules() -> set[str]:
    """Modules of the package that call register(...) or register_module(...) at top level."""
    found = set()
    for path in PACKAGE.glob("*.py"):
        if path.stem in {"registry", "kinds"}:
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:
            call = node.value if isinstance(node, ast.Expr) else None
            if isinstance(call, ast.Call) and getattr(call.func, "id", None) in {"register", "register_module"}:
                found.add(path.stem)
    return found


def test_every_registering_module_is_a_listed_family():
    missing = registering_modules() - set(BY_MODULE)
    assert not missing, f"modules that register losses but are missing from lossbook.families.FAMILIES: {missing}"


def test_written_families_have_module_test_file_and_page():
    for family in written():
        assert (PACKAGE / f"{family.module}.py").exists(), family
        assert (ROOT / "tests" / f"test_{family.module}.py").exists(), family
        assert (ROOT / "book" / f"{family.page}.ipynb").exists(), family


def test_chapters_are_numbered_once_in_order():
    assert [f.chapter for f in FAMILIES] == list(range(1, len(FAMILIES) + 1))


def test_toc_lists_the_written_chapters_in_order():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    chapters = [f for f in files if f.removeprefix("book/") in {fam.page for fam in FAMILIES if fam.page}]
    assert chapters == [f"book/{fam.page}" for fam in written()]


def test_every_registered_loss_belongs_to_a_written_family():
    for spec in [*all_losses(), *all_modules()]:
        assert spec.chapter in BY_MODULE and BY_MODULE[spec.chapter].written, spec.name


def test_registry_imports_every_family_itself():
    # A family is registered even when nothing imported its module first.
    code = ("import lossbook.registry as r; names = {s.chapter for s in r.all_losses()}; "
            "print(sorted(names))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(sorted(f.module for f in written()))


def test_import_is_light():
    # `import lossbook` on top of torch: peer libraries and optional modules load only when used.
    code = ("import time, torch, sys; t = time.perf_counter(); import lossbook; "
            "print(time.perf_counter() - t); "
            "print(','.join(m for m in ('scipy', 'sklearn', 'matplotlib', 'kornia', 'entmax', 'torchmetrics', "
            "'pandas', 'hypothesis') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    seconds, loaded = float(out[0]), out[1]
    assert not loaded, f"import lossbook loaded optional packages: {loaded}"
    assert seconds < 1.0, f"import lossbook took {seconds:.2f} s on top of torch (budget 0.3 s, bound 1 s)"
