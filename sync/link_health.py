"""What the users of one cloud link share: the relay and the KV watchers (config, staff, bookings, alerts) each hold
their own NATS connection and retry with their own back-off, but an outage is one story.

* Whether the hub ever accepted this appliance's credential: then an "Authorization Violation" means the branch was
  retired at the hub (or its key replaced there), not a credential that never worked (`sync.liveness`).
* Who is failing, and why: the first failure for a reason nobody is failing for yet is one WARNING line, its retries
  (by any of them) are DEBUG, and when every one that failed is through again one INFO line closes the outage.
* A connection the server closed says nothing of why: nats-server closes a user it dropped on a reload (a branch
  retired) with no error, just as it closes everyone when it stops. Such a drop is DEBUG, and the reconnect that
  follows says why (the retirement, or "cannot reach the cloud" when the server is down); a drop with no failed
  reconnect since the last quiet one is said as it is (a server that keeps closing connections is not hidden).
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
        self._failing: dict[str, str] = {}  # who is failing now, and why (a reason is logged when nobody had it)
        self._dropped: set[str] = set()  # whose last failure was a quiet drop (the next one is said as it is)

    @classmethod
    def of(cls, link: LinkSettings) -> LinkHealth:
        """The shared state of the link to these servers, as this tenant and branch, with this credential."""
        key = (link.servers, link.tenant, link.branch_id, link.nkey_seed_file, link.user)
        with cls._lock:
            return cls._links.setdefault(key, cls())

    def up(self, who: str) -> None:
        """`who` got through (connected and was answered): the credential is good; the outage ends with the last."""
        self.accepted = True
        if self._failing.pop(who, None) is None:
            return
        if not self._failing:
            log.info("cloud link: through again (down since %s)", self.down_since)
            self.down_since = None

    def down(self, who: str, reason: str, retry_in: float, *, dropped: bool = False) -> None:
        """`who` failed for `reason` (in words) and retries in `retry_in` s: a WARNING when nobody is failing for that
        reason yet, DEBUG while somebody is (so one that never gets through hides no later outage). `dropped`: the
        server closed a connection that was up, which is DEBUG once, until the reconnect says why."""
        if dropped and who not in self._dropped:
            self._dropped.add(who)
            log.debug("cloud link (%s): the server closed the connection; reconnecting in %.1fs to learn why",
                      who, retry_in)  # fmt: skip
            return
        if not dropped:
            self._dropped.discard(who)
        known = reason in self._failing.values()
        self._failing[who] = reason
        self.down_since = self.down_since or datetime.now(UTC).isoformat(timespec="seconds")
        if known:
            log.debug("cloud link (%s): %s; retry in %.1fs", who, reason, retry_in)
            return
        log.warning("cloud link: %s (%s; retrying with back-off, once per outage in this log)", reason, who)
