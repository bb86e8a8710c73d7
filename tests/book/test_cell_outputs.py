"""No chapter shows a reader an object's memory address.

A cell whose last line is ``ax.legend(...)`` (or ``ax.plot``, ``plt.title``…) prints the
returned object, ``<matplotlib.legend.Legend at 0x7f…>``, above its figure: noise on the
page that no test of the notebook's *behaviour* sees. Ending the cell with ``plt.show()``
(or a ``;``) removes it. Checked on the built HTML, where the reader meets it.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from book_site import built_page, toc_docnames

# "<matplotlib.legend.Legend at 0x7f3a…>", "[<matplotlib.lines.Line2D at 0x…>]",
# "<Figure size 640x480 with 1 Axes>", "<function show_step at 0x…>"
OBJECT_REPR = re.compile(
    r"<[^<>\n]* at 0x[0-9a-f]{6,}>|<Figure size \d+x\d+ with \d+ Axes>"
)


class _OutputText(HTMLParser):
    """The text inside ``<div class="cell_output …">`` blocks, one string a block."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[str] = []
        self._depth = 0  # open divs inside the current output block; 0: outside

    def handle_starttag(
        self, tag: str, attrs: list[tuple[str, str | None]]
    ) -> None:
        if tag != "div":
            return
        if self._depth:
            self._depth += 1
        elif "cell_output" in (dict(attrs).get("class") or "").split():
            self._depth = 1
            self.blocks.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._depth:
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth:
            self.blocks[-1] += data


def output_texts(page_html: str) -> list[str]:
    """The text of each cell output block of a page."""
    parser = _OutputText()
    parser.feed(page_html)
    return parser.blocks


def object_reprs(page_html: str) -> list[str]:
    """The object reprs printed in the page's cell outputs."""
    return [
        hit for text in output_texts(page_html) for hit in OBJECT_REPR.findall(text)
    ]


CHAPTERS = [name for name in toc_docnames() if "/appendix/" not in name]


@pytest.mark.parametrize("docname", CHAPTERS)
def test_no_output_is_an_object_repr(docname: str) -> None:
    page = built_page(docname).read_text(encoding="utf-8")
    # every chapter prints its environment first: no block found means the page's
    # markup changed under this check, not that the page is clean
    assert output_texts(page), f"{docname}: no cell output block found in the HTML"
    shown = object_reprs(page)
    assert not shown, (
        f"{docname}: cell outputs print objects (end the cell with plt.show() or ';'): "
        f"{shown}"
    )


@pytest.mark.parametrize(
    "output",
    [
        "&lt;matplotlib.legend.Legend at 0x7efb1ec09c90&gt;",
        "[&lt;matplotlib.lines.Line2D at 0x7f00aa11bb22&gt;]",
        "&lt;Figure size 640x480 with 1 Axes&gt;",
        "&lt;function show_step at 0x7f00aa11bb22&gt;",
    ],
)
def test_a_printed_object_is_caught(output: str) -> None:
    page = (
        '<div class="cell_output docutils container">'
        f'<div class="output text_plain highlight-myst-ansi"><pre>{output}</pre></div>'
        "</div>"
    )
    assert len(object_reprs(page)) == 1


def test_prose_and_printed_numbers_pass() -> None:
    page = (
        '<div class="cell_output docutils container">'
        '<div class="output stream highlight-myst-ansi"><pre>loss 0.25 at step 0x10'
        "</pre></div></div><p>&lt;matplotlib.legend.Legend at 0x7efb1ec09c90&gt;</p>"
    )
    assert object_reprs(page) == []
