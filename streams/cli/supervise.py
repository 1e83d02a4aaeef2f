"""Supervisors' commands: ``hotline alerts`` (the ledger's alerts, optionally tailing supervision.alerts) and
``hotline report`` (per-agency figures, or the daily digest for a crontab)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape as esc
from rich.table import Table

from models.tickets import SHANGHAI, hotline_time
from models.workcalendar import as_local
from streams.cli import app
from streams.cli.agency import GROUP_TUNING, READ_COMMITTED, catalogue_or_exit, local_time, resolve_agency
from streams.cli.platform import load_settings

err = Console(stderr=True, highlight=False, soft_wrap=True)
EXIT_BROKER, EXIT_USAGE = 1, 2
SEVERITY_STYLE = {"info": "cyan", "warning": "yellow", "critical": "bold red"}


def _exit(message: str, code: int = EXIT_USAGE) -> NoReturn:
    err.print(message)
    raise typer.Exit(code)


def parse_since(value: str | None, option: str = "--since") -> datetime | None:
    """``YYYY-MM-DD`` (midnight, Shanghai) or an ISO datetime (Shanghai when it has no offset)."""
    if not value:
        return None
    try:
        return hotline_time(datetime.fromisoformat(value))  # 0001-01-01 in Shanghai is before datetime.min in UTC
    except ValueError:
        _exit(f"[red]{option} {esc(repr(value))} is not a date[/red] (YYYY-MM-DD or YYYY-MM-DDTHH:MM, 2000-2099)")


def month_bounds(value: str) -> tuple[datetime, datetime]:
    """``YYYY-MM``: from its first day's midnight to the next month's (Shanghai), as the console's 上月."""
    from streams.reports import parse_month

    try:
        return parse_month(value)
    except ValueError:
        _exit(f"[red]--month {esc(repr(value))} is not a month[/red] (YYYY-MM, 2000-2099)")


def period_words(start: datetime | None, end: datetime | None) -> str:
    """" since 2026-11-01 00:00", " until ...", or both, in Shanghai time; empty for all time."""
    def shown(moment: datetime) -> str:
        return as_local(moment).strftime("%Y-%m-%d %H:%M")

    return (f" since {shown(start)}" if start else "") + (f" until {shown(end)} (not included)" if end else "")


def _ledger_and_catalogue(agency: str | None) -> tuple[Any, Any, Any, str | None]:
    from streams.db import LedgerUnavailable, NotMigrated, open_migrated

    settings = load_settings()
    catalogue = catalogue_or_exit(settings)
    code = resolve_agency(agency, catalogue) if agency else None
    try:
        ledger = open_migrated(settings)
    except LedgerUnavailable as exc:
        _exit(f"[red]{esc(str(exc))}[/red]", EXIT_BROKER)
    except NotMigrated as exc:
        _exit(f"[red]{esc(str(exc))}[/red]")
    return settings, ledger, catalogue, code


# --- alerts ---------------------------------------------------------------------------------------------
def stored_alerts(ledger: Any, *, agency: str | None, since: datetime | None) -> list[dict[str, Any]]:
    """The ledger's alerts as published (AlertRaised JSON), oldest first."""
    from sqlalchemy import select

    from models import ledger as t

    with ledger.session() as s:
        q = select(t.Alert).order_by(t.Alert.raised_at, t.Alert.alert_key)
        if agency:
            q = q.where(t.Alert.agency == agency)
        if since is not None:
            q = q.where(t.Alert.raised_at >= since)
        return [a.payload or {"alert_key": a.alert_key, "rule": a.rule, "level": a.level, "severity": a.severity,
                              "message": a.message, "raised_at": a.raised_at.isoformat(), "ticket_id": a.ticket_id,
                              "agency": a.agency, "deadline": a.deadline.isoformat() if a.deadline else None}
                for a in s.scalars(q)]


