"""`qms-edge`: the appliance's command line for field technicians (serve, demo, verify, rebuild, config, status,
backup/restore, replication)."""

from __future__ import annotations

import contextlib
import getpass
import json
import socket
import sqlite3
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from edge import audit as audit_log
from edge.analytics import fact_check
from edge.analytics import facts as report_facts
from edge.audit import AuditEntry
from edge.auth import ROLES, find_user, list_users, upsert_user
from edge.devices.audio.cli import voice_app
from edge.devices.cli import devices_app
from edge.engine import commands as c
from edge.engine.errors import DomainError
from edge.offline_refused import count_open
from edge.replication import CloudLink, ResendRefused, read_link_state, rewind_cursor
from edge.replication import lag as replication_lag
from edge.service import QueueService
from edge.store import rebuild as rebuild_mod
from edge.store.datadir import DataDirBusy, DataDirLock
from edge.store.db import connect, open_database
from edge.store.log import last_position
from edge.store.projections import current_config, load_state
from edge.web.board.cli import board_app
from edge.web.kiosk.cli import kiosk_app
from sync.contract_config import config_hash, short_hash

# What SQLite says when the data partition is full (or a write is otherwise refused): not damage, no restore needed.
DISK_ERRORS = ("disk I/O error", "database or disk is full")
DISK_ADVICE = (
    "the data partition is probably full: check `df -h` and `qms-edge doctor`, free space (old backups, voice packs),"
    " then try again; do not restore a backup for this"
)


