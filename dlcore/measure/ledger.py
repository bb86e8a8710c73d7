"""The Ledger: one row per experiment, its investment (costs) beside its return, as a table
(``dlcore.plot.plot_ledger`` draws it: plot sits above measure in the import order)."""

from __future__ import annotations

import html
import json
import numbers
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

import torch

from dlcore._atomic import atomic_write
from dlcore.measure.memory import track_memory
from dlcore.measure.units import _as_real, format_value
from dlcore.runtime import as_device, get_device

__all__ = [
    "INVESTMENT_KEYS",
    "RETURN_KEYS",
    "Row",
    "Ledger",
]

#: Known investment keys and their meaning (with units). Other keys are allowed.
INVESTMENT_KEYS: dict[str, str] = {
    "params": "parameters (count)",
    "flops_per_sample": "FLOPs per sample (multiply-add = 2)",
    "train_s": "training time (s)",
    "samples_per_s": "throughput (samples/s)",
    "peak_mem_bytes": "peak memory growth (bytes)",
    "bytes_sent": "bytes communicated (bytes)",
    "model_bytes": "model size on disk (bytes)",
}
#: Known return keys and their meaning (with units). Other keys are allowed.
RETURN_KEYS: dict[str, str] = {
    "test_acc": "test accuracy (fraction)",
    "test_loss": "test loss",
    "latency_s": "latency per call (s)",
}

# --------------------------------------------------------------------------- the ledger


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _check_name(name: Any, what: str = "name") -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{what} must be a non-empty str, got {name!r}")
    return name


def _check_path(path: Any) -> None:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"path must be a str or os.PathLike, got {type(path).__name__} ({path!r})"
        )


