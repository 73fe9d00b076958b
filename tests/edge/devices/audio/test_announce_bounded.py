"""A burst of calls while the speaker is busy: the queue stays bounded and only the latest call per counter plays.

Issue 11: every call used to be rendered into its own ~10 s WAV and queued without limit, so a busy branch grew
memory without bound and spoke calls long superseded. Now a newer call (or a recall) at a counter replaces that
counter's unplayed announcement, each area's queue has a cap, and announcements keep clips by reference.
"""

from __future__ import annotations

import threading

from edge.devices.audio.announcer import MAX_QUEUED_PER_AREA, Announcement, Announcer, AnnouncerCollector
from edge.devices.audio.outputs import CallbackOutput
from edge.engine import commands as c
from edge.service import QueueService
from tests.edge.devices.audio.conftest import wait_until

AREA = "lantai-1"
COUNTERS = ("1", "2", "3")  # the demo branch's counters on lantai-1


def test_a_burst_while_speaking_plays_only_the_latest_call_per_counter_in_order(branch: QueueService) -> None:
    entered = threading.Event()
    release = threading.Event()
    played: list[Announcement] = []

    def speaker(a: Announcement) -> None:
        entered.set()
        release.wait(10)  # the first announcement "plays" until the burst is over
        played.append(a)

    announcer = Announcer(branch, branch.data_dir / "voice", [CallbackOutput("speaker", speaker, blocking=True)])
    announcer.pace = False
    branch.subscribe_commits(announcer.on_commit)
    announcer.start()
    try:
        ids = [branch.execute(c.Enqueue(service_id="teller")).response["ticket_id"] for _ in range(31)]
        first = branch.execute(c.CallTicket(ticket_id=ids[0], counter_id="1")).events[-1].seq
        branch.execute(c.Start(ticket_id=ids[0], counter_id="1"))
        branch.execute(c.Complete(ticket_id=ids[0], counter_id="1"))
        assert entered.wait(10), "the first announcement never reached the speaker"

        last_seq: dict[str, int] = {}  # counter -> seq of its latest call
        for i, ticket_id in enumerate(ids[1:]):
            counter = COUNTERS[i % 3]
            last_seq[counter] = branch.execute(c.CallTicket(ticket_id=ticket_id, counter_id=counter)).events[-1].seq
            if i < len(ids) - 4:  # the last call of each counter stays open
                branch.execute(c.Start(ticket_id=ticket_id, counter_id=counter))
                branch.execute(c.Complete(ticket_id=ticket_id, counter_id=counter))
        recalled = ids[-2]  # counter 2's last ticket is recalled: the recall replaces its call
        last_seq["2"] = branch.execute(c.Recall(ticket_id=recalled, counter_id="2")).events[-1].seq

        wait_until(lambda: announcer.stats.announced + announcer.stats.quiet == 32)
        assert announcer.pending(AREA) <= len(COUNTERS), "superseded calls were kept in the queue"
        release.set()
        expected = [first, *sorted(last_seq.values())]
        wait_until(lambda: len(played) >= len(expected))
    finally:
        release.set()
        announcer.stop()

    assert [a.seq for a in played] == expected, "not the latest call per counter, in order"
    assert [a.recall for a in played] == [a.seq == last_seq["2"] for a in played]
    assert announcer.stats.superseded == 30 + 1 - len(COUNTERS)  # 30 calls and a recall queued, one left per counter
    assert announcer.stats.peak_pending <= len(COUNTERS)
    assert announcer.stats.dropped == 0
    exported = {m.name: m.samples[0].value for m in AnnouncerCollector(announcer).collect() if m.samples}
    assert exported["qms_announcements_superseded"] == announcer.stats.superseded  # what /metrics shows
    assert exported["qms_announcements_dropped"] == 0


def test_the_queue_is_capped_and_drops_the_oldest(branch: QueueService) -> None:
    """More counters calling at once than the cap: the oldest unplayed calls are dropped, and counted."""
    from edge.devices.audio.announcer import AreaQueue

    queue = AreaQueue(limit=2)
    made = [_announcement(seq, counter) for seq, counter in ((1, "1"), (2, "2"), (3, "3"), (4, "2"))]
    outcomes = [queue.put(a) for a in made]
    assert [a.seq for a in queue.snapshot()] == [3, 4]
    assert outcomes == [(0, 0), (0, 0), (0, 1), (1, 0)]  # (superseded, dropped) per put
    assert MAX_QUEUED_PER_AREA >= 8


def test_announcements_share_the_voice_packs_clips(branch: QueueService) -> None:
    """Clips are kept by reference: two announcements point at the same PCM objects, no WAV is stored per call."""
    seen: list[Announcement] = []
    announcer = Announcer(branch, branch.data_dir / "voice", [], pace=False)
    announcer.listeners.append(seen.append)
    branch.subscribe_commits(announcer.on_commit)
    announcer.start()
    try:
        ids = [branch.execute(c.Enqueue(service_id="teller")).response["ticket_id"] for _ in range(2)]
        branch.execute(c.CallTicket(ticket_id=ids[0], counter_id="1"))
        branch.execute(c.CallTicket(ticket_id=ids[1], counter_id="2"))
        wait_until(lambda: len(seen) == 2)
    finally:
        announcer.stop()
    a, b = seen
    assert a.rendered.parts[0] is b.rendered.parts[0]  # the chime: one object in the pack, not a copy per call
    assert "wav" not in vars(a.rendered)  # the WAV is built when an output asks for it, not kept
    assert a.wav[:4] == b"RIFF"


def _announcement(seq: int, counter: str) -> Announcement:
    from edge.devices.audio.assemble import Rendered

    return Announcement(
        area=AREA, seq=seq, ticket_id=f"t{seq}", ticket_number=f"A{seq:03d}", counter_id=counter,
        counter_name=counter, recall=False, languages=("id",), rendered=Rendered((), (), 22050),
        committed_at=0.0, ready_at=0.0,
    )  # fmt: skip