class _Cli(typer.Typer):
    """The `qms-edge` entry point: a database file SQLite cannot read is a one-line error saying what to do, not a
    traceback (`status`, `serve`, `users`… on a corrupt page or a file that is not a database)."""

    def __call__(self, *args: object, **kwargs: object) -> object:
        try:
            return super().__call__(*args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and str(exc) in DISK_ERRORS:
                typer.secho(f"SQLite cannot write beside the database ({exc}): {DISK_ADVICE}", fg=typer.colors.RED,
                            err=True)  # fmt: skip
                raise SystemExit(1) from None
            if type(exc) is not sqlite3.DatabaseError:  # OperationalError, IntegrityError…: not damage
                raise
            typer.secho(
                f"the database file is corrupt or not a database ({exc}): check it with `qms-edge verify` and "
                "restore the last good backup (see `qms-edge restore`)",
                fg=typer.colors.RED,
                err=True,
            )
            raise SystemExit(1) from None


app = _Cli(help="Branch queue appliance: run it, check it, configure it.", no_args_is_help=True)
config_app = typer.Typer(help="The branch configuration document.", no_args_is_help=True)
users_app = typer.Typer(help="Staff and device accounts of this appliance.", no_args_is_help=True)
replication_app = typer.Typer(help="The relay that ships the event log to the cloud hub.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(users_app, name="users")
app.add_typer(replication_app, name="replication")
app.add_typer(devices_app, name="devices")
app.add_typer(voice_app, name="voice")
app.add_typer(board_app, name="board")
app.add_typer(kiosk_app, name="kiosk")
tls_app = typer.Typer(
    help="The appliance's HTTPS certificate, signed by hand when renewal cannot.", no_args_is_help=True
)
app.add_typer(tls_app, name="tls")

DataDir = Annotated[Path, typer.Option("--data-dir", "-d", envvar="QMS_DATA_DIR", help="Where the database lives.")]
Host = Annotated[str, typer.Option("--host", envvar="QMS_HOST", help="Address to listen on.")]
Port = Annotated[int, typer.Option("--port", envvar="QMS_PORT", help="TCP port to listen on.")]
DEFAULT_DATA = Path("/var/lib/qms-edge")
MIN_PASSWORD = 8


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code)


Mdns = Annotated[
    bool | None,
    typer.Option("--mdns/--no-mdns", help="Advertise _qms._tcp to devices on the LAN (default: on unless QMS_MDNS=0)."),
]


def _serve(
    data_dir: Path,
    host: str,
    port: int,
    log_level: str,
    cloud: CloudLink | None = None,
    mdns: bool | None = None,
    *,
    scheduled_backups: bool = False,
) -> None:
    import uvicorn

    from edge.devices.runtime import serve_settings
    from edge.web.app import Settings, create_app
    from sync.observability import configure_logging

    configure_logging(log_level)  # JSON lines, scrubbed, with correlation ids (QMS_LOG_FORMAT=text for people)
    # Bind first: a taken port fails in one line before the app starts (devices, MQTT, relay), not after.
    sock = _listen(host, port)
    from edge import sdnotify  # READY=1 and watchdog pings when run by systemd (Type=notify, WatchdogSec=)
    from edge.tls import server_files

    tls = server_files(data_dir)  # HTTPS with the hub CA's certificate once enrolled (or QMS_TLS_CERT/QMS_TLS_KEY)
    sdnotify.start(port, {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host), tls=tls is not None)
    config = uvicorn.Config(
        create_app(Settings(data_dir=data_dir, **serve_settings(port, mdns), cloud=cloud or CloudLink.from_env())),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        log_config=None,  # uvicorn's lines go through the process's formatter (configure_logging)
        proxy_headers=False,  # the app decides whom to believe (QMS_TRUSTED_PROXIES), not uvicorn's 127.0.0.1 default
        timeout_graceful_shutdown=5,
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
    )
    from edge.backup_ship import start_scheduler
    from edge.tls import live_context_reloader, start_renewer

    # Scheduled backups, sealed and shipped to the hub (QMS_BACKUP_INTERVAL_SECONDS; not for the demo).
    backups = start_scheduler(data_dir) if scheduled_backups else None
    renewer = start_renewer(data_dir, live_context_reloader(config)) if tls else None  # the enrolment certificate
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        for worker in (backups, renewer):
            if worker is not None:
                worker.stop()


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket for `host:port`, or a one-line error naming what to do when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise _fail(
            f"cannot listen on {host}:{port}: {exc.strerror} (is another qms-edge or web server using the port? "
            f"see `ss -ltnp 'sport = :{port}'`, or choose another with --port)"
        ) from None
    sock.set_inheritable(True)
    return sock


@app.command()
def serve(
    data_dir: DataDir = DEFAULT_DATA,
    host: Host = "0.0.0.0",
    port: Port = 8080,
    log_level: str = "info",
    nats_url: Annotated[str, typer.Option(envvar="QMS_NATS_URL", help="Cloud NATS server(s), comma-separated.")] = "",
    tenant: Annotated[str, typer.Option(envvar="QMS_TENANT", help="Tenant id at the cloud.")] = "default",
    branch: Annotated[str, typer.Option(envvar="QMS_BRANCH", help="Branch id before the first config.")] = "",
    nats_nkey: Annotated[str, typer.Option(envvar="QMS_NATS_NKEY", help="NKey seed file (qms-cloud branch add).")] = "",
    nats_user: Annotated[str, typer.Option(envvar="QMS_NATS_USER", help="NATS user (instead of an NKey).")] = "",
    mdns: Mdns = None,
) -> None:
    """Run the appliance: API, live event stream, the single writer and (with --nats-url) the cloud relay."""
    import os

    lock = _hold_data_dir(data_dir, "serve")  # held until the process exits: restore and a second serve refuse
    cloud = None
    if nats_url:
        cloud = CloudLink(
            nats_url=nats_url,
            tenant=tenant,
            branch_id=branch or None,
            nkey_seed_file=nats_nkey or None,
            user=nats_user or None,
            # The password only from the environment: a command-line option would show it in `ps`.
            password=os.environ.get("QMS_NATS_PASSWORD") or None,
        )
    _serve(data_dir, host, port, log_level, cloud, mdns, scheduled_backups=True)
    del lock


@app.command()
def demo(
    data_dir: DataDir = Path(".demo-data"),
    host: Host = "0.0.0.0",
    port: Port = 8080,
    log_level: str = "info",
    mdns: Mdns = None,
) -> None:
    """Run the appliance with a demo bank branch (users admin, supervisor, agent1..4; password `demo`)."""
    import os

    from edge.demo import banner, prepare

    lock = _hold_data_dir(data_dir, "serve")  # held until the process exits: restore and a second serve refuse
    example = prepare(data_dir)
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    typer.echo(banner(data_dir, f"http://{shown}:{port}", example))
    os.environ.setdefault("QMS_VOICE_AUTOBUILD", "1")  # spoken announcements out of the box: build missing packs
    _serve(data_dir, host, port, log_level, mdns=mdns)
    del lock


@app.command()
def verify(data_dir: DataDir = DEFAULT_DATA) -> None:
    """Check the database file (SQLite integrity_check) and the event log's hash chain and seq continuity; exit 1 if
    either is broken."""
    from edge.backup import check_database

    check = check_database(_db(data_dir))
    if check.file_error:
        raise _fail(f"BROKEN: {check.problem}\n  restore the last good backup (see `qms-edge restore`)")
    if check.chain_error:
        raise _fail(f"BROKEN after {check.events} good events: {check.chain_error}")
    typer.echo(f"OK: {check.events} events, chain intact, file intact (integrity_check ok), last seq {check.last_seq}")


@app.command()
def enrol(
    hub: Annotated[str | None, typer.Option("--hub", help="The hub's address, e.g. https://hub.example.")] = None,
    code: Annotated[str | None, typer.Option("--code", help="The one-time code from the hub console.")] = None,
    from_file: Annotated[
        Path | None, typer.Option("--from-file", help='An enrolment file {"hub": …, "code": …} instead.')
    ] = None,
    retry: Annotated[bool, typer.Option("--retry", help="Keep retrying while the hub is unreachable.")] = False,
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Pair this appliance with the hub: spend the one-time code, keep the branch's NATS key, configuration and TLS
    files, and write <data-dir>/cloud.env for the service (restart qms-edge afterwards)."""
    from edge import enrol as enrolment

    try:
        if from_file is not None:
            hub, code = enrolment.read_enrolment_file(from_file)
        if not hub or not code:
            raise _fail("give --hub and --code, or --from-file")
        done = enrolment.enrol(data_dir, hub, code, retry=retry, on_retry=lambda m: typer.echo(m, err=True))
    except enrolment.EnrolmentFailed as exc:
        raise _fail(f"enrolment failed: {exc}") from None
    applied = f", configuration v{done.config_version} applied" if done.config_version else ""
    typer.echo(f"enrolled as {done.tenant}/{done.branch_id} with {done.hub}{applied}; wrote {data_dir / 'cloud.env'}")
    typer.echo("restart the appliance to connect: sudo systemctl restart qms-mosquitto qms-edge")


@app.command()
def update(
    key: Annotated[
        Path | None,
        typer.Option(
            "--key",
            help="The hub's release public key (PEM); default /etc/qms/release.pub, else the one"
            " enrolment stored in <data-dir>/release.pub.",
        ),
    ] = None,
    root: Annotated[Path, typer.Option("--root", help="Where venvs/ and current live.")] = Path("/opt/qms"),
    bundle: Annotated[Path | None, typer.Option("--bundle", help="A bundle directory instead of the hub's.")] = None,
    port: Port = 8080,
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Fetch the release the hub assigned to this branch (QMS_HUB_URL, QMS_TENANT, QMS_BRANCH), verify its signature,
    install it beside the running version, switch between calls, check health, roll back on failure, report."""
    import os

    from edge import updates

    hub, tenant, branch = (os.environ.get(k, "") for k in ("QMS_HUB_URL", "QMS_TENANT", "QMS_BRANCH"))
    if key is None:
        key = next((p for p in (Path("/etc/qms/release.pub"), data_dir / "release.pub") if p.is_file()),
                   Path("/etc/qms/release.pub"))  # fmt: skip
    try:
        public = updates.load_public_key(key.read_bytes())
        found = bundle or updates.fetch_assigned(hub, tenant, branch, data_dir / "releases")
    except (OSError, updates.UpdateRefused) as exc:
        raise _fail(f"update: {exc}") from None
    if found is None or (root / "venvs" / found.name).resolve() == (root / "current").resolve():
        typer.echo("up to date")
        return
    outcome = updates.apply_release(bundle=found, public_key=public, root=root, data_dir=data_dir,
                                    restart=updates.systemd_restart,
                                    health_url=updates.local_health_url(port, data_dir))  # fmt: skip
    seed = os.environ.get("QMS_NATS_NKEY", "")
    if hub and seed:
        updates.report(hub, outcome, tenant, branch, Path(seed).read_bytes().strip())
    typer.echo(f"{outcome.status}: {outcome.detail} (running {outcome.running})")
    if outcome.status != "running":
        raise typer.Exit(1)


@app.command()
def doctor(
    data_dir: DataDir = DEFAULT_DATA,
    port: Port = 8080,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Check everything a technician would (disk, clock, time zone, database and chain, backups, hub link,
    certificates, Mosquitto, printers, speakers, mDNS, devices) and say what to do; exit 1 on any fault."""
    from edge import doctor as doc
    from edge.devices.discovery import scan
    from edge.replication import read_link_state

    running = read_link_state(data_dir).get("link") not in ("unknown", "appliance not running")
    findings = doc.run(data_dir, scan=scan if running else None, port=port if running else None)
    typer.echo(json.dumps(doc.as_json(findings), indent=2) if as_json else doc.report(findings))
    if any(f.status == "fault" for f in findings):
        raise typer.Exit(1)


@app.command()
def rebuild(
    data_dir: DataDir = DEFAULT_DATA,
    check: Annotated[bool, typer.Option(help="Only compare, do not rewrite.")] = False,
) -> None:
    """Rebuild projections and the report facts from the event log; reports whether they matched the live ones
    (rewriting them is refused while the appliance runs: its writer keeps its own state)."""
    lock = None if check else _hold_data_dir(data_dir, "rebuild", then="run rebuild again")
    try:
        conn = open_database(data_dir)
        result = rebuild_mod.replay(conn)
        diffs = rebuild_mod.differences(conn, result)
        for diff in diffs[:50]:
            typer.echo(f"  differs: {diff}")
        if check:
            found = fact_check.check_now(conn, result.state.config)  # the report facts too, compared only
            if found.first is not None:
                typer.echo(f"  report fact differs: {found.first}")
            if diffs:
                raise _fail(f"{len(diffs)} difference(s) between projections and the log")
            if found.first is not None:
                raise _fail(f"{found.differing} of {found.compared} tickets' report facts differ from the log;"
                            " `qms-edge rebuild` with the appliance stopped refolds them")  # fmt: skip
            typer.echo(f"OK: {result.events} events replayed; projections identical; report facts of"
                       f" {found.compared} tickets identical")  # fmt: skip
            return
        rebuild_mod.write(conn, result)
        folded, fact_diffs = report_facts.rebuild_now(conn)  # the report facts too (edge/analytics/facts.py)
        typer.echo(f"rebuilt from {result.events} events; {len(diffs)} difference(s) corrected;"
                   f" report facts refolded from {folded} events ({fact_diffs} corrected)")  # fmt: skip
    finally:
        if lock is not None:
            lock.release()


def _refused_open(conn: sqlite3.Connection) -> int:
    """Refused offline kiosk tickets no one has handled (0 on a database not migrated yet)."""
    try:
        return count_open(conn)
    except sqlite3.OperationalError:
        return 0


@app.command()
def status(
    data_dir: DataDir = DEFAULT_DATA,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Branch, config version, log position, today's queue and the cloud link (connected, connecting, down since …,
    not configured) with its last error, at a glance."""
    conn = connect(_db(data_dir), readonly=True)
    state = load_state(conn)
    seq, last_hash = last_position(conn)
    last = conn.execute("SELECT occurred_at FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    by_status = Counter(t.status for t in state.tickets.values())
    counters = {
        cid: {"presence": ctr.presence, "ticket": ctr.current_ticket} for cid, ctr in sorted(state.counters.items())
    }
    info: dict[str, object] = {
        "branch_id": state.branch_id,
        "config_version": state.config.version if state.config else 0,
        "config_hash": config_hash(state.config) if state.config else None,  # names the document with the number
        "seq": seq,
        "last_hash": last_hash,
        "last_event_at": last[0] if last else None,
        "business_date": state.business_date,
        "tickets": dict(by_status),
        "counters": counters,
        "replication": replication_lag(conn),
        "link": read_link_state(data_dir),
        "offline_refused_open": _refused_open(conn),
    }
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    digest = f" ({short_hash(config_hash(state.config))})" if state.config else ""
    typer.echo(f"branch {info['branch_id'] or '-'}  config v{info['config_version']}{digest}  log seq {seq}")
    typer.echo(f"last event {info['last_event_at'] or '-'}  business date {state.business_date or '-'}")
    typer.echo("tickets: " + (", ".join(f"{k} {v}" for k, v in sorted(by_status.items())) or "none"))
    if info["offline_refused_open"]:
        typer.echo(f"offline tickets refused: {info['offline_refused_open']} not yet handled"
                   " (Supervisor page, Offline tickets refused)")  # fmt: skip
    for cid, ctr in counters.items():
        typer.echo(f"  counter {cid}: {ctr['presence']}" + (f", ticket {ctr['ticket']}" if ctr["ticket"] else ""))
    rep = replication_lag(conn)
    link: dict[str, object] = info["link"]  # type: ignore[assignment]
    typer.echo(f"cloud link: {link.get('link_status') or link.get('link')}")
    if link.get("link_error"):  # while connected: a partial refusal (e.g. heartbeats), events still flow
        typer.echo(f"  {'warning' if link.get('link') == 'connected' else 'last error'}: {link['link_error']}")
    typer.echo(
        f"replication: cursor {rep['acked_seq']} of {rep['log_seq']}, lag {rep['lag_events']} events"
        f" / {rep['lag_seconds']:.1f} s, last ack {rep['last_ack_at'] or '-'}"
    )


@app.command()
def backup(
    dest: Annotated[Path, typer.Argument(help="Archive to write (tar.gz, mode 0600); never overwritten.")],
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Archive the data dir (database snapshot, token.key, mqtt.json, voice packs, signage) with a checked manifest;
    safe while the appliance runs; fails on a corrupt database or a broken chain."""
    from edge.backup import BackupError, create_backup

    try:
        result = create_backup(data_dir, dest)
    except BackupError as exc:
        raise _fail(str(exc)) from None
    files = result.manifest["files"]
    typer.echo(
        f"backup written to {dest}: {result.check.events} events, last seq {result.check.last_seq}, chain intact,"
        f" file intact; {len(files) if isinstance(files, list) else 0} files"
    )


FromS3 = Annotated[
    bool,
    typer.Option(
        "--from-s3",
        help="Take the branch's newest unexpired backup from the S3-compatible store (QMS_BACKUP_S3_*); it opens only"
        " with the hub's private backup key (--key), else the command says how to fetch it at the hub.",
    ),
]
S3Tenant = Annotated[str, typer.Option("--tenant", envvar="QMS_TENANT", help="With --from-s3: the branch's tenant.")]
S3Branch = Annotated[str, typer.Option("--branch", envvar="QMS_BRANCH", help="With --from-s3: the branch id.")]
S3Name = Annotated[str | None, typer.Option("--name", help="With --from-s3: a backup's name (default: the newest).")]
HubKey = Annotated[
    Path | None,
    typer.Option("--key", help="With --from-s3: the hub's private backup key (PEM) that opens the sealed copy."),
]


@contextlib.contextmanager
def _from_s3(data_dir: Path, tenant: str, branch: str, name: str | None, key: Path | None, then: str) -> Iterator[Path]:
    """The branch's sealed copy from the S3 store, opened with the hub's key into a scratch archive (deleted after);
    exits saying what to do when the store is not configured, holds nothing, or no key opens the copy here."""
    from edge import backup_fetch
    from edge.backup import lifetime
    from edge.drill import backups_dir
    from sync.backup_s3 import S3Target

    target = S3Target.from_env()
    if target is None:
        raise _fail("--from-s3 needs the store's settings: QMS_BACKUP_S3_BUCKET (and QMS_BACKUP_S3_ENDPOINT, _PREFIX,"
                    " _REGION, _ACCESS_KEY, _SECRET_KEY as in /etc/qms; a read-only key is enough)")  # fmt: skip
    handed_over = False
    try:
        found = backup_fetch.locate(target, tenant, branch, name=name, max_age=lifetime())
        if key is None:
            raise backup_fetch.needs_hub_key(found, then)
        backup_fetch.load_key(key)  # a missing, public or foreign-format key is refused before anything is fetched
        typer.echo(f"fetching {found.item.name} ({found.item.size} bytes) from {found.url}")
        work = backups_dir(data_dir)
        with backup_fetch.opened(found, key, work if work.is_dir() else None) as archive:
            handed_over = True
            yield archive
    except (backup_fetch.FetchFailed, OSError) as exc:
        if handed_over:  # the restore's or drill's own failure, not the fetch's
            raise
        raise _fail(f"not fetched from S3: {exc}") from None


@app.command()
def restore(
    source: Annotated[
        Path | None, typer.Argument(help="An archive written by `qms-edge backup` (or an old .sqlite3 one).")
    ] = None,
    data_dir: DataDir = DEFAULT_DATA,
    yes: Annotated[bool, typer.Option("--yes", help="Replace an existing database.")] = False,
    other_branch: Annotated[
        bool, typer.Option("--other-branch", help="Allow replacing this appliance's branch with another branch's.")
    ] = False,
    from_s3: FromS3 = False,
    tenant: S3Tenant = "",
    branch: S3Branch = "",
    name: S3Name = None,
    key: HubKey = None,
) -> None:
    """Put a verified backup back (database and every file, modes 0600/0700); refused while the appliance runs.
    With --from-s3 the backup comes from the S3-compatible store the appliances ship to."""
    if (source is None) == (not from_s3):
        raise _fail("give either a backup FILE or --from-s3 (not both)", code=2)
    if source is not None:
        _restore(source, data_dir, yes=yes, other_branch=other_branch)
        return
    from edge.backup_fetch import HUB_OUT

    _hold_data_dir(data_dir, "restore", "run restore again").release()  # before a long download, not after it
    then = f"qms-edge restore {HUB_OUT} --data-dir {data_dir}" + (" --yes" if yes else "")
    with _from_s3(data_dir, tenant, branch, name, key, then) as archive:
        _restore(archive, data_dir, yes=yes, other_branch=other_branch)


def _restore(source: Path, data_dir: Path, *, yes: bool, other_branch: bool) -> None:
    """Restore one archive and say what came back."""
    from edge.backup import BackupError, restore_backup

    try:
        result = restore_backup(source, data_dir, replace=yes, other_branch=other_branch)
    except DataDirBusy as exc:
        raise _fail(_busy_message(exc, "run restore again")) from None
    except BackupError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"restored {result.check.events} events (last seq {result.check.last_seq}) into {data_dir}")
    if result.set_aside:
        typer.echo(f"  the old database was too damaged to open; kept as {', '.join(result.set_aside)}")
    if result.legacy:
        typer.echo(
            "  an old single-file backup holds the database only: token.key (board URLs, device tokens, status links),"
            " mqtt.json and voice packs were not in it and stay as they are"
        )
    else:
        typer.echo(f"  and {len(result.files)} files: {', '.join(result.files) or '-'}")
    typer.echo(
        "if this branch replicated to a cloud hub after the backup was taken, the hub will report a fork at the first"
        " new event: see `qms-cloud branch resync` and `qms-edge replication resend` in docs/technician-runbook.md"
        " (After a restore the hub reports a fork)"
    )


def _busy_message(exc: DataDirBusy, then: str) -> str:
    """Who holds the data dir and how to get it back."""
    pid = exc.pid or "?"
    if exc.purpose in ("restore", "rebuild"):
        return f"a `qms-edge {exc.purpose}` (pid {pid}) is working on this data directory: let it finish, then {then}"
    return (
        f"the appliance is running (pid {pid}) on this data directory: stop it with `systemctl stop qms-edge` or"
        f" Ctrl-C in the terminal running `qms-edge serve`, then {then}"
    )


def _hold_data_dir(data_dir: Path, purpose: str, then: str = "start it again") -> DataDirLock:
    """The data dir's lock (a server keeps it for its lifetime); exits with a message when another process holds it."""
    try:
        return DataDirLock.acquire(data_dir, purpose)
    except DataDirBusy as exc:
        raise _fail(_busy_message(exc, then)) from None


@app.command()
def drill(
    backup: Annotated[
        Path | None, typer.Option("--backup", help="Drill this archive instead of the newest in QMS_BACKUP_DIR.")
    ] = None,
    data_dir: DataDir = DEFAULT_DATA,
    from_s3: FromS3 = False,
    tenant: S3Tenant = "",
    branch: S3Branch = "",
    name: S3Name = None,
    key: HubKey = None,
) -> None:
    """Restore drill: restore the newest backup into a scratch dir, verify it (integrity, chain, row counts against
    its manifest) and boot the app on it; records the success for /metrics. Exit 1 when the backup fails it.
    With --from-s3 the backup drilled is the branch's newest in the S3-compatible store."""
    if backup is not None and from_s3:
        raise _fail("give either --backup FILE or --from-s3 (not both)", code=2)
    if from_s3:
        from edge.backup_fetch import HUB_OUT

        then = f"qms-edge drill --backup {HUB_OUT} --data-dir {data_dir}"
        with _from_s3(data_dir, tenant, branch, name, key, then) as archive:
            _drill(data_dir, archive)
        return
    _drill(data_dir, backup)


def _drill(data_dir: Path, backup: Path | None) -> None:
    """Run the drill and say how it went."""
    from edge.drill import DrillFailed, run_drill

    try:
        result = run_drill(data_dir, backup)
    except DrillFailed as exc:
        raise _fail(f"restore drill failed: {exc}") from None
    typer.echo(f"restore drill passed: {result.backup.name} restored, {result.events} events and {result.tickets}"
               " tickets, chain intact, the app booted on it")  # fmt: skip


@replication_app.command("resend")
def replication_resend(
    from_seq: Annotated[int, typer.Option("--from-seq", help="First seq to ship again (as named at the hub).")],
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Ship the log to the cloud again from --from-seq (after `qms-cloud branch resync`); a running appliance's
    relay picks the rewound cursor up within a second, with fresh message ids so the stream does not drop them."""
    _db(data_dir)
    conn = open_database(data_dir)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            before, epoch, head = rewind_cursor(conn, from_seq)
            entry = _cli_audit("replication_resend", "replication:cloud", {"from_seq": from_seq, "cursor": before})
            audit_log.insert(conn, entry, datetime.now(UTC))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except ResendRefused as exc:
        raise _fail(f"refused: {exc}") from None
    finally:
        conn.close()
    what = f"seq {from_seq}..{head} will be shipped again" if from_seq <= head else f"shipping goes on at {from_seq}"
    typer.echo(f"replication cursor {before} -> {from_seq - 1} (resend epoch {epoch}): {what}")
    typer.echo("  a running appliance's relay follows within a second, a stopped one at its next start")


@tls_app.command("csr")
def tls_csr(
    data_dir: DataDir = DEFAULT_DATA,
    name: Annotated[str | None, typer.Option(help="The certificate's name (default: qms-<branch>.local).")] = None,
) -> None:
    """Write a new EC P-256 key (<data>/tls/appliance.key.new, 0600) and its CSR (<data>/tls/appliance.csr) for HQ
    to sign; the live certificate and key stay in use until `qms-edge tls install`."""
    from edge.tls import write_csr

    if name is None:
        config = current_config(connect(_db(data_dir), readonly=True))
        if config is None:
            raise _fail("no configuration applied yet: give --name qms-<branch>.local")
        name = f"qms-{config.branch_id}.local"
    key, csr = write_csr(data_dir, name)
    typer.echo(f"key: {key}\nCSR: {csr} (for {name})")
    typer.echo(f"HQ signs it: qms-cloud ca issue appliance.csr --name {name} --address <lan-ip> > appliance.crt")
    typer.echo(f"then: qms-edge tls install appliance.crt --data-dir {data_dir} and restart qms-edge")


@tls_app.command("install")
def tls_install(
    cert: Annotated[Path, typer.Argument(help="The signed certificate (PEM).")],
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Install a certificate HQ signed for the key of `qms-edge tls csr` (or for the live key); restart to use it."""
    from edge.tls import install_certificate

    try:
        path = install_certificate(data_dir, cert.read_bytes())
    except (OSError, ValueError) as exc:
        raise _fail(f"not installed: {exc}") from None
    typer.echo(f"installed {path}; restart the appliance to serve it: sudo systemctl restart qms-edge")


@config_app.command("show")
def config_show(data_dir: DataDir = DEFAULT_DATA) -> None:
    """Print the current configuration document (JSON)."""
    config = current_config(connect(_db(data_dir), readonly=True))
    if config is None:
        raise _fail("no configuration applied yet")
    typer.echo(json.dumps(msgspec.to_builtins(config), indent=2, ensure_ascii=False))


@config_app.command("apply")
def config_apply(
    file: Annotated[Path, typer.Argument(help="JSON document; `-` for stdin.")],
    data_dir: DataDir = DEFAULT_DATA,
    force: Annotated[bool, typer.Option(help="Ignore the document's version.")] = False,
) -> None:
    """Apply a configuration document (standalone branches); a running appliance picks it up within a second."""
    from sync.contract_config import config_decoder

    if str(file) != "-" and not file.is_file():
        raise _fail(f"no such file: {file}")
    raw = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    try:
        config = config_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise _fail(f"invalid configuration: {exc}") from None
    service = QueueService(data_dir)
    try:
        base = None if force else config.version
        cmd = c.ApplyConfig(actor="cli", config=config, base_version=base, source="cli")
        detail: dict[str, object] = {"base_version": base, "file": str(file), "force": force}
        service.start()
        outcome = service.submit(cmd, _cli_audit("config_replace", f"config:{config.branch_id}", detail)).result(30)
    except DomainError as exc:
        details = exc.extra.get("errors")
        lines = [f"refused ({exc.code}): {exc.detail}"]
        lines += [f"  - {d}" for d in details] if isinstance(details, list) else []
        raise _fail("\n".join(lines)) from None
    finally:
        service.stop()
    typer.echo(f"applied: configuration version {outcome.response['version']}")


@users_app.command("add")
def users_add(
    username: str,
    role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)}.")] = "agent",
    counters: Annotated[str, typer.Option(help="Comma-separated counter ids (agents, devices).")] = "",
    data_dir: DataDir = DEFAULT_DATA,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)] = "",
) -> None:
    """Create or update an account (the password is prompted, never echoed or logged; --password for scripts)."""
    if role not in ROLES:
        raise _fail(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD and role != "device":
        raise _fail(f"password must have at least {MIN_PASSWORD} characters")
    ids = [x.strip() for x in counters.split(",") if x.strip()]
    service = QueueService(data_dir)
    try:
        config = service.state.config
        unknown = [cid for cid in ids if config is None or config.counter(cid) is None]
        if unknown:
            raise _fail(f"unknown counter(s) {', '.join(unknown)}: apply the branch configuration first")
        existed = service.read(lambda conn: find_user(conn, username)) is not None
        service.start()
        audit = _cli_audit(
            "user_update" if existed else "user_create", f"user:{username}", {"role": role, "counters": ids}
        )

        def save(conn: sqlite3.Connection) -> None:
            upsert_user(conn, username, password, role, ids)  # type: ignore[arg-type,unused-ignore]
            audit_log.insert(conn, audit, datetime.now(UTC))

        service.submit_store(save).result()
    finally:
        service.stop()
    typer.echo(f"user {username} ({role}) {'updated' if existed else 'created'}")


@users_app.command("list")
def users_list(data_dir: DataDir = DEFAULT_DATA) -> None:
    """List accounts (never their passwords)."""
    for user in list_users(connect(_db(data_dir), readonly=True)):
        typer.echo(
            f"{user.username:16} {user.role:10} counters={','.join(user.counters) or '-'}"
            f"{'' if user.active else '  (disabled)'}"
        )


def _cli_audit(action: str, target: str, detail: dict[str, object]) -> AuditEntry:
    """An audit entry for a technician's command (who: the OS user at the appliance's console)."""
    return AuditEntry(
        actor="cli",
        role="technician",
        action=action,
        target=target,
        detail=detail,
        user_agent=f"qms-edge ({getpass.getuser()})",
    )


def _db(data_dir: Path) -> Path:
    path = data_dir / "qms.sqlite3"
    if not path.exists():
        raise _fail(f"no appliance database in {data_dir} (use --data-dir or QMS_DATA_DIR)")
    return path


if __name__ == "__main__":
    app()
