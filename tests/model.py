"""A tiny in-memory reference model of koru, written from DESIGN.md's rule alone.

It knows nothing of koru's code. A row is a plain tuple, times are int nanoseconds
(UTC), commits are ints, and every rule is a short loop to check by eye against
DESIGN.md, "As-of, precisely":

* **every row written is a version**, except two kinds that record nothing:
  a row equal to its key's version at the *same* valid time (an idempotent
  re-write), and a row written with *no* valid time equal to the key's current
  version (a re-run that changed nothing). There is no other "unchanged" rule:
  a row equal to the version before it at an *earlier* valid time is a version
  here (koru may store it as a skip record; no answer may show the difference);
* **as-of** at (valid time *t*, commit *s*): per key, among the versions with
  ``valid <= t`` and ``commit <= s``, the one with the largest ``(valid, commit)``;
  the key is absent if that version is a tombstone;
* rows of one commit are applied per key in valid-time order, so a row's "version
  at the same valid time" may be an earlier row of the same commit.

Values are dicts; a field whose value is None is the same as a missing field
(both read back as null), so contents are compared with None fields dropped.
A tombstone and "no version at all" both mean: the key is not live.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TOMBSTONE", "Model", "Row", "content_of"]


class _Tombstone:
    def __repr__(self) -> str:
        return "TOMBSTONE"


TOMBSTONE: Any = _Tombstone()
"""The content of a delete."""


def content_of(value: Any) -> Any:
    """The comparable content of a value: a dict without None fields, a bare value
    wrapped as ``{"value": v}``, or TOMBSTONE."""
    if value is TOMBSTONE:
        return TOMBSTONE
    if not isinstance(value, dict):
        value = {"value": value}
    return {k: v for k, v in value.items() if v is not None}


@dataclass(frozen=True)
class Row:
    """One version: namespace, key, valid time (ns), commit and content."""

    namespace: str
    key: str
    valid: int
    commit: int
    content: Any  # dict (None fields dropped) or TOMBSTONE

    @property
    def is_deleted(self) -> bool:
        return self.content is TOMBSTONE


@dataclass
class Model:
    """Every version ever written, and each commit's system time."""

    rows: list[Row] = field(default_factory=list)
    last_commit: int = 0
    system_times: dict[int, int] = field(default_factory=dict)

    # -- the rule --------------------------------------------------------------------

    def choice(self, namespace: str, key: str, *, valid_at: int, max_commit: int | None = None,
               extra: Iterable[Row] = ()) -> Row | None:
        """The version the as-of rule picks for one key (tombstones included), or None."""
        best: Row | None = None
        for v in [*self.rows, *extra]:
            if v.namespace != namespace or v.key != key:
                continue
            if v.valid <= valid_at and (max_commit is None or v.commit <= max_commit):
                if best is None or (v.valid, v.commit) > (best.valid, best.commit):
                    best = v
        return best

    def as_of(self, namespace: str, *, valid_at: int, max_commit: int | None = None) -> dict[str, Any]:
        """Live key -> its content at (valid_at, max_commit)."""
        out = {}
        for key in sorted({v.key for v in self.rows if v.namespace == namespace}):
            v = self.choice(namespace, key, valid_at=valid_at, max_commit=max_commit)
            if v is not None and not v.is_deleted:
                out[key] = v.content
        return out

    def namespaces(self) -> set[str]:
        return {v.namespace for v in self.rows}

    def is_live(self, namespace: str, key: str, *, valid_at: int) -> bool:
        v = self.choice(namespace, key, valid_at=valid_at)
        return v is not None and not v.is_deleted

    # -- writes ------------------------------------------------------------------------

    def plan(self, rows: Iterable[tuple[str, str, int | None, Any]], *, now: int) -> tuple[list[tuple[str, str, int, Any]], int]:
        """Decide one commit's rows: which are versions, and how many record nothing.

        Args:
            rows: (namespace, key, valid time or None, value); a (namespace, key, valid
                time) appears once (merge duplicates first, last wins).
            now: The valid time a row without one gets (the commit's system time).

        Returns:
            The versions, as (namespace, key, valid, content), and the count of rows
            that recorded nothing.
        """
        commit = self.last_commit + 1
        by_key: dict[tuple[str, str], list[tuple[int, bool, Any]]] = {}
        for ns, key, valid, value in rows:
            explicit = valid is not None
            by_key.setdefault((ns, key), []).append((valid if explicit else now, explicit, content_of(value)))
        versions: list[tuple[str, str, int, Any]] = []
        nothing = 0
        for (ns, key), items in by_key.items():
            accepted: list[Row] = []
            for valid, explicit, content in sorted(items, key=lambda item: item[0]):
                version = self.choice(ns, key, valid_at=valid, extra=accepted)
                if explicit:  # a no-op only when equal to the version at exactly this valid time
                    same = version is not None and version.valid == valid and version.content == content
                else:  # a no-op when equal to the current version (absent counts as a tombstone)
                    current = TOMBSTONE if version is None else version.content
                    same = current == content
                if same:
                    nothing += 1
                    continue
                accepted.append(Row(ns, key, valid, commit, content))
                versions.append((ns, key, valid, content))
        return versions, nothing

    def commit(self, versions: list[tuple[str, str, int, Any]], *, system_time: int) -> int:
        """Record a commit's versions; return its number."""
        self.last_commit += 1
        self.system_times[self.last_commit] = system_time
        for ns, key, valid, content in versions:
            self.rows.append(Row(ns, key, valid, self.last_commit, content))
        return self.last_commit
