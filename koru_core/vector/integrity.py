"""Checking a vector index's files before they are loaded, and against the data in ``verify()``.

An HNSW index (:mod:`koru_core.vector.index`) is a cache of the data, but hnswlib trusts
the file it loads: a flipped byte can crash the process (an out-of-range neighbour id is
followed), and a consistent edit (another ``dim``, swapped labels) gives wrong
neighbours. So koru records each index file's size and blake3 in the index's meta file
when it writes them, and before hnswlib sees a file:

1. :func:`check_files`: the two files named by the meta are plain files of the store's
   vector folder (no symlink, no path), of the recorded size and blake3, and the
   ``.hnsw`` file's own header and links agree with the meta (dimension, count, ``M``,
   every neighbour id in range). A file that fails is not loaded; the index is rebuilt
   from the Parquet files (the truth).
2. :func:`check_indexes` (run by :meth:`koru_core.Store.verify`) also compares every index
   with the data: the vectors hnswlib stores (normalised for ``cosine``, as hnswlib does)
   equal the label file's copies, every label's write id is a version of the namespace up
   to the index's commit, and its stored vector equals that version's vector, and every
   such version with a finite vector is in the index.

Residual window (README, "Integrity"): someone who rewrites an index file *and* its
checksum in the meta file passes step 1 (as with a data file and its catalog checksum);
step 2 catches it, as ``verify`` catches an edited data file through the content ids.

The ``.hnsw`` layout read here is hnswlib's ``saveIndex`` (hnswalg.h, hnswlib 0.8): a
header of six ``size_t`` (level-0 offset, max elements, element count, bytes per element,
label offset, data offset), ``int`` max level, ``uint32`` entry point, three ``size_t``
(maxM, maxM0, M), ``double`` mult, ``size_t`` ef_construction; then the level-0 block
(per element: a ``uint32`` link count, maxM0 ``uint32`` neighbour ids, the vector as
float32, the label as ``size_t``); then per element a ``uint32`` byte length and that many
bytes of upper-level links (per level a ``uint32`` count and maxM ids).
"""

from __future__ import annotations

import json
import os
import stat
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from blake3 import blake3

if TYPE_CHECKING:
    from koru_core.context import StoreContext

__all__ = ["HEADER", "check_files", "check_indexes", "file_record", "hnsw_items"]

HEADER = struct.Struct("<QQQQQQiIQQQdQ")
"""The ``.hnsw`` header (little-endian, as hnswlib writes it on every platform koru runs on)."""

_KEYS = ("index", "labels")


def file_record(path: Path) -> dict[str, Any]:
    """The ``{"bytes", "blake3"}`` a meta file records for one index file."""
    data = path.read_bytes()
    return {"bytes": len(data), "blake3": blake3(data).hexdigest()}


def _read(folder: Path, name: object) -> bytes:
    """The bytes of index file ``name`` of ``folder``: a plain file name, a regular file."""
    if not isinstance(name, str) or not name or "/" in name or name in (".", "..") or "\x00" in name:
        msg = f"the meta file names {name!r}, which is not a file of {folder}"
        raise ValueError(msg)
    path = folder / name
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        msg = f"{path} is {'a symlink' if stat.S_ISLNK(st.st_mode) else 'not a regular file'}"
        raise ValueError(msg)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        return f.read()


