"""Per-process read caches: products (a bounded LRU keyed by (tenant, product_id)) and
ListProducts answers (``SearchCache``, below).

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


Generation = tuple[int, int]  # (cache epoch, tenant's generation)


class SearchCache:
    """Per-process cache of ListProducts answers: a bounded LRU keyed by (tenant, the request
    as the search saw it). Any product write of a tenant (or a change of its search language)
    drops all of that tenant's answers at once: every write notifies (invalidation.py), and
    each tenant has a generation that a write bumps. Like ProductCache it answers only while
    online, and an answer read while the tenant's generation moved is not kept."""

    def __init__(self, max_entries: int = 1000) -> None:
        self._entries: OrderedDict[tuple[str, object], tuple[Generation, object]] = OrderedDict()
        self._generations: dict[str, int] = {}
        self._epoch = 0  # bumped by clear(): covers tenants this cache never saw
        self._max_entries = max_entries
        self._online = False

    def generation(self, tenant_id: str) -> Generation:
        return self._epoch, self._generations.get(tenant_id, 0)

    def get(self, tenant_id: str, key: object) -> object | None:
        if not self._online:
            return None
        entry = self._entries.get((tenant_id, key))
        if entry is None or entry[0] != self.generation(tenant_id):
            return None
        self._entries.move_to_end((tenant_id, key))
        return entry[1]

    def put(self, tenant_id: str, key: object, value: object, generation: Generation) -> None:
        """Keeps ``value`` read while the tenant was at ``generation``, if nothing changed since."""
        if not self._online or generation != self.generation(tenant_id):
            return
        self._entries[(tenant_id, key)] = (generation, value)
        self._entries.move_to_end((tenant_id, key))
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def invalidate(self, tenant_id: str) -> None:
        """Every answer of the tenant is stale (dropped lazily, by generation)."""
        self._generations[tenant_id] = self._generations.get(tenant_id, 0) + 1

    def clear(self) -> None:
        self._epoch += 1
        self._generations.clear()
        self._entries.clear()

    def set_online(self, online: bool) -> None:
        self.clear()
        self._online = online
