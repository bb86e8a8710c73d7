"""The layout checks of the browser test (page_layout.py), on synthetic pages laid out like the theme's:
each must find what it is for, name where it is, and pass what the policy allows. No built book needed."""

from __future__ import annotations

import pytest
from page_layout import expand_collapsed, layout_problems, unrendered_markup

# The theme's rules that matter here: a fixed content column, scrolling <pre>, scrolling output areas.
STYLE = """<style>
body { margin: 0; font: 16px sans-serif; }
article.bd-article { width: 700px; margin-left: 250px; }
pre { overflow: auto; font: 14px monospace; margin: 0; }
div.cell_output .output { max-width: 100%; overflow-x: auto; }
td, th { font-size: 14px; padding: 0 8px; white-space: nowrap; }
</style>"""

LONG = "x = " + " + ".join(f"weight_{i}" for i in range(30))


def _cell(source: str, output: str = "") -> str:
    out = (
        f'<div class="cell_output docutils container">{output}</div>'
        if output
        else ""
    )
    return (
        '<div class="cell docutils container"><div class="cell_input docutils container">'
        f'<div class="highlight-ipython3 notranslate"><div class="highlight"><pre>{source}</pre>'
        f"</div></div></div>{out}</div>"
    )


def _stream(text: str) -> str:
    return f'<div class="output stream highlight-myst-ansi"><div class="highlight"><pre>{text}</pre></div></div>'


def _table(columns: int, cell_style: str = "") -> str:
    head = "".join(
        f'<th style="{cell_style}">column {i}</th>' for i in range(columns)
    )
    row = "".join(f'<td style="{cell_style}">{i}.000</td>' for i in range(columns))
    return (
        f'<div class="output text_html"><table><thead><tr>{head}</tr></thead>'
        f"<tbody><tr>{row}</tr></tbody></table></div>"
    )


def _page(*blocks: str) -> str:
    body = "".join(blocks)
    return (
        f'<html><head>{STYLE}</head><body><article class="bd-article"><section id="s">'
        f"<h2>Fitting a line</h2>{body}</section></article></body></html>"
    )


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


def _check(page, html: str) -> tuple[list[str], list[str]]:
    page.set_content(html)
    expand_collapsed(page)
    return layout_problems(page), unrendered_markup(page)


def test_a_page_that_fits_passes(page):
    wide_but_fine = "<p>Sets like {x} and {1, 2} are fine in prose.</p>"
    layout, markup = _check(
        page,
        _page(
            _cell("y = 2 * x", _stream("loss 0.25")),
            _cell("print(1)"),
            wide_but_fine,
        ),
    )
    assert layout == [] and markup == []


def test_a_long_code_line_is_named_with_its_cell_and_first_line(page):
    layout, _ = _check(page, _page(_cell("import torch"), _cell(LONG)))
    assert len(layout) == 1, layout
    assert layout[0].startswith('cell 2 input in "Fitting a line": <pre'), layout
    assert '"x = weight_0 + weight_1' in layout[0] and "px too wide" in layout[0]


def test_a_long_printed_line_is_an_output_problem(page):
    layout, _ = _check(
        page, _page(_cell("print(row)", _stream("row: " + "0.123 " * 40)))
    )
    assert len(layout) == 1 and layout[0].startswith(
        'cell 1 output in "Fitting a line"'
    ), layout


def test_a_legible_table_may_scroll_in_its_output_area(page):
    layout, _ = _check(page, _page(_cell("ledger", _table(columns=14))))
    assert layout == []


def test_a_table_shrunk_below_legibility_is_refused(page):
    tiny = _table(columns=30, cell_style="font-size: 9px")
    layout, _ = _check(page, _page(_cell("ledger", tiny)))
    assert len(layout) == 1 and "its text is 9 px" in layout[0], layout


def test_collapsed_code_is_measured_too(page):
    hidden = f'<details class="hide above-input"><summary>Show code</summary>{_cell(LONG)}</details>'
    layout, _ = _check(page, _page(hidden))
    assert len(layout) == 1 and "cell 1 input" in layout[0], layout


def test_a_block_that_spills_without_scrolling_is_caught(page):
    spill = (
        f'<div class="highlight"><pre style="overflow: visible">{LONG}</pre></div>'
    )
    layout, _ = _check(page, _page(spill))
    assert len(layout) == 1 and "<pre" in layout[0], layout


@pytest.mark.parametrize(
    "text",
    [
        "```{admonition} Solution",
        "````{dropdown} Hint",
        ":::{note}",
        "~~~ {warning}",
    ],
)
def test_an_unrendered_directive_is_named(page, text):
    _, markup = _check(page, _page(f"<ul><li><p>{text}</p></li></ul>"))
    assert (
        len(markup) == 1 and text in markup[0] and '"Fitting a line"' in markup[0]
    ), markup


def test_roles_shown_as_inline_code_on_purpose_pass(page):
    _, markup = _check(
        page, _page("<p>Link a term with <code>{term}`learning rate`</code>.</p>")
    )
    assert markup == []