@dataclass
class Row:
    """One experiment: its ``investment`` (costs), its ``result`` (returns) and free-form ``tags``.

    Set values with :meth:`invest` and :meth:`returns`; each value must be a finite real number
    (int, float, NumPy scalar or 0-d tensor; stored as float). Known keys, with units, are listed
    in :data:`INVESTMENT_KEYS` and :data:`RETURN_KEYS`; other keys are allowed. Time and memory
    of a part of the experiment come from :meth:`timed`.
    """

    name: str
    investment: dict[str, float] = field(default_factory=dict)
    result: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    # whose clock and memory timed() measures; Ledger.row passes the ledger's device
    _device: torch.device | str | None = field(
        default=None, init=False, repr=False, compare=False
    )
    # the ledger holding (or about to hold) this row: its other rows fix where a key lives
    _ledger: Ledger | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        _check_name(self.name)
        investment, result, tags = self.investment, self.result, self.tags
        for what, d in (
            ("investment", investment),
            ("result", result),
            ("tags", tags),
        ):
            if not isinstance(d, dict):
                raise TypeError(f"{what} must be a dict, got {type(d).__name__}")
        self.investment, self.result = {}, {}
        self.tags = {}
        for key, value in tags.items():
            _check_name(key, "tag name")
            if key == "name":
                raise ValueError(
                    f"tag 'name' clashes with the name column of row {self.name!r}"
                )
            if not isinstance(value, (str, numbers.Real)):
                raise ValueError(
                    f"tag {key!r} must be a str or number, got {value!r}"
                )
            self.tags[key] = str(value)
        self.invest(**investment)
        self.returns(**result)

    def _check_keys(
        self, target: dict[str, float], other: dict[str, float], keys: Any
    ) -> None:
        # A key lives in one place only, so flat records and plots are never ambiguous.
        wrong = RETURN_KEYS if target is self.investment else INVESTMENT_KEYS
        for key in keys:
            if key in wrong or key in other:
                kind = "an investment" if wrong is INVESTMENT_KEYS else "a return"
                raise ValueError(
                    f"{key!r} is {kind} of row {self.name!r}, not both"
                )
            if key in self.tags or key == "name":
                raise ValueError(
                    f"{key!r} clashes with a tag or the name of row {self.name!r}"
                )
        if self._ledger is not None:
            place = "an investment" if target is self.investment else "a return"
            self._ledger._check_row(self, (place, list(keys)))

    def _set(
        self, target: dict[str, float], other: dict[str, float], kw: dict[str, Any]
    ) -> None:
        self._check_keys(target, other, kw)
        for key, value in kw.items():
            target[key] = _as_real(value, key)

    def invest(self, **kw: Any) -> Row:
        """Record costs, e.g. ``row.invest(params=397_510, train_s=12.5)``; returns the row."""
        self._set(self.investment, self.result, kw)
        return self

    def returns(self, **kw: Any) -> Row:
        """Record returns, e.g. ``row.returns(test_acc=0.978)``; returns the row."""
        self._set(self.result, self.investment, kw)
        return self

    @contextmanager
    def timed(
        self, key: str = "train_s", memory_key: str | None = "peak_mem_bytes"
    ) -> Iterator[None]:
        """Record the seconds (and peak memory) of the ``with`` block as investments of this row.

        ``key`` gets the wall time, after synchronising the device at both ends so queued GPU
        work is counted where it ran; ``memory_key`` (``None``: skip) gets the peak memory growth
        from :func:`track_memory`, where the device has an exact counter (nothing is recorded
        where it has none). Used again with the same keys, the seconds add up and the peak is
        the larger of the two — e.g. training in several stages. A block that raises records
        nothing. Only what runs inside the block is measured::

            with ledger.row("784-500-10 · Adam") as row:
                with row.timed():                  # train_s, peak_mem_bytes
                    fit(model, loss_fn, opt, train, epochs=3)
                row.returns(test_acc=evaluate(model, test)["accuracy"])   # not timed
        """
        _check_name(key, "key")
        if memory_key is not None:
            _check_name(memory_key, "memory_key")
            if memory_key == key:
                raise ValueError(
                    f"memory_key must differ from key, both are {key!r}"
                )
        self._check_keys(
            self.investment, self.result, [k for k in (key, memory_key) if k]
        )
        device = get_device(self._device)
        memory = track_memory(device) if memory_key is not None else nullcontext()
        with memory as usage:
            _synchronize(device)  # earlier queued work is not this block's
            start = perf_counter()
            yield
            _synchronize(device)  # the block's kernels may still be running
            seconds = perf_counter() - start
        measured = {key: self.investment.get(key, 0.0) + seconds}
        if (
            memory_key is not None
            and usage is not None
            and usage.peak_bytes is not None
        ):
            measured[memory_key] = max(
                self.investment.get(memory_key, 0.0), usage.peak_bytes
            )
        self.invest(**measured)

    def get(self, key: str) -> float | None:
        """The value of an investment or result ``key``, or None if this row lacks it."""
        return self.investment.get(key, self.result.get(key))


def _places(row: Row) -> list[tuple[str, Iterable[str]]]:
    return [
        ("a tag", row.tags),
        ("an investment", row.investment),
        ("a return", row.result),
    ]


def _check_one_place(
    entries: Iterable[tuple[str, str, Iterable[str]]], where: str
) -> None:
    """Refuse a key used in two places (tag, investment, return) by different rows.

    ``entries`` are ``(row label, place, keys)``. Two places would give a table two columns
    with one header and a flat record one value for both, so the second use is an error.
    """
    seen: dict[str, tuple[str, str]] = {}
    for label, place, keys in entries:
        for key in keys:
            first_place, first_label = seen.setdefault(key, (place, label))
            if first_place != place:
                raise ValueError(
                    f"{where}: {key!r} is {first_place} of {first_label} and "
                    f"{place} of {label}; a key lives in one place across a ledger"
                )


def _columns(rows: list[Row], attr: str, known: dict[str, str]) -> list[str]:
    present: dict[str, None] = {}
    for row in rows:
        present.update(dict.fromkeys(getattr(row, attr)))
    return [k for k in known if k in present] + [
        k for k in present if k not in known
    ]


