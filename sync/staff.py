"""Central staff accounts (US-ADMIN-003): the branch's HQ-managed accounts as one document in the `qms_staff` KV
bucket under `<tenant>.<branch>`, read by the appliance with a direct get (the one read its credentials allow).

Only argon2id hashes travel, never a password; the appliance stores them as its users so staff sign in offline as
before. Local accounts (created on the appliance) are not in the document and are left alone; an account HQ drops
from the document is deactivated at the branch."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from sync.relay import config_key

STAFF_BUCKET = "qms_staff"
Username = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$(?!\n)")]
Argon2Hash = Annotated[str, Meta(pattern=r"^\$argon2id\$", max_length=255)]


def staff_subject(tenant: str, branch_id: str) -> str:
    """`$JS.API.DIRECT.GET.KV_qms_staff.$KV.qms_staff.<tenant>.<branch>`: the last value of the branch's key."""
    return f"$JS.API.DIRECT.GET.KV_{STAFF_BUCKET}.$KV.{STAFF_BUCKET}.{config_key(tenant, branch_id)}"


class StaffAccount(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One branch staff account managed at HQ."""

    username: Username
    role: Literal["admin", "supervisor", "agent"]
    counters: list[str] = []
    password_hash: Argon2Hash
    active: bool = True


class StaffDocument(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every HQ-managed account of one branch; `version` grows with each change HQ makes."""

    tenant_id: str
    branch_id: str
    version: int
    accounts: list[StaffAccount] = []


staff_decoder = msgspec.json.Decoder(StaffDocument)
