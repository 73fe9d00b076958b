"""The `qms-cloud` command line for the HQ hub."""

from importlib.metadata import PackageNotFoundError, version

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Operate the QMS HQ hub.")


@app.callback()
def main() -> None:
    """Operate the QMS HQ hub."""


@app.command("version")
def show_version() -> None:
    """Print the installed qms version."""
    try:
        typer.echo(version("qms"))
    except PackageNotFoundError:
        typer.echo("unknown (qms is not installed)", err=True)
        raise typer.Exit(1) from None
