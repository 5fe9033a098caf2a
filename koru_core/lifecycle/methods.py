"""The lifecycle methods of :class:`~koru_core.store.Store`: consolidate, distill, tag,
snapshot, vacuum and verify, each one call into :mod:`koru_core.lifecycle.api`.

They live here so the store facade stays small; :class:`Store` inherits them.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from koru_core.lifecycle import api as _lifecycle

if TYPE_CHECKING:
    from koru_core.lifecycle.distill import Policies
    from koru_core.model import MaintenanceResult, VerifyReport
    from koru_core.store import Store

__all__ = ["LifecycleMethods"]


class LifecycleMethods:
    """Maintenance actions of a store (mixed into :class:`~koru_core.store.Store`)."""

    def consolidate(self, namespace: str | None = None) -> MaintenanceResult:
        """Merge warm files and pending versions into cold files (one namespace, or all).

        Cold files hold each key's last version (state) and its closed versions
        (history, split by ``_valid_to``), sorted by key, with ``_valid_to`` filled
        in; the swap is atomic and incremental (see
        :mod:`koru_core.lifecycle.consolidate`). The store consolidates by itself
        after commits (``auto_consolidate``); replaced files are deleted once no
        reader needs them (by themselves, or by :meth:`vacuum`).

        Raises:
            NamespaceNotFoundError: ``namespace`` was never written.
            CorruptionError: an input file is missing or corrupted (nothing changes).

        Example:
            >>> store.consolidate().action
            'consolidate'
        """
        return _lifecycle.consolidate(self._store(), namespace)

    def distill(self, policies: Policies = None, *, namespace: str | None = None) -> MaintenanceResult:
        """Drop the versions no retention policy keeps; their skeleton goes to the deep tier.

        Args:
            policies: A policy (:class:`KeepAll`, :class:`KeepLast`, :class:`KeepFor`,
                :class:`Thinning`, :class:`Pin`) or a list of them (a version is
                kept if any keeps it) for every namespace, or a dict namespace →
                policy or list (other namespaces keep all). None keeps all.
            namespace: Distill only this namespace.

        Never drops a key's current version, a future one, or one a tag pins
        (see :mod:`koru_core.lifecycle.distill`). ``history()`` then shows the
        dropped versions with ``_pruned`` true.

        Raises:
            InvalidInputError: not a policy, an unknown tag or namespace in ``policies``.
            NamespaceNotFoundError: ``namespace`` was never written.

        Example:
            >>> store.distill(koru.KeepLast(1)).action
            'distill'
        """
        return _lifecycle.distill(self._store(), policies, namespace)

    def tag(self, name: str, *, commit: int | None = None) -> int:
        """Name commit ``commit`` (default: the last) ``name``; a tagged commit is
        kept whole by :meth:`distill`. Re-tagging moves the tag. Returns the commit.

        Raises:
            InvalidInputError: empty name or not a commit number.

        Example:
            >>> store.tag("release-1") >= 1
            True
        """
        return _lifecycle.tag(self._store(), name, commit)

    def snapshot(self, path: str | os.PathLike[str]) -> Path:
        """Write a portable, self-verifying bundle of the store at its last commit to folder ``path``.

        The bundle holds every retained version, the pruned skeletons, the
        commit log and tags, and a manifest of blake3 hashes
        (:mod:`koru_core.lifecycle.snapshot`); :func:`koru_core.restore` rebuilds a store from it.

        Returns:
            The bundle folder (absolute).

        Raises:
            InvalidInputError: ``path`` exists and is not an empty folder.

        Example:
            >>> import tempfile
            >>> store.snapshot(tempfile.mkdtemp() + "/bundle").name
            'bundle'
        """
        return _lifecycle.snapshot(self._store(), path)

    def vacuum(self, *, retain: timedelta = timedelta(days=7)) -> MaintenanceResult:
        """Delete data files the catalog no longer lists, once older than ``retain``.

        Replaced files (by consolidation or distillation) and files left by a
        crash are deleted, never one a live reader's scan plan may still list
        (reader leases, :mod:`koru_core.lifecycle.leases`) nor one the catalog lists.

        Returns:
            :class:`MaintenanceResult`; ``files_*``/``bytes_*`` count the data files on disk.

        Raises:
            InvalidInputError: ``retain`` is not a non-negative timedelta.

        Example:
            >>> store.vacuum(retain=timedelta(0)).action
            'vacuum'
        """
        return _lifecycle.vacuum(self._store(), retain)

    def verify(self, *, expected_head: str | None = None) -> VerifyReport:
        """Recompute content ids, file and pending checksums and the commit hash chain.

        Args:
            expected_head: A commit hash (64 hex, :attr:`Commit.hash`) kept elsewhere
                (Dagster's event log keeps one per materialization): the chain must
                hold a commit with that hash, and every later commit must chain from it.
                This catches someone who rewrote files, checksums and the whole chain.

        Returns:
            :class:`VerifyReport`: ``is_ok``, and one line per problem naming
            the file, commit, namespace or write id that was edited, removed
            or corrupted (see :mod:`koru_core.lifecycle.verify`).

        Example:
            >>> store.verify().is_ok
            True
        """
        return _lifecycle.verify(self._store(), expected_head)

    def _store(self) -> Store:
        return self  # type: ignore[return-value]
