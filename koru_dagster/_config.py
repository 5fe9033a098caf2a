"""The store settings that :class:`~koru_dagster.KoruIOManager` and :class:`~koru_dagster.KoruResource`
share: the descriptions of where the store is (a folder, or ``s3://`` with a PostgreSQL
catalog) and how to open it."""

from __future__ import annotations

__all__ = ["CATALOG_HELP", "STORAGE_OPTIONS_HELP", "STORE_HELP"]

STORE_HELP = "Path of the koru store folder (created if missing), or s3://bucket/prefix (needs `catalog`)."
CATALOG_HELP = ("postgresql:// URL of the catalog of a store shared by many processes and hosts (steps of the "
                "multiprocess executor then commit concurrently).")
STORAGE_OPTIONS_HELP = ("For s3://: deltalake / pl.scan_delta keys (aws_endpoint_url, aws_access_key_id, "
                        "aws_secret_access_key, aws_region, aws_allow_http); default: the AWS_* environment variables.")

