"""Tables that fit the terminal, as the duckdb CLI draws them.

Each cell is one line (a newline shows as ``\\n``). A cell wider than its
column ends in ``…``. When the columns do not fit at :data:`MIN_WIDTH`
characters each, the middle ones are left out (a ``…`` column marks where).
A result longer than ``max_rows`` shows its first and last rows around a ``·``
row, and the line under the table counts every row: ``334,233 rows (40 shown)``.

Rows are taken from a stream of Arrow batches (:func:`print_batches`): only
the first and last ``max_rows`` rows are ever converted to Python, so a long
result prints as fast as the engine can count it.

Example:
    >>> print_rows([{"a": 1, "b": "x"}], ["a", "b"], width=20)
    ┌───┬───┐
    │ a │ b │
    ├───┼───┤
    │ 1 │ x │
    └───┴───┘
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    import pyarrow as pa

__all__ = ["DEFAULT_MAX_ROWS", "MIN_WIDTH", "head_and_tail", "print_batches", "print_rows"]

DEFAULT_MAX_ROWS = 40
"""Rows a table shows by default (``--max-rows``): the first 20 and the last 20."""
MIN_WIDTH = 8
"""Narrowest a column is squeezed to before columns are left out."""
_GAP = "·"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Shown:
    """What a table shows: the rows (first ``split``, then the last ones) and the total count."""

    rows: list[dict[str, Any]]
    total: int
    split: int | None  # index of the first tail row when rows were left out


def head_and_tail(batches: Iterable[pa.RecordBatch], max_rows: int) -> tuple[pa.Table | None, pa.Table | None, int]:
    """Stream ``batches`` once and keep the first and last rows.

    Args:
        batches: Arrow record batches, one schema.
        max_rows: Rows to keep: ``ceil(max_rows / 2)`` first and ``floor(max_rows / 2)``
            last when there are more; every row when there are not; ``0`` keeps all.

    Returns:
        ``(head, tail, total)``: ``tail`` is None when ``head`` holds every row;
        ``head`` is None when there were no batches.

    Example:
        >>> import pyarrow as pa
        >>> head, tail, total = head_and_tail(pa.table({"i": range(10)}).to_batches(3), 4)
        >>> head["i"].to_pylist(), tail["i"].to_pylist(), total
        ([0, 1], [8, 9], 10)
    """
    import pyarrow as pa

    first: list[pa.RecordBatch] = []
    last: deque[pa.RecordBatch] = deque()
    kept = in_last = total = 0
    schema = None
    for batch in batches:
        schema = batch.schema
        total += batch.num_rows
        if max_rows == 0 or kept < max_rows:
            take = batch if max_rows == 0 else batch.slice(0, max_rows - kept)
            first.append(take)
            kept += take.num_rows
            batch = batch.slice(take.num_rows)
        if batch.num_rows:
            last.append(batch)
            in_last += batch.num_rows
            while in_last - last[0].num_rows >= max_rows:
                in_last -= last.popleft().num_rows
    if schema is None:
        return None, None, 0
    everything = pa.Table.from_batches([*first, *last], schema=schema)
    if max_rows == 0 or total <= max_rows:
        return everything, None, total
    n_head = (max_rows + 1) // 2
    n_tail = max_rows - n_head
    return everything.slice(0, n_head), everything.slice(everything.num_rows - n_tail), total


def print_batches(
    batches: Iterable[pa.RecordBatch], columns: Sequence[str], *, types: Sequence[str] | None = None,
    max_rows: int = DEFAULT_MAX_ROWS, width: int | None = None,
) -> None:
    """Print a stream of Arrow batches as a table (NULL shown as ``NULL``, types under the names).

    Args:
        batches: The result, as Arrow record batches.
        columns: Column names, in order.
        types: A type name per column (e.g. DuckDB's ``bigint``), shown under each name.
        max_rows: Rows shown at most (first and last halves); 0 shows all.
        width: Characters per line; default the terminal's (``COLUMNS``, else 80).
    """
    head, tail, total = head_and_tail(batches, max_rows)
    rows = [] if head is None else head.to_pylist()
    split = None
    if tail is not None:
        split = len(rows)
        rows += tail.to_pylist()
    _render(_Shown(rows=rows, total=total, split=split), columns, types=types, null="NULL", width=width, count=True)


def print_rows(
    rows: list[dict[str, Any]], columns: Sequence[str], *, title: str | None = None,
    max_rows: int = 0, width: int | None = None, count: bool = False,
) -> None:
    """Print Python rows (dicts) as a table; ``max_rows`` (0: all) keeps the first and last.

    The line under it counts the rows when ``count`` is true or some were left out.

    Example:
        >>> print_rows([{"n": i} for i in range(5)], ["n"], max_rows=2, width=20)
        ┌───┐
        │ n │
        ├───┤
        │ 0 │
        │ · │
        │ 4 │
        └───┘
        5 rows (2 shown)
    """
    total, split = len(rows), None
    if max_rows and total > max_rows:
        n_head = (max_rows + 1) // 2
        split = n_head
        rows = rows[:n_head] + rows[total - (max_rows - n_head):]
    _render(_Shown(rows=rows, total=total, split=split), columns, title=title, null="", width=width, count=count)


def _cell(value: Any, null: str) -> str:
    from koru_core.cli._common import _show

    if value is None:
        return null
    if isinstance(value, bool):
        return "true" if value else "false"
    return _show(value).replace("\r", "\\r").replace("\n", "\\n").replace("\t", " ")


def _is_number(values: list[Any]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)


def _fit(natural: list[int], width: int) -> tuple[list[int], list[int], bool]:
    """Choose the columns shown and their widths: ``(indices, widths, left_out)``.

    Every column costs its width plus 3 (padding and border); the table 1 more.
    Columns are squeezed down to :data:`MIN_WIDTH` first; past that, the middle
    ones are left out, keeping columns from both ends.
    """
    n = len(natural)
    floor = [min(w, MIN_WIDTH) for w in natural]
    order = list(range(n))
    if 1 + sum(f + 3 for f in floor) > width:  # leave columns out, from the middle
        order = []
        budget = width - 1 - 4  # the "…" column
        for i in (j for pair in zip(range(n), reversed(range(n)), strict=True) for j in pair):
            if i in order:
                continue
            if budget - (floor[i] + 3) < 0 and order:
                break
            order.append(i)
            budget -= floor[i] + 3
        order.sort()
    left_out = len(order) < n
    room = width - 1 - 3 * len(order) - (4 if left_out else 0)
    cap = max(natural[i] for i in order)
    while cap > 1 and sum(min(natural[i], cap) for i in order) > room:
        cap -= 1
    return order, [max(1, min(natural[i], cap)) for i in order], left_out


def _render(
    shown: _Shown, columns: Sequence[str], *, types: Sequence[str] | None = None, title: str | None = None,
    null: str, width: int | None, count: bool,
) -> None:
    from rich import box
    from rich.cells import cell_len
    from rich.table import Table
    from rich.text import Text

    from koru_core.cli._common import _console

    console = _console()
    width = width or console.width
    cells = [[_cell(row.get(name), null) for name in columns] for row in shown.rows]
    heads = [name if types is None else f"{name}\n{types[i]}" for i, name in enumerate(columns)]
    natural = [
        max([cell_len(part) for part in heads[i].split("\n")] + [cell_len(r[i]) for r in cells])
        for i in range(len(columns))
    ]
    order, widths, left_out = _fit(natural, width) if columns else ([], [], False)
    table = Table(title=title, box=box.SQUARE, title_justify="left", safe_box=True)
    gaps = {i for p, i in enumerate(order) if (order[p + 1] if p + 1 < len(order) else len(columns)) != i + 1}
    for i, w in zip(order, widths, strict=True):
        numeric = _is_number([row.get(columns[i]) for row in shown.rows])
        table.add_column(Text(heads[i]), width=w, no_wrap=True, overflow="ellipsis",
                         justify="right" if numeric else "left")
        if i in gaps:
            table.add_column("…", width=1, no_wrap=True)
    for r, row in enumerate(cells):
        if r == shown.split:
            table.add_row(*([_GAP] * len(table.columns)))
        values = []
        for i in order:
            values.append(Text(row[i]))
            if i in gaps:
                values.append(Text("…"))
        table.add_row(*values)
    if columns:
        console.print(table, width=width)
    if not (count or left_out or shown.split is not None):
        return
    note = f"{shown.total:,} row{'' if shown.total == 1 else 's'}"
    if shown.split is not None:
        note += f" ({len(shown.rows):,} shown)"
    if left_out:
        note += f" · {len(columns)} columns ({len(order)} shown)"
    console.print(note, style="dim", width=width)
