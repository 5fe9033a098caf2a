"""Durable single puts as a store grows (issue 16): is a put as fast at 100,000 puts as at 0?

N durable puts (`koru.open(path)` defaults, `store.put(namespace, key, value)`),
round-robin over 50 keys, each a new value, on one store, with no maintenance
call. Reports the median of the first `window` puts (0-1,000) and of the last
`window` (100,000-101,000 at the default N = 101,000), their ratio (the goal: the
last within 1.2x the first), the median and p99 of all puts, and a text curve: the
median of each 5 % bucket. A run that passes `budget_s` stops early and says so
(the last window is then the last puts made).

    python benchmarks/put_curve.py                    # 101,000 puts (~1-2 min at 600 us a put)
    python benchmarks/put_curve.py --puts 3000        # quick

Example:
    >>> import tempfile, pathlib
    >>> r = put_curve(pathlib.Path(tempfile.mkdtemp()) / "s", puts=40, window=10)
    >>> (r["puts_done"], r["window"], len(r["buckets"]))
    (40, 10, 20)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
for _p in (HERE, HERE.parent):
    if str(_p) not in sys.path:
        sys.path.insert(0 if _p == HERE else 1, str(_p))

FLAT_RATIO = 1.2  # issue 16: the last window's median within 1.2x the first's


def _us(times: list[float]) -> float:
    return statistics.median(times) * 1e6


def put_curve(path: Path, *, puts: int = 101_000, keys: int = 50, window: int = 1000,
              budget_s: float = 600.0) -> dict:
    """Make `puts` durable puts over `keys` keys in a new store at `path`; time each.

    Args:
        path: Store folder (must not hold a store yet).
        puts: Puts to make.
        keys: Keys the puts go round (key ``k00`` … ), each put a new value.
        window: Puts in the first and last window (shrunk to a third of the puts).
        budget_s: Stop after this many seconds (`stopped_early` is then true).

    Returns:
        ``puts_done``, ``elapsed_s``, ``window``, ``first_median_us`` (puts
        ``0..window``), ``last_median_us`` (the last `window` puts), ``ratio``
        (last/first), ``median_us``, ``p99_us``, ``max_us``, ``buckets`` (20 rows of
        ``{"from", "to", "median_us"}``: puts ``from..to``), ``stopped_early``.
    """
    import koru_core as koru

    store = koru.open(str(path))
    times: list[float] = []
    started = time.perf_counter()
    try:
        for i in range(puts):
            t0 = time.perf_counter()
            store.put("puts", f"k{i % keys:02d}", {"a": i, "b": "x"})
            times.append(time.perf_counter() - t0)
            if time.perf_counter() - started > budget_s:
                break
    finally:
        store.close()
    n = len(times)
    w = max(1, min(window, n // 3))
    ordered = sorted(times)
    edges = [round(n * k / 20) for k in range(21)]
    buckets = [{"from": a, "to": b, "median_us": _us(times[a:b])}
               for a, b in zip(edges, edges[1:], strict=False) if b > a]
    first, last = _us(times[:w]), _us(times[-w:])
    return {"puts": puts, "puts_done": n, "keys": keys, "elapsed_s": time.perf_counter() - started,
            "window": w, "first_median_us": first, "last_median_us": last, "ratio": last / first,
            "median_us": _us(times), "p99_us": ordered[min(n - 1, int(n * 0.99))] * 1e6,
            "max_us": ordered[-1] * 1e6, "buckets": buckets, "stopped_early": n < puts}


def curve_text(r: dict, *, width: int = 40) -> str:
    """The curve as text: one line per bucket, its median and a bar scaled to the slowest."""
    top = max(b["median_us"] for b in r["buckets"])
    lines = [f"put curve: {r['puts_done']:,} durable puts over {r['keys']} keys in {r['elapsed_s']:.1f} s"
             + (f" (stopped early: budget; {r['puts']:,} asked)" if r["stopped_early"] else ""),
             f"  first {r['window']:,}: median {r['first_median_us']:,.0f} µs; last {r['window']:,}: "
             f"median {r['last_median_us']:,.0f} µs; ratio {r['ratio']:.2f}x (goal <= {FLAT_RATIO}x); "
             f"all: median {r['median_us']:,.0f} µs, p99 {r['p99_us']:,.0f} µs, max {r['max_us']:,.0f} µs"]
    for b in r["buckets"]:
        bar = "█" * max(1, round(width * b["median_us"] / top))
        lines.append(f"  puts {b['from']:>7,}-{b['to']:<7,} {b['median_us']:>9,.0f} µs  {bar}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: run the curve in a temporary store, print it (and `--json`)."""
    import shutil
    import tempfile

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--puts", type=int, default=101_000)
    p.add_argument("--keys", type=int, default=50)
    p.add_argument("--window", type=int, default=1000)
    p.add_argument("--budget", type=float, default=600.0, help="seconds after which the run stops")
    p.add_argument("--dir", type=Path, help="folder for the store (default: a temp dir, removed)")
    p.add_argument("--json", action="store_true", help="also print the result as JSON")
    args = p.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="koru-puts-", dir=args.dir))
    try:
        r = put_curve(root / "store.koru", puts=args.puts, keys=args.keys, window=args.window,
                      budget_s=args.budget)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(curve_text(r))
    if args.json:
        print(json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
