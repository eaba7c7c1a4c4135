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
import re
import shutil

from docutils import nodes  # noqa: I001
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

from lossbook.families import FAMILIES  # noqa: E402  (the one list of families)

# family module -> (chapter number, title, book page or None while the chapter is planned)
CHAPTERS = {f.module: (f.chapter, f.title, f.page) for f in FAMILIES}
BY_NUMBER = {number: (title, page) for number, title, page in CHAPTERS.values()}
SEED_PAPERS = pathlib.Path(__file__).resolve().parent.parent / "seed_papers.yml"


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
                lines += [f"   * - :func:`~{mod}.{s.name}`", f"     - {s.input_kind}",
                          f"     - {_fmt_range(*s.output_range)}",
                          f"     - {', '.join(sorted(s.properties)) or '—'}", f"     - {s.gradient}",
                          f"     - ``{s.reference_name}``"]
            lines += ["", f".. automodule:: {mod}", "   :members:", "   :member-order: bysource", ""]
        lines += _kinds_table()
        heading = "Metrics"
        lines += [heading, "-" * len(heading), "",
                  "Metrics the chapters share, so that a number means the same in every chapter.", "",
                  ".. automodule:: lossbook.calibration", "   :members:", "   :member-order: bysource", ""]
        heading = "Infrastructure"
        lines += [heading, "-" * len(heading), "",
                  "What every loss module builds on: the registry, reductions, input validation, and the "
                  "checker that the property tests and the self-checking exercises share.", ""]
        for mod in ("lossbook.registry", "lossbook.kinds", "lossbook.families", "lossbook.utils", "lossbook.validation",
                    "lossbook.check"):
            lines += [f".. automodule:: {mod}", "   :members:", "   :member-order: bysource", ""]
        return lines


def _kinds_table() -> list[str]:
    """Input kinds (lossbook.kinds.KINDS): what a loss of each kind takes, and how many are registered."""
    from lossbook.kinds import KINDS
    from lossbook.registry import all_losses

    count: dict[str, int] = {}
    for spec in all_losses():
        count[spec.input_kind] = count.get(spec.input_kind, 0) + 1
    heading = "Input kinds"
    lines = [heading, "-" * len(heading), "",
             "Every loss declares the kind of input it takes. The kind's record gives the argument names, a "
             "sample, the validator and the contract errors that every loss of the kind is tested against.", "",
             ".. list-table::", "   :header-rows: 1", "   :widths: 16 44 28 12", "",
             "   * - kind", "     - what it is", "     - arguments", "     - losses"]
    for kind in KINDS.values():
        lines += [f"   * - ``{kind.name}``", f"     - {kind.description}",
                  f"     - {', '.join(f'``{a}``' for a in kind.args)}", f"     - {count.get(kind.name, 0)}"]
    return lines + [""]


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


class LossCardsDirective(_RstDirective):
    """One card per registered loss (of one family if an argument is given), from the registry.

    Every property a card lists is checked by ``tests/test_generic.py::test_claimed_property_holds``
    and the range by ``test_output_range_holds``.
    """

    optional_arguments = 1

    def rst(self) -> list[str]:
        families = _specs_by_family()
        chosen = [self.arguments[0]] if self.arguments else sorted(families, key=lambda f: CHAPTERS.get(f, (99,))[0])
        lines: list[str] = []
        for family in chosen:
            number, title, page = CHAPTERS.get(family, (0, family, None))
            if not self.arguments:
                heading = f"{number}. {title}"
                lines += [heading, "-" * len(heading), ""]
            for s in families.get(family, []):
                lines += [f".. card:: ``{s.name}``", "   :class-card: sd-mb-2", ""]
                if s.formula:
                    lines += [f"   :math:`{s.formula}`", ""]
                if s.summary:
                    lines += [f"   {s.summary[0].upper() + s.summary[1:]}.", ""]
                props = ", ".join(sorted(s.properties)) or "none claimed"
                module = f":class:`~lossbook.{family}.{s.module.__name__}`" if s.module else "none"
                lines += [f"   - **inputs**: {s.input_kind}; **range**: {_fmt_range(*s.output_range)}",
                          f"   - **properties** (tested): {props}",
                          f"   - **gradient**: {s.gradient}; **reductions**: {', '.join(s.reductions)}",
                          f"   - **reference**: ``{s.reference_name}``",
                          f"   - **API**: :func:`~lossbook.{family}.{s.name}`, module twin {module}", ""]
        return lines


STATUS_ORDER = ("treated", "mentioned", "not yet written")


def seed_paper_status(paper: dict, implemented: dict[str, list[str]]) -> str:
    """``treated``, ``mentioned`` or ``not yet written``, for one entry of ``seed_papers.yml``.

    A paper is *treated* when its chapter is written and either a registered loss implements it
    (its record's ``references``) or the chapter has a section on it (role ``core`` or
    ``section-R``); *mentioned* when its chapter is written and cites it in a sidebar or a case
    study (role ``weak``); *not yet written* while its chapter is planned.
    """
    _, page = BY_NUMBER[paper["chapter"]]
    if page is None:
        return "not yet written"
    if implemented.get(paper["key"]) or paper["role"] in ("core", "section-R"):
        return "treated"
    return "mentioned"


