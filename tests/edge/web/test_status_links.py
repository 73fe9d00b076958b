"""The appliance's ticket status links: signed for its own branch, with the cloud seed's key when it has one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from litestar.testing import TestClient

from edge.auth import load_secret
from edge.replication import CloudLink
from edge.service import QueueService
from edge.web.app import Settings, create_app
from sync.links import branch_of, link_key, seed_link_key, sign, verify
from tests.edge.web.conftest import Api
from tests.support.appliance import mint_token

SEED = b"SUAIBDPBAUTWCWBKIO6XHQNINK5FWJW4OHLXC3HQ2KFE4PV7RMPEMODWXY"  # an NKey user seed (format only)


def issue(client: TestClient[Any], data_dir: Path) -> dict[str, Any]:
    """A kiosk ticket (admin is a kiosk role) and its status link."""
    headers = {"Authorization": f"Bearer {mint_token(data_dir, 'admin')}"}
    r = client.post("/kiosk/api/tickets", json={"service_id": "teller", "lang": "en", "request_id": "k-1"},
                    headers=headers)  # fmt: skip
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def path_of(url: str) -> str:
    return urlsplit(url).path


def test_a_standalone_appliance_signs_with_its_own_key_for_its_branch(api: Api, data_dir: Path) -> None:
    body = issue(api.client, data_dir)
    token = path_of(body["status_url"]).removeprefix("/t/")
    ref = verify(link_key(load_secret(data_dir)), token)
    assert ref is not None
    assert (ref.branch_id, ref.kind, ref.ident) == ("jkt-sudirman", "t", body["ticket"]["ticket_id"])
    page = api.client.get(path_of(body["status_url"]))
    assert page.status_code == 200
    assert body["ticket"]["ticket_number"] in page.text
    assert page.headers["cache-control"] == "no-store"
    foreign = sign(link_key(load_secret(data_dir)), "bdg-dago", f"t:{body['ticket']['ticket_id']}")
    assert api.client.get(f"/t/{foreign}").status_code == 404  # its own key, but another branch's link


@pytest.fixture
def seeded_client(data_dir: Path, tmp_path: Path) -> Iterator[tuple[TestClient[Any], Path]]:
    """The app with a cloud link whose NKey seed file exists (the NATS server itself is unreachable: no matter)."""
    seed = tmp_path / "acme.jkt-sudirman.nk"
    seed.write_bytes(SEED + b"\n")
    link = CloudLink(nats_url="nats://127.0.0.1:9", tenant="acme", branch_id="jkt-sudirman",
                     nkey_seed_file=str(seed))  # fmt: skip
    app = create_app(Settings(data_dir=data_dir, cloud=link), service=QueueService(data_dir))
    with TestClient(app) as client:
        yield client, seed


def test_with_the_cloud_seed_links_are_signed_with_its_key_and_old_links_still_open(
    seeded_client: tuple[TestClient[Any], Path], data_dir: Path
) -> None:
    client, seed = seeded_client
    body = issue(client, data_dir)
    token = path_of(body["status_url"]).removeprefix("/t/")
    assert branch_of(token) == "jkt-sudirman"
    assert verify(seed_link_key(seed), token) is not None  # the cloud, holding the same seed, can check it
    assert verify(link_key(load_secret(data_dir)), token) is None
    assert client.get(f"/t/{token}").status_code == 200
    older = sign(link_key(load_secret(data_dir)), "jkt-sudirman", f"t:{body['ticket']['ticket_id']}")
    assert client.get(f"/t/{older}").status_code == 200  # signed before the seed was configured
    forged = sign(link_key(b"someone else"), "jkt-sudirman", f"t:{body['ticket']['ticket_id']}")
    assert client.get(f"/t/{forged}").status_code == 404


@pytest.mark.parametrize(
    ("action", "shown"),
    [("hold", "On hold — please wait to be called"), ("cancel", "Cancelled"), (None, "Waiting")],
)
def test_the_status_page_says_what_became_of_the_ticket(api: Api, data_dir: Path, action: str | None,
                                                       shown: str) -> None:  # fmt: skip
    body = issue(api.client, data_dir)
    if action is not None:
        assert api.act(body["ticket"]["ticket_id"], action).status_code == 200
    page = api.client.get(path_of(body["status_url"]))
    assert f'id="state">{shown}' in page.text
    assert "Finished" not in page.text


def test_a_missed_call_is_not_shown_as_finished(api: Api, data_dir: Path) -> None:
    body = issue(api.client, data_dir)
    called = api.call_next_ok("1")
    assert called["ticket_id"] == body["ticket"]["ticket_id"]
    assert api.act(called["ticket_id"], "no-show", counter_id="1").status_code == 200
    state = api.client.get(path_of(body["status_url"])).text
    assert 'id="state">Missed the call' in state  # teller's policy: no return to the queue
