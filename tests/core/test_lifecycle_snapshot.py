"""snapshot() / restore() (issue 5): a portable, self-verifying bundle; round trip."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import koru_core as koru

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _fill(store: koru.Store) -> None:
    for r in range(5):
        store.upsert("users", [{"id": f"k{j:03d}", "v": r * 100 + j} for j in range(1500)], key="id",
                     valid_from=T0 + timedelta(days=40 * r))
    store.put("users", "k001", {"id": "k001", "v": 1, "note": "widened"})
    store.delete("users", "k002")
    store.put("tags", "a", "x")
    store.tag("mid", commit=3)


def _answers(store: koru.Store) -> dict[str, object]:
    out: dict[str, object] = {"commits": store.commits(), "namespaces": store.namespaces()}
    for v in range(1, store.commits()[-1].commit + 1):
        out[f"v{v}"] = _as_of(store, version=v, at=T0 + timedelta(days=999))
    for d in (0, 45, 130, 500):
        out[f"at{d}"] = _as_of(store, at=T0 + timedelta(days=d))
    for key in ("k000", "k001", "k002"):
        out[key] = store.history("users", key)
    out["tags"] = store.as_of("tags", sort=True)
    return out


def _as_of(store: koru.Store, **point: object) -> object:
    """The sorted as-of state, or the PrunedError text where retention dropped versions."""
    try:
        return store.as_of("users", sort=True, **point)  # type: ignore[arg-type]
    except koru.PrunedError as e:
        return str(e)


@pytest.mark.parametrize("distilled", [False, True])
def test_round_trip_answers_like_the_source(store: koru.Store, tmp_path: Path, distilled: bool) -> None:
    _fill(store)
    if distilled:
        store.distill({"users": koru.KeepLast(2)})
    expected = _answers(store)
    bundle = store.snapshot(tmp_path / "bundle")
    assert (bundle / "manifest.json").exists() and (bundle / "manifest.blake3").exists()
    restored = koru.restore(bundle, tmp_path / "copy")
    try:
        got = _answers(restored)
        for name, value in expected.items():
            assert got[name] == value if not hasattr(value, "equals") else value.equals(got[name]), name
        report = restored.verify()
        assert report.is_ok, report.problems
        assert {r["tier"] for r in restored.stats().to_pylist() if r["versions"]} == ({"cold", "deep"} if distilled else {"cold"})
        # the restored store keeps going: the next commit extends the same hash chain
        restored.put("users", "k003", {"id": "k003", "v": -3})
        assert restored.commits()[-1].commit == store.commits()[-1].commit + 1
        assert restored.verify().is_ok
        if distilled:  # the tag came along and still pins commit 3
            restored.distill(koru.KeepLast(1))
            assert restored.as_of("users", version=3, at=T0 + timedelta(days=999), sort=True).equals(expected["v3"])
            assert "incomplete" in str(expected["at45"]), "a point whose versions were pruned says so"
    finally:
        restored.close()


def test_a_tampered_bundle_is_refused_and_nothing_is_written(store: koru.Store, tmp_path: Path) -> None:
    _fill(store)
    bundle = store.snapshot(tmp_path / "bundle")
    target = bundle / "namespaces" / "users" / "versions.parquet"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(koru.CorruptionError, match="versions.parquet"):
        koru.restore(bundle, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()
    (bundle / "commits.parquet").unlink()
    with pytest.raises(koru.CorruptionError, match="commits.parquet|versions.parquet"):
        koru.restore(bundle, tmp_path / "copy")
    manifest = bundle / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"head_commit": 8', '"head_commit": 9'))
    with pytest.raises(koru.CorruptionError, match="manifest.json"):
        koru.restore(bundle, tmp_path / "copy")


def test_targets_must_be_new(store: koru.Store, tmp_path: Path) -> None:
    _fill(store)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(koru.InvalidInputError, match="snapshot path"):
        store.snapshot(tmp_path / "full")
    bundle = store.snapshot(tmp_path / "bundle")
    with pytest.raises(koru.InvalidInputError, match="store path"):
        koru.restore(bundle, tmp_path / "full")
