"""A per-process read cache of products: a bounded LRU keyed by (tenant, product_id).

It only answers while ``online``, i.e. while this replica's invalidation listener
is connected: every write queues a NOTIFY in its transaction and every replica
evicts on it, so a product is never served stale beyond the notification's
delivery. When the listener is down the cache is empty and bypassed.

A read that misses takes the ``generation`` before going to the database and
hands it back to ``put``; any eviction in between bumps the generation and the
(possibly older) row is not cached.
"""

from __future__ import annotations

from collections import OrderedDict

from services.catalog.domain.product import Product

Key = tuple[str, str]


class ProductCache:
    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: OrderedDict[Key, Product] = OrderedDict()
        self._max_entries = max_entries
        self._online = False
        self.generation = 0

    @property
    def online(self) -> bool:
        return self._online

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, tenant_id: str, product_id: str) -> Product | None:
        key = (tenant_id, product_id)
        product = self._entries.get(key)
        if product is not None:
            self._entries.move_to_end(key)
        return product

    def put(self, tenant_id: str, product: Product, generation: int) -> None:
        """Caches ``product`` as read when the cache was at ``generation``, if nothing changed since."""
        if not self._online or generation != self.generation:
            return
        key = (tenant_id, product.product_id)
        self._entries[key] = product
        self._entries.move_to_end(key)
        if len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def evict(self, tenant_id: str, product_id: str) -> None:
        self.generation += 1
        self._entries.pop((tenant_id, product_id), None)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()

    def set_online(self, online: bool) -> None:
        """Going either way forgets everything: notifications may have been missed."""
        self.clear()
        self._online = online
