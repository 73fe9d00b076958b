"""Settings for the whole suite."""

from __future__ import annotations

import os

from hypothesis import settings

# Hypothesis' per-example deadline (200 ms) measures the machine, not the code: on a 2-core CI box running two test
# workers beside browsers and servers, an example that takes 5 ms idle can take 300 ms. Under CI the deadline is off;
# locally it stays on, to catch an example that became slow.
settings.register_profile("ci", deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")
