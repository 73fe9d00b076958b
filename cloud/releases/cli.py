"""`qms-cloud release …`: sign and register a release bundle, publish it to a wave of branches, see the fleet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

release_app = typer.Typer(no_args_is_help=True, help="Signed software releases for appliances (canary, then the rest).")

DbUrl = Annotated[
    str, typer.Option("--db-url", envvar="QMS_CLOUD_DB", help="SQLAlchemy URL (sqlite:///… or postgresql+psycopg://…).")
]
KeyPath = Annotated[
    Path, typer.Option("--key", envvar="QMS_RELEASE_KEY", help="The hub's release signing key (PEM; made if absent).")
]
BundlesDir = Annotated[
    Path, typer.Option("--bundles-dir", envvar="QMS_RELEASE_DIR", help="Where signed bundles are kept.")
]
DEFAULT_DB = "sqlite:///qms-cloud.sqlite3"


@release_app.command("publish")
def release_publish(
    version: Annotated[str, typer.Argument(help="The release's version, e.g. 0.3.0.")],
    wheels: Annotated[list[Path], typer.Argument(help="The wheels of the release (qms and its dependencies).")],
    key: KeyPath = Path("release.key"),
    bundles_dir: BundlesDir = Path("releases"),
    db_url: DbUrl = DEFAULT_DB,
) -> None:
    """Sign a bundle of wheels (Ed25519 over its manifest) and register it; nothing runs it until `rollout`."""
    from cloud.releases import fleet, signing
    from cloud.store import create_store_engine

    missing = [str(w) for w in wheels if not w.is_file() or w.suffix != ".whl"]
    if missing:
        raise typer.BadParameter(f"not wheel files: {', '.join(missing)}")
    signer = signing.load_or_create_key(key)
    bundle = signing.make_bundle(wheels, version, bundles_dir / version, signer)
    engine = create_store_engine(db_url)
    try:
        fleet.register(engine, bundle.resolve())
    finally:
        engine.dispose()
    typer.echo(f"release {version} signed and registered ({len(wheels)} wheels) in {bundle}")
    typer.echo(f"appliances verify it with {key.with_suffix('.pub')} (also handed out at enrolment)")
    key.with_suffix(".pub").write_bytes(signing.public_pem(signer))


@release_app.command("rollout")
def release_rollout(
    version: Annotated[str, typer.Argument(help="A registered release.")],
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant whose branches get it.")],
    wave: Annotated[str, typer.Option("--wave", help="canary (the --branch ones) or rest (every other branch).")],
    branch: Annotated[list[str] | None, typer.Option("--branch", help="A canary branch (repeat).")] = None,
    db_url: DbUrl = DEFAULT_DB,
) -> None:
    """Assign the release to the canary branches, or once they run it well, to the rest of the tenant."""
    from cloud.releases import fleet
    from cloud.store import create_store_engine

    engine = create_store_engine(db_url)
    try:
        targets = fleet.publish(engine, version, tenant, wave, branch_ids=branch or [], actor="cli")
    except (ValueError, LookupError) as exc:
        typer.echo(f"not published: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    typer.echo(f"{version} assigned ({wave}) to {len(targets)} branches: {', '.join(targets) or '-'}")


@release_app.command("status")
def release_status(db_url: DbUrl = DEFAULT_DB) -> None:
    """Per branch: assigned version and wave, what it reports running, its last failure."""
    import sqlalchemy as sa

    from cloud.releases import fleet
    from cloud.store import create_store_engine

    engine = create_store_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = fleet.fleet(conn, sa.true())
    finally:
        engine.dispose()
    for r in rows:
        failure = r["failures"][-1] if r["failures"] else None
        last = f"{failure['version']} {failure['status']}: {failure['detail'][:80]}" if failure else "-"
        line = f"{r['tenant']}/{r['branch_id']}\t{r['assigned'] or '-'}\t{r['wave'] or '-'}\t{r['running'] or '-'}"
        typer.echo(f"{line}\t{last}")
