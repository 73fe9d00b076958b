"""The console shows stored UTC times in the tenant's zone (Asia/Jakarta by default), named."""

from datetime import UTC, datetime

from cloud.web.times import Zones, hub_time


def test_a_utc_time_is_shown_in_jakarta_with_its_zone() -> None:
    assert hub_time("2026-12-05T06:33:10+00:00") == "2026-12-05 13:33 WIB"
    assert hub_time(datetime(2026, 12, 31, 20, 0, tzinfo=UTC)) == "2027-01-01 03:00 WIB"


def test_another_zone_and_a_naive_utc_time() -> None:
    assert hub_time("2026-12-05T06:33:00", "Asia/Makassar") == "2026-12-05 14:33 WITA"


def test_no_time_is_a_dash() -> None:
    assert hub_time(None) == "—"
    assert hub_time("") == "—"


def test_a_branch_shows_its_own_zone_and_a_tenant_the_zone_most_of_its_branches_keep() -> None:
    zones = Zones({("acme", "jkt"): "Asia/Jakarta", ("acme", "bdg"): "Asia/Jakarta", ("acme", "mks"): "Asia/Makassar",
                   ("globex", "jyp"): "Asia/Jayapura"})  # fmt: skip
    assert zones.of("acme", "mks") == "Asia/Makassar"
    assert zones.of("acme") == "Asia/Jakarta"
    assert zones.of("globex") == "Asia/Jayapura"
    assert zones.of("acme", "unknown") == "Asia/Jakarta"
    assert zones.of(None) == zones.of("nobody") == "Asia/Jakarta"
