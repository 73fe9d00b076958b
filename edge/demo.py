"""The demo bank branch: configuration and staff users used by `qms-edge demo` (password `demo`, demo only)."""

from __future__ import annotations

from pathlib import Path

from sync.contract_config import Area, BranchConfig, Counter, Service

DEMO_PASSWORD = "demo"  # noqa: S105 - documented demo-only credential


def demo_config() -> BranchConfig:
    """A small bank branch: teller with priority, customer service with return-to-queue, loans, two floors."""
    return BranchConfig(
        tenant_id="demo-bank",
        branch_id="jkt-sudirman",
        name="Bank Demo - KCP Sudirman",
        timezone="Asia/Jakarta",
        languages=["id", "en"],
        areas=[
            Area(id="lantai-1", name="Lantai 1 - Teller"),
            Area(id="lantai-2", name="Lantai 2 - Customer Service"),
        ],
        services=[
            Service(
                id="teller",
                name="Teller",
                names={"id": "Teller", "en": "Teller"},
                prefix="A",
                area_id="lantai-1",
                priority_enabled=True,
                anti_starvation_n=3,
                sla_minutes=10,
                grace_seconds=120,
                avg_service_seconds=240,
                outcome_codes=["deposit", "withdrawal", "transfer"],
            ),
            Service(
                id="cs",
                name="Customer Service",
                names={"id": "Layanan Nasabah", "en": "Customer Service"},
                prefix="B",
                area_id="lantai-2",
                sla_minutes=20,
                grace_seconds=180,
                no_show_policy="return",
                avg_service_seconds=600,
                unhold_position="original",
            ),
            Service(
                id="loan",
                name="Kredit",
                names={"id": "Kredit & Pinjaman", "en": "Loans"},
                prefix="C",
                area_id="lantai-2",
                sla_minutes=30,
                grace_seconds=180,
                avg_service_seconds=900,
                allow_cancel_serving=True,
            ),
        ],
        counters=[
            Counter(id="1", name="Loket 1", area_id="lantai-1", services=["teller"]),
            Counter(id="2", name="Loket 2", area_id="lantai-1", services=["teller"]),
            Counter(id="3", name="Loket 3", area_id="lantai-1", services=["teller"]),
            Counter(id="4", name="Meja CS 4", area_id="lantai-2", services=["cs", "loan"]),
            Counter(id="5", name="Meja CS 5", area_id="lantai-2", services=["cs"]),
            Counter(id="6", name="Meja Kredit 6", area_id="lantai-2", services=["loan"]),
        ],
    )


DEMO_USERS: list[tuple[str, str, list[str]]] = [
    ("admin", "admin", []),
    ("supervisor", "supervisor", []),
    ("agent1", "agent", ["1", "2"]),
    ("agent2", "agent", ["3"]),
    ("agent3", "agent", ["4", "5"]),
    ("agent4", "agent", ["6"]),
]


DEMO_KIOSK: tuple[str, str, list[str]] = ("kiosk-1", "device", [])
EXAMPLE_REQUEST = "demo-status-example"  # the example ticket's idempotency key: the same ticket on every start


def prepare(data_dir: Path) -> str | None:
    """Seed an empty data dir with the demo branch, its users and one waiting example ticket (idempotent).

    Returns the example ticket's status reference (`t:<ticket_id>`) for the banner's status page link.
    """
    from edge.auth import upsert_user
    from edge.engine import commands as c
    from edge.service import QueueService

    service = QueueService(data_dir)
    try:
        if service.state.config is None:
            service.execute(c.ApplyConfig(actor="demo", config=demo_config(), base_version=0, source="demo"))
            for username, role, counters in [*DEMO_USERS, DEMO_KIOSK]:
                service.submit_store(
                    lambda conn, u=username, r=role, cs=counters: upsert_user(conn, u, DEMO_PASSWORD, r, cs)  # type: ignore[misc]
                ).result()
        example = service.execute(c.Enqueue(actor="demo", request_id=EXAMPLE_REQUEST, service_id="cs"))
    finally:
        service.stop()
    ticket_id = example.response.get("ticket_id")
    return f"t:{ticket_id}" if ticket_id else None


def banner(data_dir: Path, base: str, example: str | None) -> str:
    """Everything a newcomer needs on one screen: each address, the logins, and what to try first."""
    from edge.auth import load_secret
    from edge.web.board.cli import board_urls
    from edge.web.kiosk.cli import kiosk_link
    from edge.web.kiosk.links import link_keys
    from sync.links import sign

    config = demo_config()
    kiosk = kiosk_link(data_dir, DEMO_KIOSK[0], base) or f"(no device account {DEMO_KIOSK[0]})"
    boards = "\n".join(f"      {url}" for url in board_urls(data_dir, base))
    status = "(take a ticket at the kiosk and scan its QR code)"
    if example:
        status = f"{base}/t/{sign(link_keys(load_secret(data_dir), None)[0], config.branch_id, example)}"
    agents = ", ".join(f"{name} ({'counters ' if len(cs) > 1 else 'counter '}{','.join(cs)})"
                       for name, role, cs in DEMO_USERS if role == "agent")  # fmt: skip
    return f"""
QMS demo branch '{config.branch_id}' ({config.name}), data in {data_dir}

  Staff pages     {base}/staff/login
      sign in with password '{DEMO_PASSWORD}' (demo only) as admin (branch admin), supervisor,
      or an agent: {agents}
  Kiosk           {kiosk}
      (the touch screen; large text and high contrast in its header; no printer configured: the QR is the ticket)
  Display boards  add &lang=en for English, &audio=1 for spoken calls
{boards}
  Status page     {status}
      (what a customer's phone shows for the example Customer Service ticket; every ticket's QR code opens its own)
  API             {base}/api/v1     docs (OpenAPI) {base}/schema
  Live events     {base}/api/v1/events  (Server-Sent Events)
  Metrics         {base}/metrics  (Prometheus)      health {base}/api/v1/health

  What to do next:
    1. Open the kiosk and take a Teller ticket (A001).
    2. Open the lantai-1 board in a second window.
    3. Sign in to the staff pages as agent1, choose counter 1 and press "Call next": the board shows A001.
    4. Open the status page above (or scan a ticket's QR code with a phone on the same network).
  Or by API:
    TOKEN=$(curl -s {base}/api/v1/auth/token -H 'content-type: application/json' \\
            -d '{{"username":"agent1","password":"{DEMO_PASSWORD}"}}' \\
            | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
    curl -s {base}/api/v1/tickets -H "Authorization: Bearer $TOKEN" \\
         -H 'content-type: application/json' -d '{{"service_id":"teller"}}'
    curl -s -X POST {base}/api/v1/counters/1/call-next -H "Authorization: Bearer $TOKEN"
  Stop with Ctrl+C; the data stays in {data_dir} (`make clean` removes it).
"""
