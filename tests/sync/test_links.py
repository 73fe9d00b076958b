"""Ticket status links: signing and verification shared by the appliance and the cloud, and the key both derive."""

from __future__ import annotations

import base64
import hmac
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from cloud.credentials import issue
from cloud.store import create_store_engine
from cloud.ticket_status import link_key as cloud_link_key
from edge.web.kiosk.links import link_keys
from sync.links import SIG_BYTES, StatusRef, branch_of, link_key, seed_link_key, sign, verify

KEY = link_key(b"x" * 32)
OTHER = link_key(b"y" * 32)


def test_a_signed_ticket_and_offline_reference_verify_back() -> None:
    ticket = sign(KEY, "jkt-sudirman", "t:019a20be-f468-7c1a-9b0e-2f1e3d4c5b6a")
    offline = sign(KEY, "jkt-sudirman", "o:off-019a20be-f468-7c1a-9b0e-2f1e3d4c5b6a-901")
    assert verify(KEY, ticket) == StatusRef("jkt-sudirman", "t", "019a20be-f468-7c1a-9b0e-2f1e3d4c5b6a")
    assert verify(KEY, offline) == StatusRef("jkt-sudirman", "o", "off-019a20be-f468-7c1a-9b0e-2f1e3d4c5b6a-901")
    assert branch_of(ticket) == "jkt-sudirman"
    assert len(ticket) < 120  # small enough for a compact QR code
    assert verify(OTHER, ticket) is None  # another key (another branch's seed, a rotated seed)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_the_branch_cannot_be_swapped_and_tags_cannot_be_truncated() -> None:
    token = sign(KEY, "jkt-sudirman", "t:abc")
    body, _, tag = token.partition(".")
    assert verify(KEY, f"{_b64(b'bdg-dago/t:abc')}.{tag}") is None  # same tag, another branch in the body
    assert verify(KEY, f"{body}.{tag[:-2]}") is None
    zeros = _b64(bytes(SIG_BYTES))
    assert verify(KEY, f"{body}.{zeros}") is None
    assert verify(KEY, token[:-1] + ("A" if token[-1] != "A" else "B")) is None


def test_bodies_that_name_no_branch_or_no_kind_are_refused_even_when_signed() -> None:
    for body in (b"t:abc", b"jkt/x:abc", b"jkt/t:", b"../t:abc", b"jkt/t:a b", "jkt/t:é".encode()):
        tag = _b64(hmac.new(KEY, body, "sha256").digest()[:SIG_BYTES])
        assert verify(KEY, f"{_b64(body)}.{tag}") is None, body


@given(st.text(max_size=600))
def test_any_text_is_either_a_reference_or_none(token: str) -> None:
    assert verify(KEY, token) is None  # nothing random carries a valid tag, and nothing raises
    claimed = branch_of(token)
    assert claimed is None or isinstance(claimed, str)


@given(st.binary(max_size=200), st.binary(max_size=40))
def test_any_well_formed_but_foreign_token_is_none(body: bytes, tag: bytes) -> None:
    assert verify(KEY, f"{_b64(body)}.{_b64(tag)}") is None


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", fullmatch=True),
       st.sampled_from(["t", "o"]), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}", fullmatch=True))  # fmt: skip
def test_round_trip_for_every_valid_branch_and_ident(branch: str, kind: str, ident: str) -> None:
    ref = verify(KEY, sign(KEY, branch, f"{kind}:{ident}"))
    assert ref == StatusRef(branch, "t" if kind == "t" else "o", ident)


def test_appliance_and_cloud_derive_the_same_key_from_the_issued_seed(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    issued = issue(engine, tmp_path / "keys", "acme", "jkt-sudirman")
    appliance = link_keys(b"appliance token key", str(issued.seed_file))
    assert appliance[0] == cloud_link_key(tmp_path / "keys", "acme", "jkt-sudirman") == seed_link_key(issued.seed_file)
    assert appliance[1] == link_key(b"appliance token key")  # older links of the appliance still open there
    assert link_keys(b"appliance token key", None) == (link_key(b"appliance token key"),)
    assert link_keys(b"k", str(tmp_path / "missing.nk")) == (link_key(b"k"),)  # unreadable seed: the own key
    rotated = issue(engine, tmp_path / "keys", "acme", "jkt-sudirman")
    assert seed_link_key(rotated.seed_file) != appliance[0]  # re-issuing the NKey changes the link key
    assert cloud_link_key(tmp_path / "keys", "acme", "bdg-dago") is None  # no seed, no key
    engine.dispose()
