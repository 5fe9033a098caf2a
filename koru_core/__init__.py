"""koru: a causal, versioned record store for data pipelines.

Every write of a record becomes an immutable version with its valid time,
system time, content id (blake3), previous version and provenance. See
DESIGN.md for the words and the data model.

Example:
    >>> import tempfile, koru_core as koru
    >>> store = koru.open(tempfile.mkdtemp())
    >>> store.put("users", "alice", {"age": 31}).commit
    1
"""

from koru_core.errors import (
    ConflictError,
    CorruptionError,
    FormatError,
    HeadMovedError,
    InvalidInputError,
    KeyNotFoundError,
    KoruError,
    NamespaceNotFoundError,
    PrunedError,
    ReadOnlyError,
    SchemaError,
    StoreFullError,
    StoreLockedError,
)
from koru_core.lifecycle.api import restore
from koru_core.lifecycle.policies import KeepAll, KeepFor, KeepLast, Pin, Thinning
from koru_core.lifecycle.upgrade import upgrade
from koru_core.model import (
    Commit,
    CommitResult,
    FieldChange,
    Lineage,
    MaintenanceResult,
    VerifyReport,
    Version,
)
from koru_core.opening import DEFAULT_STORE
from koru_core.read.plan import ReadPlan, Source
from koru_core.store import Store, open
from koru_core.write.transaction import Transaction

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_STORE",
    "Commit",
    "CommitResult",
    "ConflictError",
    "CorruptionError",
    "FieldChange",
    "FormatError",
    "HeadMovedError",
    "InvalidInputError",
    "KeepAll",
    "KeepFor",
    "KeepLast",
    "KeyNotFoundError",
    "KoruError",
    "Lineage",
    "MaintenanceResult",
    "NamespaceNotFoundError",
    "Pin",
    "PrunedError",
    "ReadOnlyError",
    "ReadPlan",
    "SchemaError",
    "Source",
    "Store",
    "StoreFullError",
    "StoreLockedError",
    "Thinning",
    "Transaction",
    "VerifyReport",
    "Version",
    "open",
    "restore",
    "upgrade",
]
