"""Where a result goes once the store has numbered and journaled it.

The store (with its journal) is not a publisher: it is written synchronously, in order, before
anything here sees the result, and never drops. Everything here is a ``Publisher``: one method,
``publish(item)``, which must return at once.
- Outputs whose work is O(1) in memory (views, line metrics, drift) run inline: waking a thread
  per result cost more than their work (docs/benchmarks.md).
- Anything that can block or take time (disk, network, a second model) is a ``QueuedPublisher``
  with a bounded queue and a thread of its own, such as evidence. What a full queue drops is
  counted per publisher (``edge_ad_publisher_dropped_total``) and is still in the journal.
"""
from .base import Publication, Publisher, QueuedPublisher

__all__ = ["Publication", "Publisher", "QueuedPublisher"]
