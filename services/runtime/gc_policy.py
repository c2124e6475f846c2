"""The cyclic garbage collector, set for a long-running server.

CPython's collector walks every tracked object in a full (generation 2) collection. A
service holds a few hundred thousand of them from its imports alone (the catalog: 121,000
after import), plus its caches, so a full collection stopped the catalog's event loop for
up to 108 ms under search load: every call in flight waited (measured at a million
products, 40 searches/s: the p99 went from 14-22 ms to 45-73 ms in the runs where one
happened). Once the service is built, before it serves:

- ``gc.freeze()`` moves everything alive then (modules, classes, settings, pools) out of
  the collector's reach, so a full collection no longer walks it. Objects freed by
  reference counting are still freed, frozen or not; what was alive then and later
  becomes garbage *in a cycle* is never collected (a bounded, one-time cost: start-up's
  objects);
- generation 0 is collected after GEN0_THRESHOLD allocations instead of 700, so a
  request's short-lived objects are mostly gone before a collection and are not promoted
  to the older generations that full collections walk.

(Python 3.11; the thresholds mean something else under 3.14's incremental collector.)
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 10_000
GEN1_THRESHOLD = 20
GEN2_THRESHOLD = 20


def settle_after_start() -> None:
    """Collects once, then freezes what is alive and raises the thresholds (call it once the
    service is built, before it takes calls)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