class SeedPapersDirective(_RstDirective):
    """Every seed paper, by chapter, with whether the book treats it, mentions it, or will
    (``book/seed_papers.yml``; the status rule is :func:`seed_paper_status`)."""

    def rst(self) -> list[str]:
        import yaml

        papers = yaml.safe_load(SEED_PAPERS.read_text())
        self.env.note_dependency(str(SEED_PAPERS))
        implemented = _implemented_by()
        status = {p["key"]: seed_paper_status(p, implemented) for p in papers}
        counts = {s: sum(v == s for v in status.values()) for s in STATUS_ORDER}
        lines = [f"{len(papers)} seed papers: **{counts['treated']} treated** (a section of a written chapter, "
                 f"or a loss the package implements), **{counts['mentioned']} mentioned** (a sidebar or a case "
                 f"study in a written chapter), **{counts['not yet written']}** in chapters not yet written.", ""]
        for number in sorted(BY_NUMBER):
            mine = [p for p in papers if p["chapter"] == number]
            if not mine:
                continue
            title, page = BY_NUMBER[number]
            heading = f"{number}. {title}"
            lines += [heading, "-" * len(heading), ""]
            lines += [f"Chapter {number}, :doc:`{title} <{page}>`." if page else
                      f"Chapter {number} is not written yet; these papers wait for it.", ""]
            mine.sort(key=lambda p: (STATUS_ORDER.index(status[p["key"]]), p["title"].lower()))
            for p in mine:
                also = [n for n in p.get("secondary") or [] if n in BY_NUMBER]
                extra = f" Also cited from chapter{'s' if len(also) > 1 else ''} {', '.join(map(str, also))}." \
                    if also else ""
                lines += [f"- **{status[p['key']]}**: {p['title']} :cite:p:`{p['key']}`. "
                          f"{_sentence(p['treatment'])}{_implemented_note(implemented.get(p['key']))}{extra}", ""]
        return lines


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", ")")) else text + "."


def _implemented_by() -> dict[str, list[str]]:
    """Bibliography key -> the registered losses whose record cites it (``references``)."""
    from lossbook.registry import all_losses, all_modules

    out: dict[str, list[str]] = {}
    for spec in [*all_losses(), *all_modules()]:
        for key in spec.references:
            out.setdefault(key, []).append(f":func:`~{spec.qualname}`" if hasattr(spec, "fn")
                                           else f":class:`~{spec.qualname}`")
    return out


def _implemented_note(names: list[str] | None) -> str:
    return f" Implemented by {', '.join(names)}." if names else ""


INLINE_SCRIPT = re.compile(r"^\s*<script>[^\n]*</script>\s*$", re.M)


def dedupe_inline_scripts(app, exception) -> None:
    """Drop repeated one-line inline scripts from the written pages.

    Under Jupyter Book 1, sphinx-thebe registers its ``const THEBE_JS_URL = ...`` configuration
    twice, which the browser rejects as a redeclaration (a console error on every page).
    """
    if exception is not None or app.builder.format != "html":
        return
    for page in pathlib.Path(app.outdir).rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        seen: set[str] = set()

        def keep_first(match: re.Match) -> str:
            line = match.group(0).strip()
            if line in seen:
                return ""
            seen.add(line)
            return match.group(0)

        new = INLINE_SCRIPT.sub(keep_first, html)
        if new != html:
            page.write_text(new, encoding="utf-8")


def drop_launch_buttons_off_notebooks(app, pagename, templatename, context, doctree) -> None:
    """Launch buttons (Binder, Colab) only on pages whose source is a notebook (.ipynb).

    sphinx-book-theme adds them to every page with a kernelspec, and a MyST page with code
    cells (the status page) has one, though Binder and Colab cannot open its ``.md``.
    Runs after the theme's ``add_launch_buttons`` (priority 501).
    """
    if pagename not in app.env.all_docs or str(app.env.doc2path(pagename)).endswith(".ipynb"):
        return
    buttons = context.get("header_buttons")
    if buttons:
        context["header_buttons"] = [b for b in buttons if b.get("label") != "launch-buttons"]


def setup(app):
    app.add_directive("lossbook-api", ApiDirective)
    app.add_directive("lossbook-chapter-map", ChapterMapDirective)
    app.add_directive("lossbook-seed-papers", SeedPapersDirective)
    app.add_directive("lossbook-loss-cards", LossCardsDirective)
    app.connect("html-page-context", drop_launch_buttons_off_notebooks, priority=502)
    app.connect("build-finished", copy_mathjax)
    app.connect("build-finished", dedupe_inline_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
