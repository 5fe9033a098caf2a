"""Handing freed memory back to the system during large writes.

A large commit computes and frees several columns the size of its batch on the way
(content ids, heads, decisions, the versions). The allocators keep what was freed for
their next allocation: Arrow's (mimalloc, one heap per thread) until asked, and glibc's
(NumPy's arrays) until its heap is trimmed. Kept, those pages add up to more than the
commit ever holds at once, and the resident set passes ``memory_limit``. Between the
steps of a large commit, :func:`give_back` returns them; it costs about a millisecond,
so small commits do not call it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import pyarrow as pa

__all__ = ["LARGE_ROWS", "give_back"]

LARGE_ROWS = 64 * 1024
"""Batches of more rows than this give freed memory back between their steps."""


@functools.cache
def _malloc_trim() -> object | None:
    """glibc's ``malloc_trim``, or None on another C library."""
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None


def give_back() -> None:
    """Return the memory Arrow's pool and the C heap hold freed to the system
    (:meth:`pyarrow.MemoryPool.release_unused`, glibc ``malloc_trim(0)``)."""
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)  # type: ignore[operator]
