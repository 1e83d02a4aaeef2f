"""Console commands: ``hotline web`` (run the web console and HTTP API) and ``hotline users ...`` (accounts
and API tokens, kept in the ledger)."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape as esc
from rich.table import Table

from streams.cli import app
from streams.cli.platform import load_settings

err = Console(stderr=True, highlight=False, soft_wrap=True)
users_app = typer.Typer(help="Console users and API tokens (stored in the ledger).", no_args_is_help=True)
app.add_typer(users_app, name="users")


def _exit(message: str, code: int = 2) -> NoReturn:
    err.print(message)
    raise typer.Exit(code)


def _migrated_ledger(settings: Any) -> Any:
    from streams.db import LedgerUnavailable, NotMigrated, open_migrated

    try:
        return open_migrated(settings)
    except (LedgerUnavailable, NotMigrated) as exc:
        _exit(f"[red]{esc(str(exc))}[/red]", 1)


@app.command()
def web(
    openapi: bool = typer.Option(False, "--openapi", help="print the HTTP API's OpenAPI document and exit"),
) -> None:
    """Run the web console and HTTP API (HOTLINE_WEB_HOST:HOTLINE_WEB_PORT) until Ctrl-C.

    Pages for supervisors (/supervisor), agencies (/agency) and dispatchers (/dispatcher); the API under
    /api with bearer tokens (hotline users token NAME). Actions go to the worker's broker, so start
    `hotline worker` (or `hotline demo`) too.
    """
    from streams.runner import setup_logging

    settings = load_settings()
    if openapi:
        from streams.console import create_app

        typer.echo(json.dumps(create_app(settings).openapi(), ensure_ascii=False, indent=2))
        return
    _migrated_ledger(settings).dispose()
    if (busy := _cannot_listen(settings.web_host, settings.web_port)) is not None:
        _exit(f"[red]cannot listen on {esc(settings.web_host)}:{settings.web_port}:[/red] {esc(busy)} (another "
              "process holds the port? set HOTLINE_WEB_PORT)", 3)
    setup_logging(settings.log_level)
    from streams.console import serve

    err.print(f"web console on http://{settings.web_host}:{settings.web_port}/ (API: /api, reference: "
              f"/api-reference); log in with an account from `hotline users add`. Ctrl-C stops it.")
    serve(settings)


def _cannot_listen(host: str, port: int) -> str | None:
    """Why the console could not listen on ``host:port`` (None: it can), checked before its address is announced:
    uvicorn says so only after the announcement, which then reads as if the console were up."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds it
            probe.bind(address)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    return typer.prompt("password", hide_input=True, confirmation_prompt=True)  # type: ignore[no-any-return]


@users_app.command("add")
def users_add(
    username: str = typer.Argument(..., help="log-in name: lower-case letters, digits, _ . -"),
    role: str = typer.Option(..., "--role", help="dispatcher | agency | supervisor"),
    agency: str | None = typer.Option(None, "--agency", help="agency code (agency members only)"),
    name: str | None = typer.Option(None, "--name", help="display name, e.g. a person's name"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="read the password from stdin "
                                        "(first line) instead of prompting"),
) -> None:
    """Create a console user; the password is asked for twice (or read with --password-stdin)."""
    from streams.cli.agency import catalogue_or_exit, resolve_agency
    from streams.console.accounts import AccountError, add_user, validate_new_user, validate_password

    settings = load_settings()
    catalogue = catalogue_or_exit(settings)
    code = resolve_agency(agency, catalogue) if agency else None
    try:
        validate_new_user(username, role, code, catalogue)
        password = _read_password(password_stdin)
        validate_password(password)
    except AccountError as exc:
        _exit(f"[red]refused:[/red] {esc(str(exc))}")
    ledger = _migrated_ledger(settings)
    try:
        p = add_user(ledger, username, role, password, agency=code, display_name=name, catalogue=catalogue)
    except AccountError as exc:
        _exit(f"[red]refused:[/red] {esc(str(exc))}")
    finally:
        ledger.dispose()
    where = f" of {code} ({catalogue.agencies[code].name})" if code else ""
    err.print(f"user {p.username} created: {p.role}{where}. API token: hotline users token {p.username}")


