"""Conversions between Python datetimes and koru's times: int nanoseconds since the epoch, UTC."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from koru_core.errors import InvalidInputError

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_ns(value: datetime, *, what: str) -> int:
    """Return ``value`` as nanoseconds since the Unix epoch (UTC).

    Args:
        value: A timezone-aware ``datetime`` (pandas ``Timestamp`` keeps its
            nanoseconds).
        what: What the value is, for the error message (e.g. ``"at"``).

    Raises:
        InvalidInputError: if ``value`` is not a datetime or is naive (koru does
            not guess a zone).
    """
    if not isinstance(value, datetime):
        msg = f"{what} must be a timezone-aware datetime, got {value!r}"
        raise InvalidInputError(msg)
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"{what} must be timezone-aware, got naive {value!r} (add tzinfo=timezone.utc)"
        raise InvalidInputError(msg)
    nanos = getattr(value, "value", None)  # pandas.Timestamp: exact ns since epoch, UTC
    if isinstance(nanos, int):
        return nanos
    delta = value - _EPOCH
    nanos = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    if not -(2**63) <= nanos < 2**63:  # timestamp[ns] spans 1677-09-21 .. 2262-04-11
        msg = f"{what} {value!r} is outside the range of timestamp[ns] (1677-09-21 .. 2262-04-11 UTC)"
        raise InvalidInputError(msg)
    return nanos


def from_ns(nanos: int) -> datetime:
    """Return a UTC ``datetime`` for nanoseconds since the epoch (truncated to µs)."""
    seconds, rest = divmod(nanos, 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=rest // 1_000)


class NanoDatetime(datetime):
    """A UTC ``datetime`` that keeps nanoseconds (``value``, as a pandas ``Timestamp`` does),
    so a time handed from one engine to another loses no precision."""

    value: int


def exact(nanos: int) -> datetime:
    """Return ``nanos`` (ns since the epoch, UTC) as a datetime that :func:`to_ns` reads back exactly."""
    base = from_ns(nanos)
    out = NanoDatetime(base.year, base.month, base.day, base.hour, base.minute, base.second, base.microsecond,
                       tzinfo=timezone.utc)
    out.value = nanos
    return out


def now_ns() -> int:
    """Return the current wall-clock time in nanoseconds since the epoch (UTC)."""
    return time.time_ns()
