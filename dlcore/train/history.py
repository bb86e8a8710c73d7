"""``History``: the per-epoch ledger :func:`~dlcore.train.fit` returns, as a table in a notebook."""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["History"]


@dataclass
class History:
    """Per-epoch records from :func:`fit`: ``history["loss"]`` is a list with one float per epoch.

    Keys: ``epoch`` (1-based), ``loss``, ``accuracy`` (classification), ``val_loss`` and
    ``val_accuracy`` (with ``val=``), ``seconds`` and ``samples_per_s`` (training only; under
    DDP with ``sync_metrics=True`` every rank's samples together, else this rank's).
    """

    records: list[dict[str, float]] = field(default_factory=list)
    # True when fit was interrupted (KeyboardInterrupt): the records are the completed epochs
    interrupted: bool = False

    def keys(self) -> list[str]:
        seen: dict[str, None] = {}
        for record in self.records:
            seen.update(dict.fromkeys(record))
        return list(seen)

    def __getitem__(self, key: str) -> list[float]:
        if not isinstance(key, str):
            raise TypeError(
                f"History keys are str, got {type(key).__name__} ({key!r})"
            )
        values = [record[key] for record in self.records if key in record]
        if not values:
            raise KeyError(f"history has no {key!r}; available keys: {self.keys()}")
        return values

    def __contains__(self, key: object) -> bool:
        return any(key in record for record in self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, float]]:
        return iter(self.records)

    @property
    def last(self) -> dict[str, float]:
        if not self.records:
            raise IndexError("history is empty: no epoch has finished yet")
        return dict(self.records[-1])

    def to_dict(self) -> dict[str, Any]:
        return {"records": [dict(record) for record in self.records]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        if not isinstance(data, dict) or not isinstance(data.get("records"), list):
            raise ValueError(
                f"data must be a dict with a 'records' list, got {data!r:.80}"
            )
        for record in data["records"]:
            # keys become column headers: only str, whatever the checkpoint held
            if not isinstance(record, dict) or not all(
                isinstance(k, str) for k in record
            ):
                raise ValueError(
                    f"data['records'] must be dicts with str keys, got {record!r:.80}"
                )
        return cls(
            [{k: float(v) for k, v in record.items()} for record in data["records"]]
        )

    def _rows(self) -> tuple[list[str], list[list[str]]]:
        cols = self.keys()
        rows = [[_fmt(record.get(c)) for c in cols] for record in self.records]
        return cols, rows

    def __str__(self) -> str:
        cols, rows = self._rows()
        widths = [
            max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)
        ]
        lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths))]
        lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        # keys come from checkpoints and callbacks: escape them, or Jupyter runs them
        cols, rows = self._rows()
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>"
            for r in rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return (
        str(int(value))
        if float(value).is_integer() and abs(value) < 1e9
        else f"{value:.4g}"
    )