@users_app.command("token")
def users_token(
    username: str = typer.Argument(...),
    name: str | None = typer.Option(None, "--name", help="what the token is for, e.g. the calling system"),
    revoke: bool = typer.Option(False, "--revoke", help="revoke all the user's tokens instead"),
) -> None:
    """Issue an API token for the user and print it (only once: only its hash is kept)."""
    from streams.console.accounts import AccountError, issue_token, revoke_tokens

    settings = load_settings()
    ledger = _migrated_ledger(settings)
    try:
        if revoke:
            n = revoke_tokens(ledger, username)
            err.print(f"{n} token(s) of {username} revoked")
            return
        token = issue_token(ledger, username, name)
    except AccountError as exc:
        _exit(f"[red]refused:[/red] {esc(str(exc))}")
    finally:
        ledger.dispose()
    err.print(f"API token for {username} (shown once; send it as 'Authorization: Bearer <token>'):")
    typer.echo(token)


@users_app.command("list")
def users_list(as_json: bool = typer.Option(False, "--json", help="one JSON object per user")) -> None:
    """The console users: role, agency, active, live API tokens, last log-in."""
    from streams.cli.agency import local_time
    from streams.console.accounts import list_users

    settings = load_settings()
    ledger = _migrated_ledger(settings)
    try:
        rows = list_users(ledger)
    finally:
        ledger.dispose()
    if as_json:
        for r in rows:
            typer.echo(json.dumps({"username": r.username, "role": r.role, "agency": r.agency,
                                   "display_name": r.display_name, "active": r.active, "live_tokens": r.live_tokens,
                                   "created_at": r.created_at.isoformat(),
                                   "last_login_at": r.last_login_at.isoformat() if r.last_login_at else None},
                                  ensure_ascii=False))
        return
    if not rows:
        err.print("no users yet: hotline users add NAME --role dispatcher|agency|supervisor [--agency CODE]")
        return
    table = Table(title=f"{len(rows)} user(s)", title_justify="left")
    for col in ("user", "role", "agency", "name", "active", "tokens", "last log-in"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.username, r.role, r.agency or "", r.display_name or "", "yes" if r.active else "[red]no[/red]",
                      str(r.live_tokens), local_time(r.last_login_at.isoformat()) if r.last_login_at else "")
    Console().print(table)


@users_app.command("disable")
def users_disable(username: str = typer.Argument(...),
                  enable: bool = typer.Option(False, "--enable", help="enable the user again")) -> None:
    """Disable a user: their console sessions end and their API tokens are revoked at once.

    --enable lets the user log in again; the ended sessions and revoked tokens stay ended (issue new tokens).
    """
    from streams.console.accounts import AccountError, set_active

    settings = load_settings()
    ledger = _migrated_ledger(settings)
    try:
        revoked = set_active(ledger, username, enable)
    except AccountError as exc:
        _exit(f"[red]refused:[/red] {esc(str(exc))}")
    finally:
        ledger.dispose()
    if enable:
        err.print(f"user {username} enabled")
    else:
        err.print(f"user {username} disabled: console sessions ended, {revoked} API token(s) revoked")


@users_app.command("password")
def users_password(username: str = typer.Argument(...),
                   password_stdin: bool = typer.Option(False, "--password-stdin")) -> None:
    """Set a new password for the user: their console sessions end and their API tokens are revoked."""
    from streams.console.accounts import AccountError, set_password

    settings = load_settings()
    ledger = _migrated_ledger(settings)
    try:
        revoked = set_password(ledger, username, _read_password(password_stdin))
    except AccountError as exc:
        _exit(f"[red]refused:[/red] {esc(str(exc))}")
    finally:
        ledger.dispose()
    err.print(f"password of {username} changed: console sessions ended, {revoked} API token(s) revoked"
              + (f" (new one: hotline users token {username})" if revoked else ""))
