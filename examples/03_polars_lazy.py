"""Polars, lazily: write frames to a koru store, then travel in time with ``scan_koru``.

Shows ``write_koru`` (a DataFrame, then a LazyFrame), ``scan_koru`` at two valid
times and at an earlier commit, a value filter that applies to the as-of state
(not to old versions), a join of two namespaces at one instant, an item's
history with ``_valid_to``, and the change feed between two commits.
Run: ``python examples/03_polars_lazy.py`` (writes to a temporary folder).
"""

import datetime as dt
import tempfile

import polars as pl

from koru_polars import scan_koru, scan_koru_changes, write_koru


def day(n: int) -> dt.datetime:
    return dt.datetime(2024, 1, n, tzinfo=dt.timezone.utc)


with tempfile.TemporaryDirectory() as store:
    prices = pl.DataFrame({"sku": ["apple", "pear", "plum"], "price": [1.0, 4.0, 3.0],
                           "since": [day(1)] * 3})
    print(write_koru(prices, store, "prices", key="sku", valid_from="since"))
    # a late-arriving correction: pear was 2.0 from day 1 all along; plum rises on day 5
    changes = pl.LazyFrame({"sku": ["pear", "plum"], "price": [2.0, 3.5], "since": [day(1), day(5)]})
    print(write_koru(changes, store, "prices", key="sku", valid_from="since"))
    stock = pl.DataFrame({"sku": ["apple", "pear", "plum"], "units": [10, 0, 7]})
    write_koru(stock, store, "stock", key="sku", valid_from=day(1))

    on_day_3 = scan_koru(store, "prices", at=day(3)).select("sku", "price").sort("sku").collect()
    on_day_6 = scan_koru(store, "prices", at=day(6)).select("sku", "price").sort("sku").collect()
    as_first_written = scan_koru(store, "prices", at=day(6), version=1).select("sku", "price")
    print(on_day_3, on_day_6, as_first_written.sort("sku").collect(), sep="\n")

    # filters apply to the as-of state: pear's old 4.0 does not count
    expensive = scan_koru(store, "prices", at=day(3)).filter(pl.col("price") > 2.5)
    print(expensive.select("sku", "price").collect())

    # both namespaces at one instant
    value = (
        scan_koru(store, "prices", at=day(6)).join(scan_koru(store, "stock", at=day(6)), on="_key")
        .select(pl.col("_key").alias("sku"), (pl.col("price") * pl.col("units")).alias("value"))
    )
    print(value.sort("sku").collect())

    history = scan_koru(store, "prices", history=True).filter(pl.col("_key") == "plum")
    print(history.select("price", "_valid_from", "_valid_to", "_commit").collect())
    print(scan_koru_changes(store, "prices", since=1, until=2).select("_key", "op", "price").collect())
