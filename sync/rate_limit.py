"""Token-bucket rate limits keyed by caller (client address, tenant, token), shared by both sides (E-PLAT-02).

A bucket holds `limit` requests and refills at `limit` per `window` seconds, so a burst up to the limit passes and
a steady caller gets the limit per window. Memory is bounded: full buckets are forgotten (a full bucket and a missing
one behave the same), and past `max_keys` the oldest are dropped. In memory per process: one hub replica = its own
budget (documented in hub operations). The clock is injected (tests drive it; production uses `time.monotonic`).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """`requests` per `seconds`; 0 requests = unlimited."""

    requests: int
    seconds: float = 60.0

    @classmethod
    def parse(cls, text: str) -> Limit:
        """`"60/minute"`, `"5/second"`, `"1000/hour"`, `"30/60"` (per 60 s), or `"0"` (off)."""
        if text.strip() in {"", "0", "off"}:
            return cls(0)
        count, _, per = text.strip().partition("/")
        units = {"second": 1.0, "s": 1.0, "minute": 60.0, "min": 60.0, "m": 60.0, "hour": 3600.0, "h": 3600.0}
        seconds = units.get(per.strip().lower()) if per else 60.0
        if seconds is None:
            try:
                seconds = float(per)
            except ValueError:
                raise ValueError(f"a rate limit is N/second, N/minute, N/hour or N/<seconds>, not {text!r}") from None
        requests = int(count)
        if requests < 0 or seconds <= 0:
            raise ValueError(f"a rate limit needs a count >= 0 and a period > 0, not {text!r}")
        return cls(requests, seconds)

    @property
    def off(self) -> bool:
        """Whether this limit lets everything through."""
        return self.requests == 0


class RateLimiter:
    """Buckets for one `Limit`, one per key; `take(key)` is 0 (go) or the seconds to wait before trying again."""

    def __init__(self, limit: Limit, clock: Callable[[], float] = time.monotonic, max_keys: int = 50_000) -> None:
        self.limit = limit
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> int:
        """Spend one request of `key`'s budget: 0 when allowed, else whole seconds until one is available (>= 1)."""
        if self.limit.off:
            return 0
        rate = self.limit.requests / self.limit.seconds
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.pop(key, (float(self.limit.requests), now))
            tokens = min(float(self.limit.requests), tokens + (now - at) * rate)
            if tokens >= 1.0:
                tokens -= 1.0
                wait = 0
            else:
                wait = max(1, math.ceil((1.0 - tokens) / rate))
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return wait
