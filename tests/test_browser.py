"""The built web book, opened in headless Chromium (Debian's chromium + chromium-driver).

Run after the book is built (``python3 tools/dev.py test-browser`` does both).
Checks that math rendered (MathJax output present, no raw TeX delimiters left),
every figure loaded, exercise solutions start folded and open on a click, the
book's own files logged no console errors, and no page loads anything from
another host.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import pathlib
import shutil
import tempfile
import threading

import pytest

from lossbook.families import written

pytestmark = pytest.mark.browser

ROOT = pathlib.Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
CHAPTERS = [f.page for f in written()] + ["performance"]
REFERENCE = ["api", "loss_cards", "chapter_map", "seed_papers", "glossary", "bibliography", "status"]
PAGES = ["index.html"] + [f"book/{name}.html" for name in CHAPTERS + REFERENCE]

if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them with apt-get)",
                allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is a test extra")


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").exists():
        pytest.fail("the book is not built: run `python3 tools/dev.py book` first")
    handler = functools.partial(QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output readable
        pass


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="lossbook-chromium-")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1280,1600"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()
    with contextlib.suppress(OSError):
        shutil.rmtree(profile)


def load(browser, server, page):
    browser.get(f"{server}/{page}")
    # wait for MathJax's first typeset pass (when the page has math)
    browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "if (window.MathJax && MathJax.startup && MathJax.startup.promise) {"
        "  MathJax.startup.promise.then(() => done(true), () => done(false));"
        "} else { done(null); }"
    )
    browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "Promise.all([...document.images].map(i => i.complete ? 1 : new Promise(r => { i.onload = i.onerror = r; })))"
        ".then(() => done(true));"
    )


def test_regression_chapter_math_is_rendered(browser, server):
    load(browser, server, "book/regression.html")
    rendered = browser.execute_script("return document.querySelectorAll('mjx-container').length")
    assert rendered >= 50, f"only {rendered} formulas rendered by MathJax"
    leftovers = browser.execute_script(
        "const c = document.querySelector('main').cloneNode(true);"
        "c.querySelectorAll('pre, code, script, .highlight').forEach(e => e.remove());"
        "const t = c.textContent;"
        "return ['\\\\(', '\\\\)', '\\\\[', '\\\\]', '$$'].filter(d => t.includes(d));"
    )
    assert leftovers == [], f"raw TeX delimiters left on the page: {leftovers}"


def test_regression_chapter_figures_load(browser, server):
    load(browser, server, "book/regression.html")
    images = browser.execute_script(
        "return [...document.querySelectorAll('main img')].map(i => [i.src.slice(0, 60), i.complete, i.naturalWidth])"
    )
    figures = [img for img in images if img[0].startswith("data:image") or "_images" in img[0]]
    assert len(figures) >= 5, f"expected the chapter's figures, found {images}"
    broken = [img for img in images if not img[1] or img[2] == 0]
    assert broken == [], f"images that did not load: {broken}"


def test_first_visit_logs_no_errors(browser, server):
    # A reader's first visit: no stored theme mode, and the browser asks for /favicon.ico.
    browser.get(f"{server}/index.html")
    browser.execute_script("localStorage.clear(); sessionStorage.clear();")
    browser.get_log("browser")
    load(browser, server, "book/intro.html")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], f"a first visit logs errors: {errors}"
    favicon = browser.execute_script("const l = document.querySelector('link[rel~=icon]'); return l && l.href")
    assert favicon and favicon.startswith(server), f"no favicon of the book's own: {favicon}"


@pytest.mark.parametrize("page", PAGES)
def test_no_console_errors_and_nothing_from_other_hosts(browser, server, page):
    browser.get_log("browser")  # drop what earlier pages logged
    load(browser, server, page)
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and server in e["message"]]
    assert errors == [], f"console errors from the book's own files on {page}: {errors}"
    external = browser.execute_script(
        "return [...document.querySelectorAll('script[src], link[rel=stylesheet][href], img[src]')]"
        ".map(e => e.src || e.href).filter(u => /^https?:/.test(u) && !u.startsWith(location.origin))"
    )
    assert external == [], f"{page} loads files from other hosts: {external}"
    has_math, mathjax = browser.execute_script(
        "return [!!document.querySelector('main .math'), !!(window.MathJax && MathJax.version)]")
    assert mathjax or not has_math, f"MathJax did not load on {page}, which has math"


@pytest.mark.parametrize("chapter", CHAPTERS[:-1])
def test_checked_solution_is_folded_and_opens_on_click(browser, server, chapter):
    load(browser, server, f"book/{chapter}.html")
    # the solution whose code runs lossbook.check.check_loss
    found = browser.execute_script(
        "const s = [...document.querySelectorAll('.solution.dropdown')]"
        "  .find(e => e.textContent.includes('check_loss('));"
        "if (!s) return null;"
        "s.scrollIntoView();"
        "const out = [...s.querySelectorAll('.cell_output')].pop();"
        "window._lbSolution = s;"
        "return [s.classList.contains('toggle-hidden'), out ? getComputedStyle(out).visibility : null];"
    )
    assert found is not None, f"{chapter}: no folded solution that runs check_loss"
    assert found == [True, "hidden"], f"{chapter}: the solution is not folded ({found})"
    browser.execute_script("window._lbSolution.querySelector('.toggle-button, .admonition-title').click();")
    text = browser.execute_script("return window._lbSolution.innerText")
    assert "checks passed" in text and "FAIL" not in text.split("check_loss:")[-1], text[-400:]


# --------------------------------------------------------------------------- issue 14: what a reader sees

SEARCH_FIELDS = (
    "return [...document.querySelectorAll("
    "  'input[type=search], .search-button-field, form.bd-search, .bd-search')]"
    ".filter(e => !e.closest('.search-button__wrapper, .bd-search-modal, dialog'))"  # the pop-up dialog
    ".filter(e => { const r = e.getBoundingClientRect(), s = getComputedStyle(e);"
    "  return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; })"
    ".map(e => e.outerHTML.slice(0, 120))"
)


@pytest.mark.parametrize("page", ["index.html", "book/regression.html", "book/status.html"])
def test_one_search_box(browser, server, page):
    load(browser, server, page)
    fields = browser.execute_script(SEARCH_FIELDS)
    assert len(fields) == 1, f"{page}: {len(fields)} search boxes: {fields}"


def test_launch_buttons_only_on_notebook_pages(browser, server):
    launch = "return !!document.querySelector('.dropdown-launch-buttons, [aria-label*=\"Launch\"]')"
    load(browser, server, "book/regression.html")
    assert browser.execute_script(launch), "a chapter notebook has no launch button"
    for page in ("book/status.html", "book/api.html", "index.html"):
        load(browser, server, page)
        assert not browser.execute_script(launch), f"{page} is not a notebook but shows launch buttons"


def test_performance_legend_shows_the_bars_colours(browser, server):
    from test_notebook_files import legend_and_bar_colours

    load(browser, server, "book/performance.html")
    svg = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const img = [...document.querySelectorAll('main img')]"
        "  .find(i => /\\/_images\\/.*\\.svg$|^data:image\\/svg/.test(i.src));"
        "if (!img) { done(null); return; }"
        "fetch(img.src).then(r => r.text()).then(done, () => done(null));"
    )
    assert svg, "the performance appendix shows no SVG figure"
    legend, bars = legend_and_bar_colours(svg)
    assert len(set(legend.values())) == 4 and bars == set(legend.values()), (legend, bars)


def test_performance_table_fits_a_phone(browser, server):
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True})
    try:
        load(browser, server, "book/performance.html")
        found = browser.execute_script(
            "const t = document.querySelector('.lb-perf-table');"
            "if (!t) return null;"
            "t.scrollIntoView();"
            "const boxes = [t, ...[t.closest('.output'), t.closest('.cell_output')].filter(Boolean)];"
            "return {overflow: boxes.map(b => b.scrollWidth - b.clientWidth),"
            "        right: t.getBoundingClientRect().right, viewport: window.innerWidth,"
            "        table: t.querySelector('table').getBoundingClientRect().width};"
        )
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert found is not None, "no compact results table (.lb-perf-table) on the performance page"
    assert max(found["overflow"]) <= 1, f"the table scrolls sideways at 390 px: {found}"
    assert found["right"] <= found["viewport"] + 1, f"the table runs past the screen: {found}"


def test_api_math_has_no_literal_backslash(browser, server):
    load(browser, server, "book/api.html")
    texts = browser.execute_script(
        "if (!(window.MathJax && MathJax.startup && MathJax.startup.document)) return null;"
        "const out = [];"
        "for (const item of MathJax.startup.document.math) {"
        "  const mml = MathJax.startup.toMML(item.root);"
        "  for (const m of mml.matchAll(/<mtext[^>]*>([^<]*)<\\/mtext>/g)) out.push(m[1]);"
        "}"
        "return out;"
    )
    assert texts is not None, "MathJax did not typeset the API page"
    bad = sorted({t for t in texts if "\\" in t})
    assert bad == [], f"rendered math on the API page shows a literal backslash: {bad}"
