"""`qms-edge board url`: print the signed address a display board opens."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edge.web.board.access import Scope, board_path
from edge.web.board.state import scope_exists

board_app = typer.Typer(help="Display boards.", no_args_is_help=True)
DataDir = Annotated[Path, typer.Option("--data-dir", "-d", envvar="QMS_DATA_DIR", help="Where the database lives.")]
DEFAULT_DATA = Path("/var/lib/qms-edge")


@board_app.command("url")
def board_url(
    area: Annotated[str | None, typer.Argument(help="Area id (e.g. lantai-1).")] = None,
    service: Annotated[str | None, typer.Option("--service", help="A board for one service instead.")] = None,
    lang: Annotated[str | None, typer.Option("--lang", help="Label language: id | en.")] = None,
    base: Annotated[str, typer.Option("--base", help="The appliance's address as boards reach it.")] = (
        "http://qms.local:8080"
    ),
    audio: Annotated[bool, typer.Option("--audio", help="The board plays announcements too.")] = False,
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Print a board URL signed with this appliance's key (rotating token.key revokes every board URL)."""
    from edge.auth import load_secret
    from edge.store.db import connect
    from edge.store.projections import current_config

    if (area is None) == (service is None):
        typer.secho("name an area, or --service SERVICE", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    db = data_dir / "qms.sqlite3"
    config = current_config(connect(db, readonly=True)) if db.exists() else None
    scope = Scope("area", area) if area is not None else Scope("service", service or "")
    if config is None or not scope_exists(config, scope):
        typer.secho(f"no {scope.kind} {scope.id!r} in the configuration of {data_dir}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    path = board_path(load_secret(data_dir), config.branch_id, scope, lang)
    typer.echo(base.rstrip("/") + path + ("&audio=1" if audio else ""))


def board_urls(data_dir: Path, base: str) -> list[str]:
    """Signed URLs of every area's board (for `qms-edge demo`'s banner); empty without a configuration."""
    from edge.auth import load_secret
    from edge.store.db import connect
    from edge.store.projections import current_config

    db = data_dir / "qms.sqlite3"
    config = current_config(connect(db, readonly=True)) if db.exists() else None
    if config is None:
        return []
    secret = load_secret(data_dir)
    return [base.rstrip("/") + board_path(secret, config.branch_id, Scope("area", a.id)) for a in config.areas]
