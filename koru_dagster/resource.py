"""KoruResource: a koru store for the ops and assets that use it directly."""

from __future__ import annotations

from typing import Literal

from dagster import ConfigurableResource
from pydantic import Field

import koru_core as koru
from koru_dagster import _config

__all__ = ["KoruResource"]


class KoruResource(ConfigurableResource):  # type: ignore[misc]
    """A koru store, opened on demand.

    Use it in ops and assets that call the store themselves (maintenance jobs,
    ad-hoc queries); assets that only return tables use :class:`KoruIOManager`.

    Example:
        >>> import tempfile
        >>> resource = KoruResource(store=tempfile.mkdtemp())
        >>> with resource.open() as store:
        ...     store.put("users", "alice", {"age": 31}).commit
        1
    """

    store: str = Field(description=_config.STORE_HELP)
    catalog: str | None = Field(default=None, description=_config.CATALOG_HELP)
    storage_options: dict[str, str] | None = Field(default=None, description=_config.STORAGE_OPTIONS_HELP)
    durability: Literal["full", "process"] = Field(
        default="full",
        description=(
            "'full': every write is on disk when it returns; 'process': survives a killed "
            "process but not a power loss (faster small writes)."
        ),
    )
    lock_timeout: float = Field(
        default=10.0, description="Seconds a write waits for another process's write lock."
    )

    def open(self) -> koru.Store:
        """Open the store; close it with ``close()`` or a ``with`` block.

        Raises:
            CorruptionError: the catalog exists but is unreadable.
            InvalidInputError: the path exists and is not a folder.
        """
        return koru.open(self.store, durability=self.durability, lock_timeout=self.lock_timeout,
                         catalog=self.catalog, storage_options=self.storage_options)
