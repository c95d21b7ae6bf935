"""Where a result goes once the store has numbered and journaled it.

The store (with its journal) is not a publisher: it is written synchronously, in order, before
anything here sees the result, and never drops. Everything here is a ``Publisher``: one method,
``publish(item)``, which must return at once. The built-in ones (views, line metrics, drift,
evidence) are ``QueuedPublisher``s with a bounded queue and their own thread; what a full queue
drops is counted per publisher (``edge_ad_publisher_dropped_total``) and is still in the journal.
"""
from .base import Publication, Publisher, QueuedPublisher

__all__ = ["Publication", "Publisher", "QueuedPublisher"]
