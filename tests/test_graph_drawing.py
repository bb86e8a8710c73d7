"""dlcore.graph_drawing.draw: labels readable at the book's column width, boxes apart."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.text import Annotation  # noqa: E402

from dlcore.autograd import Tensor  # noqa: E402
from dlcore.graph_drawing import draw  # noqa: E402
from dlcore.plot import book_style  # noqa: E402

COLUMN_IN = (
    690 / 110
)  # the page's column at 1280 px, in inches of a 110-dpi book figure


def _chapter_graph() -> Tensor:
    # the chapter's first graph: L = a * tanh(a * b + c), five columns once drawn
    a = Tensor(2.0, requires_grad=True, name="a")
    b = Tensor(-3.0, requires_grad=True, name="b")
    c = Tensor(7.0, name="c")
    e = a * b
    e.name = "e"
    d = e + c
    d.name = "d"
    t = d.tanh()
    t.name = "t"
    loss = t * a
    loss.name = "L"
    loss.backward()
    return loss


def _boxes(ax) -> list:
    ax.figure.canvas.draw()
    texts = [t for t in ax.texts if not isinstance(t, Annotation)]
    return [t.get_bbox_patch().get_window_extent() for t in texts]


def test_labels_stay_readable_when_the_page_scales_the_figure_down():
    with book_style():
        ax = draw(_chapter_graph())
        width = ax.figure.get_size_inches()[0]
        shown = min(
            1.0, COLUMN_IN / width
        )  # the browser shrinks a wider image to the column
        sizes = {
            t.get_fontsize() for t in ax.texts if not isinstance(t, Annotation)
        }
        plt.close("all")
    assert sizes == {11.0}
    assert 11.0 * shown >= 9.0, (width, 11.0 * shown)


@pytest.mark.parametrize("fontsize", [8.0, 11.0, 16.0])
def test_no_two_boxes_overlap_at_any_font_size(fontsize):
    with book_style():
        ax = draw(_chapter_graph(), fontsize=fontsize)
        boxes = _boxes(ax)
        figure = ax.figure.bbox
        plt.close("all")
    assert len(boxes) == 7  # a, b, c, e, d, t, L
    for p, q in itertools.combinations(boxes, 2):
        assert not p.overlaps(q), (p, q)
    for box in boxes:  # every box inside the figure: nothing clipped at the edges
        assert figure.x0 <= box.x0 and box.x1 <= figure.x1
        assert figure.y0 <= box.y0 and box.y1 <= figure.y1


def test_a_larger_font_makes_a_larger_figure_not_a_cramped_one():
    small = draw(_chapter_graph(), fontsize=8.0).figure.get_size_inches()
    large = draw(_chapter_graph(), fontsize=16.0).figure.get_size_inches()
    plt.close("all")
    assert large[0] > small[0] and large[1] > small[1]


@pytest.mark.parametrize(
    "fontsize, error", [(0, ValueError), (-3.0, ValueError), ("11", TypeError)]
)
def test_fontsize_is_checked(fontsize, error):
    with pytest.raises(error, match="fontsize"):
        draw(_chapter_graph(), fontsize=fontsize)
