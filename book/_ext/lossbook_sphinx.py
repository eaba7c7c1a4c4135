"""Sphinx glue for the lossbook book.

* Serves MathJax from the ``django-static-mathjax`` package (MathJax 3.2),
  copied into ``_static/mathjax`` at build time: no CDN, no files checked in.
* Directives that render pages from the loss registry:
  ``lossbook-api`` (the API reference) and ``lossbook-chapter-map``.
"""

from __future__ import annotations

import importlib.util
import math
import pathlib
import shutil

from docutils import nodes  # noqa: I001
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

CHAPTERS = {
    # family module -> (chapter number, title, book page)
    "surrogates": (1, "Risk, surrogate losses and consistency", "surrogates"),
    "proper": (2, "Proper losses, output maps and Fenchel–Young losses", "proper"),
    "regression": (3, "Regression losses", "regression"),
    "classification": (4, "Classification losses: the cross-entropy family", "classification"),
    "robust": (5, "Robust losses: noisy labels and adversarial perturbations", "robust"),
}


def mathjax_dir() -> pathlib.Path:
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("MathJax is served from the 'django-static-mathjax' package: pip install lossbook[book]")
    es5 = pathlib.Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax" / "es5"
    if not (es5 / "tex-chtml.js").exists():
        raise RuntimeError(f"MathJax files not found under {es5}")
    return es5


def copy_mathjax(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        shutil.copytree(mathjax_dir(), pathlib.Path(app.outdir) / "_static" / "mathjax", dirs_exist_ok=True)


def _fmt_range(lo: float, hi: float) -> str:
    f = lambda v: ("−∞" if v < 0 else "∞") if math.isinf(v) else f"{v:g}"  # noqa: E731
    return f"[{f(lo)}, {f(hi)}]"


def _specs_by_family():
    from lossbook.registry import all_losses

    families: dict[str, list] = {}
    for spec in all_losses():
        families.setdefault(spec.fn.__module__.rsplit(".", 1)[-1], []).append(spec)
    return families


class _RstDirective(SphinxDirective):
    """Renders the reStructuredText that ``rst()`` generates (used from .rst pages)."""

    has_content = False

    def rst(self) -> list[str]:
        return []

    def run(self):
        node = nodes.section()
        node.document = self.state.document
        nested_parse_with_titles(self.state, StringList(self.rst(), source="lossbook-registry"), node)
        return node.children


class ApiDirective(_RstDirective):
    """One section per loss family: a summary table from the registry, then the docstrings."""

    def rst(self) -> list[str]:
        lines: list[str] = []
        for family, specs in sorted(_specs_by_family().items(), key=lambda kv: CHAPTERS.get(kv[0], (99,))[0]):
            number, title, page = CHAPTERS.get(family, (0, family, None))
            mod = f"lossbook.{family}"
            heading = f"``{mod}``"
            lines += [heading, "-" * len(heading), ""]
            if page:
                lines += [f"Derived in Chapter {number}, :doc:`{page}`.", ""]
            lines += [".. list-table::", "   :header-rows: 1", "   :widths: 22 14 12 24 12 16", "",
                      "   * - loss", "     - inputs", "     - range", "     - properties", "     - gradient",
                      "     - reference"]
            for s in specs:
                lines += [f"   * - :func:`~{mod}.{s.name}`", f"     - {s.inputs}",
                          f"     - {_fmt_range(*s.output_range)}",
                          f"     - {', '.join(sorted(s.properties)) or '—'}", f"     - {s.gradient}",
                          f"     - ``{s.reference_name}``"]
            lines += ["", f".. automodule:: {mod}", "   :members:", "   :member-order: bysource", ""]
        heading = "Infrastructure"
        lines += [heading, "-" * len(heading), "",
                  "What every loss module builds on: the registry, reductions, input validation.", ""]
        for mod in ("lossbook.registry", "lossbook.utils", "lossbook.validation"):
            lines += [f".. automodule:: {mod}", "   :members:", "   :member-order: bysource", ""]
        return lines


class ChapterMapDirective(_RstDirective):
    """Chapter ↔ module ↔ functions, from the registry."""

    def rst(self) -> list[str]:
        lines = [".. list-table::", "   :header-rows: 1", "   :widths: 30 20 50", "",
                 "   * - chapter", "     - module", "     - registered losses"]
        for family, specs in sorted(_specs_by_family().items(), key=lambda kv: CHAPTERS.get(kv[0], (99,))[0]):
            number, title, page = CHAPTERS.get(family, (0, family, None))
            chapter = f":doc:`{number}. {title} <{page}>`" if page else title
            names = ", ".join(f":func:`~lossbook.{family}.{s.name}`" for s in specs)
            lines += [f"   * - {chapter}", f"     - ``lossbook.{family}``", f"     - {names}"]
        return lines + [""]


def dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    """Drop repeated inline scripts: sphinx-thebe registers its ``const`` config twice under
    Jupyter Book 1, which is a SyntaxError in the browser."""
    seen, kept = set(), []
    for js in context.get("script_files", []):
        key = (getattr(js, "filename", js), tuple(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    context["script_files"] = kept


def setup(app):
    app.add_directive("lossbook-api", ApiDirective)
    app.add_directive("lossbook-chapter-map", ChapterMapDirective)
    app.connect("build-finished", copy_mathjax)
    app.connect("html-page-context", dedupe_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
