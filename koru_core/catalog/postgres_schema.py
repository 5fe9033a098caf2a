"""The PostgreSQL catalog's URL, tables and migrations (used by :mod:`koru_core.catalog.postgres`).

**URL.** A libpq URL, ``postgresql://user:password@host:port/database?…`` (or
``postgres://…``), with one koru parameter: ``koru_schema=NAME`` (default ``koru``),
the PostgreSQL schema holding the store's tables. One database can thus hold many
stores, one per schema. Every other parameter is libpq's (``sslmode``,
``connect_timeout``, ``options`` …) and passes through unchanged; koru appends
``-c search_path=NAME`` to ``options``, so the SQL never names the schema. The
password is never shown: messages use :attr:`Target.display`.

**Tables** (all in the schema; times int64 ns UTC, hashes and checksums 32-byte bytea)::

    meta(name PRIMARY KEY, value)     format_version, content_format, store_id, catalog_schema
    head(id = 1, last_commit, last_system_time, last_hash)   the one row committers lock
    counters(name PRIMARY KEY, value) next_write_id, retire_epoch
    commits(commit_number PRIMARY KEY, system_time, actor, run_id, namespaces text[], written,
            unchanged, deleted, first_write_id, last_write_id, hash, prev_hash, metadata JSON text)
    namespaces(name PRIMARY KEY, schema, key_columns text[], created_commit, schema_commit, cold_commit)
    files(path PRIMARY KEY, namespace, tier, kind, rows, bytes, checksum, commit_number, system_time,
          min_commit, max_commit, min_valid, max_valid, max_valid_to, max_valid_to_commit,
          min_key bytea, max_key bytea)            keys as UTF-8 bytes: text cannot hold NUL
    pending(namespace, kind, commit_number, system_time, rows, data bytea, checksum)
    retired(path PRIMARY KEY, namespace, tier, bytes, retired_at, epoch)
    tags(name PRIMARY KEY, commit_number)    cursors(name PRIMARY KEY, commit_number)
    leases(lease_id PRIMARY KEY, holder, commit_number, mark, expires_at timestamptz)

**Migrations.** ``meta.catalog_schema`` is the version of these tables (independent of the
store's on-disk ``format_version``). Opening read-write creates a missing catalog and
applies missing migrations inside one transaction that holds a transaction-level
advisory lock keyed by the schema name, so concurrent first opens from many processes
or hosts create it exactly once; an up-to-date catalog is opened with one plain read and
no lock. A catalog newer than this koru is refused (:class:`~koru_core.errors.FormatError`).

Example:
    >>> t = parse_url("postgresql://etl:s3cret@db:5432/lake?koru_schema=sales&sslmode=require")
    >>> t.schema, t.display
    ('sales', 'postgresql://etl:***@db:5432/lake?sslmode=require (schema sales)')
    >>> t.conninfo
    'postgresql://etl:s3cret@db:5432/lake?sslmode=require'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from koru_core.errors import InvalidInputError

if TYPE_CHECKING:
    import psycopg

__all__ = ["DEFAULT_SCHEMA", "MIGRATIONS", "SCHEMA_VERSION", "Target", "is_postgres_url", "parse_url"]

DEFAULT_SCHEMA = "koru"
"""The PostgreSQL schema of a store whose URL names none."""

SCHEMES = ("postgresql", "postgres")
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: the format-2 catalog, as the SQLite backend holds it, plus head, counters and leases
        "CREATE TABLE meta(name text PRIMARY KEY, value text NOT NULL)",
        "CREATE TABLE head(id int PRIMARY KEY CHECK (id = 1), last_commit bigint NOT NULL, "
        "last_system_time bigint NOT NULL, last_hash bytea)",
        "INSERT INTO head VALUES (1, 0, 0, NULL)",
        "CREATE TABLE counters(name text PRIMARY KEY, value bigint NOT NULL)",
        "INSERT INTO counters VALUES ('next_write_id', 1), ('retire_epoch', 0)",
        "CREATE TABLE commits(commit_number bigint PRIMARY KEY, system_time bigint NOT NULL, actor text, "
        "run_id text, namespaces text[] NOT NULL, written bigint NOT NULL, unchanged bigint NOT NULL, "
        "deleted bigint NOT NULL, first_write_id bigint, last_write_id bigint, hash bytea NOT NULL, "
        "prev_hash bytea, metadata text)",
        "CREATE INDEX commits_system_time ON commits(system_time)",
        "CREATE INDEX commits_write_ids ON commits(last_write_id)",
        "CREATE TABLE namespaces(name text PRIMARY KEY, schema bytea NOT NULL, key_columns text[] NOT NULL, "
        "created_commit bigint NOT NULL, schema_commit bigint NOT NULL, cold_commit bigint NOT NULL)",
        "CREATE TABLE files(path text PRIMARY KEY, namespace text NOT NULL, tier text NOT NULL, "
        "kind text NOT NULL, rows bigint NOT NULL, bytes bigint NOT NULL, checksum bytea NOT NULL, "
        "commit_number bigint, system_time bigint, min_commit bigint NOT NULL, max_commit bigint NOT NULL, "
        "min_valid bigint NOT NULL, max_valid bigint NOT NULL, max_valid_to bigint, "
        "max_valid_to_commit bigint, min_key bytea, max_key bytea)",
        "CREATE INDEX files_namespace ON files(namespace, tier)",
        "CREATE TABLE pending(namespace text NOT NULL, kind text NOT NULL, commit_number bigint NOT NULL, "
        "system_time bigint NOT NULL, rows bigint NOT NULL, data bytea NOT NULL, checksum bytea NOT NULL, "
        "PRIMARY KEY (namespace, kind, commit_number))",
        "CREATE TABLE retired(path text PRIMARY KEY, namespace text NOT NULL, tier text NOT NULL, "
        "bytes bigint NOT NULL, retired_at bigint, epoch bigint NOT NULL)",
        "CREATE TABLE tags(name text PRIMARY KEY, commit_number bigint NOT NULL)",
        "CREATE TABLE cursors(name text PRIMARY KEY, commit_number bigint NOT NULL)",
        "CREATE TABLE leases(lease_id text PRIMARY KEY, holder text NOT NULL, commit_number bigint NOT NULL, "
        "mark bigint NOT NULL, expires_at timestamptz NOT NULL)",
        "CREATE INDEX leases_expiry ON leases(expires_at)",
    ),
)
"""``MIGRATIONS[i]`` takes the tables from version ``i`` to ``i + 1`` (append only, never edit)."""

SCHEMA_VERSION = len(MIGRATIONS)
"""The version of the tables this koru writes (``meta.catalog_schema``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Where a PostgreSQL catalog lives.

    Attributes:
        conninfo: The libpq URL without koru's parameters (it holds the password).
        schema: The PostgreSQL schema of the store's tables.
        display: The URL with the password masked and the schema named, for messages.
    """

    conninfo: str
    schema: str
    display: str


def is_postgres_url(value: object) -> bool:
    """Tell whether ``value`` is a ``postgresql://`` or ``postgres://`` URL.

    Example:
        >>> is_postgres_url("postgres://db/lake"), is_postgres_url("data.koru")
        (True, False)
    """
    return isinstance(value, str) and value.split("://", 1)[0].lower() in SCHEMES and "://" in value


def parse_url(url: str) -> Target:
    """Split a catalog URL into libpq's part and koru's ``koru_schema`` (see the module docstring).

    Raises:
        InvalidInputError: not a PostgreSQL URL, or a schema name that is not a lower-case
            SQL identifier (``[a-z_][a-z0-9_]*``, at most 63 characters).
    """
    if not is_postgres_url(url):
        msg = f"catalog URL must start with postgresql:// or postgres://, got {url!r}"
        raise InvalidInputError(msg)
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    names = [v for k, v in query if k == "koru_schema"]
    schema = names[-1] if names else DEFAULT_SCHEMA
    if not _NAME.fullmatch(schema):
        msg = (f"koru_schema must be a lower-case SQL identifier ([a-z_][a-z0-9_]*, at most 63 characters), "
               f"got {schema!r}")
        raise InvalidInputError(msg)
    rest = urlencode([(k, v) for k, v in query if k != "koru_schema"])
    conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment))
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    display = urlunsplit((parts.scheme, netloc, parts.path, rest, "")) + f" (schema {schema})"
    return Target(conninfo=conninfo, schema=schema, display=display)


def lock_key(schema: str) -> int:
    """The advisory-lock key (int64) that serialises creating and migrating one schema's catalog.

    Example:
        >>> lock_key("koru") == lock_key("koru") != lock_key("sales")
        True
    """
    from blake3 import blake3

    return int.from_bytes(blake3(b"koru-catalog:" + schema.encode()).digest()[:8], "big", signed=True)


def table_version(con: psycopg.Connection, schema: str) -> int | None:
    """Return ``meta.catalog_schema`` of ``schema`` (0 if meta has none), or None if there is no meta table."""
    # pg_tables through the statement's snapshot, not to_regclass(): that reads the catalog cache,
    # which does not yet see a table another session committed while we waited for the lock
    row = con.execute("SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = %s AND tablename = 'meta'",
                      [schema]).fetchone()
    if row is None:
        return None
    found = con.execute("SELECT value FROM meta WHERE name = 'catalog_schema'").fetchone()
    return 0 if found is None else int(found[0])


def migrate(con: psycopg.Connection, schema: str, *, meta: dict[str, str]) -> None:
    """Create or migrate the catalog in ``schema``, under its advisory lock, in one transaction.

    Args:
        con: An autocommit connection whose ``search_path`` is ``schema``.
        schema: The PostgreSQL schema.
        meta: The ``meta`` rows of a new catalog (format_version, content_format, store_id).

    Raises:
        FormatError: the catalog's tables are newer than this koru.
    """
    from psycopg import sql

    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key(schema)])
        version = table_version(con, schema)  # again, under the lock: another process may have done it
        if version is not None and version > SCHEMA_VERSION:
            raise newer_tables(schema, version)
        if version is None:
            con.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            con.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
        for statements in MIGRATIONS[version or 0:]:
            for statement in statements:
                con.execute(statement)
        if version is None:
            con.cursor().executemany("INSERT INTO meta VALUES (%s, %s)", list(meta.items()))
        con.execute("INSERT INTO meta VALUES ('catalog_schema', %s) ON CONFLICT (name) DO UPDATE "
                    "SET value = excluded.value", [str(SCHEMA_VERSION)])


def newer_tables(schema: str, version: int) -> Exception:
    """The error for a catalog whose tables a newer koru migrated."""
    from koru_core.errors import FormatError

    msg = (f"schema {schema!r}: the catalog's tables are at version {version}, newer than this koru's "
           f"{SCHEMA_VERSION}; upgrade koru (pip install -U koru-lake)")
    return FormatError(msg)
