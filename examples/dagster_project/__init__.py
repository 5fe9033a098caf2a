"""A Dagster project over the NYC flights 2013 data, stored in koru.

``raw_flights`` (daily partitions, three days of January 2013) →
``aircraft_positions`` (each aircraft's latest flight; per-row lineage through
``_write_id``) → ``route_statistics`` (per route; lineage through ``_parents``),
with koru's maintenance jobs and schedules. See ``definitions.py``.
"""
