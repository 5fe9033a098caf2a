"""A tiny in-memory reference model of koru's versions, written from DESIGN.md alone.

It knows nothing of koru's code: a version is a plain tuple, times are int
nanoseconds (UTC), commits are ints, and every rule is a short loop a reader can
check by eye against the spec:

* **as-of** at (valid time *t*, commit *s*): per key, among the versions with
  ``valid <= t`` and ``commit <= s``, the one with the largest ``(valid, commit)``;
  the key is absent if that version is a tombstone.
* **unchanged**: a row equal to its key's as-of version at the row's valid time
  is not written; a batch's rows are applied per key in valid-time order, so a row
  equal to the previous row of its key is unchanged too. A tombstone for a key
  that is not live there is a no-op. A write where every row is unchanged makes
  no commit.
* **history**: a key's versions (tombstones included) ordered by
  ``(valid, commit)``; ``valid_to`` is the next version's ``valid`` (None last).
* **change feed**: each version with its *before*, the previous version of the key
  in ``(valid, commit)`` order; ``op`` is ``delete`` for a tombstone, ``insert``
  when the before is missing or a tombstone, else ``update``; a tombstone whose
  before is missing or a tombstone is not a change. Int bounds select by commit
  ``(since, until]``, datetime (ns) bounds by valid time.

Values are dicts; a field whose value is None is the same as a missing field
(both read back as null), so contents are compared with None fields dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TOMBSTONE", "Change", "Model", "ModelVersion", "content_of"]


class _Tombstone:
    def __repr__(self) -> str:
        return "TOMBSTONE"


TOMBSTONE: Any = _Tombstone()
"""The content of a delete."""


def content_of(value: Any) -> Any:
    """Return the comparable content of a value: a dict without None fields,
    a bare value wrapped as ``{"value": v}``, or TOMBSTONE."""
    if value is TOMBSTONE:
        return TOMBSTONE
    if not isinstance(value, dict):
        value = {"value": value}
    return {k: v for k, v in value.items() if v is not None}


@dataclass(frozen=True)
class ModelVersion:
    """One version: its key, valid time (ns), commit, write order and content."""

    namespace: str
    key: str
    valid: int
    commit: int
    seq: int  # global write order: a later write has a larger seq
    content: Any  # dict (None fields dropped) or TOMBSTONE

    @property
    def is_deleted(self) -> bool:
        return self.content is TOMBSTONE


@dataclass(frozen=True)
class Change:
    """One row of the change feed, as the model sees it."""

    key: str
    op: str
    version: ModelVersion
    before: ModelVersion | None


@dataclass
class Model:
    """Every version ever written to a store, in write order."""

    versions: list[ModelVersion] = field(default_factory=list)
    last_commit: int = 0
    system_times: dict[int, int] = field(default_factory=dict)

    # -- reads -----------------------------------------------------------------

    def of(self, namespace: str, key: str | None = None) -> list[ModelVersion]:
        return [v for v in self.versions if v.namespace == namespace and (key is None or v.key == key)]

    def namespaces(self) -> set[str]:
        return {v.namespace for v in self.versions}

    def current(self, namespace: str, key: str, *, valid_at: int, max_commit: int | None = None) -> ModelVersion | None:
        """The version the as-of rule picks for one key (tombstone included), or None."""
        best: ModelVersion | None = None
        for v in self.of(namespace, key):
            if v.valid <= valid_at and (max_commit is None or v.commit <= max_commit):
                if best is None or (v.valid, v.commit) > (best.valid, best.commit):
                    best = v
        return best

    def as_of(self, namespace: str, *, valid_at: int, max_commit: int | None = None) -> dict[str, ModelVersion]:
        """Live key -> its as-of version."""
        out = {}
        for key in sorted({v.key for v in self.of(namespace)}):
            v = self.current(namespace, key, valid_at=valid_at, max_commit=max_commit)
            if v is not None and not v.is_deleted:
                out[key] = v
        return out

    def history(self, namespace: str, key: str) -> list[tuple[ModelVersion, int | None]]:
        """(version, valid_to) in (valid, commit) order."""
        ordered = sorted(self.of(namespace, key), key=lambda v: (v.valid, v.commit))
        return [(v, ordered[i + 1].valid if i + 1 < len(ordered) else None) for i, v in enumerate(ordered)]

    def previous_written(self, version: ModelVersion) -> ModelVersion | None:
        """The key's version written just before ``version`` (write order)."""
        earlier = [v for v in self.of(version.namespace, version.key) if v.seq < version.seq]
        return max(earlier, key=lambda v: v.seq) if earlier else None

    def changes(self, namespace: str, *, since: int | None, until: int | None, by: str) -> list[Change]:
        """The change feed in ``(since, until]``; ``by`` is ``"commit"`` or ``"valid"``.

        Ordered by (commit, key, valid).
        """
        out = []
        for key in {v.key for v in self.of(namespace)}:
            before: ModelVersion | None = None
            for v, _ in self.history(namespace, key):
                point = v.commit if by == "commit" else v.valid
                in_window = (since is None or point > since) and (until is None or point <= until)
                dead_before = before is None or before.is_deleted
                if in_window and not (v.is_deleted and dead_before):
                    op = "delete" if v.is_deleted else ("insert" if dead_before else "update")
                    out.append(Change(key, op, v, before))
                before = v
        return sorted(out, key=lambda c: (c.version.commit, c.key, c.version.valid))

    # -- writes ----------------------------------------------------------------

    def plan(
        self, rows: Iterable[tuple[str, str, int, Any]]
    ) -> tuple[list[tuple[str, str, int, Any]], int]:
        """Apply the unchanged rule to one commit's rows (namespace, key, valid, content).

        Rows with the same (namespace, key, valid) must already be merged (last wins).

        Returns:
            The rows to write, and how many were unchanged.
        """
        commit = self.last_commit + 1
        by_key: dict[tuple[str, str], list[tuple[int, Any]]] = {}
        for ns, key, valid, value in rows:
            by_key.setdefault((ns, key), []).append((valid, content_of(value)))
        written: list[tuple[str, str, int, Any]] = []
        unchanged = 0
        for (ns, key), items in by_key.items():
            accepted: list[ModelVersion] = []
            for valid, content in sorted(items, key=lambda item: item[0]):
                candidates = [v for v in self.of(ns, key) + accepted if v.valid <= valid]
                now = max(candidates, key=lambda v: (v.valid, v.commit), default=None)
                if now is None:
                    same = content is TOMBSTONE
                else:
                    same = content == now.content if content is not TOMBSTONE else now.is_deleted
                if same:
                    unchanged += 1
                    continue
                accepted.append(ModelVersion(ns, key, valid, commit, -1, content))
                written.append((ns, key, valid, content))
        return written, unchanged

    def commit(self, rows: list[tuple[str, str, int, Any]], *, system_time: int) -> int:
        """Record planned rows as the next commit; return its number."""
        self.last_commit += 1
        self.system_times[self.last_commit] = system_time
        for ns, key, valid, content in rows:
            seq = len(self.versions)
            self.versions.append(ModelVersion(ns, key, valid, self.last_commit, seq, content))
        return self.last_commit
