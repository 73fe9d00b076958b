"""What the users of one cloud link share: the relay and the KV watchers (config, staff, bookings, alerts) each hold
their own NATS connection and retry with their own back-off, but an outage is one story.

* Whether the hub ever accepted this appliance's credential: then an "Authorization Violation" means the branch was
  retired at the hub (or its key replaced there), not a credential that never worked (`sync.liveness`).
* Which reasons were already logged in this outage: the first failure for a reason is one WARNING line, its retries
  (by any of them) are DEBUG, and when every one that failed is through again one INFO line closes the outage.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from sync.relay import LinkSettings

log = logging.getLogger("qms.link")


class LinkHealth:
    """One link's shared memory (get it with `LinkHealth.of(link)`)."""

    _links: ClassVar[dict[tuple[object, ...], LinkHealth]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self.accepted = False  # the hub took this credential once (this process, or the store says so)
        self.down_since: str | None = None
        self._failing: set[str] = set()  # who is failing now
        self._reported: set[str] = set()  # reasons logged in this outage

    @classmethod
    def of(cls, link: LinkSettings) -> LinkHealth:
        """The shared state of the link to these servers, as this tenant and branch, with this credential."""
        key = (link.servers, link.tenant, link.branch_id, link.nkey_seed_file, link.user)
        with cls._lock:
            return cls._links.setdefault(key, cls())

    def up(self, who: str) -> None:
        """`who` got through (connected and was answered): the credential is good; the outage ends with the last."""
        self.accepted = True
        if who not in self._failing:
            return
        self._failing.discard(who)
        if not self._failing:
            log.info("cloud link: through again (down since %s)", self.down_since)
            self._reported.clear()
            self.down_since = None

    def down(self, who: str, reason: str, retry_in: float) -> None:
        """`who` failed for `reason` (in words) and retries in `retry_in` s: a WARNING the first time in this outage
        that anyone gives this reason, DEBUG after that."""
        self._failing.add(who)
        self.down_since = self.down_since or datetime.now(UTC).isoformat(timespec="seconds")
        if reason in self._reported:
            log.debug("cloud link (%s): %s; retry in %.1fs", who, reason, retry_in)
            return
        self._reported.add(reason)
        log.warning("cloud link: %s (%s; retrying with back-off, once per outage in this log)", reason, who)
