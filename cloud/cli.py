"""The `qms-cloud` command line for the HQ hub: serve the console and consumers, issue branch credentials,
distribute configuration versions, manage HQ console accounts."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Operate the QMS HQ hub.")
branch_app = typer.Typer(no_args_is_help=True, help="Branches and their NATS credentials.")
config_app = typer.Typer(no_args_is_help=True, help="Branch configuration versions.")
users_app = typer.Typer(no_args_is_help=True, help="HQ console accounts: roles and the tenants each sees.")
db_app = typer.Typer(no_args_is_help=True, help="The hub database: schema (Alembic migrations), backups, restores.")
app.add_typer(branch_app, name="branch")
app.add_typer(config_app, name="config")
app.add_typer(users_app, name="users")
tokens_app = typer.Typer(no_args_is_help=True, help="API tokens of HQ accounts (Authorization: Bearer).")
app.add_typer(tokens_app, name="tokens")
sso_users_app = typer.Typer(no_args_is_help=True, help="A tenant's SSO users as the hub knows them; disable, enable.")
app.add_typer(sso_users_app, name="sso-users")
app.add_typer(db_app, name="db")
audit_app = typer.Typer(no_args_is_help=True, help="The hub audit log (console actions, hash-chained).")
app.add_typer(audit_app, name="audit")
ca_app = typer.Typer(no_args_is_help=True, help="The hub's private CA for appliance certificates (LAN HTTPS, NATS).")
app.add_typer(ca_app, name="ca")
from cloud.ops.cli import backups_app  # noqa: E402 - the area's own commands

app.add_typer(backups_app, name="backups")
from cloud.releases.cli import release_app  # noqa: E402 - the area's own commands

app.add_typer(release_app, name="release")
CaDir = Annotated[Path, typer.Option(envvar="QMS_HUB_CA_DIR", help="Where the CA's ca.crt and ca.key (0600) live.")]

DbUrl = Annotated[
    str, typer.Option("--db-url", envvar="QMS_CLOUD_DB", help="SQLAlchemy URL (sqlite:///… or postgresql+psycopg://…).")
]
NatsUrl = Annotated[str, typer.Option("--nats-url", envvar="QMS_NATS_URL", help="NATS server(s), comma-separated.")]
NatsNkey = Annotated[str, typer.Option("--nats-nkey", envvar="QMS_NATS_NKEY", help="The hub's NKey seed file.")]
KeysDir = Annotated[
    Path,
    typer.Option(
        "--keys-dir", envvar="QMS_CLOUD_KEYS", help="Branch NKey seeds (written mode 0600; status links' keys)."
    ),
]
AuthOut = Annotated[
    Path,
    typer.Option(
        "--auth-out", envvar=["QMS_NATS_AUTH", "QMS_NATS_AUTH_FILE"], help="nats-server include file with the users."
    ),
]
PidFile = Annotated[
    str,
    typer.Option(
        "--pid-file",
        envvar="QMS_NATS_PID_FILE",
        help="nats-server's pid_file: reload it (SIGHUP, as `nats-server --signal reload`) after writing the users.",
    ),
]
DEFAULT_DB = "sqlite:///qms-cloud.sqlite3"
DEFAULT_KEYS = Path("nats-keys")


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


def _servers(nats_url: str) -> list[str]:
    return [s.strip() for s in nats_url.split(",") if s.strip()]


def _nats_options(nats_nkey: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """NKey and, with QMS_CLOUD_NATS_TLS_CA (+ _CERT/_KEY for mutual TLS), TLS to NATS checked against that CA."""
    env = dict(os.environ) if env is None else env
    options: dict[str, Any] = {"nkeys_seed": nats_nkey} if nats_nkey else {}
    if ca := env.get("QMS_CLOUD_NATS_TLS_CA"):
        import ssl

        context = ssl.create_default_context(cafile=ca)
        if env.get("QMS_CLOUD_NATS_TLS_CERT") and env.get("QMS_CLOUD_NATS_TLS_KEY"):
            context.load_cert_chain(env["QMS_CLOUD_NATS_TLS_CERT"], env["QMS_CLOUD_NATS_TLS_KEY"])
        options["tls"] = context
    return options


@app.command()
def serve(
    db_url: DbUrl = DEFAULT_DB,
    nats_url: NatsUrl = "",
    nats_nkey: NatsNkey = "",
    host: Annotated[str, typer.Option(envvar="QMS_CLOUD_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="QMS_CLOUD_PORT")] = 8090,
    workers: Annotated[int, typer.Option(help="Pull loops on the durable consumer in this process.")] = 2,
    replicas: Annotated[
        int, typer.Option(envvar="QMS_NATS_REPLICAS", help="Replicas of QMS_EVENTS and qms_config (3 on a cluster).")
    ] = 1,
    console_password: Annotated[
        str,
        typer.Option(
            envvar="QMS_CLOUD_CONSOLE_PASSWORD",
            help="Shared HTTP Basic password (user hq) for the console, used only while no HQ account exists"
            " (`qms-cloud users add`).",
        ),
    ] = "",
    keys_dir: KeysDir = DEFAULT_KEYS,
    fetch_timeout: Annotated[
        float,
        typer.Option(envvar="QMS_CLOUD_FETCH_TIMEOUT", help="Seconds one idle pull waits for branch events."),
    ] = 5.0,
    log_level: str = "info",
    tls_cert: Annotated[
        str, typer.Option(envvar="QMS_CLOUD_TLS_CERT", help="Certificate (PEM) to serve HTTPS with; with --tls-key.")
    ] = "",
    tls_key: Annotated[str, typer.Option(envvar="QMS_CLOUD_TLS_KEY", help="The certificate's private key (PEM).")] = "",
    public_url: Annotated[
        str,
        typer.Option(
            envvar="QMS_PUBLIC_URL",
            help="The hub's public address as customers reach it (https://hq.example): booking e-mails link to it"
            " when the tenant's notification policy names no public address.",
        ),
    ] = "",
) -> None:
    """Run the console, the public ticket status pages (`/t/…`, keyed by the branch seeds in --keys-dir) and (with
    --nats-url) the durable consumers that apply branch events."""
    import uvicorn

    from cloud.web.app import CloudSettings, create_app
    from sync.observability import configure_logging

    if public_url and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", public_url):
        typer.secho(f"--public-url / QMS_PUBLIC_URL: not an http(s) address: {public_url!r}", fg=typer.colors.RED,
                    err=True)  # fmt: skip
        raise typer.Exit(2)  # refused before the process's logging is set up: nothing has started
    configure_logging(log_level)  # JSON lines, scrubbed, with correlation ids (QMS_LOG_FORMAT=text for people)
    settings = CloudSettings(
        db_url=db_url,
        nats_servers=tuple(_servers(nats_url)),
        workers=workers,
        replicas=replicas,
        nats_options=_nats_options(nats_nkey),
        console_password=console_password,
        keys_dir=keys_dir,
        fetch_timeout=fetch_timeout,
        public_url=public_url,
    )
    https = bool(tls_cert and tls_key)  # HTTPS with uvicorn's TLS (issue 16); plain HTTP behind a terminating proxy
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, access_log=False, log_config=None,
                ssl_certfile=tls_cert if https else None, ssl_keyfile=tls_key if https else None)  # fmt: skip


@branch_app.command("add")
def branch_add(
    tenant: str,
    branch: str,
    db_url: DbUrl = DEFAULT_DB,
    keys_dir: KeysDir = DEFAULT_KEYS,
    auth_out: AuthOut = Path("nats-auth.conf"),
    pid_file: PidFile = "",
) -> None:
    """Issue (or rotate) a branch's NKey and regenerate the nats-server users; with --pid-file reload nats-server too
    (otherwise reload it afterwards)."""
    from cloud.credentials import issue
    from cloud.store import create_store_engine
    from sync.relay import check_token

    try:
        check_token("tenant", tenant)
        check_token("branch", branch)
    except ValueError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    engine = create_store_engine(db_url)
    issued = issue(engine, keys_dir, tenant, branch)
    typer.echo(f"branch {tenant}.{branch}: public key {issued.public_key}")
    typer.echo(f"  seed file {issued.seed_file} -> copy to the appliance, set QMS_NATS_NKEY to its path")
    _write_users(engine, keys_dir, auth_out, pid_file, reason="branch add", tenant=tenant, branch=branch, indent="  ")


def _write_users(engine: Any, keys_dir: Path, auth_out: Path, pid_file: str, *, reason: str, indent: str = "",
                 tenant: str | None = None, branch: str | None = None) -> None:  # fmt: skip
    """The console's rewrite (cloud/admin/nats_users.py: locked, atomic, audited), reloading with a pid file."""
    from cloud.admin.nats_users import Target, sync

    done = sync(engine, keys_dir, Target(auth_out, Path(pid_file) if pid_file else None), actor="cli",
                reason=reason, tenant=tenant, branch=branch)  # fmt: skip
    if not done.ok:
        typer.secho(f"{indent}nats-server users: {done.error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    reloaded = "nats-server reloaded" if done.reloaded else "reload: nats-server --signal reload"
    typer.echo(
        f"{indent}nats-server users written to {auth_out} ({reloaded})" + ("" if done.changed else ", unchanged")
    )


@branch_app.command("users")
def branch_users(
    db_url: DbUrl = DEFAULT_DB,
    keys_dir: KeysDir = DEFAULT_KEYS,
    auth_out: AuthOut = Path("nats-auth.conf"),
    pid_file: PidFile = "",
) -> None:
    """Regenerate the nats-server users from the keys already issued, rotating none (after an upgrade that changes
    the branches' permissions, e.g. heartbeats; the hub does this itself where it operates nats-server,
    QMS_NATS_AUTH_FILE); with --pid-file reload nats-server too (otherwise reload it afterwards)."""
    from cloud.store import create_store_engine

    _write_users(create_store_engine(db_url), keys_dir, auth_out, pid_file, reason="branch users")
    typer.echo("no key rotated")


@branch_app.command("list")
def branch_list(db_url: DbUrl = DEFAULT_DB) -> None:
    """Branches with their link state, configuration version (number · content hash) and liveness (online, offline
    since …, never connected: from the branches' heartbeats)."""
    from cloud.console import overview
    from cloud.store import create_store_engine

    for b in overview(create_store_engine(db_url))["branches"]:
        link = b.link.replace("_", " ")  # "never connected": added, nothing received from it yet
        typer.echo(
            f"{b.tenant}.{b.branch_id:20} {link:15} events {b.events:8} last {b.last_event_at or '-'}"
            f"  config {b.config_label('runs')}  {b.liveness_words}" + (f"  ({b.problem})" if b.problem else "")
        )


@db_app.command("upgrade")
def db_upgrade(
    db_url: DbUrl = DEFAULT_DB,
    revision: Annotated[str, typer.Option(help="Target revision (default: the newest).")] = "head",
) -> None:
    """Migrate the hub database to the newest schema (a hub from before migrations is taken as 0001_baseline);
    `serve` and every other command do the same on start."""
    from cloud.store import create_store_engine, upgrade_schema

    engine = create_store_engine(db_url, upgrade=False)
    before, after = upgrade_schema(engine, revision)
    engine.dispose()
    if before == after:
        typer.echo(f"database already at {after}")
    else:
        typer.echo(f"database upgraded: {before or 'pre-migration / empty'} -> {after}")


@branch_app.command("resync")
def branch_resync(
    tenant: str,
    branch: str,
    from_seq: Annotated[
        int,
        typer.Option(
            "--from-seq",
            help="First seq to take again from the appliance: the seq the branch's problem names (a fork, a broken"
            " link), or 1 for everything.",
        ),
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be dropped.")] = False,
    db_url: DbUrl = DEFAULT_DB,
) -> None:
    """Drop the hub's copy of a branch from --from-seq on (and its parked events), reset its link to ok and rebuild
    its queue from the events kept; then run `qms-edge replication resend --from-seq N` on the appliance."""
    from cloud.resync import ResyncRefused, resync_branch
    from cloud.store import create_store_engine

    try:
        report = resync_branch(create_store_engine(db_url), tenant, branch, from_seq, dry_run=dry_run)
    except ResyncRefused as exc:
        typer.secho(f"refused: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    verb = "would drop" if dry_run else "dropped"
    span = f" (seq {from_seq}..{report.last_dropped})" if report.events_dropped else ""
    typer.echo(f"branch {tenant}.{branch}: was {report.status_before}" + (
        f" ({report.problem_before})" if report.problem_before else ""))  # fmt: skip
    typer.echo(f"  {verb} {report.events_dropped} event(s){span} and {report.parked_dropped} parked event(s)")
    if dry_run:
        typer.echo(f"  would keep {report.events_kept} event(s), set next seq {report.next_seq_before} -> {from_seq}")
        return
    typer.echo(
        f"  kept {report.events_kept} event(s), next seq {report.next_seq_before} -> {from_seq}, link ok;"
        f" queue rebuilt ({report.tickets} tickets)"
    )
    typer.echo(f"  now on the appliance: qms-edge replication resend --from-seq {from_seq}")


@config_app.command("push")
def config_push(
    tenant: str,
    branch: str,
    file: Annotated[Path, typer.Argument(help="JSON configuration document; `-` for stdin.")],
    db_url: DbUrl = DEFAULT_DB,
    nats_url: NatsUrl = "",
    nats_nkey: NatsNkey = "",
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Distribute even though the branch runs a newer version than the document's `version` (its local"
            " edits are replaced).",
        ),
    ] = False,
) -> None:
    """Distribute a new configuration version to a branch (through the `qms_config` KV bucket). The document's
    `version` is the version it was edited from: a push based on an older version than the branch runs (local edits
    included) is refused unless --force."""
    from cloud.config_dist import ConfigRefused, Distributed, push_config
    from cloud.store import create_store_engine
    from sync.contract_config import short_hash

    if not _servers(nats_url):
        # No silent default: a push to some other NATS server (a developer's local one) would be recorded here as
        # distributed while no branch ever sees it.
        typer.secho(
            "refused: no NATS server given: pass --nats-url (or set QMS_NATS_URL) to the hub's NATS, with its key"
            " (--nats-nkey / QMS_NATS_NKEY)",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(2)
    raw = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    engine = create_store_engine(db_url)

    async def push() -> Distributed:
        import nats

        from cloud.consumer import ensure_config_bucket

        nc = await nats.connect(servers=_servers(nats_url), **_nats_options(nats_nkey))
        try:
            js = nc.jetstream()
            await ensure_config_bucket(js)
            return await push_config(engine, js, tenant, branch, raw, force=force)
        finally:
            await nc.close()

    try:
        done = asyncio.run(push())
    except ConfigRefused as exc:
        typer.secho(f"refused: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"{tenant}.{branch}: configuration v{done.version} ({short_hash(done.config_hash)}) distributed"
        f" (KV revision {done.revision})"
    )


@users_app.command("add")
def users_add(
    name: str,
    role: Annotated[str, typer.Option("--role", help="platform_admin, tenant_admin, branch_manager or auditor.")],
    tenant: Annotated[
        list[str] | None,
        typer.Option("--tenant", help="A tenant the account sees (repeat); '*' = every tenant (platform_admin)."),
    ] = None,
    branch: Annotated[
        list[str] | None,
        typer.Option("--branch", help="TENANT/BRANCH a branch_manager runs (repeat the option for a region)."),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            help="At least 10 characters; prompted without echo when absent (preferred: a command line"
            " is visible to other users of the machine).",
        ),
    ] = None,
    db_url: DbUrl = DEFAULT_DB,
) -> None:
    """Create an HQ console account, or update its password, role and tenants (and enable it again)."""
    from cloud.hq_users import AccountRefused, check_account, upsert_user
    from cloud.store import create_store_engine

    tenants, branches = list(tenant or []), list(branch or [])
    try:
        scope = check_account(name, role, tenants, branches)
        if password is None:
            password = typer.prompt(f"Password for {name}", hide_input=True, confirmation_prompt=True)
        created = upsert_user(create_store_engine(db_url), name, password, role, tenants, branches)
    except AccountRefused as exc:
        typer.secho(f"refused: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    where = f"tenants {', '.join(scope.tenants)}"
    where += f", branches {', '.join(f'{t}/{b}' for t, b in scope.branches)}" if scope.branches else ""
    typer.echo(f"user {name} {'added' if created else 'updated'}: {scope.role}, {where}")


@users_app.command("list")
def users_list(
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
    db_url: DbUrl = DEFAULT_DB,
) -> None:
    """HQ console accounts with role, tenants and state (never a password or its hash)."""
    import json

    from cloud.hq_users import list_users
    from cloud.store import create_store_engine

    users = list_users(create_store_engine(db_url))
    if as_json:
        typer.echo(json.dumps([u.as_dict() for u in users], indent=2))
        return
    for u in users:
        state = "active" if u.active else "disabled"
        scope = ",".join(f"{t}/{b}" for t, b in u.branches) or ",".join(u.tenants)
        typer.echo(f"{u.username:24} {u.role:14} {state:9} scope {scope:30} updated {u.updated_at}")


@users_app.command("disable")
def users_disable(name: str, db_url: DbUrl = DEFAULT_DB) -> None:
    """Disable an HQ console account: refused from its next request on (`users add` enables it again)."""
    from cloud.hq_users import disable_user
    from cloud.store import create_store_engine

    if not disable_user(create_store_engine(db_url), name):
        typer.secho(f"no HQ account {name!r}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    typer.echo(f"user {name} disabled")


@sso_users_app.command("list")
def sso_users_list(
    tenant: str,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
    db_url: DbUrl = DEFAULT_DB,
) -> None:
    """The tenant's SSO users the hub has signed in: role as mapped now, IdP, last sign-in, state."""
    import json

    from cloud.identity import sso_accounts
    from cloud.identity.tokens import shown_name
    from cloud.store import create_store_engine

    engine = create_store_engine(db_url)
    if not sso_accounts.tenant_known(engine, tenant):
        typer.secho(f"no such tenant {tenant!r} (no branch, no IdP configured, no SSO user)", fg=typer.colors.RED,
                    err=True)  # fmt: skip
        raise typer.Exit(1)
    accounts = sso_accounts.list_accounts(engine, tenant)
    if as_json:
        typer.echo(json.dumps([a.as_dict() for a in accounts], indent=2))
        return
    if not accounts:
        typer.echo(f"no SSO users of {tenant} yet (the hub lists those who signed in through SSO)")
    for a in accounts:
        state = "disabled" if a.disabled_at else "active" if a.active else "no role"
        name = shown_name(a.username)  # a name from the IdP: no control or bidi character reaches the terminal
        typer.echo(f"{name:32} {a.role or '-':14} {a.protocol:5} {state:9} last sign-in {a.last_sign_in_at}")


def _sso_user_state(tenant: str, name: str, disabled: bool, db_url: str) -> None:
    from datetime import UTC, datetime

    from cloud.identity import sso_accounts
    from cloud.store import create_store_engine

    if sso_accounts.set_disabled(create_store_engine(db_url), tenant, name, disabled, datetime.now(UTC), "cli") is None:
        typer.secho(f"no SSO user {name!r} of {tenant} (the hub knows those who signed in)", fg=typer.colors.RED,
                    err=True)  # fmt: skip
        raise typer.Exit(1)
    typer.echo(f"SSO user {name} of {tenant} {'disabled' if disabled else 'enabled'}")


@sso_users_app.command("disable")
def sso_users_disable(tenant: str, name: str, db_url: DbUrl = DEFAULT_DB) -> None:
    """Shut an SSO user out at the hub: their sessions end, their sign-ins and API tokens are refused."""
    _sso_user_state(tenant, name, True, db_url)


@sso_users_app.command("enable")
def sso_users_enable(tenant: str, name: str, db_url: DbUrl = DEFAULT_DB) -> None:
    """Let a disabled SSO user in again (their tokens work again unless expired or revoked)."""
    _sso_user_state(tenant, name, False, db_url)


@audit_app.command("verify")
def audit_verify(db_url: DbUrl = DEFAULT_DB) -> None:
    """Walk the hub audit log's hash chain: exit 0 when every entry is intact, 1 naming the first broken one."""
    from cloud.admin.audit import verify
    from cloud.store import create_store_engine

    outcome = verify(create_store_engine(db_url))
    if not outcome.ok:
        typer.secho(f"audit log BROKEN at entry {outcome.broken_at}: {outcome.reason}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    typer.echo(f"audit log intact: {outcome.rows} entries")


@tokens_app.command("create")
def tokens_create(
    user: str,
    name: Annotated[str, typer.Option("--name", help="What the token is for (shown in lists).")],
    scope: Annotated[list[str], typer.Option("--scope", help="A permission it grants (repeat); within the role.")],
    days: Annotated[int, typer.Option("--days", help="Days until it expires (1-366).")] = 90,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Limit it to one of the user's tenants.")] = None,
    db_url: DbUrl = DEFAULT_DB,
) -> None:
    """Issue an API token for an HQ account; the token is printed once and stored only as a digest."""
    from datetime import UTC, datetime

    from cloud.hq_users import get_user
    from cloud.identity import tokens
    from cloud.store import create_store_engine

    engine = create_store_engine(db_url)
    account = get_user(engine, user)
    if account is None:
        typer.secho(f"no HQ account {user!r}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    try:
        raw, info = tokens.issue(engine, account, name, scope, days, datetime.now(UTC), tenant, actor="cli")
    except tokens.TokenRefused as exc:
        typer.secho(f"refused: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    typer.echo(f"token {info.token_id} for {user} ({', '.join(info.scopes)}), expires {info.expires_at}:")
    typer.echo(raw)
    typer.echo("It is shown only now: keep it in the automation's secret store.", err=True)


@tokens_app.command("list")
def tokens_list(user: Annotated[str | None, typer.Option("--user")] = None, db_url: DbUrl = DEFAULT_DB) -> None:
    """API tokens (never their secrets): id, owner, name, scopes, expiry, last use, revoked."""
    from cloud.identity import tokens
    from cloud.store import create_store_engine

    for t in tokens.list_tokens(create_store_engine(db_url), user):
        state = "revoked" if t.revoked else f"expires {t.expires_at}"
        owner = tokens.shown_name(f"{t.username} (SSO {t.sso_tenant})" if t.sso_tenant else t.username)
        typer.echo(f"{t.token_id}  {owner:16} {tokens.shown_name(t.name):20} {','.join(t.scopes):30} {state}")


@tokens_app.command("revoke")
def tokens_revoke(token_id: str, db_url: DbUrl = DEFAULT_DB) -> None:
    """Revoke an API token now."""
    from datetime import UTC, datetime

    from cloud.identity import tokens
    from cloud.store import create_store_engine

    if not tokens.revoke(create_store_engine(db_url), token_id, datetime.now(UTC)):
        typer.secho(f"no live token {token_id!r}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    typer.echo(f"token {token_id} revoked")


@ca_app.command("init")
def ca_init(ca_dir: CaDir = Path("ca")) -> None:
    """Create the hub's private CA (once: every appliance certificate hangs on it); prints the certificate to pin."""
    from cloud.ops.ca import init_ca

    try:
        authority = init_ca(ca_dir)
    except FileExistsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(authority.cert_pem, nl=False)


@ca_app.command("issue")
def ca_issue(
    csr: Annotated[Path, typer.Argument(help="The appliance's certificate signing request (PEM).")],
    name: Annotated[list[str], typer.Option("--name", help="DNS name (the appliance's mDNS name), repeatable.")],
    address: Annotated[list[str], typer.Option("--address", help="LAN IP address, repeatable.")] = [],  # noqa: B006
    ca_dir: CaDir = Path("ca"),
    days: Annotated[int, typer.Option(min=1, max=397)] = 90,
) -> None:
    """Sign an appliance's CSR for its names (server and client auth, `days` long); prints the certificate."""
    from cloud.ops.ca import CsrRefused, issue, load_ca

    try:
        cert = issue(load_ca(ca_dir), csr.read_bytes(), dns_names=name, addresses=address, days=days)
    except (CsrRefused, ValueError, OSError) as exc:
        typer.echo(f"not issued: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(cert, nl=False)


HubBackupDir = Annotated[Path, typer.Option(envvar="QMS_HUB_BACKUP_DIR", help="Where hub dumps and manifests live.")]


@app.command("backup")
@db_app.command("backup")
def hub_backup(
    db_url: DbUrl = DEFAULT_DB,
    backup_dir: HubBackupDir = Path("hub-backups"),
    keep: Annotated[int, typer.Option(min=1, help="Dumps kept (older ones are deleted).")] = 14,
) -> None:
    """Dump the hub's PostgreSQL database (pg_dump -Fc) with a manifest of row counts taken in the dump's snapshot;
    contacts that would outlive the dump (QMS_HUB_DB_BACKUP_MAX_AGE_DAYS, default 7) are left out, expired dumps
    deleted. `qms-cloud backup` is the same command."""
    from cloud.ops.backups import HubBackupError, backup

    try:
        dump = backup(db_url, backup_dir, keep)
    except HubBackupError as exc:
        typer.echo(f"no backup written: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"hub backup written to {dump}")


@db_app.command("restore")
def hub_restore(
    dump: Annotated[
        Path, typer.Argument(help="A qms-hub-*.dump written by `qms-cloud db backup` (its manifest beside).")
    ],
    db_url: Annotated[str, typer.Option("--db-url", help="The new, empty PostgreSQL database to restore into.")],
) -> None:
    """Restore a hub dump into a new, empty database (checked against its manifest; the contact rows kept beside it
    loaded too), then print every table's row count. Point QMS_CLOUD_DB at it and start the hub."""
    from cloud.ops.backups import HubBackupError, restore

    try:
        counts = restore(dump, db_url)
    except HubBackupError as exc:
        typer.echo(f"not restored: {exc}", err=True)
        raise typer.Exit(1) from None
    for table, rows in counts.items():
        typer.echo(f"{table}\t{rows}")
    typer.echo(f"restored {dump.name}: {len(counts)} tables, {sum(counts.values())} rows")


@db_app.command("pitr-restore")
def hub_pitr_restore(
    base_backup: Annotated[Path, typer.Option(help="A pg_basebackup directory (-Fp, or -Ft's base.tar).")],
    wal_archive: Annotated[Path, typer.Option(help="Where archive_command copies WAL segments.")],
    target_time: Annotated[str, typer.Option(help="Recover up to this moment, ISO 8601 with its zone.")],
    data_dir: Annotated[Path, typer.Option(help="A new, empty scratch data dir.")],
    port: Annotated[int, typer.Option(help="The scratch server's port (its socket is in the data dir).")] = 5499,
    stop_after: Annotated[bool, typer.Option("--stop/--keep-running", help="Stop it once recovered.")] = False,
) -> None:
    """Point-in-time recovery into a scratch data dir: restore the base backup, replay the archived WAL up to
    --target-time, start it on --port (archiving off) and wait until it has promoted. Never touches the live server."""
    from datetime import datetime

    from cloud.ops.backups import HubBackupError
    from cloud.ops.pitr import restore_to_time, stop

    try:
        server = restore_to_time(base_backup, wal_archive, datetime.fromisoformat(target_time), data_dir, port)
    except (HubBackupError, ValueError, OSError) as exc:
        typer.echo(f"not recovered: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"recovered to {target_time} in {data_dir}")
    if stop_after:
        stop(server)
        typer.echo("stopped; start it again with pg_ctl -D " + str(data_dir) + " start")
    else:
        typer.echo(f'running: psql "{server.libpq}"  (stop it with pg_ctl -D {data_dir} stop)')


@app.command("drill")
def hub_drill(db_url: DbUrl = DEFAULT_DB, backup_dir: HubBackupDir = Path("hub-backups")) -> None:
    """Restore drill: the newest dump into a scratch database, row counts against its manifest, opened as the hub
    opens its store, then dropped. Exit 1 when it fails."""
    from cloud.ops.backups import HubBackupError, drill

    try:
        result = drill(db_url, backup_dir)
    except HubBackupError as exc:
        typer.echo(f"restore drill failed: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"restore drill passed: {result.dump.name}, {result.tables} tables, {result.rows} rows as in its manifest"
    )
