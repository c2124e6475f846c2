"""The collector's setting for a long-running server (services/runtime/gc_policy.py), in a
process of its own (it changes the interpreter's state for good)."""

from __future__ import annotations

import json
import subprocess
import sys

from services.runtime import gc_policy

_CHILD = """
import gc, json
import services.catalog.app  # a service's imports
from services.runtime import gc_policy

class Cycle:
    pass

before = gc.get_freeze_count()
gc_policy.settle_after_start()
frozen = gc.get_freeze_count()
a = Cycle(); a.me = a; del a  # garbage made after start-up: still collected
found = gc.collect()
print(json.dumps({"before": before, "frozen": frozen, "threshold": gc.get_threshold(), "found": found}))
"""


def test_what_is_alive_after_start_up_is_frozen_and_later_garbage_still_collected() -> None:
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True, timeout=60)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["before"] == 0 and seen["frozen"] > 50_000  # the imports' objects
    assert seen["threshold"] == [gc_policy.GEN0_THRESHOLD, gc_policy.GEN1_THRESHOLD, gc_policy.GEN2_THRESHOLD]
    assert seen["found"] >= 1  # the cycle
