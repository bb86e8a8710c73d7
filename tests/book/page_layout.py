"""What a reader sees at a 1280-px window that a build cannot report: blocks wider than the page, and MyST
markup that reached the page as text. Run in the browser on a loaded page; shared by test_browser.py and
its own unit tests (test_page_layout.py, on synthetic pages).

The policy:

* Code and printed text must fit the column. A code line or an output line that needs a horizontal
  scrollbar hides its end from a reader (and from paper); wrap it in the notebook. Checked on every
  ``pre``, ``div.highlight``, cell input and cell output, collapsed ones (hidden inputs, dropdowns)
  opened first: a block overflows when its content is wider than its box (``scrollWidth >
  clientWidth``), or when the box itself sticks out of the column.
* Tables may be wider than the column (a ledger with many columns reads better scrolled than
  squeezed) if they scroll inside their own output area (``overflow-x: auto``, as the theme sets for
  ``div.cell_output .output``) and stay legible: every cell's text at least ``MIN_TABLE_FONT_PX``.
* No MyST directive fence (```` ```{name} ````, ``~~~{name}``, ``:::{name}``) appears in the page's text:
  one that does was not parsed (a fence nested in another with as many backticks, or indented wrongly
  in a list) and shows as raw markup. Roles (``{term}`...```) are not checked: the appendix shows them
  in inline code on purpose, to tell authors how to cite and link.

At 1280 px the theme's column leaves a code block 684 px: 77 characters of the theme's 14-px code font,
more if chapters/_static/book.css sets a smaller one.
"""

from __future__ import annotations

__all__ = [
    "MIN_TABLE_FONT_PX",
    "expand_collapsed",
    "layout_problems",
    "unrendered_markup",
]

MIN_TABLE_FONT_PX = 12

_EXPAND = """() => {
    document.querySelectorAll('details').forEach(d => { d.open = true; });
    document.querySelectorAll('.toggle-hidden').forEach(e => e.classList.remove('toggle-hidden'));
}"""

# Helpers both scripts use: the content column, and a description of where an element sits.
_WHERE = """
const column = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
const cells = [...column.querySelectorAll('div.cell')];
function where(el) {
    const cell = el.closest('div.cell');
    const part = el.closest('.cell_output') ? 'output' : el.closest('.cell_input') ? 'input' : '';
    const place = cell ? `cell ${cells.indexOf(cell) + 1} ${part}`.trim() : `<${el.tagName.toLowerCase()}>`;
    const section = el.closest('section');
    const heading = section && section.querySelector('h1, h2, h3, h4, h5, h6');
    const title = heading ? heading.textContent.replace(/[#\\u00b6]/g, '').trim() : '';
    return title ? `${place} in "${title}"` : place;
}
function firstLine(el) {
    const line = (el.innerText || '').split('\\n').find(l => l.trim()) || '';
    return JSON.stringify(line.trim().slice(0, 100));
}
"""

_OVERFLOW = (
    "minFont => {"
    + _WHERE
    + """
    const right = column.getBoundingClientRect().right;
    const blocks = column.querySelectorAll(
        'pre, div.highlight, div.cell_input, div.cell_output, div.cell_output .output');
    const found = [];
    for (const el of blocks) {
        if (!el.getClientRects().length) continue;  // not rendered at all (display: none)
        const box = el.getBoundingClientRect();
        const excess = Math.max(el.scrollWidth - el.clientWidth, box.right - right);
        if (excess <= 1) continue;
        const table = el.querySelector('table');
        const scrolls = ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
        if (table && scrolls && el.matches('div.cell_output .output') && box.right <= right + 1
                && ![...el.querySelectorAll('pre')].some(p => p.scrollWidth > p.clientWidth + 1)) {
            const sizes = [...table.querySelectorAll('td, th')]
                .map(c => parseFloat(getComputedStyle(c).fontSize));
            const smallest = Math.min(...sizes);
            if (smallest >= minFont) continue;  // a legible table scrolling on purpose
            found.push({el, text: `${where(el)}: a table scrolls, but its text is ${smallest} px `
                + `(under ${minFont} px): ${firstLine(el)}`});
            continue;
        }
        found.push({el, text: `${where(el)}: <${el.tagName.toLowerCase()}.${[...el.classList].join('.')}> `
            + `is ${Math.round(excess)} px too wide (content ${el.scrollWidth} px in a `
            + `${el.clientWidth} px box): ${firstLine(el)}`});
    }
    // Name the innermost block only: an overflowing <pre> also widens the cell around it.
    return found.filter(f => !found.some(g => g !== f && f.el.contains(g.el))).map(f => f.text);
}"""
)

_UNRENDERED = (
    "() => {"
    + _WHERE
    + """
    const pattern = /(?:`{3,}|~{3,}|:{3,})\\s*\\{[A-Za-z][\\w:-]*\\}/;
    const found = [];
    for (const line of column.innerText.split('\\n')) {
        if (!pattern.test(line)) continue;
        const match = line.match(pattern)[0];
        // The innermost element holding the markup, to say where it is.
        let holder = column;
        for (const el of column.querySelectorAll('*')) {
            if (el.innerText && el.innerText.includes(match) && holder.contains(el)) holder = el;
        }
        found.push(`${where(holder)}: MyST markup shown as text: ${JSON.stringify(line.trim().slice(0, 120))}`);
    }
    return found;
}"""
)


def expand_collapsed(page) -> None:  # noqa: ANN001 (a Playwright page)
    """Open every ``<details>`` and toggled block, so hidden code is measured as a reader would open it."""
    page.evaluate(_EXPAND)


def layout_problems(page) -> list[str]:  # noqa: ANN001
    """One line per code or output block wider than the column (see the module's policy)."""
    return page.evaluate(_OVERFLOW, MIN_TABLE_FONT_PX)


def unrendered_markup(page) -> list[str]:  # noqa: ANN001
    """One line per line of page text that holds a MyST directive fence."""
    return page.evaluate(_UNRENDERED)