def alerts_table(alerts: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for name in ("raised", "severity", "rule", "level", "ticket", "agency", "deadline", "message"):
        table.add_column(name, no_wrap=name not in ("message",))
    for a in alerts:
        sev = str(a.get("severity") or "")
        table.add_row(local_time(a.get("raised_at")), f"[{SEVERITY_STYLE.get(sev, '')}]{esc(sev)}[/]",
                      esc(str(a.get("rule") or "")), esc(str(a.get("level") or "")), esc(str(a.get("ticket_id") or "")),
                      esc(str(a.get("agency") or "")), local_time(a.get("deadline")), esc(str(a.get("message") or "")))
    return table


WIDE_ENOUGH = 140  # below this many columns the table is unreadable: one block per alert instead


def render(console: Console, alerts: list[dict[str, Any]], title: str) -> None:
    if console.width >= WIDE_ENOUGH:
        console.print(alerts_table(alerts, title))
        return
    if title:
        console.print(f"[bold]{esc(title)}[/bold]")
    for a in alerts:
        sev = str(a.get("severity") or "")
        head = [local_time(a.get("raised_at")), f"[{SEVERITY_STYLE.get(sev, '')}]{esc(sev)}[/]",
                esc(f"{a.get('rule')}/{a.get('level')}"), esc(str(a.get("ticket_id") or "")),
                esc(str(a.get("agency") or ""))]
        console.print("  ".join(h for h in head if h))
        console.print(f"    {esc(str(a.get('message') or ''))}", soft_wrap=True)


FOLLOW_LOOKBACK = 1000  # messages per partition of supervision.alerts read again when following starts


class NoAlertsTopic(Exception):
    """The broker has no supervision.alerts (no worker has run against it yet)."""


def _follower(bootstrap: str) -> Any:
    """A reader of every partition of supervision.alerts (assigned by hand, no consumer group to share them
    with), placed *before* the ledger is read: an alert raised while the ledger is read and shown is after
    these positions, and is shown. A worker records an alert once the broker has acknowledged it, so one
    acknowledged but not yet recorded when the ledger is read is just below them: the last
    ``FOLLOW_LOOKBACK`` messages of each partition are read again, and those the ledger showed are skipped by
    ``alert_key``."""
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    from streams.app import SUPERVISION_ALERTS

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="hotline-alerts", enable_auto_commit=False,
                             isolation_level=READ_COMMITTED, **GROUP_TUNING)
    try:
        parts = consumer.partitions_for_topic(SUPERVISION_ALERTS) or set()
        if not parts:
            raise NoAlertsTopic(f"[red]{SUPERVISION_ALERTS} does not exist on the broker yet[/red]: start "
                                "`hotline worker`")
        tps = [TopicPartition(SUPERVISION_ALERTS, p) for p in sorted(parts)]
        consumer.assign(tps)
        # the embedded broker answers an end short of its last batch (docs/guarantees.md): earlier, skips nothing
        starts, ends = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(starts[tp], ends[tp] - FOLLOW_LOOKBACK))
    except BaseException:
        consumer.close(autocommit=False)
        raise
    return consumer


def _tail(consumer: Any, *, agency: str | None, since: datetime | None, seen: set[str], as_json: bool,
          out: Console) -> None:
    """Follow supervision.alerts from the follower's positions (:func:`_follower`): every follower sees every
    alert, deduped by alert_key against what was already shown (a redelivered alert has the same key)."""
    from streams.app import SUPERVISION_ALERTS

    try:
        err.print(f"following {SUPERVISION_ALERTS} (Ctrl-C stops)")
        while True:
            for records in consumer.poll(timeout_ms=1000).values():
                for m in records:
                    try:
                        a = json.loads(m.value)
                        key = a["alert_key"]
                    except (json.JSONDecodeError, KeyError, TypeError):
                        err.print(f"[yellow]skipped a message that is not an alert at {m.topic}[{m.partition}]"
                                  f"@{m.offset}[/yellow]")
                        continue
                    if key in seen or (agency and a.get("agency") != agency):
                        continue
                    if since is not None and a.get("raised_at") and datetime.fromisoformat(a["raised_at"]) < since:
                        continue
                    seen.add(key)
                    if as_json:
                        typer.echo(json.dumps(a, ensure_ascii=False))
                    else:
                        render(out, [a], "")
    finally:
        consumer.close(autocommit=False)


@app.command()
def alerts(
    follow: bool = typer.Option(False, "--follow", "-f", help="then keep showing new alerts from supervision.alerts"),
    as_json: bool = typer.Option(False, "--json", help="one AlertRaised JSON line per alert, as published"),
    agency: str | None = typer.Option(None, "--agency", help="only alerts about this agency (code)"),
    since: str | None = typer.Option(None, "--since", help="only alerts raised from this date (YYYY-MM-DD)"),
) -> None:
    """Show the supervision alerts recorded in the ledger (overdue, early warnings, misrouting ...)."""
    settings, ledger, _catalogue, code = _ledger_and_catalogue(agency)
    when = parse_since(since)
    out = Console(highlight=False, soft_wrap=False)
    follower, unfollowed = None, ""
    try:
        if follow:  # before the ledger is read: an alert raised meanwhile is on the topic after this point
            from kafka.errors import KafkaError

            from streams.broker import BrokerUnavailable, client_bootstrap

            try:
                follower = _follower(client_bootstrap(settings))
            except BrokerUnavailable as exc:  # the ledger's alerts are still shown, then the reason
                unfollowed = f"[red]{esc(str(exc))}[/red]"
            except NoAlertsTopic as exc:
                unfollowed = str(exc)
            except KafkaError as exc:
                unfollowed = f"[red]lost the broker while following alerts:[/red] {esc(str(exc))}"
        found = stored_alerts(ledger, agency=code, since=when)
    except BaseException:
        if follower is not None:
            follower.close(autocommit=False)
        raise
    finally:
        ledger.dispose()
    if as_json:
        for a in found:
            typer.echo(json.dumps(a, ensure_ascii=False))
    elif found:
        render(out, found, f"{len(found)} alert(s)" + (f" about {code}" if code else ""))
    elif not follow:
        err.print("no alerts" + (f" about {code}" if code else "") + (f" since {since}" if since else ""))
    if unfollowed:
        _exit(unfollowed, EXIT_BROKER)
    if follower is None:
        return
    from kafka.errors import KafkaError

    try:
        _tail(follower, agency=code, since=when, seen={a["alert_key"] for a in found}, as_json=as_json, out=out)
    except KafkaError as exc:
        _exit(f"[red]lost the broker while following alerts:[/red] {esc(str(exc))}", EXIT_BROKER)
    except KeyboardInterrupt:
        pass


