"""`qms-cloud backups …`: the hub's backup key and the appliance backups shipped to it (cloud/ops/backup_store.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

backups_app = typer.Typer(no_args_is_help=True, help="Appliance backups shipped to this hub (sealed to its key).")

Store = Annotated[Path, typer.Option("--store", envvar="QMS_HUB_BACKUP_STORE", help="Where shipped backups are kept.")]
Key = Annotated[
    Path, typer.Option("--key", envvar="QMS_HUB_BACKUP_KEY", help="The hub's private backup key (PEM, 0600).")
]
Tenant = Annotated[str, typer.Option("--tenant", help="The branch's tenant.")]
Branch = Annotated[str, typer.Option("--branch", help="The branch id.")]


@backups_app.command("keygen")
def backups_keygen(key: Key = Path("backup.key")) -> None:
    """Create the hub's backup key pair: the private key (0600) stays here, its public half goes to appliances at
    enrolment (set QMS_HUB_BACKUP_KEY to this file for `qms-cloud serve`). Refuses to overwrite a key."""
    from sync import backup_seal

    private, public = backup_seal.generate_key()
    key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        with key.open("xb") as out:
            key.chmod(0o600)
            out.write(private)
    except FileExistsError:
        typer.echo(f"{key} exists: every backup sealed so far needs it; keep it (and its copies) safe", err=True)
        raise typer.Exit(1) from None
    key.with_suffix(".pub").write_bytes(public)
    typer.echo(f"backup key written to {key} (keep an offline copy: without it no shipped backup can be opened)")
    typer.echo(f"public key: {key.with_suffix('.pub')}")


@backups_app.command("list")
def backups_list(tenant: Tenant, branch: Branch, store: Store = Path("appliance-backups")) -> None:
    """The branch's shipped backups, oldest first: name, size, SHA-256, when received."""
    from cloud.ops.backup_store import UploadRefused, list_backups

    try:
        found = list_backups(store, tenant, branch)
    except UploadRefused as exc:
        raise typer.BadParameter(str(exc)) from None
    for b in found:
        typer.echo(f"{b.name}\t{b.size}\t{b.sha256}\t{b.received_at}")
    if not found:
        typer.echo(f"no shipped backup for {tenant}/{branch} in {store}", err=True)


@backups_app.command("fetch")
def backups_fetch(
    tenant: Tenant,
    branch: Branch,
    out: Annotated[Path, typer.Option("--out", "-o", help="The opened archive to write (never overwritten).")],
    name: Annotated[str | None, typer.Option("--name", help="A backup's name (default: the newest).")] = None,
    store: Store = Path("appliance-backups"),
    key: Key = Path("backup.key"),
    from_s3: Annotated[
        bool,
        typer.Option(
            "--from-s3",
            help="Fetch from the S3-compatible store the appliances ship to (QMS_BACKUP_S3_BUCKET, _ENDPOINT, _PREFIX,"
            " _REGION, _ACCESS_KEY, _SECRET_KEY) instead of --store.",
        ),
    ] = False,
) -> None:
    """Check a shipped backup's SHA-256 and open it with the hub's private key into the archive `qms-edge restore`
    (and `qms-edge drill --backup`) take. Expired backups are never fetched."""
    from cloud.ops.backup_store import UploadRefused, fetch, fetch_s3
    from sync.backup_s3 import S3Failed, S3Target
    from sync.backup_seal import SealError

    try:
        if from_s3:
            target = S3Target.from_env()
            if target is None:
                raise typer.BadParameter("--from-s3 needs QMS_BACKUP_S3_BUCKET (and QMS_BACKUP_S3_*)")
            got = fetch_s3(target, tenant, branch, key.read_bytes(), out, name)
            typer.echo(f"{got.name} ({got.size} bytes, stored {got.last_modified}) opened into {out}")
        else:
            found = fetch(store, tenant, branch, key.read_bytes(), out, name)
            typer.echo(f"{found.name} ({found.size} bytes, received {found.received_at}) opened into {out}")
    except (FileNotFoundError, FileExistsError, SealError, UploadRefused, ValueError, S3Failed) as exc:
        typer.echo(f"not fetched: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"restore it on the appliance: sudo -u qms qms-edge restore {out.name} --yes")


@backups_app.command("prune")
def backups_prune(store: Store = Path("appliance-backups")) -> None:
    """Delete every expired shipped backup now (the running hub does it hourly and on every upload): past the expiry
    its name carries, or older than QMS_HUB_BACKUP_MAX_AGE_DAYS."""
    from cloud.ops.backup_store import sweep

    gone = sweep(store)
    for name in gone:
        typer.echo(f"deleted {name}")
    typer.echo(f"{len(gone)} expired backup(s) deleted from {store}")
