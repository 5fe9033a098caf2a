"""Frames in and out: what an asset returns → Arrow, and Arrow → what an input asks for.

Supported: ``pyarrow.Table`` (and ``RecordBatch``), Polars ``DataFrame`` and
``LazyFrame`` (collected on write), pandas ``DataFrame``. Polars and pandas are
imported only when such a frame is asked for or given.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from koru_core import InvalidInputError

__all__ = ["from_table", "to_table"]


def to_table(obj: Any, *, asset: str) -> pa.Table:
    """Return an asset's output as a pyarrow Table.

    Raises:
        InvalidInputError: an unsupported type (the message names the asset and type).
    """
    module = type(obj).__module__
    if isinstance(obj, pa.Table):
        return obj
    if isinstance(obj, pa.RecordBatch):
        return pa.Table.from_batches([obj])
    if module.startswith("polars"):
        frame = obj.collect() if hasattr(obj, "collect") else obj
        return frame.to_arrow()
    if module.startswith("pandas") and hasattr(obj, "to_dict"):
        return pa.Table.from_pandas(obj, preserve_index=False)
    msg = (
        f"asset {asset!r}: KoruIOManager stores a pyarrow Table, a Polars DataFrame or "
        f"LazyFrame, or a pandas DataFrame, got {type(obj).__name__}"
    )
    raise InvalidInputError(msg)


def from_table(table: pa.Table, wanted: Any) -> Any:
    """Return ``table`` as the type an input is annotated with (pa.Table if unannotated).

    Raises:
        InvalidInputError: an annotation koru cannot produce.
    """
    name = f"{getattr(wanted, '__module__', '')}.{getattr(wanted, '__qualname__', '')}"
    if wanted in (Any, object, None, pa.Table) or name.endswith(".Any"):
        return table
    if name.startswith("polars") and name.endswith("LazyFrame"):
        import polars as pl

        return pl.from_arrow(table).lazy()  # type: ignore[union-attr]
    if name.startswith("polars") and name.endswith("DataFrame"):
        import polars as pl

        return pl.from_arrow(table)
    if name.startswith("pandas") and name.endswith("DataFrame"):
        return table.to_pandas()
    msg = (
        "KoruIOManager loads pyarrow.Table, polars.DataFrame/LazyFrame or pandas.DataFrame, "
        f"not {wanted!r}"
    )
    raise InvalidInputError(msg)
