"""`qms-edge voice`: build voice packs, list them, and play a test announcement."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from edge.devices.audio.assemble import assemble
from edge.devices.audio.engines import ENGINES, EngineUnavailable
from edge.devices.audio.phrases import LANGUAGES, announcement_plan
from edge.devices.audio.voicepack import PackMissing, VoicePack, build_pack, pack_dir

voice_app = typer.Typer(help="Voice packs for spoken announcements.", no_args_is_help=True)

DataDir = Annotated[Path, typer.Option("--data-dir", "-d", envvar="QMS_DATA_DIR", help="Where the database lives.")]
DEFAULT_DATA = Path("/var/lib/qms-edge")


def _languages(data_dir: Path) -> list[str]:
    """The branch's announcement languages when a configuration exists, else Indonesian and English."""
    db = data_dir / "qms.sqlite3"
    if db.exists():
        from edge.store.db import connect
        from edge.store.projections import current_config

        config = current_config(connect(db, readonly=True))
        if config is not None:
            return config.announcements.languages or config.languages
    return ["id", "en"]


@voice_app.command("build")
def voice_build(
    lang: Annotated[str, typer.Option("--lang", help=f"Language: {' | '.join(LANGUAGES)}.")],
    engine: Annotated[str | None, typer.Option("--engine", help=f"TTS engine: {' | '.join(ENGINES)}.")] = None,
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Render every clip of a language once into `<data-dir>/voice/<lang>` (falls back to another engine)."""
    if lang not in LANGUAGES:
        typer.secho(f"unknown language {lang!r}: choose {', '.join(LANGUAGES)}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    if engine is not None and engine not in ENGINES:
        typer.secho(f"unknown engine {engine!r}: choose {', '.join(ENGINES)}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    try:
        target, used, notes = build_pack(data_dir / "voice", lang, engine)
    except EngineUnavailable as exc:
        typer.secho(f"no TTS engine can build the {lang!r} pack: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    except (OSError, RuntimeError) as exc:
        typer.secho(f"building the {lang!r} pack failed: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    for note in notes:
        typer.secho(f"fallback: {note}", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"voice pack {lang} built with {used} in {target}")


@voice_app.command("list")
def voice_list(data_dir: DataDir = DEFAULT_DATA) -> None:
    """Show the voice packs of this appliance."""
    for lang in LANGUAGES:
        try:
            pack = VoicePack.load(pack_dir(data_dir / "voice", lang))
        except PackMissing:
            typer.echo(f"{lang}  (none: qms-edge voice build --lang {lang})")
            continue
        typer.echo(f"{lang}  {pack.engine:7} {len(pack.clips)} clips, {pack.rate} Hz")


@voice_app.command("say")
def voice_say(
    ticket: Annotated[str, typer.Argument(help="Ticket number, e.g. A012.")],
    counter: Annotated[str, typer.Argument(help="Counter id, e.g. 3.")],
    lang: Annotated[list[str] | None, typer.Option("--lang", help="Language(s); default: the branch's.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the WAV here.")] = None,
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Assemble a test announcement from the packs and play it on this appliance's speaker (aplay)."""
    from edge.devices.audio.outputs import AlsaSpeaker

    logging.basicConfig(level="WARNING", format="%(levelname)s %(name)s: %(message)s")
    languages = lang or _languages(data_dir)
    packs: dict[str, VoicePack] = {}
    for code in languages:
        try:
            packs[code] = VoicePack.load(pack_dir(data_dir / "voice", code))
        except PackMissing:
            typer.secho(
                f"no voice pack for {code!r}: qms-edge voice build --lang {code}", fg=typer.colors.YELLOW, err=True
            )
    if not packs:
        typer.secho("no voice pack available: nothing to say", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    try:
        rendered = assemble(announcement_plan(ticket, counter, [c for c in languages if c in packs]), packs)
    except KeyError as exc:
        typer.secho(
            f"the voice pack lacks clip {exc}: rebuild it (qms-edge voice build)", fg=typer.colors.RED, err=True
        )
        raise typer.Exit(1) from None
    target = out or Path(tempfile.gettempdir()) / f"qms-say-{ticket}-{counter}.wav"
    target.write_bytes(rendered.wav)
    clips = " ".join(s.clip for s in rendered.segments if not s.clip.startswith("gap."))
    typer.echo(f"{rendered.duration:.2f} s: {clips}")
    typer.echo(f"WAV: {target}")
    speaker = AlsaSpeaker()
    if not speaker.available:
        typer.secho("aplay not found (apt-get install alsa-utils): not played", fg=typer.colors.YELLOW, err=True)
        return
    from edge.devices.audio.announcer import Announcement

    speaker.play(Announcement("cli", 0, ticket, counter, counter, False, tuple(packs), rendered, 0.0, 0.0))
