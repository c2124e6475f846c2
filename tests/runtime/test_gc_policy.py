"""The collector's setting for a long-running server (services/runtime/gc_policy.py), in a
process of its own (it changes the interpreter's state for good)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from services.runtime import gc_policy

ROOT = Path(__file__).resolve().parents[2]
_CHILD = """
import gc, json, weakref
import services.catalog.app  # a service's imports
from services.runtime import gc_policy

class Cycle:
    pass

def cycle():
    c = Cycle(); c.me = c
    return c

before = gc.get_freeze_count()
early = cycle()
early_ref = weakref.ref(early)
gc_policy.settle_after_start()
frozen = gc.get_freeze_count()
del early  # alive at start-up, garbage now: frozen, so never collected
late = cycle()
late_ref = weakref.ref(late)
del late  # garbage made after start-up: collected
gc.collect()
print(json.dumps({"before": before, "frozen": frozen, "threshold": gc.get_threshold(),
                  "late_collected": late_ref() is None, "early_collected": early_ref() is None}))
"""


def test_what_is_alive_after_start_up_is_frozen_and_later_garbage_still_collected() -> None:
    out = subprocess.run([sys.executable, "-c", _CHILD], cwd=ROOT, capture_output=True, text=True, check=True,
                         timeout=60)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["before"] == 0 and seen["frozen"] > 50_000  # the imports' objects
    assert seen["threshold"] == [gc_policy.GEN0_THRESHOLD, gc_policy.GEN1_THRESHOLD, gc_policy.GEN2_THRESHOLD]
    assert seen["late_collected"]
    assert not seen["early_collected"]  # the documented cost: start-up's cycles stay
