"""Field-level differences between two versions of one key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa

from koru_core._time import to_ns
from koru_core.errors import InvalidInputError, KeyNotFoundError
from koru_core.model import FieldChange
from koru_core.read.rules import value_columns

__all__ = ["diff"]


def _pick(rows: list[dict[str, Any]], ref: int | datetime | str, namespace: str, key: str) -> int:
    """Index in ``rows`` (history order) of the version ``ref`` names."""
    if isinstance(ref, str):
        for i, r in enumerate(rows):
            if r["_write_id"] == ref:
                return i
        msg = f"namespace {namespace!r}, key {key!r}: no version with write id {ref!r}"
        raise KeyNotFoundError(msg)
    if isinstance(ref, bool) or not isinstance(ref, (int, datetime)):
        msg = f"namespace {namespace!r}, key {key!r}: a version is a write id, commit number or datetime, got {ref!r}"
        raise InvalidInputError(msg)
    if isinstance(ref, int):
        candidates = [i for i, r in enumerate(rows) if r["_commit"] <= ref]
    else:
        t = to_ns(ref, what="version time")
        candidates = [i for i, r in enumerate(rows) if to_ns(r["_valid_from"], what="_valid_from") <= t]
    if not candidates:
        msg = f"namespace {namespace!r}, key {key!r}: no version at {ref!r}"
        raise KeyNotFoundError(msg)
    if isinstance(ref, int):  # the version current at that commit: largest (valid, commit)
        return max(candidates, key=lambda i: (rows[i]["_valid_from"], rows[i]["_commit"]))
    return candidates[-1]


def diff(history: pa.Table, namespace: str, key: str, a: Any, b: Any, *, head: int | None = None) -> list[FieldChange]:
    """Compare two versions from ``history`` (in history order) field by field.

    Args:
        history: The key's versions, as :meth:`Store.history` returns them.
        namespace, key: For messages.
        a, b: Write id, commit number or valid time; None for the defaults
            (``b``: the last version; ``a``: the one before ``b``).

    Returns:
        One :class:`FieldChange` per value field whose value differs, in column
        order. A tombstone side has every field None.

    Raises:
        KeyNotFoundError: the key has no versions, or a reference matches none.
        InvalidInputError: a commit number outside ``1..head``.
    """
    for ref in (a, b):
        if head is not None and isinstance(ref, int) and not isinstance(ref, bool) and not 1 <= ref <= head:
            msg = f"namespace {namespace!r}, key {key!r}: a commit number must be in 1..{head}, got {ref!r}"
            raise InvalidInputError(msg)
    rows = [r for r in history.to_pylist() if not r.get("_pruned")]
    if not rows:
        msg = f"namespace {namespace!r}: no key {key!r}"
        raise KeyNotFoundError(msg)
    ib = len(rows) - 1 if b is None else _pick(rows, b, namespace, key)
    ia = ib - 1 if a is None else _pick(rows, a, namespace, key)
    before: dict[str, Any] = rows[ia] if ia >= 0 else {}
    after = rows[ib]
    changes = []
    for name in value_columns(history):
        old = None if before.get("_deleted", True) else before.get(name)
        new = None if after["_deleted"] else after.get(name)
        if old != new:
            changes.append(FieldChange(field=name, before=old, after=new))
    return changes
