"""Plain value objects between the Dagster boundary and the storage code (no Dagster here).

``_context.py`` builds them from Dagster contexts (as dagster-duckdb's
``TableSlice``); ``_storage.py`` and ``_pins.py`` act on them without seeing Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

    from koru_dagster.metadata import Mode

__all__ = ["PartitionRef", "ReadRequest", "Slice", "WriteRequest"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Slice:
    """The part of a namespace one partition (or range of them) covers.

    Attributes:
        since, until: The time window ``[since, until)`` (UTC) of a time partition, or None.
        equals: ``(column, allowed values)`` pairs: the partition columns.
    """

    since: datetime | None = None
    until: datetime | None = None
    equals: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionRef:
    """One upstream partition an input reads.

    Attributes:
        key: The Dagster partition key as a string (``2024-03-01``, ``2024-03-01|n``).
        values: ``(column, value)`` pairs: the partition column(s) holding it.
        recorded: The commit the Dagster instance's latest materialization of this
            partition recorded (``koru/commit``), or None when it holds none.
    """

    key: str
    values: tuple[tuple[str, str], ...]
    recorded: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteRequest:
    """Everything needed to write one output, with no Dagster object in it.

    Attributes:
        namespace: Target namespace.
        asset: The asset key as a user reads it (``a/b``), for messages and commit metadata.
        key: Key columns (partition columns first).
        valid_from: A datetime for every row, a column name, or None (commit time).
        mode: ``"replace"``: tombstone the live keys of ``scope`` absent from the
            output; ``"upsert"``: add and change only.
        columns: ``(column, value)`` pairs to add to (or check in) every row.
        scope: The slice of the namespace this output replaces.
        partitions: The partition keys written (empty: an unpartitioned asset).
        actor, run_id, parents: Provenance.
        inputs: Upstream asset → the commit(s) read (:data:`koru_dagster.metadata.INPUTS`).
    """

    namespace: str
    asset: str
    key: tuple[str, ...]
    valid_from: datetime | str | None
    mode: Mode
    columns: tuple[tuple[str, str], ...]
    scope: Slice
    partitions: tuple[str, ...]
    actor: str
    run_id: str
    parents: tuple[str, ...]
    inputs: dict[str, int | dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadRequest:
    """Everything needed to load one input.

    Attributes:
        namespace: Upstream namespace.
        asset: The upstream asset key, for messages and to find its materializations.
        scope: The slice to read.
        at: Valid time to read at, or None (now).
        version: An explicit commit (``koru/version``), or None.
        pin: Read at the commit the upstream's materialization wrote (True) or the latest.
        recorded: For an unpartitioned upstream, the commit the Dagster instance
            recorded for its latest materialization, or None.
        partitions: For a partitioned upstream, the partitions read; None otherwise.
        columns: Value columns to return, or None for all.
    """

    namespace: str
    asset: str
    scope: Slice
    at: datetime | None = None
    version: int | None = None
    pin: bool = True
    recorded: int | None = None
    partitions: tuple[PartitionRef, ...] | None = None
    columns: tuple[str, ...] | None = None
