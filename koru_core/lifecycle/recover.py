"""Recovering a store that does not open: say what can be kept, then (asked to) keep it.

``koru.open`` refuses a store whose catalog files are damaged (see
:mod:`koru_core.catalog.sqlite_files`) and changes nothing, so the evidence stays.
:func:`recover` looks at the same files without changing them and reports:

- SQLite's side files (``catalog.sqlite-wal``, ``-shm``, ``-journal``), ``write.lock`` and
  ``readers/`` that are a symlink or of the wrong kind (a folder for a file, a file for
  a folder): what koru refuses to open through;
- the write-ahead log: how many frames SQLite would replay, and how many committed
  transactions after a damaged frame cannot be kept;
- the catalog as it would be after replaying the good part of the log, checked on a
  copy in a temporary folder (``PRAGMA integrity_check``, the koru tables, the commit
  numbers): the commits that can be kept.

With ``apply=True`` it first copies the catalog files as they are into
``<store>/recovery-<UTC time>/`` (and moves the refused entries there), then replaces
the catalog by the checked copy (the good part of the log checkpointed into it, written
beside it and renamed over it). Data files are never touched: run ``verify`` afterwards.
It needs the store's write lock, so no other writer may be running.

A catalog that SQLite itself finds damaged (the integrity check fails) is not
recoverable here: restore a snapshot bundle (``koru restore``) or a backup.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from koru_core.catalog.sqlite_files import check_database_file, read_wal
from koru_core.errors import CorruptionError, InvalidInputError

__all__ = ["RecoveryReport", "recover"]

CATALOG = "catalog.sqlite"
_SIDE = ("-wal", "-shm", "-journal")
_WAL_HEADER, _FRAME_HEADER = 32, 24


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveryReport:
    """What :func:`recover` found and did.

    Attributes:
        store: The store folder.
        findings: One line per problem, naming the file at fault.
        actions: What ``apply`` does (or, when applied, did), one line each.
        commits_kept: The last commit the recovered catalog holds (None: not recoverable here).
        transactions_lost: Committed catalog transactions (koru commits and maintenance)
            of the write-ahead log that are damaged and cannot be kept.
        applied: True when the actions were carried out.
        backup: The folder the damaged files were copied or moved to (when applied).
    """

    store: Path
    findings: tuple[str, ...]
    actions: tuple[str, ...]
    commits_kept: int | None
    transactions_lost: int = 0
    applied: bool = False
    backup: Path | None = None

    @property
    def needs_recovery(self) -> bool:
        """True when something is wrong (:attr:`findings` is not empty)."""
        return bool(self.findings)

    @property
    def is_recoverable(self) -> bool:
        """True when the catalog can be kept (possibly without the damaged end of its log)."""
        return self.commits_kept is not None


@dataclass(slots=True)
class _Plan:
    findings: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    move_aside: list[Path] = field(default_factory=list)
    keep_frames: int | None = None  # frames of the log to keep (None: the whole log)
    lost: int = 0
    replace_catalog: bool = False


def _kind(path: Path) -> str | None:
    """'symlink', 'folder', 'file', 'other', or None when missing."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(mode):
        return "symlink"
    return "folder" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


def _check_entries(root: Path, plan: _Plan) -> None:
    expected = {**{CATALOG + s: "file" for s in _SIDE}, "write.lock": "file", "readers": "folder"}
    for name, want in expected.items():
        kind = _kind(root / name)
        if kind is not None and kind != want:
            plan.findings.append(f"{root / name}: is a {kind}, koru expects a {want} (or nothing) there")
            plan.actions.append(f"move {name} into the backup folder (koru makes a new one when it needs it)")
            plan.move_aside.append(root / name)
    for name in ("warm", "cold", "deep", "vector"):
        if _kind(root / name) == "symlink":
            plan.findings.append(
                f"{root / name}: is a symlink; koru refuses symlinks inside a store (not changed: replace the "
                "link by the folder it points to)"
            )


def _check_log(root: Path, plan: _Plan) -> None:
    wal_path = root / (CATALOG + "-wal")
    if _kind(wal_path) != "file":
        return
    report = read_wal(wal_path)
    if report is None or report.is_ok:
        return
    where = "its header is damaged" if not report.header_ok else f"frame {report.first_bad} is damaged"
    plan.findings.append(
        f"{wal_path}: {where}; {report.lost_commits} committed transaction(s) after it cannot be kept "
        f"({report.frames} frames, SQLite replays the first {report.valid_frames})"
    )
    plan.keep_frames = report.valid_frames if report.header_ok else 0
    plan.lost = report.lost_commits
    plan.replace_catalog = True
    plan.actions.append(f"keep the first {plan.keep_frames} frames of the write-ahead log (the commits before the damage)")


