"""Process-wide thread pools, created on first use and forgotten in a forked child.

koru's heavy steps call into C and Rust code that releases the GIL (pyarrow's Parquet
writer, NumPy, polars-hash), so a few threads overlap them. A pool's threads do not
survive ``fork``: a child that inherited the parent's pool object would queue work no
thread ever runs, so :func:`os.register_at_fork` drops the pools in the child and the
next call there starts new ones.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["pool"]

_POOLS: dict[str, ThreadPoolExecutor] = {}
_LOCK = threading.Lock()


def pool(name: str, workers: int) -> ThreadPoolExecutor:
    """The process's pool called ``name`` (threads named ``koru-<name>``), started with
    ``workers`` threads on first use; later calls return the same pool."""
    with _LOCK:
        found = _POOLS.get(name)
        if found is None:
            found = _POOLS[name] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"koru-{name}")
        return found


def _forget_in_child() -> None:
    global _LOCK  # noqa: PLW0603 - a lock held by a parent thread at fork is never released in the child
    _LOCK = threading.Lock()
    _POOLS.clear()


os.register_at_fork(after_in_child=_forget_in_child)
