"""Root of the test tree: makes tests/helpers importable from every test
directory as `helpers`.

pytest's default (prepend) import mode already puts the directory of this
rootless conftest on sys.path; doing it here explicitly keeps `import helpers`
working under --import-mode=importlib too, and for scripts run by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # hypothesis is a [dev] extra
    pass
else:
    # Hypothesis fails an example slower than 200 ms (deadline) and slow data
    # generation (too_slow): both measure this machine's speed, not behaviour.
    settings.register_profile("meshlink", deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile("meshlink")
