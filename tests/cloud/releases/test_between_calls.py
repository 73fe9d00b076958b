"""An update never restarts the appliance while a customer is at a counter: `wait_between_calls` holds the switch
while a ticket is called or being served, and lets it go as soon as the service completes (real writer, real DB)."""

from __future__ import annotations

import threading
from pathlib import Path

from edge import updates
from edge.engine import commands as c
from edge.service import QueueService
from tests.support.appliance import seed_demo


def test_the_switch_waits_for_the_customer_at_the_counter(tmp_path: Path) -> None:
    seed_demo(tmp_path)
    service = QueueService(tmp_path)
    try:
        ticket = service.execute(c.Enqueue(actor="test", service_id="teller")).response["ticket_id"]
        counter = next(iter(service.state.config.counters)).id if service.state.config else "1"
        service.execute(c.SetPresence(actor="agent1", counter_id=counter, status="available"))
        service.execute(c.CallTicket(actor="agent1", ticket_id=ticket, counter_id=counter))
        service.execute(c.Start(actor="agent1", ticket_id=ticket, counter_id=counter))
        assert updates.someone_is_served(tmp_path)
        assert not updates.wait_between_calls(tmp_path, timeout=0.3, sleep=lambda _s: None), "switched mid-service"
        done = threading.Event()
        waiter = threading.Thread(target=lambda: done.set() if updates.wait_between_calls(tmp_path, 30) else None)
        waiter.start()
        assert not done.wait(0.5)
        service.execute(c.Complete(actor="agent1", ticket_id=ticket, counter_id=counter))
        waiter.join(timeout=10)
        assert done.is_set()
    finally:
        service.stop()
