"""koru for Polars: lazy, time-travelling scans of a koru store, and writes from frames.

Example:
    >>> import tempfile, polars as pl, koru_polars
    >>> path = tempfile.mkdtemp()
    >>> koru_polars.write_koru(pl.DataFrame({"id": ["a"], "age": [31]}), path, "users", key="id").written
    1
    >>> koru_polars.read_koru(path, "users")["age"].to_list()
    [31]
"""

try:
    import polars  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised in a subprocess by the tests
    msg = "koru_polars needs Polars: pip install 'koru-lake[polars]'"
    raise ImportError(msg) from e

from koru_polars.changes import scan_koru_changes
from koru_polars.scan import read_koru, scan_koru
from koru_polars.write import write_koru

__all__ = ["read_koru", "scan_koru", "scan_koru_changes", "write_koru"]
