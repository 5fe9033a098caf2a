"""KoruIOManager: assets stored as koru namespaces, with record-level provenance."""

from __future__ import annotations

from typing import Any, Literal

from dagster import ConfigurableIOManager, InitResourceContext, InputContext, OutputContext
from pydantic import Field, PrivateAttr

import koru_core as koru
from koru_dagster import _context, _frames, _storage

__all__ = ["KoruIOManager"]


class KoruIOManager(ConfigurableIOManager):  # type: ignore[misc]
    """Store each asset as a koru namespace: every materialization adds versions.

    Writes: the output (pyarrow Table, Polars DataFrame/LazyFrame, pandas
    DataFrame) is upserted into the namespace named by
    :func:`koru_dagster.namespace_for` (``a/b`` → ``a__b``), keyed by ``koru/key``
    or this manager's ``key``; unchanged rows are skipped. Every version records
    actor ``"dagster"``, the run id, and as parents the write ids of the upstream
    records this op loaded (per row when the output carries ``_write_id`` or
    ``_parents``). Output metadata: see :mod:`koru_dagster.metadata`; the data
    version is content-derived (an unchanged output keeps it).

    Partitions: the partition key becomes a string column (``partition``; one
    per dimension for a multi-partition) that leads the record key, so each
    partition owns its records and a re-run adds versions to them only (history
    is never rewritten). A time window also sets valid time to its start, unless
    ``koru/valid_from`` names a column. A partition (or range) reads back the
    records of those partitions.

    Reads: by default the upstream as of the commit its latest materialization
    recorded (pinned, reproducible); ``koru/pin: False`` reads the latest,
    ``koru/at`` / ``koru/version`` travel in valid / system time, ``columns``
    projects. The result has the input's annotated type, with the system
    columns ``_key``, ``_valid_from``, ``_system_from``, ``_commit``, ``_write_id``.

    Raises:
        InvalidInputError: bad ``koru/*`` metadata, no key, unsupported types.

    Example:
        >>> import tempfile, pyarrow as pa
        >>> from dagster import asset, materialize
        >>> @asset(metadata={"koru/key": "id"})
        ... def users() -> pa.Table:
        ...     return pa.table({"id": ["a"], "age": [31]})
        >>> io_manager = KoruIOManager(store=tempfile.mkdtemp())
        >>> materialize([users], resources={"io_manager": io_manager}).success
        True
    """

    store: str = Field(description="Path of the koru store folder (created if missing).")
    key: list[str] | None = Field(
        default=None,
        description="Default key column(s) for assets without `koru/key` metadata.",
    )
    durability: Literal["full", "process"] = Field(
        default="full", description="Store durability: 'full' (fsync each write) or 'process'."
    )
    lock_timeout: float = Field(
        default=10.0, description="Seconds a write waits for another process's write lock."
    )

    _store: koru.Store | None = PrivateAttr(default=None)
    _instance: Any = PrivateAttr(default=None)
    _loaded: dict[str, dict[str, None]] = PrivateAttr(default_factory=dict)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._instance = _context.instance_of(context)
        self._loaded = {}  # parents are per run: forget what an earlier run loaded

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def _open(self) -> koru.Store:
        if self._store is None:
            self._store = koru.open(
                self.store, durability=self.durability, lock_timeout=self.lock_timeout
            )
        return self._store

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        """Upsert the output and report commit, counts and data version."""
        if obj is None:
            return
        parents = list(self._loaded.get(_context.op_of(context), {}))
        request = _context.write_request(context, default_key=self.key, parents=parents)
        outcome = _storage.write(self._open(), request, _frames.to_table(obj, asset=request.asset))
        _context.record_output(context, outcome)

    def load_input(self, context: InputContext) -> Any:
        """Read the upstream slice (pinned by default) in the annotated type."""
        request = _context.read_request(context, instance=self._instance)
        table = _storage.read(self._open(), request)
        loaded = self._loaded.setdefault(_context.op_of(context), {})
        loaded.update(dict.fromkeys(table["_write_id"].to_pylist()))
        return _frames.from_table(table, _context.wanted_type(context))