class Ledger:
    """Rows of (investment, return), one per experiment — the book's spine.

    Row names are unique within a ledger (they label the points of ``dlcore.plot.plot_ledger``). The ledger
    renders as a table in a notebook, saves to JSON, and :meth:`concat` joins the chapters'
    ledgers for the ROI chapter. ``device``: whose clock and memory :meth:`Row.timed` measures
    in this ledger's rows (default :func:`dlcore.get_device`). ::

        ledger = Ledger("mlp")
        with ledger.row("784-500-10 · Adam", opt="adam") as row:
            with row.timed():  # train_s, peak_mem_bytes: training only
                history = fit(model, loss_fn, opt, train, epochs=3)
            flops = flops_per_sample(model, x[:1])
            row.invest(params=count_params(model), flops_per_sample=flops)
            row.returns(test_acc=evaluate(model, test)["accuracy"])
        ledger  # renders as a table in the notebook
        plot_ledger(ledger, x="train_s", y="test_acc")  # from dlcore.plot
    """

    def __init__(
        self, name: str, *, device: torch.device | str | None = None
    ) -> None:
        self.name = _check_name(name)
        as_device(device)
        self.device = device
        self.rows: list[Row] = []

    # ---- adding rows
    def _check_new(self, name: str) -> None:
        if any(r.name == name for r in self.rows):
            raise ValueError(
                f"ledger {self.name!r} already has a row named {name!r}"
            )

    def _check_row(
        self, row: Row, pending: tuple[str, Iterable[str]] | None = None
    ) -> None:
        """Refuse ``row`` (plus ``pending`` = (place, keys) about to be set) if one of its
        keys lives elsewhere in the other rows."""
        entries = [
            (f"row {r.name!r}", place, keys)
            for r in [*(r for r in self.rows if r is not row), row]
            for place, keys in _places(r)
        ]
        if pending is not None:
            entries.append((f"row {row.name!r}", *pending))
        _check_one_place(entries, f"ledger {self.name!r}")

    def _append(self, row: Row) -> Row:
        self._check_new(row.name)
        self._check_row(row)
        row._ledger = self
        self.rows.append(row)
        return row

    @contextmanager
    def row(self, name: str, **tags: Any) -> Iterator[Row]:
        """Run the block as one experiment; add its row only if the block succeeds.

        The row measures nothing by itself: time and memory come from :meth:`Row.timed` around
        the part they describe (training, say, not the evaluation and FLOP counting beside it).
        A block that raises adds no row and the exception propagates.
        """
        row = Row(name, tags=tags)
        self._check_new(name)
        self._check_row(row)
        row._device = self.device
        row._ledger = self  # invest/returns in the block are checked at once
        yield row
        self._append(row)

    def add(
        self,
        name: str,
        *,
        invest: dict[str, Any] | None = None,
        returns: dict[str, Any] | None = None,
        **tags: Any,
    ) -> Row:
        """Add a row measured elsewhere: ``ledger.add("int8", invest={...}, returns={...})``."""
        for what, d in (("invest", invest), ("returns", returns)):
            if d is not None and not isinstance(d, dict):
                raise TypeError(
                    f"{what} must be a dict or None, got {type(d).__name__}"
                )
        return self._append(
            Row(name, dict(invest or {}), dict(returns or {}), tags)
        )

    # ---- container protocol
    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)

    def __getitem__(self, key: int | str) -> Row:
        if isinstance(key, str):
            for row in self.rows:
                if row.name == key:
                    return row
            raise KeyError(
                f"no row named {key!r} in ledger {self.name!r}; rows: {self.names}"
            )
        if isinstance(key, int) and not isinstance(key, bool):
            return self.rows[key]
        raise TypeError(f"key must be a row name (str) or index (int), got {key!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ledger):
            return NotImplemented
        return self.name == other.name and self.rows == other.rows

    def __repr__(self) -> str:
        return f"Ledger({self.name!r}, {len(self)} rows)"

    def __str__(self) -> str:
        return self.to_markdown()

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rows]

    # ---- views
    def select(self, *keys: str, rows: Iterable[str] | None = None) -> Ledger:
        """A narrower ledger: every row (or those named in ``rows``, in that order) with
        only ``keys`` among its tags, investment and result — the columns one question
        needs, where the whole ledger is too wide to read::

            ledger.select("train_s", "test_acc")  # a two-column table

        A key no row has is refused by name (a typo would otherwise give an empty column).
        """
        if not keys:
            raise ValueError("give at least one key to select")
        for k in keys:
            if not isinstance(k, str):
                raise TypeError(f"keys must be str, got {type(k).__name__} ({k!r})")
        known = {k for r in self.rows for k in (*r.tags, *r.investment, *r.result)}
        missing = [k for k in keys if k not in known]
        if missing:
            raise KeyError(
                f"no row of ledger {self.name!r} has {missing}; keys: {sorted(known)}"
            )
        if isinstance(rows, str):
            raise TypeError(f"rows must be an iterable of row names, got {rows!r}")
        chosen = self.rows if rows is None else [self[name] for name in rows]
        narrow = Ledger(self.name, device=self.device)
        for r in chosen:
            narrow.add(
                r.name,
                invest={k: v for k, v in r.investment.items() if k in keys},
                returns={k: v for k, v in r.result.items() if k in keys},
                **{k: v for k, v in r.tags.items() if k in keys},
            )
        return narrow

    def to_records(self) -> list[dict[str, Any]]:
        """One flat dict per row: ``name``, tags, investment, result (raw numbers)."""
        return [
            {"name": r.name, **r.tags, **r.investment, **r.result}
            for r in self.rows
        ]

    def to_frame(self) -> Any:
        """The records as a ``pandas.DataFrame`` (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError(
                "Ledger.to_frame needs pandas: pip install pandas"
            ) from err
        return pd.DataFrame.from_records(
            self.to_records(), columns=self._cells()[0]
        )

    def _cells(self) -> tuple[list[str], list[int], list[list[str]]]:
        """Header, group widths (name+tags, investment, result) and humanised cells."""
        # known keys first, in the order of INVESTMENT_KEYS / RETURN_KEYS, then the others
        tags = _columns(self.rows, "tags", {})
        invest = _columns(self.rows, "investment", INVESTMENT_KEYS)
        result = _columns(self.rows, "result", RETURN_KEYS)
        body = []
        for r in self.rows:
            cells = [r.name] + [r.tags.get(k, "") for k in tags]
            cells += [
                format_value(k, r.investment[k]) if k in r.investment else ""
                for k in invest
            ]
            cells += [
                format_value(k, r.result[k]) if k in r.result else ""
                for k in result
            ]
            body.append(cells)
        return (
            ["name", *tags, *invest, *result],
            [1 + len(tags), len(invest), len(result)],
            body,
        )

    def to_markdown(self) -> str:
        """A GitHub-flavoured Markdown table, humanised (no pandas needed)."""
        if not self.rows:
            return f"*ledger {self.name!r}: no rows yet*"
        header, (n_id, _, _), body = self._cells()

        def line(cells: list[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        align = ["---"] * n_id + ["---:"] * (len(header) - n_id)
        return "\n".join(
            [line(header), "|" + "|".join(align) + "|", *map(line, body)]
        )

    def _repr_html_(self) -> str:
        if not self.rows:
            return f"<p><em>ledger {html.escape(self.name)}: no rows yet</em></p>"
        header, widths, body = self._cells()
        n_id, n_invest = widths[0], widths[1]
        first_return = n_id + n_invest

        # Inline styles, so the table reads the same in Jupyter and in the book: cells padded
        # ("11" beside "0.0004769" must not read as "110.0004769"), no wrapping inside a cell,
        # a rule between investment and return, and a scrolling box when the ledger is wider
        # than the page, so the return columns stay reachable instead of clipped.
        def style(i: int) -> str:
            align = "left" if i < n_id else "right"
            rule = (
                ";border-left:1px solid #999"
                if i in (n_id, first_return) and 0 < i < len(header)
                else ""
            )
            return f"text-align:{align};padding:2px 8px;white-space:nowrap{rule}"

        def cell(tag: str, text: str, i: int) -> str:
            return f'<{tag} style="{style(i)}">{html.escape(text)}</{tag}>'

        starts = (0, n_id, first_return)
        groups = "".join(
            f'<th colspan="{w}" style="{style(start)};text-align:center">{title}</th>'
            for title, w, start in zip(("", "investment", "return"), widths, starts)
            if w
        )
        head = "".join(cell("th", h, i) for i, h in enumerate(header))
        rows = "".join(
            "<tr>" + "".join(cell("td", c, i) for i, c in enumerate(r)) + "</tr>"
            for r in body
        )
        caption = f"<caption>ledger: {html.escape(self.name)}</caption>"
        table = (
            '<table style="border-collapse:collapse;margin:0">'
            f"{caption}<thead><tr>{groups}</tr><tr>{head}</tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
        return f'<div class="dlcore-ledger" style="overflow-x:auto">{table}</div>'

    # ---- persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write JSON atomically (``dlcore._atomic.atomic_write``): never half a file."""
        _check_path(path)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "format": "dlcore.Ledger",
            "version": 1,
            "name": self.name,
            "rows": [
                {
                    "name": r.name,
                    "investment": r.investment,
                    "result": r.result,
                    "tags": r.tags,
                }
                for r in self.rows
            ],
        }
        text = json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False)
        atomic_write(path, text)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Ledger:
        """Read a ledger written by :meth:`save`."""
        _check_path(path)
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path={str(path)!r}: no such ledger file")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"path={str(path)!r} is not JSON: {err}") from err
        if not isinstance(data, dict) or data.get("format") != "dlcore.Ledger":
            raise ValueError(
                f"path={str(path)!r} is not a ledger written by Ledger.save"
            )
        try:
            ledger = cls(data["name"])
            for r in data["rows"]:
                ledger._append(
                    Row(
                        r["name"],
                        dict(r["investment"]),
                        dict(r["result"]),
                        dict(r["tags"]),
                    )
                )
        except (KeyError, TypeError) as err:
            raise ValueError(
                f"path={str(path)!r} is a malformed ledger file: {err!r}"
            ) from err
        return ledger

    @classmethod
    def concat(cls, name: str, ledgers: Iterable[Ledger]) -> Ledger:
        """One ledger from several, e.g. every chapter's for the ROI chapter.

        Each row keeps its source ledger's name in the tag ``chapter`` (an existing ``chapter``
        tag is kept). Names that occur in more than one source become ``"<chapter>/<name>"``.
        """
        if isinstance(ledgers, Ledger) or not isinstance(ledgers, Iterable):
            raise TypeError(
                f"ledgers must be an iterable of Ledger, got {type(ledgers).__name__}"
            )
        sources = list(ledgers)
        for i, led in enumerate(sources):
            if not isinstance(led, Ledger):
                raise TypeError(
                    f"ledgers[{i}] must be a Ledger, got {type(led).__name__}"
                )
        all_names = [r.name for led in sources for r in led]
        # the joined rows gain the tag "chapter"; a key may not change place across sources
        _check_one_place(
            (
                (f"row {r.name!r} of ledger {led.name!r}", place, keys)
                for led in sources
                for r in led
                for place, keys in [
                    ("a tag", {"chapter": led.name, **r.tags}),
                    *_places(r)[1:],
                ]
            ),
            "Ledger.concat",
        )
        out = cls(name)
        for led in sources:
            for r in led:
                tags = {"chapter": led.name, **r.tags}
                row_name = (
                    r.name
                    if all_names.count(r.name) == 1
                    else f"{tags['chapter']}/{r.name}"
                )
                out._append(Row(row_name, dict(r.investment), dict(r.result), tags))
        return out
