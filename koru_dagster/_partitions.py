"""Partitions as koru sees them: the column(s) that hold a partition key, and its time window.

The partition key is a string column, ``partition`` (a multi-partition: one
column per dimension, named after it), added to each output and put first in the
record key. So each partition owns its records, and **the keys of a partition
are the live records whose partition column(s) hold its key**: that is what a
partition's read returns and what a ``"replace"`` write of it compares the
output with. A time window (or a multi-partition's time dimension) also sets
valid time (its start) and is kept in :class:`~koru_dagster._requests.Slice`.

This module reads partition *definitions*; only ``_context.py`` reads contexts.

Example:
    >>> from dagster import StaticPartitionsDefinition
    >>> slice_for(StaticPartitionsDefinition(["n", "s"]), ["n"], window=None).equals
    (('partition', ('n',)),)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dagster import MultiPartitionsDefinition, TimeWindowPartitionsDefinition

from koru_dagster._requests import PartitionRef, Slice

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from dagster import PartitionsDefinition, TimeWindow

__all__ = ["PARTITION_COLUMN", "partition_refs", "slice_for"]

PARTITION_COLUMN = "partition"
"""The column that holds a (single-dimension) partition key."""


def slice_for(definition: PartitionsDefinition, keys: Sequence[Any], *, window: TimeWindow | None) -> Slice:
    """The slice of a namespace that partitions ``keys`` of ``definition`` cover."""
    if isinstance(definition, TimeWindowPartitionsDefinition) and window is not None:
        return Slice(
            since=window.start, until=window.end,
            equals=((PARTITION_COLUMN, tuple(str(k) for k in keys)),),
        )
    if isinstance(definition, MultiPartitionsDefinition):
        return _multi_slice(definition, keys)
    return Slice(equals=((PARTITION_COLUMN, tuple(str(k) for k in keys)),))


def partition_refs(
    definition: PartitionsDefinition, keys: Sequence[Any], *, recorded: Mapping[str, int]
) -> tuple[PartitionRef, ...]:
    """One :class:`PartitionRef` per key: its column values and the instance's recorded commit."""
    refs = []
    for key in keys:
        if isinstance(definition, MultiPartitionsDefinition):
            values = tuple(
                (d.name, _dimension_key(definition, key, d.name)) for d in definition.partitions_defs
            )
        else:
            values = ((PARTITION_COLUMN, str(key)),)
        refs.append(PartitionRef(key=str(key), values=values, recorded=recorded.get(str(key))))
    return tuple(refs)


def _multi_slice(definition: MultiPartitionsDefinition, keys: Sequence[Any]) -> Slice:
    since = until = None
    equals: list[tuple[str, tuple[str, ...]]] = []
    for dimension in definition.partitions_defs:
        values = sorted({_dimension_key(definition, k, dimension.name) for k in keys})
        inner = dimension.partitions_def
        if isinstance(inner, TimeWindowPartitionsDefinition):
            windows = [inner.time_window_for_partition_key(v) for v in values]
            since, until = min(w.start for w in windows), max(w.end for w in windows)
        equals.append((dimension.name, tuple(values)))
    return Slice(since=since, until=until, equals=tuple(equals))


def _dimension_key(definition: MultiPartitionsDefinition, key: Any, dimension: str) -> str:
    by_dimension = getattr(key, "keys_by_dimension", None)
    if by_dimension is None:
        by_dimension = definition.get_partition_key_from_str(str(key)).keys_by_dimension
    return str(by_dimension[dimension])
