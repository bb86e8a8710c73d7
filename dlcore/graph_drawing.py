"""Drawing the graph behind a :class:`dlcore.autograd.Tensor`: DOT text or matplotlib.

Drawing reads the engine's nodes (``_parents``, ``_op``, ``data``, ``grad``) and never changes
them; the engine knows nothing of drawing::

    from dlcore.autograd import Tensor
    from dlcore.graph_drawing import draw, to_dot
    a, b = Tensor(2.0, requires_grad=True, name="a"), Tensor(-3.0, name="b")
    loss = (a * b).tanh()
    loss.backward()
    draw(loss)  # boxes and arrows, the output on the right
    print(to_dot(loss))  # render with ``dot -Tsvg``
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlcore._checks import check_real, check_type
from dlcore.autograd import Tensor, topological_order

__all__ = ["to_dot", "draw"]


def _label(node: Tensor) -> list[str]:
    lines = [node.name] if node.name else []
    lines.append(node._op or ("leaf" if node.requires_grad else "constant"))
    if node.data.size == 1:
        lines.append(f"data {node.item():.4g}")
        if node.grad is not None:
            lines.append(f"grad {float(np.asarray(node.grad).reshape(())):.4g}")
    else:
        lines.append("×".join(map(str, node.shape)))
    return lines


def to_dot(root: Tensor) -> str:
    """The graph that produced ``root`` in Graphviz's DOT language (render with ``dot -Tsvg``)."""
    nodes = topological_order(root)
    ids = {node: f"n{i}" for i, node in enumerate(nodes)}
    lines = [
        "digraph {",
        "  rankdir=LR;",
        '  node [shape=box, fontname="Helvetica"];',
    ]
    for node in nodes:
        label = "\\n".join(
            s.replace("\\", "\\\\").replace('"', '\\"') for s in _label(node)
        )
        lines.append(f'  {ids[node]} [label="{label}"];')
    lines += [
        f"  {ids[p]} -> {ids[node]};" for node in nodes for p in node._parents
    ]
    return "\n".join(lines + ["}"])


def draw(root: Tensor, *, ax: Any = None, fontsize: float = 11.0) -> Any:
    """Draw the graph with matplotlib (no Graphviz needed), ``root`` on the right. Each node sits
    one column left of its leftmost consumer, so a leaf appears next to the op that uses it.

    Without ``ax`` the figure is sized from the labels at ``fontsize`` (points), so boxes never
    overlap; at the default 11 pt a five-column graph (the book's first) is 7.2 inches wide, and
    its labels stay above 9 pt when a page scales it down to a 6.3-inch column.

    Returns the ``Axes``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes

    check_type("ax", ax, Axes, optional=True)
    fontsize = check_real("fontsize", fontsize, low=0.0, low_open=True)
    nodes = topological_order(root)
    consumers: dict[Tensor, list[Tensor]] = {node: [] for node in nodes}
    rank = {root: 0}  # columns counted from the root leftwards
    # consumers first, so a node's rank is final when it is read
    for node in reversed(nodes):
        for p in node._parents:
            consumers[p].append(node)
            rank[p] = max(rank.get(p, 0), rank[node] + 1)
    columns: dict[int, list[Tensor]] = {}
    for node in nodes:
        columns.setdefault(rank[node], []).append(node)
    y: dict[Tensor, float] = {}
    for r in sorted(columns):
        # ops level with their consumers (a straight main line), leaves stacked above and below
        wanted = []
        for node in columns[r]:
            level = (
                float(np.mean([y[c] for c in consumers[node]]))
                if consumers[node]
                else 0.0
            )
            wanted.append((level, bool(node._parents), node))
        for level in sorted({w[0] for w in wanted}, reverse=True):
            ops = [n for lv, is_op, n in wanted if lv == level and is_op]
            leaves = [n for lv, is_op, n in wanted if lv == level and not is_op]
            for i, node in enumerate(ops):
                y[node] = level + (len(ops) - 1) / 2 - i
            edge = (len(ops) + 1) / 2 if ops else 0.0
            for i, node in enumerate(leaves):
                side = 1 if i % 2 == 0 else -1
                y[node] = (
                    level + side * (edge + i // 2)
                    if ops
                    else level + (len(leaves) - 1) / 2 - i
                )
        previous = np.inf  # push apart boxes that landed too close, top to bottom
        for node in sorted(columns[r], key=lambda n: -y[n]):
            y[node] = previous = min(y[node], previous - 1)
    depth = {node: max(rank.values()) - rank[node] for node in nodes}
    low, high = min(y.values()), max(y.values())
    labels = {node: _label(node) for node in nodes}
    # A box's size in inches, from its text: ~0.6 em per character, 1.2 em per line, padding.
    em = fontsize / 72
    box_w = 0.6 * em * max(len(s) for lines in labels.values() for s in lines) + em
    box_h = 1.2 * em * max(len(lines) for lines in labels.values()) + em
    # inches from one column (row) to the next: a gap for the arrows between boxes
    pitch_x, pitch_y = box_w + 0.3, box_h + 0.2
    margin_x, margin_y = (box_w / 2 + 0.1) / pitch_x, (box_h / 2 + 0.1) / pitch_y
    if ax is None:
        width = pitch_x * (max(columns) + 2 * margin_x)
        height = pitch_y * (high - low + 2 * margin_y)
        # axes filling the figure: one data unit is one pitch, whatever the margins
        figure = plt.figure(figsize=(width, height), layout="none")
        ax = figure.add_axes((0, 0, 1, 1))
    text = {"ha": "center", "va": "center", "fontsize": fontsize}
    boxes = {}
    for node in nodes:  # constants grey, leaves blue, ops yellow, the output green
        color = "#cfe6f7" if node.requires_grad else "#f2f2f2"
        color = "#d9f2e3" if node is root else "#fff4d6" if node._parents else color
        box = {
            "boxstyle": "round,pad=0.35",
            "facecolor": color,
            "edgecolor": "#555555",
        }
        boxes[node] = ax.text(
            depth[node],
            y[node],
            "\n".join(labels[node]),
            bbox=box,
            zorder=2,
            **text,
        )
    for node in nodes:
        for p in node._parents:
            # an edge that skips columns arcs over the boxes in between, on its source's side
            skips = depth[node] - depth[p] > 1
            bend = (-0.3 if y[p] >= y[node] else 0.3) if skips else 0.0
            arrow = {
                "arrowstyle": "-|>",
                "color": "#555555",
                "connectionstyle": f"arc3,rad={bend}",
            }
            # clip each arrow at the two boxes' edges, so its head stays visible
            arrow |= {
                "patchA": boxes[p].get_bbox_patch(),
                "patchB": boxes[node].get_bbox_patch(),
            }
            xy, xytext = (depth[node], y[node]), (depth[p], y[p])
            ax.annotate("", xy=xy, xytext=xytext, arrowprops=arrow, zorder=1)
    ax.set_xlim(-margin_x, max(columns) + margin_x)
    ax.set_ylim(low - margin_y, high + margin_y)
    ax.axis("off")
    return ax
