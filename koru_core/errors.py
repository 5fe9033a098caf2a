"""The errors koru raises.

Every error is a :class:`KoruError`, so ``except KoruError`` catches all of them.
Each subclass also derives from the builtin exception that fits, so code that
catches ``ValueError``, ``TypeError`` or ``LookupError`` keeps working::

    KoruError                                 root: callers can catch everything koru raises
    ├── InvalidInputError(ValueError)         bad argument or data; nothing was written
    ├── SchemaError(TypeError)                a field's type cannot widen; names field and both types
    ├── KeyNotFoundError(LookupError)         names the namespace and key
    ├── NamespaceNotFoundError(LookupError)   names the namespace
    ├── ConflictError                         a concurrent commit won; nothing was written
    │   └── HeadMovedError                    the head moved past the writer's base; rebase and retry
    ├── StoreLockedError                      another process holds the write lock
    ├── StoreFullError(OSError)               no space left (errno ENOSPC); nothing was written
    ├── ReadOnlyError(PermissionError)        a write on a store opened (or found) read-only
    ├── FormatError                           the store has another on-disk format; names the upgrade
    ├── PrunedError(LookupError)              the point asked for lost versions to retention; names it
    └── CorruptionError                       a checksum or catalog invariant failed; names the file

Messages name the namespace, key, field or file concerned and show the bad
value with ``!r``.
"""

from __future__ import annotations

__all__ = [
    "ConflictError",
    "CorruptionError",
    "FormatError",
    "HeadMovedError",
    "InvalidInputError",
    "KeyNotFoundError",
    "KoruError",
    "NamespaceNotFoundError",
    "PrunedError",
    "ReadOnlyError",
    "SchemaError",
    "StoreFullError",
    "StoreLockedError",
]


class KoruError(Exception):
    """Root of every error koru raises."""


class InvalidInputError(KoruError, ValueError):
    """Raised when an argument or the data is malformed; nothing was written."""


class SchemaError(KoruError, TypeError):
    """Raised when a field's new type cannot widen the stored type losslessly."""


class KeyNotFoundError(KoruError, LookupError):
    """Raised when a key has no live version at the requested point."""

    def __str__(self) -> str:  # LookupError subclasses must not quote the message
        return str(self.args[0]) if self.args else ""


class NamespaceNotFoundError(KoruError, LookupError):
    """Raised when a namespace was never written."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConflictError(KoruError):
    """Raised when a concurrent commit changed what this commit depended on; nothing was written.

    Attributes:
        namespace, key: The key whose version changed (None when not about one key).
        expected: The commit of the key's version the writer read (0: none).
        actual: The commit of its current version when the commit was refused (0: none).

    Example:
        >>> e = ConflictError("key 'a' changed", namespace="t", key="a", expected=3, actual=5)
        >>> (e.key, e.expected, e.actual)
        ('a', 3, 5)
    """

    def __init__(self, message: str = "", *, namespace: str | None = None, key: str | None = None,
                 expected: int | None = None, actual: int | None = None) -> None:
        super().__init__(message)
        self.namespace = namespace
        self.key = key
        self.expected = expected
        self.actual = actual

    def __reduce__(self) -> tuple[object, ...]:  # picklable across processes, keyword arguments kept
        return (_conflict, (str(self), self.namespace, self.key, self.expected, self.actual))


class HeadMovedError(ConflictError):
    """Raised by ``Catalog.record_commit`` when another writer committed after the draft's base.

    Nothing was written. The writer rebases its draft on ``head`` (recomputing what
    depends on the head: ``_prev_write_id``, the unchanged rule, the chain body) and
    records it again; only a rebase that finds a real conflict becomes a plain
    :class:`ConflictError`.

    Attributes:
        base: The commit the draft was prepared against.
        head: The last commit when the draft was refused (``head > base``).

    Example:
        >>> e = HeadMovedError("catalog 'x': commit 4 was taken (the last is 5)", base=3, head=5)
        >>> (e.base, e.head, isinstance(e, ConflictError))
        (3, 5, True)
    """

    def __init__(self, message: str, *, base: int, head: int) -> None:
        super().__init__(message)
        self.base = base
        self.head = head

    def __reduce__(self) -> tuple[object, ...]:  # picklable across processes, keyword arguments kept
        return (_head_moved, (str(self), self.base, self.head))


def _conflict(message: str, namespace: str | None, key: str | None, expected: int | None,
              actual: int | None) -> ConflictError:
    return ConflictError(message, namespace=namespace, key=key, expected=expected, actual=actual)


def _head_moved(message: str, base: int, head: int) -> HeadMovedError:
    return HeadMovedError(message, base=base, head=head)


class StoreLockedError(KoruError):
    """Raised when another writer holds the store's write lock past the timeout."""


class CorruptionError(KoruError):
    """Raised when a checksum, a file size or a catalog invariant does not hold."""


class StoreFullError(KoruError, OSError):
    """Raised when the disk (or object store) has no space left; nothing was written.

    It is an ``OSError`` with ``errno.ENOSPC``; writes work again once space is freed.
    Out of space is not corruption.
    """


class ReadOnlyError(KoruError, PermissionError):
    """Raised when a write is asked of a store opened, or found, read-only; nothing was written.

    ``koru.open(path, read_only=True)``, or a folder koru may not write (a read-only mount,
    a copy without write permission), which ``open`` detects by itself.
    """


class FormatError(KoruError):
    """Raised when a store was written in another on-disk format; the message names the upgrade path."""


class PrunedError(KoruError, LookupError):
    """Raised when a read asks for a point whose versions distillation dropped; names the retention."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