# --- report -----------------------------------------------------------------------------------------------
def figures_table(rows: list[dict[str, Any]], catalogue: Any, title: str) -> Table:
    from streams.reports import percent  # one rounding for every place a rate is shown

    table = Table(title=title, title_justify="left")
    for name in ("agency", "name", "dispatched", "sign-for on time", "resolved on time", "returns",
                 "first-time right", "overdue", "avg handling (wd)", "repeated", "alerts by rule"):
        table.add_column(name, justify="left" if name in ("agency", "name", "alerts by rule") else "right")
    for r in rows:
        a = catalogue.agencies.get(r["agency"])
        table.add_row(r["agency"], a.name if a else "", str(r["dispatched"]), percent(r["sign_on_time_rate"]),
                      percent(r["resolution_on_time_rate"]), percent(r["return_rate"]),
                      percent(r["first_time_right_rate"]),
                      str(r["overdue"]), "—" if r["average_handling_working_days"] is None
                      else f"{r['average_handling_working_days']:.1f}", str(r["repeated_complaints"]),
                      ", ".join(f"{k} {v}" for k, v in r["alerts"].items()))
    return table


@app.command()
def report(
    agency: str | None = typer.Option(None, "--agency", help="only this agency (code)"),
    since: str | None = typer.Option(None, "--since", help="dispatches from this date (YYYY-MM-DD); default: all"),
    until: str | None = typer.Option(None, "--until",
                                     help="dispatches before this date (YYYY-MM-DD, not included); default: now"),
    month: str | None = typer.Option(None, "--month", help="one calendar month (YYYY-MM), e.g. for 月度考核"),
    as_json: bool = typer.Option(False, "--json", help="the figures as one JSON document"),
    as_csv: bool = typer.Option(False, "--csv", help="the figures as CSV with Chinese headers (UTF-8), for a "
                                                     "spreadsheet"),
    digest: bool = typer.Option(False, "--digest",
                                help="yesterday's figures per agency plus the tickets open past a deadline "
                                     "(for a daily crontab line)"),
) -> None:
    """Per-agency figures: dispatched, sign-for and resolution on time, returns, first-time right, overdue.

    Computed from the ledger against the same deadlines (working-day calendar) the supervision stream uses.
    """
    from streams.reports import day_bounds, digest_text, figures, figures_csv
    from streams.wiring import clock_for_settings

    if as_json and as_csv:
        _exit("[red]give one of --json and --csv[/red]")
    settings, ledger, catalogue, code = _ledger_and_catalogue(agency)
    now = clock_for_settings(settings).now().astimezone(SHANGHAI)  # a demo's simulated "yesterday" too
    try:
        if digest:
            if since or until or month:
                _exit("[red]--digest covers yesterday; it takes no --since, --until or --month[/red]")
            day: date = (now - timedelta(days=1)).date()
            start, end = day_bounds(day)
        elif month:
            if since or until:
                _exit("[red]--month is a period of its own; it takes no --since or --until[/red]")
            start, end = month_bounds(month)
        else:
            start, end = parse_since(since), parse_since(until, "--until")
            if start and end and end <= start:
                _exit(f"[red]--until {esc(until or '')} is not after --since {esc(since or '')}[/red]")
        figs = figures(ledger, catalogue, now=now, since=start, until=end, agency=code)
    finally:
        ledger.dispose()
    rows = [f.to_dict() for f in figs.values()]
    if as_json:
        typer.echo(json.dumps({"generated_at": now.isoformat(), "since": start.isoformat() if start else None,
                               "until": end.isoformat() if end else None, "agencies": rows}, ensure_ascii=False))
    elif as_csv:
        typer.echo(figures_csv(figs, catalogue), nl=False)
    elif digest:
        typer.echo(digest_text(figs, catalogue, day), nl=False)
    elif rows:
        Console(highlight=False, soft_wrap=False, width=200).print(
            figures_table(rows, catalogue, "per-agency figures" + period_words(start, end)))
    else:
        err.print("no dispatches" + (f" to {code}" if code else "") + period_words(start, end))
