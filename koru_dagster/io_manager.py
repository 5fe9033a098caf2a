"""KoruIOManager: assets stored as koru namespaces, with record-level provenance."""

from __future__ import annotations

from typing import Any, Literal

from dagster import ConfigurableIOManager, InitResourceContext, InputContext, OutputContext
from pydantic import Field, PrivateAttr, field_validator

import koru_core as koru
from koru_dagster import _config, _context, _frames, _storage

__all__ = ["KoruIOManager"]


class KoruIOManager(ConfigurableIOManager):  # type: ignore[misc]
    """Store each asset as a koru namespace: every materialization adds versions.

    Writes: the output (pyarrow Table, Polars DataFrame/LazyFrame, pandas
    DataFrame) is the asset's whole state (``koru/mode: "replace"``, the
    default, as dagster-duckdb and dagster-deltalake replace what an asset
    produced): it is upserted into the namespace named by
    :func:`koru_dagster.namespace_for` (``a/b`` → ``a__b``), keyed by ``koru/key``
    or this manager's ``key``, and the records it no longer holds become
    tombstones in the same commit. ``koru/mode: "upsert"`` keeps them (an
    incremental asset). Unchanged rows are skipped: an unchanged re-run makes
    no commit. Every version records actor ``"dagster"``, the run id, and as
    parents the write ids of the upstream records this op loaded (per row when
    the output carries ``_write_id`` or ``_parents``); every commit records the
    asset, partition(s), run id and the upstream commits read. Output metadata:
    see :mod:`koru_dagster.metadata`; the data version is content-derived (an
    unchanged output keeps it).

    Partitions: the partition key becomes a string column (``partition``; one
    per dimension for a multi-partition) that leads the record key, so each
    partition owns its records; a re-run replaces that partition's records only
    (history is never rewritten). A time window also sets valid time to its
    start, unless ``koru/valid_from`` names a column. A partition (or range)
    reads back the records of those partitions.

    Reads: by default the upstream as of the commit its latest Dagster
    materialization wrote (pinned, reproducible; found in the Dagster instance,
    else in the store's commit metadata, so ``materialize()`` without an
    instance pins too: see :mod:`koru_dagster._pins`); writes made outside
    Dagster after it are not read. ``koru/pin: False`` reads the latest,
    ``koru/at`` / ``koru/version`` travel in valid / system time, ``columns``
    projects. The result has the input's annotated type, with the system
    columns ``_key``, ``_valid_from``, ``_system_from``, ``_commit``, ``_write_id``.
    The commit each input was read at is shown on the downstream
    materialization (``koru/inputs``, ``koru/input_ranges``).

    Raises:
        InvalidInputError: bad ``koru/*`` metadata, no key, unsupported types.

    Example:
        >>> import tempfile, pyarrow as pa
        >>> from dagster import asset, materialize
        >>> @asset
        ... def users() -> pa.Table:
        ...     return pa.table({"id": ["a"], "age": [31]})
        >>> io_manager = KoruIOManager(store=tempfile.mkdtemp(), key="id")
        >>> materialize([users], resources={"io_manager": io_manager}).success
        True
    """

    store: str = Field(description=_config.STORE_HELP)
    catalog: str | None = Field(default=None, description=_config.CATALOG_HELP)
    storage_options: dict[str, str] | None = Field(default=None, description=_config.STORAGE_OPTIONS_HELP)
    key: list[str] | None = Field(
        default=None,
        description="Default key column (a str) or columns (a list) for assets without `koru/key` metadata.",
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
    _inputs: dict[str, dict[str, int | dict[str, int]]] = PrivateAttr(default_factory=dict)

    @field_validator("key", mode="before")
    @classmethod
    def _one_key(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._instance = _context.instance_of(context)
        self._loaded = {}  # parents and inputs are per run: forget what an earlier run loaded
        self._inputs = {}

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def _open(self) -> koru.Store:
        if self._store is None:
            self._store = koru.open(
                self.store, durability=self.durability, lock_timeout=self.lock_timeout,
                catalog=self.catalog, storage_options=self.storage_options,
            )
        return self._store

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        """Upsert the output and report commit, counts and data version."""
        if obj is None:
            return
        op = _context.op_of(context)
        parents = list(self._loaded.get(op, {}))
        request = _context.write_request(
            context, default_key=self.key, parents=parents, inputs=self._inputs.get(op, {})
        )
        outcome = _storage.write(self._open(), request, _frames.to_table(obj, asset=request.asset))
        _context.record_output(context, outcome)

    def load_input(self, context: InputContext) -> Any:
        """Read the upstream slice (pinned by default) in the annotated type."""
        request = _context.read_request(context, instance=self._instance)
        outcome = _storage.read(self._open(), request)
        op = _context.op_of(context)
        self._loaded.setdefault(op, {}).update(dict.fromkeys(outcome.table["_write_id"].to_pylist()))
        self._inputs.setdefault(op, {})[request.asset] = outcome.pin
        return _frames.from_table(outcome.table, _context.wanted_type(context))
