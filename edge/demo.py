"""The demo bank branch: configuration and staff users used by `qms-edge demo` (password `demo`, demo only)."""

from __future__ import annotations

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
