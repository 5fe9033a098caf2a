"""The write path: operations → one atomic commit.

``batches`` (merge a commit's input), ``decide`` and ``late`` (the unchanged rule,
in valid-time order and for late rows), ``versions`` (write ids and the causal
chain), ``persist`` (data files, then one catalog transaction), ``hotsync`` (the
hot index kept at the store's head), ``writer`` (the sequence), ``transaction``.
"""

from koru_core.write.batches import Operation
from koru_core.write.transaction import Transaction
from koru_core.write.versions import Prepared
from koru_core.write.writer import Writer

__all__ = ["Operation", "Prepared", "Transaction", "Writer"]