def _copy_catalog(root: Path, folder: Path, keep_frames: int | None) -> Path:
    """Copy the catalog (and the good part of its log) into ``folder``; returns the copy."""
    db = folder / CATALOG
    shutil.copyfile(root / CATALOG, db)
    wal = root / (CATALOG + "-wal")
    if _kind(wal) == "file" and keep_frames != 0:
        data = wal.read_bytes()
        if keep_frames is not None:
            page_size = int.from_bytes(data[8:12], "big")
            data = data[: _WAL_HEADER + keep_frames * (_FRAME_HEADER + page_size)]
        (folder / (CATALOG + "-wal")).write_bytes(data)
    return db


def _check_copy(db: Path, plan: _Plan) -> int | None:
    """Replay and checkpoint the copy, check it; the last commit it holds, or None."""
    try:
        con = sqlite3.connect(db, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            problems = [r[0] for r in con.execute("PRAGMA integrity_check").fetchall()]
            if problems != ["ok"]:
                plan.findings.append(f"{db.name}: SQLite's integrity check fails: {'; '.join(problems[:5])}")
                return None
            names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"meta", "commits", "namespaces", "files", "pending"} <= names:
                plan.findings.append(f"{db.name}: holds no koru catalog (tables {sorted(names)})")
                return None
            numbers = [r[0] for r in con.execute("SELECT commit_number FROM commits ORDER BY commit_number")]
            if numbers != list(range(1, len(numbers) + 1)):
                plan.findings.append(f"{db.name}: the commit numbers have gaps")
            return len(numbers)
        finally:
            con.close()
            for suffix in ("-wal", "-shm"):
                db.with_name(db.name + suffix).unlink(missing_ok=True)
    except sqlite3.Error as e:
        plan.findings.append(f"{db.name}: SQLite cannot read it: {e}")
        return None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def recover(path: str | os.PathLike[str], *, apply: bool = False) -> RecoveryReport:
    """Report what of a store's catalog can be kept; with ``apply``, keep it (module docstring).

    Args:
        path: The store folder.
        apply: Carry out the actions (after copying the damaged files aside).

    Returns:
        A :class:`RecoveryReport`.

    Raises:
        InvalidInputError: ``path`` holds no koru store.
        StoreLockedError: ``apply`` while another process holds the write lock.

    Example:
        >>> from koru_core.lifecycle.recover import recover
        >>> recover(store.path).needs_recovery
        False
    """
    root = Path(path).absolute()
    if _kind(root / CATALOG) is None:
        msg = f"no koru store at {str(root)!r} (it has no {CATALOG})"
        raise InvalidInputError(msg)
    plan = _Plan()
    _check_entries(root, plan)
    if _kind(root / CATALOG) != "file":
        plan.findings.append(f"{root / CATALOG}: is not a regular file")
        return RecoveryReport(store=root, findings=tuple(plan.findings), actions=(), commits_kept=None)
    if not any(p == root / (CATALOG + "-wal") for p in plan.move_aside):
        _check_log(root, plan)
    with tempfile.TemporaryDirectory(prefix="koru-recover-") as tmp:
        db = _copy_catalog(root, Path(tmp), plan.keep_frames)
        wal_report = read_wal(db.with_name(db.name + "-wal"))
        try:
            check_database_file(db, wal=wal_report)
        except CorruptionError as e:
            plan.findings.append(str(e).replace(str(db), str(root / CATALOG)))
            plan.replace_catalog = True
        kept = _check_copy(db, plan)
        if kept is not None and plan.replace_catalog:
            plan.actions.append(f"replace {CATALOG} by the checked copy holding commits 1..{kept}")
        if not apply or not plan.findings or kept is None:
            return RecoveryReport(store=root, findings=tuple(plan.findings), actions=tuple(plan.actions),
                                  commits_kept=kept, transactions_lost=plan.lost)
        backup = _apply(root, db, plan)
    return RecoveryReport(store=root, findings=tuple(plan.findings), actions=tuple(plan.actions), commits_kept=kept,
                          transactions_lost=plan.lost, applied=True, backup=backup)


def _apply(root: Path, checked: Path, plan: _Plan) -> Path:
    from koru_core._lock import WriteLock

    lock = WriteLock(root / "write.lock", timeout=0)
    lock_usable = _kind(root / "write.lock") in (None, "file")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    backup = root / f"recovery-{stamp}"
    backup.mkdir()
    if lock_usable:
        lock.acquire()
    try:
        for suffix in ("", *_SIDE):
            src = root / (CATALOG + suffix)
            if _kind(src) == "file":
                shutil.copy2(src, backup / src.name)
        for entry in plan.move_aside:
            os.replace(entry, backup / entry.name)
        if plan.replace_catalog:
            tmp = root / f".{CATALOG}.recovered.tmp"
            shutil.copyfile(checked, tmp)
            _fsync(tmp)
            for suffix in ("-wal", "-shm"):
                (root / (CATALOG + suffix)).unlink(missing_ok=True)
            os.replace(tmp, root / CATALOG)
        _fsync(root)
    finally:
        if lock_usable:
            lock.release()
    return backup
