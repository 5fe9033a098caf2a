"""koru_duckdb: SQL over a koru store, with ``FROM ns AT (TIMESTAMP => …)`` time travel.

Example:
    >>> import tempfile, koru_core, koru_duckdb
    >>> store = koru_core.open(tempfile.mkdtemp())
    >>> _ = store.put("users", "alice", {"age": 31})
    >>> koru_duckdb.connect(store).sql("SELECT _key, age FROM users").fetchall()
    [('alice', 31)]
"""

try:
    import duckdb  # noqa: F401
    import sqlglot  # noqa: F401
except ImportError as e:
    msg = "koru_duckdb needs DuckDB: pip install 'koru-lake[duckdb]'"
    raise ImportError(msg) from e

from koru_duckdb.connection import KoruConnection, connect
from koru_duckdb.export import export
from koru_duckdb.install import KoruInstall, install

__all__ = ["KoruConnection", "KoruInstall", "connect", "export", "install"]
