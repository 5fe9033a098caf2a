"""Tiers and lifecycle: consolidation, distillation, vacuum, verification, deep snapshots.

The public entry points are :class:`koru_core.Store` methods (``consolidate``,
``distill``, ``vacuum``, ``verify``, ``snapshot``), :func:`koru_core.restore`
and the retention policies exported from :mod:`koru_core`. Modules:

- ``consolidate.py``: warm files + pending versions → cold files
- ``distill.py`` / ``policies.py``: retention; pruned versions keep a skeleton in the deep tier
- ``vacuum.py``: deleting replaced and orphaned files; ``leases.py``: what readers still need
- ``verify.py``: content ids, file checksums, the commit hash chain
- ``snapshot.py``: portable, self-verifying bundles; ``cli.py``: the click commands
- ``rebuild.py``: writing a whole store from its versions (restore, upgrade)
- ``upgrade.py`` / ``format1.py``: ``koru upgrade`` from on-disk format 1, and what a
  format-2 store keeps of format 1 (id mapping, format-1 commit hashes)
- ``api.py``: the calls :class:`~koru_core.Store` delegates to
"""
