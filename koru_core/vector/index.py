"""The HNSW index of one (namespace, column, metric), persisted beside the data.

The index is a cache: the Parquet files (and pending versions) stay the source
of truth. It holds one hnswlib item per stored version that has a finite
vector (tombstones and null vectors are skipped); an item's label is its
ordinal in the index, and the ``_write_id`` of each label is persisted beside
it with a copy of the stored vector, so a search maps an as-of state's write
ids to labels and reads the vectors of the nearest labels without decoding the
vector column of the data files.

Superseded versions are *not* marked deleted (``mark_deleted``): a search as
of an earlier time must still find them. Instead every search that is not over
all indexed items passes hnswlib a filter of the as-of state's labels
(``knn_query(filter=…)``, hnswlib ≥ 0.8); see :mod:`koru_core.vector.nearest`
for when the index is used at all.

On disk, under ``<store>/vector/namespace=<ns>/``::

    <column>.<metric>.json                      meta: commit, count, dim, m, ef_construction, file names
    <column>.<metric>.<commit>-<hex>.hnsw       hnswlib's save_index
    <column>.<metric>.<commit>-<hex>.labels.parquet   per label: _write_id and the stored vector

Each file is written to a temporary name and renamed; the meta file is renamed
last and names the two others, with the size and blake3 of each, so a reader never
pairs an index with the labels of another, and never hands hnswlib a damaged or
edited file (:mod:`koru_core.vector.integrity` checks both before loading; a file
that fails is rebuilt from the data, and ``verify()`` checks each index against it). An index older than the namespace's latest commit gets the
versions of the newer commits added (the commit numbers are the store's, so
``_commit > meta.commit`` finds them); a missing or unreadable index is
rebuilt from all versions.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from koru_core._hex import to_hex
from koru_core.errors import InvalidInputError
from koru_core.vector.integrity import check_files, file_record

if TYPE_CHECKING:
    from koru_core.read.plan import ReadPlan
    from koru_core.store import Store

__all__ = ["IndexInfo", "LoadedIndex", "build_index", "matrix", "open_index", "require", "vector_column"]

log = logging.getLogger("koru")

DEFAULT_M = 32
DEFAULT_EF_CONSTRUCTION = 200
_FORMAT = 3  # 3: the meta records each file's size and blake3
_LOCK = threading.RLock()
"""Serialises refreshes and queries in this process (hnswlib items must not be
added while a query runs)."""
SAVE_EVERY = 10_000
SAVE_FRACTION = 0.1
"""An index brought up to date is written back to disk once the items added
since its files were written reach ``max(SAVE_EVERY, SAVE_FRACTION × items)``;
until then the files stay as they were, and a process that loads them adds the
newer versions from the data files again (so a put followed by a search does
not rewrite a million-vector index)."""
# loaded indexes live in each store's context (``ctx.vector["indexes"]``), emptied by Store.close()
_CACHE_SIZE = 8


def require() -> tuple[Any, Any]:
    """Return the modules ``(hnswlib, numpy)``, or raise the ImportError naming the extra."""
    try:
        import hnswlib
        import numpy
    except ImportError as e:
        msg = "koru vector search needs hnswlib: pip install 'koru-lake[vector]'"
        raise ImportError(msg) from e
    return hnswlib, numpy


def _is_vector_type(t: pa.DataType) -> bool:
    if pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.types.is_floating(t.value_type)
    return False


def vector_column(namespace: str, schema: pa.Schema, column: str | None) -> str:
    """Return the vector column to search: ``column``, or the namespace's only one.

    Raises:
        InvalidInputError: ``column`` is not a value column of a float list
            type, or it is None and the namespace has no or several such columns.
    """
    values = [f for f in schema if not f.name.startswith("_")]
    if column is None:
        found = [f.name for f in values if _is_vector_type(f.type)]
        if len(found) != 1:
            msg = f"namespace {namespace!r}: give column=, one of the vector columns {found!r}"
            raise InvalidInputError(msg)
        return found[0]
    types = {f.name: f.type for f in values}
    if column not in types:
        msg = f"namespace {namespace!r}: no value column {column!r} (columns: {sorted(types)})"
        raise InvalidInputError(msg)
    if not _is_vector_type(types[column]):
        msg = (f"namespace {namespace!r}: column {column!r} is {types[column]}, not a vector "
               "(fixed_size_list<float32>[d] or list<float>)")
        raise InvalidInputError(msg)
    return column


def matrix(namespace: str, column: str, values: pa.ChunkedArray | pa.Array) -> Any:
    """Return non-null list values as a float32 numpy matrix of shape (rows, d).

    Raises:
        InvalidInputError: the rows of a ``list`` column differ in length.
    """
    _, np = require()
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if len(array) == 0:
        return np.zeros((0, 0), np.float32)
    if pa.types.is_fixed_size_list(array.type):
        dim = array.type.list_size
    else:
        lengths = pc.list_value_length(array)
        bounds = pc.min_max(lengths)
        dim = bounds["min"].as_py()
        if dim != bounds["max"].as_py():
            msg = f"namespace {namespace!r}: vectors in column {column!r} have lengths {dim}..{bounds['max'].as_py()}"
            raise InvalidInputError(msg)
    flat = array.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(len(array), dim)


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexInfo:
    """What an HNSW index holds.

    Attributes:
        namespace: The namespace.
        column: The vector column.
        metric: ``"cosine"``, ``"l2"`` or ``"ip"`` (hnswlib's spaces).
        commit: The index holds every version up to this commit.
        count: Items (versions with a finite vector) in the index.
        dim: Vector dimension.
        m: HNSW ``M`` (links per node).
        ef_construction: HNSW ``ef_construction``.
    """

    namespace: str
    column: str
    metric: str
    commit: int
    count: int
    dim: int
    m: int
    ef_construction: int


@dataclass(slots=True, kw_only=True)
class LoadedIndex:
    """An index in memory: hnswlib's object, its info, and each label's ``_write_id``
    and stored vector (as Arrow, exactly as in the data files)."""

    info: IndexInfo
    hnsw: Any
    write_ids: pa.Array
    values: pa.Array
    saved: tuple[int, int] = (-1, 0)
    """(commit, count) of the files on disk this index extends; (-1, 0) if none."""


def _folder(store: Store, namespace: str) -> Path:
    """The index folder of a namespace (symlinks on the way refused: an index is never
    written, read or deleted outside the store)."""
    from koru_core.storage.local import check_no_symlink

    if not isinstance(store.path, Path):
        msg = (f"{store.path}: vector indexes are kept in a local store folder; a store on object "
               "storage has none (search its versions with DuckDB or Polars instead)")
        raise InvalidInputError(msg)
    return check_no_symlink(store.path, f"vector/namespace={quote(namespace, safe='')}")


def _stem(column: str, metric: str) -> str:
    return f"{quote(column, safe='')}.{metric}"


def _finite_versions(
    store: Store, namespace: str, column: str, since: int, plan: Any
) -> tuple[pa.Array, Any, pa.Array]:
    """Write ids, vectors (numpy) and vectors (Arrow) of the versions with
    ``_commit > since`` holding a finite vector."""
    _, np = require()
    from koru_core.read import execute

    parts = []
    for src in plan.candidates:
        if src.entry is not None and src.entry.max_commit <= since and src.commit is None:
            continue
        t = execute.read_source(store._ctx, plan, src, ["_write_id", "_deleted", "_commit", column])
        parts.append(t.filter(pc.greater(t["_commit"], since)))
    rows = pa.concat_tables(parts) if parts else None
    if rows is None:
        rows = pa.table({"_write_id": pa.array([], pa.binary(8)), "_deleted": pa.array([], pa.bool_()),
                         column: pa.array([], plan.schema.field(column).type)})
    rows = rows.set_column(rows.column_names.index("_write_id"), "_write_id", to_hex(rows["_write_id"]))
    rows = rows.filter(pc.and_(pc.invert(rows["_deleted"]), pc.is_valid(rows[column])))
    vectors = matrix(namespace, column, rows[column])
    keep = np.isfinite(vectors).all(axis=1) if len(vectors) else np.zeros(0, bool)
    mask = pa.array(keep, pa.bool_())
    return rows["_write_id"].combine_chunks().filter(mask), vectors[keep], rows[column].combine_chunks().filter(mask)


def _save(store: Store, loaded: LoadedIndex) -> None:
    """Persist the index; on a read-only store it lives in this process's memory only."""
    try:
        _write(store, loaded)
    except OSError:
        return
    loaded.saved = (loaded.info.commit, loaded.info.count)


def _write(store: Store, loaded: LoadedIndex) -> None:
    info = loaded.info
    folder = _folder(store, info.namespace)
    folder.mkdir(parents=True, exist_ok=True)
    stem = _stem(info.column, info.metric)
    tag = f"{info.commit:06d}-{secrets.token_hex(4)}"
    names = {"index": f"{stem}.{tag}.hnsw", "labels": f"{stem}.{tag}.labels.parquet"}
    tmp_index = folder / f".{names['index']}.tmp"
    loaded.hnsw.save_index(str(tmp_index))
    os.replace(tmp_index, folder / names["index"])
    tmp_labels = folder / f".{names['labels']}.tmp"
    pq.write_table(pa.table({"_write_id": loaded.write_ids, "vector": loaded.values}), tmp_labels)
    os.replace(tmp_labels, folder / names["labels"])
    files = {key: file_record(folder / name) for key, name in names.items()}
    meta = {"format": _FORMAT, **{k: getattr(info, k) for k in IndexInfo.__slots__}, **names, "files": files}
    old = _read_meta(folder / f"{stem}.json")
    tmp_meta = folder / f".{stem}.json.{tag}.tmp"
    tmp_meta.write_text(json.dumps(meta))
    os.replace(tmp_meta, folder / f"{stem}.json")
    for key in ("index", "labels"):  # best effort: a reader holding the old meta rebuilds
        if old and old.get(key) and old[key] != names[key]:
            (folder / old[key]).unlink(missing_ok=True)


def _read_meta(path: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == _FORMAT else None


def _load(store: Store, namespace: str, column: str, metric: str) -> LoadedIndex | None:
    hnswlib, _ = require()
    folder = _folder(store, namespace)
    meta = _read_meta(folder / f"{_stem(column, metric)}.json")
    if meta is None:
        return None
    problem = check_files(folder, meta)
    if problem is not None:  # never hand hnswlib a damaged or edited file: rebuild from the data
        log.warning("koru: vector index of namespace %r, column %r is rebuilt: %s", namespace, column, problem)
        return None
    try:
        info = IndexInfo(**{k: meta[k] for k in IndexInfo.__slots__})
        labels = pq.read_table(folder / meta["labels"])
        write_ids, values = labels["_write_id"].combine_chunks(), labels["vector"].combine_chunks()
        hnsw = hnswlib.Index(space=metric, dim=info.dim)
        hnsw.load_index(str(folder / meta["index"]), max_elements=max(info.count, 1))
    except (OSError, KeyError, TypeError, RuntimeError, pa.ArrowException):
        return None
    if hnsw.get_current_count() != info.count or len(write_ids) != info.count:
        return None
    return LoadedIndex(info=info, hnsw=hnsw, write_ids=write_ids, values=values, saved=(info.commit, info.count))


def _add(loaded: LoadedIndex, ids: pa.Array, vectors: Any, values: pa.Array, commit: int) -> LoadedIndex:
    _, np = require()
    info = loaded.info
    if len(ids):
        if info.count == 0 and vectors.shape[1] != info.dim:  # built empty from a list<float> column
            hnswlib, _ = require()
            info = IndexInfo(**{**{k: getattr(info, k) for k in IndexInfo.__slots__}, "dim": vectors.shape[1]})
            loaded.hnsw = hnswlib.Index(space=info.metric, dim=info.dim)
            loaded.hnsw.init_index(max_elements=len(ids), M=info.m, ef_construction=info.ef_construction)
        if vectors.shape[1] != info.dim:
            msg = (f"namespace {info.namespace!r}: column {info.column!r} holds vectors of "
                   f"{vectors.shape[1]} and {info.dim} dims")
            raise InvalidInputError(msg)
        total = info.count + len(ids)
        if total > loaded.hnsw.get_max_elements():
            loaded.hnsw.resize_index(max(total, 2 * loaded.hnsw.get_max_elements()))
        loaded.hnsw.add_items(vectors, np.arange(info.count, total), num_threads=os.cpu_count() or 1)
        loaded.write_ids = pa.concat_arrays([loaded.write_ids, ids.cast(pa.string())])
        if len(loaded.values) == 0:
            loaded.values = values
        elif values.type != loaded.values.type:  # the column widened: keep one type
            loaded.values = pa.concat_arrays([loaded.values.cast(values.type), values])
        else:
            loaded.values = pa.concat_arrays([loaded.values, values])
    loaded.info = IndexInfo(**{**{k: getattr(info, k) for k in IndexInfo.__slots__},
                               "commit": commit, "count": len(loaded.write_ids)})
    return loaded


def _build(store: Store, namespace: str, column: str, metric: str, plan: Any, *, m: int,
           ef_construction: int) -> LoadedIndex:
    hnswlib, _ = require()
    ids, vectors, values = _finite_versions(store, namespace, column, 0, plan)
    dim = vectors.shape[1] if len(ids) else (plan.schema.field(column).type.list_size
                                              if pa.types.is_fixed_size_list(plan.schema.field(column).type) else 1)
    hnsw = hnswlib.Index(space=metric, dim=dim)
    hnsw.init_index(max_elements=max(len(ids), 1), M=m, ef_construction=ef_construction)
    info = IndexInfo(namespace=namespace, column=column, metric=metric, commit=0, count=0, dim=dim,
                     m=m, ef_construction=ef_construction)
    empty = LoadedIndex(info=info, hnsw=hnsw, write_ids=pa.array([], pa.string()), values=values.slice(0, 0))
    return _add(empty, ids, vectors, values, plan.commit)


def open_index(store: Store, namespace: str, column: str, metric: str, *, m: int = DEFAULT_M,
               ef_construction: int = DEFAULT_EF_CONSTRUCTION, rebuild: bool = False,
               plan: ReadPlan | None = None) -> LoadedIndex:
    """Return the index of (namespace, column, metric), up to the namespace's latest commit.

    Loads it (from this process's cache or disk), adds the versions of newer
    commits, or builds it from all versions when missing, unreadable or
    ``rebuild``; saves it when it changed. ``m`` and ``ef_construction`` apply
    to a new build only; ``plan`` is the namespace's latest scan plan, when the
    caller has it. Call with :data:`_LOCK` held.
    """
    plan = plan or store.plan(namespace, shape="versions")
    cache_key = (str(store.path), namespace, column, metric)
    _CACHE = store._ctx.vector.setdefault("indexes", OrderedDict())
    meta = _read_meta(_folder(store, namespace) / f"{_stem(column, metric)}.json")
    loaded = None if rebuild else _CACHE.get(cache_key)
    folder = _folder(store, namespace)
    if loaded is not None and (meta is None or meta.get("commit") != loaded.saved[0]
                               or not all((folder / meta[f]).exists() for f in ("index", "labels"))):
        loaded = None  # the files were deleted or another process moved them on
    if loaded is None and not rebuild:
        loaded = _load(store, namespace, column, metric)
    if loaded is None:
        loaded = _build(store, namespace, column, metric, plan, m=m, ef_construction=ef_construction)
        _save(store, loaded)
    elif loaded.info.commit < plan.commit:
        ids, vectors, values = _finite_versions(store, namespace, column, loaded.info.commit, plan)
        loaded = _add(loaded, ids, vectors, values, plan.commit)
        if loaded.info.count - loaded.saved[1] >= max(SAVE_EVERY, SAVE_FRACTION * loaded.info.count):
            _save(store, loaded)
    _CACHE[cache_key] = loaded
    _CACHE.move_to_end(cache_key)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return loaded


def build_index(store: Store, namespace: str, *, column: str | None = None, metric: str = "cosine",
                m: int = DEFAULT_M, ef_construction: int = DEFAULT_EF_CONSTRUCTION) -> IndexInfo:
    """(Re)build the HNSW index of a namespace's vector column from all its versions.

    :meth:`koru_core.Store.search` builds and updates indexes by itself (with
    ``m=32, ef_construction=200``); call this to choose other parameters, which
    later updates keep.

    Args:
        store: An open store.
        namespace: Existing namespace.
        column: The vector column; default the namespace's only one.
        metric: ``"cosine"``, ``"l2"`` or ``"ip"``.
        m: HNSW ``M`` (links per node, 4..64 typical).
        ef_construction: HNSW ``ef_construction`` (build-time beam width).

    Returns:
        The new index's :class:`IndexInfo`.

    Raises:
        ImportError: hnswlib or numpy is missing (the ``koru-lake[vector]`` extra).
        InvalidInputError: unknown column or metric, or ``m``/``ef_construction`` < 2.

    Example:
        >>> import pyarrow as pa
        >>> vectors = pa.array([[1, 0], [0, 1]], pa.list_(pa.float32(), 2))
        >>> _ = store.upsert("docs", pa.table({"id": ["a", "b"], "embedding": vectors}), key="id")
        >>> info = koru.vector.build_index(store, "docs", m=8, ef_construction=50)
        >>> info.count, info.dim, info.m
        (2, 2, 8)
    """
    require()
    from koru_core.vector.nearest import METRICS

    if metric not in METRICS:
        msg = f"namespace {namespace!r}: metric must be one of {METRICS}, got {metric!r}"
        raise InvalidInputError(msg)
    for name, value in (("m", m), ("ef_construction", ef_construction)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 2:
            msg = f"namespace {namespace!r}: {name} must be an int ≥ 2, got {value!r}"
            raise InvalidInputError(msg)
    column = vector_column(namespace, store.schema(namespace), column)
    with _LOCK:
        return open_index(store, namespace, column, metric, m=m, ef_construction=ef_construction,
                          rebuild=True).info
