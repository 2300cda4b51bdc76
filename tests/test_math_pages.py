"""The mathematics typeset on the built docs site, checked in headless Chromium (tests/browser.py): rendered KaTeX,
no formula left as raw TeX or as the old plain-text notation in the text a reader sees, no console error and no
request that leaves the site."""

import pytest

from browser import built_site, needs_browser, site_pages

pytestmark = pytest.mark.slow  # browser pages: in the full suite, not the fast tier

PAGES = {
    "math/": 60,  # the mathematics page: (at least) this many typeset formulas
    "": 1,  # the front page
    "notebooks/01_quickstart/": 3,
    "notebooks/02_solver_accuracy/": 2,
    "notebooks/03_from_descent_to_flow/": 3,
    "notebooks/04_paper_experiments/": 1,
    "notebooks/05_small_initialization/": 3,
    "notebooks/06_past_the_threshold/": 3,
    "notebooks/07_explorables_live/": 3,
    "notebooks/08_sgd_and_its_sde/": 5,
    "notebooks/09_momentum_and_adam/": 5,
    "api/core/": 5,
    "api/studies/": 2,
    "explorables/leaving_the_flow/": 3,
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return built_site(str(tmp_path_factory.mktemp("docs")))


@pytest.fixture(scope="module")
def pages(site):
    """One server of the built site and one Chromium for the module's tests."""
    with site_pages(site) as opened:
        yield opened


@pytest.fixture
def new_visit(pages):
    """``new_visit(width)``: a fresh page (a :class:`browser.Visit`), closed after the test."""
    yield pages
    pages.close()


@needs_browser
@pytest.mark.parametrize("path, least", PAGES.items())
def test_formulas_are_typeset_offline(new_visit, path, least, tmp_path):
    visit = new_visit(1200)
    page = visit.open(path)
    rendered = page.locator(".katex").count()
    errors = page.locator(".katex-error").all_inner_texts()
    text = page.evaluate(VISIBLE_PROSE)
    page.screenshot(path=str(tmp_path / "page.png"))
    assert not visit.outside, f"{path} asked for {visit.outside}"
    assert not visit.errors and not visit.failed, f"{path}: {visit.errors} {visit.failed}"
    assert rendered >= least, f"{path}: {rendered} typeset formulas, expected at least {least}"
    assert not errors, f"{path}: KaTeX could not parse {errors[:3]}"
    # KaTeX keeps the TeX source in a hidden annotation only: what a reader sees has no raw TeX left
    for raw in ("\\frac", "\\sum", "\\(", "$"):
        assert raw not in text, f"{path}: raw {raw!r} in the visible text: ...{_around(text, raw)}..."


# the prose a reader sees: text nodes of the article outside typeset formulas, code, scripts and styles
VISIBLE_PROSE = """() => {
  const skip = (n) => n.parentElement && n.parentElement.closest('.katex, pre, code, script, style, .highlight');
  const walker = document.createTreeWalker(document.querySelector('article'), NodeFilter.SHOW_TEXT);
  const out = [];
  while (walker.nextNode()) { if (!skip(walker.currentNode)) out.push(walker.currentNode.textContent); }
  return out.join(' ');
}"""


def _around(text: str, raw: str) -> str:
    i = text.find(raw)
    return text[max(0, i - 60): i + 60]


# every display formula: its width against its box (a clipped right part) and its typeset parts against its equation
# number (a tag printed over the formula)
DISPLAYS = """() => [...document.querySelectorAll('.katex-display')].map(d => {
  const parts = [...d.querySelectorAll('.katex-html > .katex-base')].map(b => b.getBoundingClientRect());
  const tag = d.querySelector('.katex-tag');
  const box = d.getBoundingClientRect();
  const ann = d.querySelector('annotation');
  return {hidden: d.scrollWidth - d.clientWidth, right: Math.max(...parts.map(r => r.right)), box: box.right,
          tag: tag ? tag.getBoundingClientRect().left : null, tex: ann ? ann.textContent.trim().slice(0, 50) : ''};
})"""


@needs_browser
@pytest.mark.parametrize("width", [1280, 1024, 800])
def test_no_display_formula_overflows_its_column_or_touches_its_number(new_visit, width):
    """Issue 38: at 1280 px six equations were wider than the text column, cut off and printed over by their tags."""
    displays = new_visit(width).open("math/").evaluate(DISPLAYS)
    assert len(displays) >= 40
    tagged = [d for d in displays if d["tag"] is not None]
    assert len(tagged) >= 30  # the numbered equations, (1.1) on
    for d in displays:
        assert d["hidden"] <= 1, f"{d['tex']!r}: {d['hidden']} px hidden at {width} px"
        assert d["right"] <= d["box"] + 1, f"{d['tex']!r} ends right of its column at {width} px"
        if d["tag"] is not None:
            assert d["right"] <= d["tag"] - 8, f"{d['tex']!r} runs into its equation number at {width} px"


WIDE = """(selector) => [...document.querySelectorAll(selector)].map(p => {
  const cs = getComputedStyle(p);
  return {text: p.textContent.slice(0, 60), hidden: p.scrollWidth - p.clientWidth, overflow: cs.overflowX,
          wrap: cs.whiteSpace, breaks: cs.wordBreak};
})"""


@pytest.mark.slow
@needs_browser
def test_the_front_pages_commands_fit_and_notebook_output_never_breaks_mid_word(new_visit):
    """Issue 38: the install line was clipped on the front page; printed output wrapped mid-word ("clo / sed form")."""
    blocks = new_visit(1280).open("").evaluate(WIDE, "article pre")
    outputs = new_visit(1280).open("notebooks/05_small_initialization/").evaluate(
        WIDE, ".jp-OutputArea-output pre")
    assert blocks and all(b["hidden"] <= 1 for b in blocks), [b for b in blocks if b["hidden"] > 1]
    assert outputs
    for o in outputs:  # whole lines, scrolled sideways where wider than the column
        assert o["breaks"] != "break-all" and o["wrap"] == "pre" and (o["hidden"] <= 1 or o["overflow"] == "auto"), o
