"""Argument validators shared by the ``dlcore.train`` modules; errors name the argument."""

from __future__ import annotations

__all__ = ["_check_int", "_check_type"]


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{name} must be an int, got {type(value).__name__} ({value!r})"
        )
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return value


def _check_type(
    name: str, value: object, kind: type | tuple[type, ...], optional: bool = False
) -> None:
    if not (isinstance(value, kind) or (optional and value is None)):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        want = " or ".join(k.__name__ for k in kinds) + (
            " or None" if optional else ""
        )
        raise TypeError(f"{name} must be {want}, got {type(value).__name__}")
