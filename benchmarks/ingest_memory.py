"""Peak memory of big writes, whole process, interpreter included (issue 16).

Each case runs in its own child process (a fresh interpreter); its peak RSS is
the child's ``VmHWM`` (the kernel's high-water mark of resident memory of that
process: interpreter, imports, data and koru together), read by the child itself
from ``/proc/self/status`` as it exits, or the largest value the parent polled
from ``/proc/<pid>/status`` while it ran, whichever is larger. (``ru_maxrss`` from ``wait4`` or
``RUSAGE_CHILDREN`` is also recorded, but on Linux it counts the parent's image at
the fork, so it is high whenever the parent is large, as run.py is.) The goal:
every koru case peaks at ≤ ``memory_limit`` (512 MiB by default).

Cases:

* ``interpreter``: ``import koru_core, pyarrow`` and nothing else (reference);
* ``generate``: build the 1M-row table of the upsert cases, no koru call (reference);
* ``upsert``: build the table, then ONE ``store.upsert`` of its 1M rows into a new store;
* ``upsert_changed``: the same into a store that already holds those 1M keys (every
  row a new version; the store is built by an unmeasured child first);
* ``import_parquet``, ``import_csv``: ``koru import`` (the command line, default
  options) of a 10M-row Parquet / CSV file into a new store, one atomic commit.
  The files (columns ``id``, ``qty``, ``price``, ``tag``; 10M distinct keys) are
  generated once into ``--data`` (a temp dir unless given, then reused).

    python benchmarks/ingest_memory.py                          # ~4-6 min on 2 cores
    python benchmarks/ingest_memory.py --upsert-rows 100000 --import-rows 200000

Example:
    >>> code = "import time; x = b'x' * (50 * 2**20); time.sleep(0.3)"
    >>> r = run_child([sys.executable, "-c", code], timeout_s=60)
    >>> (r["returncode"], r["peak_mib"] > 50)
    (0, True)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_LIMIT = 512 * 2**20  # koru's default memory_limit (bytes)
CASES = ("interpreter", "generate", "upsert", "upsert_changed", "import_parquet", "import_csv")
KORU_CASES = ("upsert", "upsert_changed", "import_parquet", "import_csv")


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), *filter(None, [env.get("PYTHONPATH")])])
    return env


def vm_hwm_kib(pid: int | str = "self") -> int | None:
    """The ``VmHWM`` (peak resident set, KiB) of a process from /proc, or None if unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def run_child(cmd: list[str], *, timeout_s: float, hwm_file: Path | None = None) -> dict:
    """Run `cmd`; return its ``peak_mib``, ``seconds``, ``returncode`` and output tails.

    ``peak_mib`` is the larger of the VmHWM the child wrote to `hwm_file` as it
    exited and the largest VmHWM polled from /proc while it ran (the kernel updates
    the mark lazily, so a poll can see a little more). A child past `timeout_s` is killed
    (``timed_out`` true).
    """
    started = time.perf_counter()
    polled = 0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=_env())
        timed_out = False
        while True:
            polled = max(polled, vm_hwm_kib(p.pid) or 0)
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - started > timeout_s:
                p.kill()
                _, status, usage = os.wait4(p.pid, 0)
                timed_out = True
                break
            time.sleep(0.02)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    reported = int(hwm_file.read_text()) if hwm_file is not None and hwm_file.exists() else None
    return {"returncode": p.returncode, "peak_mib": max(reported or 0, polled) / 1024,
            "reported_mib": None if reported is None else reported / 1024,
            "polled_mib": polled / 1024, "ru_maxrss_mib": usage.ru_maxrss / 1024,  # KiB on Linux
            "seconds": time.perf_counter() - started, "timed_out": timed_out,
            "stdout": stdout[-2000:], "stderr": stderr[-2000:]}


def _table(rows: int, *, start: int = 0, step: int = 0):
    """`rows` rows: id ("k%08d" of start..), qty (int64, + step), price, tag."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = np.arange(start, start + rows, dtype=np.int64)
    ids = pc.binary_join_element_wise("k", pc.utf8_lpad(pa.array(n).cast(pa.string()), 8, "0"), "")
    qty = (n * 7919 + step) % 1_000_003
    tag = pa.array(np.array(["red", "green", "blue", "amber", "teal"])[n % 5])
    return pa.table({"id": ids, "qty": qty, "price": qty / 100.0, "tag": tag})


def write_files(folder: Path, rows: int, *, batch: int = 1_000_000) -> dict[str, Path]:
    """Write (once) `rows` rows as ``rows-<n>.parquet`` and ``rows-<n>.csv`` in `folder`."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    paths = {"parquet": folder / f"rows-{rows}.parquet", "csv": folder / f"rows-{rows}.csv"}
    schema = _table(1).schema
    for kind, path in paths.items():
        if path.exists():
            continue
        tmp = path.with_suffix(".part")
        writer = (pq.ParquetWriter(tmp, schema, compression="zstd") if kind == "parquet"
                  else pcsv.CSVWriter(tmp, schema))
        with writer:
            for a in range(0, rows, batch):
                writer.write_table(_table(min(batch, rows - a), start=a))
        tmp.rename(path)
    return paths


