"""write_koru: DataFrame and LazyFrame writes return what they did; re-writes are unchanged."""

from __future__ import annotations

import subprocess
import sys

import pytest

pl = pytest.importorskip("polars")

from polars_checks import as_frame, day  # noqa: E402

import koru_core as koru  # noqa: E402
import koru_polars  # noqa: E402
from koru_polars import read_koru, write_koru  # noqa: E402


def frame(n: int, *, shift: int = 0) -> pl.DataFrame:
    return pl.DataFrame({"id": [f"k{i:05d}" for i in range(n)], "x": [i + shift for i in range(n)]})


def test_dataframe_counts_and_rewrite_unchanged(store):
    first = write_koru(frame(10), store, "t", key="id", actor="etl", run_id="r1")
    assert (first.commit, first.written, first.unchanged, first.deleted) == (1, 10, 0, 0)
    assert first.namespaces == ("t",)
    again = write_koru(frame(10), store, "t", key="id")
    assert (again.commit, again.written, again.unchanged) == (None, 0, 10)
    changed = frame(10).with_columns(pl.when(pl.col("x") < 3).then(-1).otherwise(pl.col("x")).alias("x"))
    third = write_koru(changed, store, "t", key="id")
    assert (third.commit, third.written, third.unchanged) == (2, 3, 7)
    assert read_koru(store, "t").sort("_key")["x"].to_list() == changed["x"].to_list()
    assert store.commits()[0].actor == "etl"


def test_lazyframe_in_batches(store):
    lf = frame(2_500).lazy().filter(pl.col("x") >= 0)
    result = write_koru(lf, store, "t", key="id", batch_rows=1_000)
    assert (result.written, result.unchanged, result.deleted) == (2_500, 0, 0)
    assert result.commit == 3 == len(store.commits())  # one commit per batch
    assert read_koru(store, "t").height == 2_500
    again = write_koru(lf, store, "t", key="id", batch_rows=1_000)
    assert (again.commit, again.written, again.unchanged) == (None, 0, 2_500)
    more = write_koru(frame(3_000, shift=0).lazy(), store, "t", key="id", batch_rows=1_000)
    assert (more.written, more.unchanged) == (500, 2_500)
    assert more.commit == len(store.commits()) == 4  # batches with nothing new make no commit


def test_lazyframe_in_one_commit_and_delete_missing(store):
    result = write_koru(frame(100).lazy(), store, "t", key="id", batch_rows=None)
    assert (result.commit, result.written) == (1, 100)
    snapshot = frame(60).lazy()
    deleted = write_koru(snapshot, store, "t", key="id", delete_missing=True, batch_rows=10)
    assert (deleted.commit, deleted.written, deleted.unchanged, deleted.deleted) == (2, 0, 60, 40)
    assert read_koru(store, "t").height == 60


def test_valid_from_column_and_path_target(tmp_path):
    path = tmp_path / "new.koru"
    df = pl.DataFrame({"id": ["a", "a", "b"], "x": [1, 2, 3], "vt": [day(1), day(2), day(1)]})
    result = write_koru(df, path, "t", key="id", valid_from="vt")
    assert (result.commit, result.written) == (1, 3)
    lazy = write_koru(df.lazy(), path, "t", key="id", valid_from="vt", batch_rows=2)
    assert (lazy.written, lazy.unchanged) == (0, 3)
    assert read_koru(path, "t", at=day(1.5)).sort("_key")["x"].to_list() == [1, 3]
    with koru.open(path) as store:
        assert_frame = as_frame(store.as_of("t", at=day(1.5)))
    assert assert_frame.sort("_key")["x"].to_list() == [1, 3]


def test_bad_input_writes_nothing(store):
    with pytest.raises(koru.InvalidInputError, match="DataFrame or LazyFrame"):
        write_koru({"id": ["a"]}, store, "t", key="id")  # type: ignore[arg-type]
    with pytest.raises(koru.InvalidInputError, match="batch_rows"):
        write_koru(frame(3).lazy(), store, "t", key="id", batch_rows=0)
    with pytest.raises(koru.InvalidInputError):
        write_koru(pl.DataFrame({"id": ["a", "a"], "x": [1, 2]}), store, "t", key="id", valid_from=day(1))
    with pytest.raises(koru.InvalidInputError, match="naive"):
        write_koru(frame(3), store, "t", key="id", valid_from=day(1).replace(tzinfo=None))
    assert store.commits() == []


def test_public_api():
    assert koru_polars.__all__ == sorted(koru_polars.__all__)
    assert set(koru_polars.__all__) == {"read_koru", "scan_koru", "scan_koru_changes", "write_koru"}
    for name in koru_polars.__all__:
        doc = getattr(koru_polars, name).__doc__
        assert doc and "Example:" in doc and "Raises:" in doc and "Returns:" in doc, name


def test_import_without_polars_names_the_extra():
    code = (
        "import sys\n"
        "sys.modules['polars'] = None\n"
        "try:\n"
        "    import koru_polars\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "koru_polars needs Polars: pip install 'koru-lake[polars]'"


def test_doctests():
    import doctest

    import koru_polars.changes
    import koru_polars.scan
    import koru_polars.write

    for module in (koru_polars, koru_polars.scan, koru_polars.changes, koru_polars.write):
        failed, attempted = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert attempted > 0, module.__name__
        assert failed == 0, module.__name__
