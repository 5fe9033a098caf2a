"""Reader leases kept in the catalog, on both backends (issue 15: vacuum on one machine must not
delete a file a reader on another machine still reads; see koru_core/catalog/leases.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _backends import Backend
from _drafts import cold, draft, warm

from koru_core.catalog import Catalog
from koru_core.errors import InvalidInputError

ROOT = Path(__file__).parents[3]
FOREVER = 2**62


def retire(catalog: Catalog, name: str) -> str:
    """Record a warm file ``name``, then swap it out (retired now); return its path."""
    path = f"warm/{name}.parquet"
    catalog.record_commit(draft(catalog.head()[0], tag=name, files=(warm(path),)))
    entry = next(f for f in catalog.files() if f.path == path)
    assert catalog.swap_files("users", remove=[entry], add=[], retired_at=time.time_ns())
    return path


def test_a_lease_is_live_until_released(catalog: Catalog) -> None:
    lease = catalog.add_lease("host-a:1", commit=3, ttl=60)
    assert len(lease.lease_id) == 32 and lease.holder == "host-a:1" and lease.commit == 3
    assert lease.expires_at > time.time_ns() + 50 * 10**9
    assert catalog.live_leases() == [lease]
    renewed = catalog.renew_lease(lease.lease_id, ttl=120)
    assert renewed is not None and renewed > lease.expires_at
    assert catalog.live_leases()[0].expires_at == renewed
    catalog.release_lease(lease.lease_id)
    catalog.release_lease(lease.lease_id)  # idempotent
    assert catalog.live_leases() == []
    assert catalog.renew_lease(lease.lease_id, ttl=60) is None


def test_an_expired_lease_is_not_live_and_cannot_be_renewed(catalog: Catalog) -> None:
    short = catalog.add_lease("host-a:1", commit=0, ttl=0.2)
    long = catalog.add_lease("host-b:2", commit=0, ttl=60)
    time.sleep(0.4)
    assert [lease.lease_id for lease in catalog.live_leases()] == [long.lease_id]
    assert catalog.renew_lease(short.lease_id, ttl=60) is None  # vacuum may already have ignored it
    assert [lease.lease_id for lease in catalog.live_leases()] == [long.lease_id]


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), "60", True, None])
def test_a_ttl_must_be_a_positive_number_of_seconds(catalog: Catalog, ttl: object) -> None:
    with pytest.raises(InvalidInputError, match="lease ttl must be a positive number of seconds"):
        catalog.add_lease("h", commit=0, ttl=ttl)  # type: ignore[arg-type]
    assert catalog.live_leases() == []


def test_vacuumable_spares_files_retired_after_a_live_lease_started(catalog: Catalog) -> None:
    before = retire(catalog, "before")
    lease = catalog.add_lease("reader", commit=catalog.head()[0], ttl=60)
    after = retire(catalog, "after")
    assert catalog.vacuumable(retired_before=FOREVER) == [before]  # the reader's plan may list `after`
    catalog.release_lease(lease.lease_id)
    assert catalog.vacuumable(retired_before=FOREVER) == [after, before]


def test_an_expired_lease_protects_nothing(catalog: Catalog) -> None:
    catalog.add_lease("dead-reader", commit=0, ttl=0.2)
    path = retire(catalog, "x")
    assert catalog.vacuumable(retired_before=FOREVER) == []
    time.sleep(0.4)
    assert catalog.vacuumable(retired_before=FOREVER) == [path]


def test_vacuumable_keeps_the_retain_grace_and_files_listed_again(catalog: Catalog) -> None:
    catalog.record_commit(draft(0, files=(warm("warm/a.parquet"), warm("warm/b.parquet", key="m"))))
    a, b = catalog.files()
    catalog.swap_files("users", remove=[a], add=[], retired_at=100)
    catalog.swap_files("users", remove=[b], add=[cold("warm/a.parquet")], retired_at=200)  # a's path listed again
    assert catalog.vacuumable(retired_before=150) == []
    assert catalog.vacuumable(retired_before=200) == ["warm/b.parquet"]


def test_a_lease_taken_by_one_handle_protects_in_another(backend: Backend) -> None:
    """The vacuuming handle sees the reader handle's lease (on PostgreSQL a read-only reader may lease)."""
    vacuum = backend.open()
    reader = backend.open(read_only=backend.name == "postgres")
    lease = reader.add_lease("reader-host:7", commit=0, ttl=60)
    path = retire(vacuum, "f")
    assert [x.lease_id for x in vacuum.live_leases()] == [lease.lease_id]
    assert vacuum.vacuumable(retired_before=FOREVER) == []
    reader.release_lease(lease.lease_id)
    assert vacuum.vacuumable(retired_before=FOREVER) == [path]


def test_read_only_handles_lease_on_postgresql_only(backend: Backend) -> None:
    """A SQLite catalog opened read-only is a read-only file (a mount, a copy): nothing can be written,
    not even a lease. A PostgreSQL reader opened read-only still leases."""
    backend.open()
    reader = backend.open(read_only=True)
    if backend.name == "sqlite":
        with pytest.raises(PermissionError, match="read-only"):
            reader.add_lease("r", commit=0, ttl=60)
        assert reader.live_leases() == []
    else:
        lease = reader.add_lease("r", commit=0, ttl=60)
        assert reader.live_leases() == [lease]


HOLDER = """
import sys, time
from koru_core.catalog import open_catalog
cat = open_catalog(sys.argv[1], read_only=True)
lease = cat.add_lease("other-machine:%d" % __import__("os").getpid(), commit=cat.head()[0], ttl=1.0)
print(lease.lease_id, flush=True)
while True:
    time.sleep(0.2)
    assert cat.renew_lease(lease.lease_id, ttl=1.0) is not None
"""


def test_a_reader_process_on_another_machine_holds_files_until_it_dies(pg_url: str) -> None:
    """A reader process that has only the catalog URL leases and renews; vacuum here spares the
    files retired meanwhile; once the reader is killed (-9) its lease lapses within its ttl."""
    pg = Backend("postgres", pg_url + "?koru_schema=shared")
    try:
        vacuum = pg.open()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, pg.target], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        try:
            assert proc.stdout is not None
            lease_id = proc.stdout.readline().strip()
            assert len(lease_id) == 32, proc.stderr.read() if proc.stderr else ""
            path = retire(vacuum, "read-elsewhere")
            time.sleep(1.5)  # longer than the ttl: only renewals keep the lease
            assert [x.lease_id for x in vacuum.live_leases()] == [lease_id]
            assert vacuum.vacuumable(retired_before=FOREVER) == []
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            deadline = time.monotonic() + 10
            while vacuum.live_leases() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert vacuum.live_leases() == []
            assert vacuum.vacuumable(retired_before=FOREVER) == [path]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
    finally:
        pg.close()