def _child(args: argparse.Namespace) -> None:
    """In the child: run one case and print a JSON line of what it did."""
    if args.hwm_file:
        import atexit

        atexit.register(lambda: Path(args.hwm_file).write_text(str(vm_hwm_kib() or 0)))
    if args.child == "cli":
        from koru_core.cli import main

        main(args=json.loads(args.cli_args), prog_name="koru")  # exits (atexit still runs)
        return
    if args.child == "interpreter":
        import pyarrow  # noqa: F401

        import koru_core  # noqa: F401
        print(json.dumps({}))
        return
    table = _table(args.rows, step=1 if args.changed else 0)
    if args.child == "generate":
        print(json.dumps({"rows": table.num_rows}))
        return
    import koru_core as koru

    store = koru.open(args.store, memory_limit=args.memory_limit)
    t0 = time.perf_counter()
    res = store.upsert("bench", table, key="id")
    seconds = time.perf_counter() - t0
    hot = sum(r["memory_bytes"] or 0 for r in store.stats().to_pylist())
    store.close()
    print(json.dumps({"written": res.written, "unchanged": res.unchanged, "upsert_s": seconds,
                      "store_memory_bytes": hot}))


def _py(*argv: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *argv]


def run(cases: list[str], *, upsert_rows: int, import_rows: int, data: Path, work: Path,
        memory_limit: int = DEFAULT_LIMIT, timeout_s: float = 1800.0) -> list[dict]:
    """Run `cases` (names from `CASES`); one result dict per case, with ``ok`` for koru cases.

    `memory_limit` is passed to ``koru.open`` in the upsert cases; ``koru import``
    runs with its defaults, so the import cases are held to `DEFAULT_LIMIT`.
    """
    out = []
    work.mkdir(parents=True, exist_ok=True)
    files = write_files(data, import_rows) if any(c.startswith("import") for c in cases) else {}
    limit_arg = ("--memory-limit", str(memory_limit))
    for case in cases:
        store = work / f"{case}.koru"
        hwm = work / f"{case}.hwm"
        hwm.unlink(missing_ok=True)
        if case in ("interpreter", "generate", "upsert"):
            cmd = _py("--child", case, "--rows", str(upsert_rows), "--store", str(store), *limit_arg)
        elif case == "upsert_changed":
            prep = run_child(_py("--child", "upsert", "--rows", str(upsert_rows), "--store", str(store),
                                 *limit_arg), timeout_s=timeout_s)
            if prep["returncode"]:
                out.append({"case": case, "error": "building the store failed", **prep})
                continue
            cmd = _py("--child", case, "--changed", "--rows", str(upsert_rows), "--store", str(store),
                      *limit_arg)
        else:  # the command line `koru --store S import bench FILE --key id`, defaults otherwise
            path = files[case.removeprefix("import_")]
            cli = ["--store", str(store), "import", "bench", str(path), "--key", "id"]
            cmd = _py("--child", "cli", "--cli-args", json.dumps(cli))
        r = run_child([*cmd, "--hwm-file", str(hwm)], timeout_s=timeout_s, hwm_file=hwm)
        rows = import_rows if case.startswith("import") else upsert_rows if case != "interpreter" else 0
        limit = DEFAULT_LIMIT if case.startswith("import") else memory_limit
        r.update(case=case, rows=rows, limit_mib=limit / 2**20)
        if case in KORU_CASES:
            r["ok"] = r["returncode"] == 0 and r["peak_mib"] <= limit / 2**20
        if r["returncode"] == 0 and r["stdout"].strip().startswith("{"):
            r["child"] = json.loads(r["stdout"].strip().splitlines()[-1])
        out.append(r)
        print(f"  memory {case}: peak {r['peak_mib']:,.0f} MiB in {r['seconds']:.1f} s"
              + (f" (exit {r['returncode']}: {r['stderr'][-300:]})" if r["returncode"] else ""),
              file=sys.stderr, flush=True)
    return out


def table_text(results: list[dict]) -> str:
    """The cases as text: rows, peak RSS against the limit, time, pass/fail."""
    lines = ["peak RSS per process (VmHWM of a fresh child process, interpreter included)",
             f"  {'case':<16}{'rows':>12}{'peak MiB':>10}{'limit MiB':>11}{'seconds':>9}  met"]
    for r in results:
        met = {True: "✓", False: "✗"}.get(r.get("ok"), "-")
        if r.get("returncode"):
            met += f" (exit {r['returncode']})"
        rows = f"{r['rows']:,}" if r.get("rows") else "-"
        lines.append(f"  {r['case']:<16}{rows:>12}{r['peak_mib']:>10,.0f}"
                     f"{r.get('limit_mib', 0):>11,.0f}{r['seconds']:>9.1f}  {met}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line (also the child's entry point, with the hidden ``--child``)."""
    import shutil

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    p.add_argument("--upsert-rows", type=int, default=1_000_000)
    p.add_argument("--import-rows", type=int, default=10_000_000)
    p.add_argument("--memory-limit", type=int, default=DEFAULT_LIMIT, help="bytes, for koru.open")
    p.add_argument("--data", type=Path, help="folder for the generated files (kept, reused)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per child")
    p.add_argument("--json", action="store_true")
    p.add_argument("--child", choices=[*CASES, "cli"], help=argparse.SUPPRESS)
    p.add_argument("--cli-args", help=argparse.SUPPRESS)
    p.add_argument("--hwm-file", help=argparse.SUPPRESS)
    p.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    p.add_argument("--store", help=argparse.SUPPRESS)
    p.add_argument("--changed", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        if args.child == "upsert_changed":
            args.child = "upsert"
        _child(args)
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="koru-mem-"))
    try:
        results = run([c.strip() for c in args.cases.split(",") if c.strip()],
                      upsert_rows=args.upsert_rows, import_rows=args.import_rows,
                      data=args.data or tmp / "data", work=tmp / "stores",
                      memory_limit=args.memory_limit, timeout_s=args.timeout)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(table_text(results))
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
