"""Time travel in SQL: query a koru store from DuckDB with AT (TIMESTAMP => …) and AT (VERSION => …).

Writes a few versions of two customers to a temporary store (one of them a late
arrival, with a valid time before the last commit), then asks DuckDB for the
state at a valid time, the state as of a commit, one key's history and the
change feed between two commits.
"""

import tempfile
from datetime import datetime, timezone

import koru_core as koru
import koru_duckdb


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


with tempfile.TemporaryDirectory() as folder:
    store = koru.open(folder)
    store.put("customers", "acme", {"plan": "free", "seats": 3}, valid_from=utc(2024, 1, 1))
    store.put("customers", "globex", {"plan": "pro", "seats": 40}, valid_from=utc(2024, 2, 1))
    store.put("customers", "acme", {"plan": "pro", "seats": 12}, valid_from=utc(2024, 6, 1))
    store.delete("customers", "globex", valid_from=utc(2024, 9, 1))
    # commit 5 arrives late: acme actually went "team" in March
    store.put("customers", "acme", {"plan": "team", "seats": 8}, valid_from=utc(2024, 3, 1))

    con = koru_duckdb.connect(store)
    print("now:")
    con.sql("SELECT _key, plan, seats FROM customers ORDER BY _key").show()

    print("as of 2024-04-01 (valid time):")
    con.sql("""
        SELECT _key, plan, seats, _valid_from
        FROM customers AT (TIMESTAMP => TIMESTAMP '2024-04-01')
        ORDER BY _key
    """).show()

    print("as of commit 4 (before the late arrival was recorded):")
    con.sql("SELECT _key, plan, seats FROM customers AT (VERSION => 4) WHERE seats > 5").show()

    print("history of acme:")
    con.sql("SELECT plan, seats, _valid_from, _valid_to, _commit FROM koru_history('customers', 'acme')").show()

    print("change feed of commits 3..5:")
    con.sql("SELECT _commit, _key, op, plan, seats FROM koru_changes('customers', 2, 5)").show()

    print("commit log:")
    con.sql("SELECT commit, written, deleted FROM koru_commits()").show()
    con.close()
    store.close()
