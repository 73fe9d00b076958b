"""`qms-edge kiosk url`: print the address a kiosk opens, with a fresh token for its device account."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

kiosk_app = typer.Typer(help="Self-service kiosks.", no_args_is_help=True)
DataDir = Annotated[Path, typer.Option("--data-dir", "-d", envvar="QMS_DATA_DIR", help="Where the database lives.")]
DEFAULT_DATA = Path("/var/lib/qms-edge")


@kiosk_app.command("url")
def kiosk_url(
    device: Annotated[str, typer.Argument(help="The kiosk's device account.")] = "kiosk-1",
    base: Annotated[str, typer.Option("--base", help="The appliance's address as kiosks reach it.")] = (
        "http://qms.local:8080"
    ),
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Print `<base>/kiosk#token=…` (the page keeps the token and renews it while it is valid; 7 days)."""
    url = kiosk_link(data_dir, device, base)
    if url is None:
        typer.secho(f"no active device account {device!r} in {data_dir}; create one with "
                    f"`qms-edge users add {device} --role device`", fg=typer.colors.RED, err=True)  # fmt: skip
        raise typer.Exit(1)
    typer.echo(url)


def kiosk_link(data_dir: Path, device: str, base: str) -> str | None:
    """The kiosk URL with a fresh token for an active device account, or None when there is no such account."""
    from edge.auth import TokenIssuer, find_user, load_secret
    from edge.store.db import connect
    from edge.store.projections import current_config

    db = data_dir / "qms.sqlite3"
    if not db.exists():
        return None
    conn = connect(db, readonly=True)
    try:
        found = find_user(conn, device)
        config = current_config(conn)
    finally:
        conn.close()
    if found is None or not found[0].active or found[0].role != "device" or config is None:
        return None
    token, _ = TokenIssuer(load_secret(data_dir)).issue(found[0], config.branch_id)
    return f"{base.rstrip('/')}/kiosk#token={token}"
