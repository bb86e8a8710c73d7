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

from dlcore._checks import check_type
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


def draw(root: Tensor, *, ax: Any = None) -> Any:
    """Draw the graph with matplotlib (no Graphviz needed), ``root`` on the right. Each node sits
    one column left of its leftmost consumer, so a leaf appears next to the op that uses it.
    Returns the ``Axes``."""
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes

    check_type("ax", ax, Axes, optional=True)
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
    if ax is None:
        _, ax = plt.subplots(
            figsize=(1.5 * len(columns) + 0.5, 0.85 * (high - low + 1) + 0.5)
        )
    text = {"ha": "center", "va": "center", "fontsize": 8}
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
            "\n".join(_label(node)),
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
    ax.set_xlim(-0.6, max(columns) + 0.6)
    ax.set_ylim(low - 0.6, high + 0.6)
    ax.axis("off")
    return ax