def _check_hnsw(data: bytes, meta: dict[str, Any]) -> str | None:
    """Problems of the ``.hnsw`` bytes against the meta, or None."""
    if len(data) < HEADER.size:
        return f"{len(data)} bytes, shorter than hnswlib's header"
    (off0, _max, count, per, label_at, data_at, max_level, entry, max_m, max_m0, m, _mult, _efc) = (
        HEADER.unpack_from(data, 0))
    dim, want_count, want_m = int(meta["dim"]), int(meta["count"]), int(meta["m"])
    if off0 != 0 or count != want_count or m != want_m or max_m != m or max_m0 != 2 * m:
        return (f"header says {count} items and M={m} (maxM {max_m}, maxM0 {max_m0}); the meta says "
                f"{want_count} items and M={want_m}")
    links0 = max_m0 * 4 + 4
    if data_at != links0 or label_at != links0 + 4 * dim or per != label_at + 8:
        return f"its items are {per} bytes with vectors of {(label_at - data_at) // 4} dims; the meta says {dim} dims"
    if count and not (0 <= max_level < 64 and entry < count):
        return f"entry point {entry} or top level {max_level} is out of range"
    end0 = HEADER.size + count * per
    if len(data) < end0 + 4 * count:
        return f"{len(data)} bytes, too short for {count} items"
    level0 = np.frombuffer(data, np.uint8, count * per, HEADER.size).reshape(count, per) if count else None
    if level0 is not None:
        sizes = np.ascontiguousarray(level0[:, :4]).view("<u4").ravel() & 0xFFFF
        ids = np.ascontiguousarray(level0[:, 4:links0]).view("<u4").reshape(count, max_m0)
        used = np.arange(max_m0)[None, :] < sizes[:, None]
        if (sizes > max_m0).any() or (ids[used] >= count).any():
            return "a level-0 link list is too long or names an item that does not exist"
        labels = np.ascontiguousarray(level0[:, label_at:label_at + 8]).view("<u8").ravel()
        if not np.array_equal(np.sort(labels), np.arange(count, dtype=np.uint64)):
            return "its labels are not the items 0..count-1"
    at, upper = end0, max_m * 4 + 4
    for _ in range(count):
        (size,) = struct.unpack_from("<I", data, at)
        at += 4
        if size % upper or at + size > len(data):
            return "an upper-level link list is cut short or of a wrong size"
        if size:
            block = np.frombuffer(data, "<u4", size // 4, at).reshape(-1, max_m + 1)
            if ((block[:, 0] & 0xFFFF) > max_m).any() or (block[:, 1:][np.arange(max_m)[None, :] < (block[:, :1] & 0xFFFF)] >= count).any():
                return "an upper-level link list names an item that does not exist"
        at += size
    if at != len(data):
        return f"{len(data) - at} bytes follow the last link list"
    return None


def check_files(folder: Path, meta: dict[str, Any]) -> str | None:
    """Why the index files named by ``meta`` must not be loaded, or None when they may be.

    Never raises: any problem (a missing or unreadable file, a symlink, a size or blake3
    other than recorded, a header or link that disagrees with the meta) is the answer.
    """
    records = meta.get("files")
    if not isinstance(records, dict):
        return "the meta file records no checksums"
    for key in _KEYS:
        try:
            data = _read(folder, meta.get(key))
        except (OSError, ValueError) as e:
            return f"{key} file: {e}"
        record = records.get(key)
        if not isinstance(record, dict) or record.get("bytes") != len(data) or record.get("blake3") != blake3(data).hexdigest():
            return f"{folder / str(meta[key])}: size or blake3 differs from the meta file (damaged or edited)"
        if key == "index":
            try:
                problem = _check_hnsw(data, meta)
            except (KeyError, TypeError, ValueError, struct.error) as e:
                problem = f"unreadable ({e})"
            if problem is not None:
                return f"{folder / str(meta[key])}: {problem}"
    return None


def hnsw_items(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(labels uint64, vectors float32 of shape (count, dim)) stored in ``.hnsw`` bytes, by item."""
    (_, _, count, per, label_at, data_at, *_rest) = HEADER.unpack_from(data, 0)
    level0 = np.frombuffer(data, np.uint8, count * per, HEADER.size).reshape(count, per)
    vectors = np.ascontiguousarray(level0[:, data_at:label_at]).view("<f4").reshape(count, -1)
    labels = np.ascontiguousarray(level0[:, label_at:label_at + 8]).view("<u8").ravel()
    return labels, vectors


def _matrix(values: pa.Array) -> np.ndarray:
    if len(values) == 0:
        return np.zeros((0, 0), np.float32)
    if pa.types.is_fixed_size_list(values.type):
        dim = values.type.list_size
    else:
        dim = len(values[0].as_py() or [])
    flat = values.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    return flat.reshape(len(values), dim) if dim else flat.reshape(len(values), 0)


def _normalised(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _data_vectors(ctx: StoreContext, namespace: str, column: str, commit: int) -> tuple[list[str], np.ndarray]:
    """Write ids (hex) and vectors of the versions up to ``commit`` with a finite vector."""
    from koru_core._hex import to_hex
    from koru_core.read import execute
    from koru_core.read.plan import plan_versions

    plan = plan_versions(ctx, namespace, version=commit)
    parts = [execute.read_source(ctx, plan, src, ["_write_id", "_deleted", "_commit", column]) for src in plan.candidates]
    if not parts:
        return [], np.zeros((0, 0), np.float32)
    rows = pa.concat_tables(parts)
    rows = rows.filter(pc.and_(pc.and_(pc.invert(rows["_deleted"]), pc.is_valid(rows[column])),
                               pc.less_equal(rows["_commit"], commit)))
    vectors = _matrix(rows[column].combine_chunks())
    keep = np.isfinite(vectors).all(axis=1) if len(vectors) else np.zeros(0, bool)
    ids = to_hex(rows["_write_id"].combine_chunks()).to_pylist()
    return [i for i, k in zip(ids, keep) if k], vectors[keep]


def _check_one(ctx: StoreContext, folder: Path, meta_path: Path, head: int) -> list[str]:
    where = str(meta_path)
    try:
        meta = json.loads(meta_path.read_text())
        namespace, column, metric = str(meta["namespace"]), str(meta["column"]), str(meta["metric"])
        commit, count = int(meta["commit"]), int(meta["count"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        return [f"{where}: vector index meta file is unreadable ({e!r}); the next search rebuilds the index"]
    problem = check_files(folder, meta)
    if problem is not None:
        return [f"{where}: vector index of {namespace!r}.{column!r} ({metric}): {problem}; the next search rebuilds it"]
    if commit > head:
        return [f"{where}: vector index of {namespace!r} was built at commit {commit}, after the catalog's last "
                f"commit {head} (the catalog was replaced by an older copy?)"]
    labels_table = pq.read_table(folder / meta["labels"])
    ids = labels_table["_write_id"].to_pylist()
    copies = _matrix(labels_table["vector"].combine_chunks())
    item_labels, stored = hnsw_items((folder / meta["index"]).read_bytes())
    out: list[str] = []
    prefix = f"{where}: vector index of {namespace!r}.{column!r} ({metric})"
    if len(ids) != count:
        return [f"{prefix}: its labels file holds {len(ids)} write ids, the meta says {count}"]
    if count:
        by_label = stored[np.argsort(item_labels)]
        expect = _normalised(copies) if metric == "cosine" else copies
        if by_label.shape != expect.shape or not np.allclose(by_label, expect, rtol=1e-5, atol=1e-6):
            out.append(f"{prefix}: the vectors hnswlib holds differ from the labels file's copies (edited)")
    if namespace not in ctx.catalog.namespaces():
        return [*out, f"{prefix}: namespace {namespace!r} does not exist"]
    data_ids, data_vectors = _data_vectors(ctx, namespace, column, commit)
    position = {w: i for i, w in enumerate(data_ids)}
    unknown = [w for w in ids if w not in position]
    if unknown:
        out.append(f"{prefix}: labels name write ids that are no version of the namespace up to commit {commit}: "
                   f"{', '.join(map(str, unknown[:3]))}")
    else:
        rows = np.array([position[w] for w in ids], np.int64)
        if count and (data_vectors[rows].shape != copies.shape or not np.array_equal(data_vectors[rows], copies)):
            out.append(f"{prefix}: stored vectors differ from the versions' vectors in the data (edited labels?)")
    if len(set(ids)) != len(ids) or len(data_ids) != count:
        out.append(f"{prefix}: it holds {len(set(ids))} distinct versions, the data has {len(data_ids)} with a "
                   f"vector up to commit {commit}")
    return out


def check_indexes(ctx: StoreContext) -> list[str]:
    """Problems of every vector index of the store (module docstring, step 2); one line each."""
    if not isinstance(ctx.root, Path):  # object storage holds no vector index
        return []
    root = ctx.root / "vector"
    if not root.is_dir() or root.is_symlink():
        return []
    head = ctx.catalog.head()[0]
    problems: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        for meta_path in sorted(folder.glob("*.json")):
            if meta_path.is_symlink():
                problems.append(f"{meta_path}: is a symlink; koru refuses symlinks inside a store")
                continue
            problems += _check_one(ctx, folder, meta_path, head)
    return problems
