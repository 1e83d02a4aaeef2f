"""The agencies' and dispatchers' side: ``hotline queue`` reads a queue, ``hotline act`` acts on a ticket.

Both are plain kafka-python clients of the topic contract, exactly what an agency's own system would
be: ``queue`` consumes ``tickets.routed.<code>`` (or ``tickets.manual``) in the reader's own consumer
group and commits only what it has shown; ``act`` writes one lifecycle event to ``tickets.events``.
``act`` checks the event's shape only: the worker's lifecycle stage decides whether it is allowed in
the ticket's current state, and records refusals with their reason.
"""

from __future__ import annotations

import difflib
import getpass
import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from enum import StrEnum
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape as esc
from rich.table import Table
from rich.text import Text

from models.directory import Catalogue
from models.lifecycle import RATINGS, RETURN_REASONS, Role
from models.tickets import ID_PATTERN, SHANGHAI, shown_ticket
from models.workcalendar import as_local
from streams.cli import app
from streams.cli.platform import domain_data_errors, load_settings

err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_BROKER, EXIT_USAGE = 1, 2
# kafka-python's defaults (10 s session, 300 s max poll interval, which it also sends as the rebalance
# timeout) make a group join on the embedded broker take ~25 s; these bring it to a few seconds.
GROUP_TUNING: dict[str, int] = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000,
                                "max_poll_interval_ms": 10000}
# Under exactly_once the worker writes the queues in transactions: show only committed messages, never
# one of a transaction the broker aborted. Without transactions it changes nothing.
READ_COMMITTED = "read_committed"
JOIN_TIMEOUT_S = 30.0  # how long to wait for the group to hand us the queue's partitions
IDLE_S = 3.0  # without --follow: stop when nothing new arrived for this long after assignment


def _exit(message: str, code: int = EXIT_USAGE) -> NoReturn:
    err.print(message)
    raise typer.Exit(code)


def catalogue_or_exit(settings: Any) -> Catalogue:
    """The catalogue of ``settings``, or exit 2 with the errors and the command that lists them."""
    from config.catalogue import CatalogueError, load_catalogue

    try:
        return load_catalogue(settings.domain_data_dir)
    except CatalogueError as exc:
        _exit(domain_data_errors(exc))


def near_matches(given: str, catalogue: Catalogue, n: int = 6) -> list[str]:
    """Agency codes close to ``given``: similar codes, codes starting with it, names containing it."""
    codes = list(catalogue.agencies)
    upper = given.strip().upper()
    similar = difflib.get_close_matches(upper, codes, n=n, cutoff=0.6)
    prefixed = [c for c in codes if upper and c.startswith(upper)]
    named = [c for c, a in catalogue.agencies.items() if given.strip() and given.strip() in a.name]
    return list(dict.fromkeys([*similar, *prefixed, *named]))[:n]


def resolve_agency(given: str, catalogue: Catalogue, what: str = "agency code") -> str:
    """The catalogue's code for ``given`` (case-insensitive), or exit 2 naming the near matches."""
    by_upper = {c.upper(): c for c in catalogue.agencies}
    code = by_upper.get(given.strip().upper())
    if code is not None:
        return code
    near = near_matches(given, catalogue)
    hint = ("; did you mean: " + ", ".join(f"{c} ({catalogue.agencies[c].name})" for c in near)) if near \
        else f"; the {len(catalogue.agencies)} agencies are listed in {catalogue.source}/agencies.yaml"
    _exit(f"[red]unknown {what}[/red] {esc(repr(given))}{esc(hint)}")


# --- queue ------------------------------------------------------------------------------------


def local_time(value: Any) -> str:
    """An ISO time from a message, in the hotline's local time, to the minute."""
    if not isinstance(value, str):
        return ""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return value
    return as_local(when).strftime("%Y-%m-%d %H:%M")


def _short(value: Any, width: int) -> str:
    text = " ".join(str(value or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def masked_for_dispatchers(ticket: dict[str, Any]) -> dict[str, Any]:
    """A routed ticket as the dispatchers may see it: the caller's number masked in the field and wherever it is
    written in the title or text, as the console shows them (only the handling agency sees the full number)."""
    return shown_ticket(ticket, reveal=False)


def queue_table(tickets: list[dict[str, Any]], *, manual: bool, title: str) -> Table:
    """The readable view of a batch of RoutedTicket messages."""
    table = Table(title=title, show_lines=False, title_justify="left")
    table.add_column("ticket", no_wrap=True)
    table.add_column("received", no_wrap=True)
    if manual:
        table.add_column("why manual")
        table.add_column("suggestion")
    table.add_column("matter")
    table.add_column("address")
    table.add_column("urgency", no_wrap=True)
    table.add_column("conf.", justify="right")
    table.add_column("text")
    if not manual:
        table.add_column("legal basis")
    for t in tickets:
        conf = t.get("confidence")
        attempt = t.get("attempt")
        # the routing's number, as the console's 分拨说明 says it: an attempt counts the manual queue too, so it is
        # no count of dispatches (第N次派发)
        again = f" 第{attempt}次分拨" if isinstance(attempt, int) and attempt > 1 else ""
        row = [str(t.get("ticket_id", "")) + again, local_time(t.get("received_at"))]
        if manual:
            # another producer's message may carry anything here: one bad field must not stop the queue
            alternatives = t.get("alternatives") if isinstance(t.get("alternatives"), list) else []
            suggestion = t.get("agency") or next(
                (a.get("agency") for a in alternatives if isinstance(a, dict) and a.get("agency")), "")
            reason = ("指定承办 · " if t.get("designation") else "") + str(t.get("reason") or t.get("decision") or "")
            row += [_short(reason, 40), str(suggestion or "")]
        row += [str(t.get("matter_name") or t.get("matter") or ""), _short(t.get("address"), 30),
                str(t.get("urgency") or ""), f"{conf:.2f}" if isinstance(conf, int | float) else "",
                _short(t.get("text"), 50)]
        if not manual:
            row.append(_short(t.get("basis"), 40))
        table.add_row(*row)
    return table


WIDE_ENOUGH = 120  # below this many columns a table of tickets is unreadable: one block per ticket instead


def render(console: Console, tickets: list[dict[str, Any]], *, manual: bool, title: str) -> None:
    """Print tickets as a table on a wide terminal, as compact blocks on a narrow one."""
    if console.width >= WIDE_ENOUGH:
        console.print(queue_table(tickets, manual=manual, title=title))
        return
    console.print(f"[bold]{esc(title)}[/bold]")
    room = max(20, console.width - 12)

    def fit(value: Any) -> Text:  # by terminal cells: a Chinese character takes two
        text = Text(" ".join(str(value or "").split()))
        text.truncate(room, overflow="ellipsis")
        return text

    for t in tickets:
        conf = t.get("confidence")
        head = [f"[bold]{t.get('ticket_id', '')}[/bold]", local_time(t.get("received_at")),
                str(t.get("matter_name") or t.get("matter") or "?"),
                f"conf {conf:.2f}" if isinstance(conf, int | float) else "", str(t.get("urgency") or "")]
        console.print("  ".join(h for h in head if h))
        lines = [("why", t.get("reason") or t.get("decision"))] if manual else []
        lines += [("at", t.get("address")), ("", t.get("text"))] + ([] if manual else [("basis", t.get("basis"))])
        for label, value in lines:
            if value:
                console.print(Text(f"    {label}: " if label else "    ") + fit(value))


class QueueReader:
    """Read one queue in a consumer group; commit only what the caller says it has shown."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        from kafka import KafkaConsumer

        self.topic, self.group = topic, group
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, client_id=f"hotline-{group}", enable_auto_commit=False,
            auto_offset_reset="earliest", isolation_level=READ_COMMITTED, **GROUP_TUNING)
        self.pending: dict[Any, int] = {}  # partition -> next offset to commit
        self.floor: dict[Any, int] = {}  # partition -> the group's position before --from-beginning rewound it
        self.buffered: list[Any] = []  # records a poll returned while we waited for the assignment

    def topic_exists(self) -> bool:
        return self.topic in self.consumer.topics()

    def join(self, *, from_beginning: bool, timeout: float = JOIN_TIMEOUT_S) -> bool:
        """Subscribe and wait for the group's assignment; rewind to the start when asked."""
        self.consumer.subscribe([self.topic])
        deadline = time.monotonic() + timeout
        while not self.consumer.assignment():
            if time.monotonic() > deadline:
                return False
            for records in self.consumer.poll(timeout_ms=500).values():
                self.buffered.extend(records)
        if from_beginning:
            self.buffered = []
            # re-showing old tickets must not move the group's position back: the next plain reading would
            # show them again as new
            self.floor = {tp: self.consumer.committed(tp) or 0 for tp in self.consumer.assignment()}
            self.consumer.seek_to_beginning(*self.consumer.assignment())
        return True

    def batches(self, *, follow: bool, idle: float = IDLE_S) -> Iterator[list[Any]]:
        """Message batches; without ``follow`` stop at the end offsets seen now (or after ``idle`` s)."""
        if self.buffered:
            batch, self.buffered = self.buffered, []
            yield batch
        ends = {} if follow else self.consumer.end_offsets(list(self.consumer.assignment()))
        last_data = time.monotonic()
        while True:
            if not follow and all(self.read_to(tp, end) for tp, end in ends.items()):
                return
            polled = self.consumer.poll(timeout_ms=1000)
            batch = [m for records in polled.values() for m in records]
            if batch:
                last_data = time.monotonic()
                yield batch
            elif not follow and time.monotonic() - last_data > idle:
                return

    def read_to(self, tp: Any, listed_end: int) -> bool:
        """Whether this partition is read to its end. The end is the last fetch's high watermark: ListOffsets
        (``listed_end``) answers short on the embedded broker (the last record batch's base offset + 1), and
        a reader stopping there could leave the rest of that batch unshown. Before the first fetch, only an
        empty log counts as read."""
        highwater = self.consumer.highwater(tp)
        if highwater is None:
            return listed_end == 0
        return self.consumer.position(tp) >= max(listed_end, highwater)

    def shown(self, message: Any) -> None:
        from kafka.structs import TopicPartition

        self.pending[TopicPartition(message.topic, message.partition)] = message.offset + 1

    def commit(self) -> None:
        from kafka.errors import KafkaError
        from kafka.structs import OffsetAndMetadata

        if not self.pending:
            return
        try:
            self.consumer.commit({tp: OffsetAndMetadata(max(off, self.floor.get(tp, 0)), "", -1)
                                  for tp, off in self.pending.items()})
            self.pending.clear()
        except KafkaError as exc:  # a rebalance took the partition: the next reader shows them again
            err.print(f"[yellow]could not commit the queue position ({esc(str(exc))}); these tickets may be shown "
                      "again next time[/yellow]")

    def close(self) -> None:
        self.consumer.close(autocommit=False)


@app.command()
def queue(
    agency_code: str | None = typer.Argument(None, metavar="[AGENCY_CODE]",
                                             help="agency whose queue to read (omit with --manual)"),
    manual: bool = typer.Option(False, "--manual", help="read the dispatchers' queue tickets.manual instead "
                                "(callers' numbers masked, as in the console)"),
    follow: bool = typer.Option(False, "--follow", "-f", help="keep waiting for new tickets (Ctrl-C stops)"),
    as_json: bool = typer.Option(False, "--json", help="one RoutedTicket JSON line per ticket, as published "
                                 "(--manual: with the caller's number masked)"),
    from_beginning: bool = typer.Option(False, "--from-beginning",
                                        help="show every ticket still on the queue, not only unseen ones"),
    limit: int | None = typer.Option(None, "--limit", min=1, help="show at most N tickets"),
) -> None:
    """Show the tickets routed to an agency (tickets.routed.<code>) or to the dispatchers (--manual).

    Reads in the consumer group agency.<code> (dispatchers: "dispatchers") and commits what it has
    shown, so the next call shows only what is new. Without --follow it reads what is there and exits.
    The dispatchers' queue shows callers' numbers masked (138****5678), also inside the text.
    """
    from streams.app import TICKETS_MANUAL, routed_topic_name
    from streams.broker import BrokerUnavailable, client_bootstrap

    settings = load_settings()
    if manual == (agency_code is not None):
        _exit("[red]name an agency code, or pass --manual for the dispatchers' queue (not both)[/red]\n"
              "  hotline queue BH-SCJG       hotline queue --manual")
    if manual:
        topic, group, title = TICKETS_MANUAL, "dispatchers", "manual queue (dispatchers)"
    else:
        assert agency_code is not None
        catalogue = catalogue_or_exit(settings)
        code = resolve_agency(agency_code, catalogue)
        topic, group = routed_topic_name(code), f"agency.{code}"
        title = f"{code} {catalogue.agencies[code].name}"
    try:
        bootstrap = client_bootstrap(settings)
    except BrokerUnavailable as exc:
        _exit(f"[red]{esc(str(exc))}[/red]", EXIT_BROKER)
    from kafka.errors import KafkaError

    try:
        reader = QueueReader(bootstrap, topic, group)
    except KafkaError as exc:
        _exit(f"[red]cannot connect to the broker at {bootstrap}:[/red] {esc(str(exc))}", EXIT_BROKER)
    out = Console(highlight=False, soft_wrap=False)
    shown = 0
    unshown = False  # read and marked shown but not printed yet: Ctrl-C must not commit them
    try:
        if not reader.topic_exists():
            _exit(f"[red]the queue {topic} does not exist on the broker yet[/red]: start `hotline worker` "
                  "(it creates every agency's queue)", EXIT_BROKER)
        if not reader.join(from_beginning=from_beginning):
            _exit(f"[red]the consumer group {group} was not assigned {topic} within {JOIN_TIMEOUT_S:.0f}s"
                  "[/red]; is another reader of this group holding every partition?", EXIT_BROKER)
        seen: set[str] = set()
        collected: list[dict[str, Any]] = []
        for batch in reader.batches(follow=follow):
            unshown = True
            fresh: list[tuple[str, dict[str, Any]]] = []
            for message in batch:
                if limit is not None and shown + len(fresh) >= limit:
                    break
                reader.shown(message)
                raw = (message.value or b"").decode("utf-8", "replace")
                try:
                    data = json.loads(raw)
                    routing_id = data["routing_id"]
                    # anyone can write to the topic: a routing id that is no text would crash the set below,
                    # before the commit, and the same message would stop every later reading of the queue
                    if not isinstance(routing_id, str) or not routing_id:
                        raise TypeError("routing_id")
                except (json.JSONDecodeError, KeyError, TypeError, RecursionError):
                    err.print(f"[yellow]skipped a message that is not a routed ticket at "
                              f"{message.topic}[{message.partition}]@{message.offset}[/yellow]")
                    continue
                if routing_id in seen:  # at-least-once delivery: a republication is shown once
                    continue
                seen.add(routing_id)
                if manual:  # dispatchers never see a caller's full number, here as in the console
                    data = masked_for_dispatchers(data)
                    raw = json.dumps(data, ensure_ascii=False)
                fresh.append((raw, data))
            shown += len(fresh)
            if as_json:
                for raw, _ in fresh:
                    typer.echo(raw)
            elif follow and fresh:
                render(out, [d for _, d in fresh], manual=manual, title=title)
            else:
                collected.extend(d for _, d in fresh)
            if as_json or follow:
                reader.commit()
                unshown = False
            if limit is not None and shown >= limit:
                break
        if collected:
            render(out, collected, manual=manual, title=title)
        unshown = False
        reader.commit()
        if not shown and not follow:
            err.print(f"nothing new on {topic} for group {group}"
                      + ("" if from_beginning else " (--from-beginning shows what was already seen)"))
    except KeyboardInterrupt:
        if not unshown:
            reader.commit()
        else:  # a table is printed only at the end: what was read but not printed stays new
            err.print(f"stopped before the tickets read were shown; they stay new for group {group}")
    except KafkaError as exc:
        _exit(f"[red]lost the broker while reading {topic}:[/red] {esc(str(exc))}", EXIT_BROKER)
    finally:
        reader.close()


# --- act --------------------------------------------------------------------------------------


class Action(StrEnum):
    SIGN = "sign"
    RETURN = "return"
    REASSIGN = "reassign"
    EXTEND = "extend"
    APPROVE_EXTENSION = "approve-extension"
    DENY_EXTENSION = "deny-extension"
    RESOLVE = "resolve"
    RATE = "rate"
    REOPEN = "reopen"
    CLOSE = "close"


EVENT_TYPE = {
    Action.SIGN: "signed", Action.RETURN: "returned", Action.REASSIGN: "reassigned",
    Action.EXTEND: "extension_requested", Action.APPROVE_EXTENSION: "extension_approved",
    Action.DENY_EXTENSION: "extension_denied", Action.RESOLVE: "resolved", Action.RATE: "rated",
    Action.REOPEN: "reopened", Action.CLOSE: "closed",
}
DEFAULT_ROLE = {
    Action.SIGN: Role.AGENCY, Action.RETURN: Role.AGENCY, Action.EXTEND: Role.AGENCY, Action.RESOLVE: Role.AGENCY,
    Action.REASSIGN: Role.DISPATCHER, Action.CLOSE: Role.DISPATCHER,
    Action.APPROVE_EXTENSION: Role.SUPERVISOR, Action.DENY_EXTENSION: Role.SUPERVISOR,
    Action.RATE: Role.CALLCENTER, Action.REOPEN: Role.CALLCENTER,
}
# Which options each action takes (beyond --agency/--actor/--role); anything else is refused.
ACCEPTS: dict[Action, set[str]] = {
    Action.SIGN: set(), Action.RETURN: {"reason_code", "basis", "explanation"},
    Action.REASSIGN: {"to", "explanation"}, Action.EXTEND: {"days", "explanation"},
    Action.APPROVE_EXTENSION: {"explanation"}, Action.DENY_EXTENSION: {"explanation"},
    Action.RESOLVE: {"reply"}, Action.RATE: {"rating", "explanation"}, Action.REOPEN: {"explanation"},
    Action.CLOSE: {"explanation"},
}
ReasonCode = StrEnum("ReasonCode", {code: code for code in RETURN_REASONS})  # type: ignore[misc]
Rating = StrEnum("Rating", {r: r for r in RATINGS})  # type: ignore[misc]
RoleChoice = StrEnum("RoleChoice", {r.value: r.value for r in Role if r is not Role.SYSTEM})  # type: ignore[misc]
REASONS_HELP = "; ".join(f"{code} {text}" for code, text in RETURN_REASONS.items())


def build_event(ticket_id: str, action: Action, *, actor: str, role: str, agency: str | None = None,
                options: dict[str, Any] | None = None, now: datetime | None = None) -> dict[str, Any]:
    """The lifecycle event JSON for ``action`` (see models.events); raises ValueError when incomplete."""
    opts = {k: v for k, v in (options or {}).items() if v is not None and v != ""}
    stray = sorted(set(opts) - ACCEPTS[action])
    if stray:
        raise ValueError(f"{', '.join('--' + s.replace('_', '-') for s in stray)} does not apply to {action.value}")
    if role == Role.AGENCY and not agency:
        raise ValueError(f"{action.value} as an agency needs --agency CODE (the acting agency)")
    if action is Action.RETURN:
        if "reason_code" not in opts:
            raise ValueError(f"a return (退单) needs --reason-code, one of: {', '.join(RETURN_REASONS)}")
        if "basis" not in opts and "explanation" not in opts:
            raise ValueError("a return (退单) needs the legal basis (--basis) or an --explanation of why the "
                             "ticket is not this agency's")
    required = {Action.REASSIGN: "to", Action.EXTEND: "days", Action.RESOLVE: "reply", Action.RATE: "rating"}
    if action in required and required[action] not in opts:
        raise ValueError(f"{action.value} needs --{required[action]}")
    if action is Action.EXTEND:
        if not 1 <= int(opts["days"]) <= 30:
            raise ValueError("--days must be between 1 and 30 working days")
        if "explanation" not in opts:
            raise ValueError("an extension request needs an --explanation")
    if action is Action.RESOLVE and not str(opts["reply"]).strip():
        raise ValueError("--reply must not be blank")
    event: dict[str, Any] = {
        "schema_version": 1, "event_id": str(uuid.uuid4()), "ticket_id": ticket_id, "type": EVENT_TYPE[action],
        "actor": actor, "role": role, "occurred_at": (now or datetime.now(SHANGHAI)).astimezone(SHANGHAI).isoformat(),
    }
    if agency:
        event["agency"] = agency
    renamed = {"to": "target_agency", "explanation": "comment" if action is Action.RATE else "explanation"}
    for name, value in opts.items():
        event[renamed.get(name, name)] = str(value) if isinstance(value, StrEnum) else value
    return event


# Event ids derived from the intent (the console's and ``hotline act``'s), in a namespace of their own.
INTENT_NAMESPACE = uuid.UUID("6f1d3c52-8a4e-4c1b-9d0e-12345a0c0501")


def ticket_version(ticket: Any) -> str:
    """A ticket's version as the ledger shows it: its ``updated_at``, which every accepted event and every
    published dispatch moves. A console page or API client sends it back with an action to say what it acted on."""
    return ticket.updated_at.isoformat() if ticket.updated_at is not None else ""


def intent_event_id(ticket_id: str, action: Action, *, actor: str, role: str, agency: str | None,
                    options: dict[str, Any] | None, version: str) -> str:
    """The event id of ``actor`` (as ``role``, for ``agency``) taking ``action`` with ``options`` on the ticket as of
    ``version`` (:func:`ticket_version`): the same for a retried command or a resubmitted form, so the lifecycle and
    the ledger keep one event; different for another action, other options, another actor or a ticket that has
    moved on since."""
    intent = json.dumps([ticket_id, action.value, actor, role, agency, options, version],
                        ensure_ascii=False, sort_keys=True, default=str)
    return str(uuid.uuid5(INTENT_NAMESPACE, intent))


def _ledger_or_none(settings: Any) -> Any:
    """The ledger, or None (quietly) when it cannot be read from here: ``act`` needs only the broker."""
    from sqlalchemy.exc import SQLAlchemyError

    from streams.db import LedgerUnavailable, NotMigrated, open_migrated

    try:
        return open_migrated(settings)
    except (LedgerUnavailable, NotMigrated, SQLAlchemyError):
        return None


def _version_in(ledger: Any, ticket_id: str) -> str:
    """The ticket's version (:func:`ticket_version`) in the ledger; "" while the ledger does not know it yet."""
    from models import ledger as t

    with ledger.session() as s:
        row = s.get(t.Ticket, ticket_id)
        return ticket_version(row) if row is not None else ""


def _recorded(ledger: Any, event_id: str) -> Any:
    """The ledger's row of the event ``event_id``, if it has recorded one."""
    from models import ledger as t

    with ledger.session() as s:
        row = s.get(t.TicketEvent, event_id)
        if row is not None:
            s.expunge(row)
        return row


def _already_recorded(event: dict[str, Any], earlier: Any) -> None:
    """Say what became of the event the ledger already has under this id, instead of sending it again."""
    event_id = event["event_id"]
    if (earlier.ticket_id, earlier.type) != (event["ticket_id"], event["type"]):  # a key reused for another intent
        _exit(f"[red]refused:[/red] the event id {esc(event_id)} is already the {esc(earlier.type)} event of ticket "
              f"{esc(earlier.ticket_id)}; an event with this id would be dropped as a duplicate (use a new "
              "--event-id)")
    outcome = "accepted" if earlier.accepted else f"refused ({earlier.reason or 'no reason given'})"
    err.print(f"{event['type']} for {event['ticket_id']} was sent before with this event id and the worker "
              f"recorded it as {outcome}; not sent again", markup=False)
    typer.echo(event_id)
    if not earlier.accepted:
        raise typer.Exit(EXIT_USAGE)


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


@app.command()
def act(
    ticket_id: str = typer.Argument(..., help="the ticket to act on"),
    action: Action = typer.Argument(..., help="what to do"),
    agency: str | None = typer.Option(None, "--agency", help="acting agency code (needed for agency actions)"),
    actor: str | None = typer.Option(None, "--actor", help="who acts (default: your OS user name)"),
    role: RoleChoice | None = typer.Option(  # type: ignore[valid-type]
        None, "--role", help="default by action: agency for sign/return/extend/resolve; dispatcher for "
        "reassign/close; supervisor for approve/deny-extension; callcenter for rate/reopen"),
    reason_code: ReasonCode | None = typer.Option(  # type: ignore[valid-type]
        None, "--reason-code", help=f"return: why it is not ours — {REASONS_HELP}"),
    basis: str | None = typer.Option(None, "--basis", help="return: the legal basis (law + article)"),
    explanation: str | None = typer.Option(None, "--explanation",
                                           help="return/extend/reassign/...: free text (rate: the comment)"),
    reply: str | None = typer.Option(None, "--reply", help="resolve: the reply given to the citizen"),
    days: int | None = typer.Option(None, "--days", help="extend: working days asked for (1-30)"),
    to: str | None = typer.Option(None, "--to", help="reassign: the target agency code"),
    rating: Rating | None = typer.Option(None, "--rating", help="rate: the citizen's rating"),  # type: ignore[valid-type]
    event_id: str | None = typer.Option(
        None, "--event-id", help="idempotency key: a command run again with the same key sends the same event, "
        "which the worker keeps once. Without it: derived from the action, its options, the actor and the "
        "ticket's state in the ledger (random when the ledger cannot be read)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the event JSON instead of sending it"),
) -> None:
    """Act on a ticket: write one lifecycle event to tickets.events and print its event id.

    Only the event's shape is checked here; the worker decides whether the action is allowed in the
    ticket's current state (a refused event is recorded with its reason and sent to tickets.invalid).
    The event id is the intent's: run again after a timeout, the same command on the same ticket sends the
    same event (kept once), or none when the ledger already has it.
    """
    from streams.app import TICKETS_EVENTS
    from streams.broker import BrokerUnavailable, client_bootstrap

    settings = load_settings()
    if not ID_PATTERN.match(ticket_id):
        _exit(f"[red]{esc(repr(ticket_id))} is not a ticket id[/red] (letters, digits and _ . : - only)")
    from models.events import LEDGER_CHARS, parse_event
    from models.tickets import Rejection

    if event_id is not None and (not ID_PATTERN.match(event_id) or len(event_id) > LEDGER_CHARS["event_id"]):
        _exit(f"[red]--event-id {esc(repr(event_id))} is not an event id[/red] (letters, digits and _ . : - only, "
              f"at most {LEDGER_CHARS['event_id']} characters)")
    chosen_role = role.value if role is not None else DEFAULT_ROLE[action].value
    codes: dict[str, str | None] = {"agency": agency, "to": to}
    if agency or to:
        catalogue = catalogue_or_exit(settings)
        codes = {k: resolve_agency(v, catalogue, f"--{k} agency code") if v else None for k, v in codes.items()}
    options: dict[str, Any] = {"reason_code": reason_code, "basis": basis, "explanation": explanation,
                               "reply": reply, "days": days, "to": codes["to"], "rating": rating}
    try:
        from streams.wiring import clock_for_settings

        event = build_event(ticket_id, action, actor=actor or _default_actor(), role=chosen_role,
                            agency=codes["agency"], now=clock_for_settings(settings).now(), options=options)
    except ValueError as exc:
        _exit(f"[red]refused:[/red] {esc(str(exc))}")
    ledger = _ledger_or_none(settings)
    try:
        if event_id is not None:
            event["event_id"] = event_id
        elif ledger is not None:
            # the options this action takes, as the console states them (absent ones as None)
            intent = {k: None if options[k] in (None, "") else str(options[k]) if isinstance(options[k], StrEnum)
                      else options[k] for k in ACCEPTS[action]}
            event["event_id"] = intent_event_id(ticket_id, action, actor=event["actor"], role=chosen_role,
                                                agency=codes["agency"], options=intent,
                                                version=_version_in(ledger, ticket_id))
        else:
            err.print("the ledger cannot be read from here: a random event id (pass --event-id to make a retry "
                      "safe)")
        checked = parse_event(event)  # the same check the worker applies first
        if isinstance(checked, Rejection):
            _exit(f"[red]refused:[/red] {esc(checked.reason)}")
        value = json.dumps(event, ensure_ascii=False)
        if dry_run:
            typer.echo(value)
            return
        earlier = _recorded(ledger, event["event_id"]) if ledger is not None else None
    finally:
        if ledger is not None:
            ledger.dispose()
    if earlier is not None:
        _already_recorded(event, earlier)
        return
    try:
        bootstrap = client_bootstrap(settings)
    except BrokerUnavailable as exc:
        _exit(f"[red]{esc(str(exc))}[/red]", EXIT_BROKER)
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    producer = None
    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", client_id="hotline-act")
        meta = producer.send(TICKETS_EVENTS, key=ticket_id.encode(), value=value.encode()).get(timeout=15)
    except KafkaError as exc:
        _exit(f"[red]the broker did not take the event:[/red] {esc(str(exc))}", EXIT_BROKER)
    finally:
        if producer is not None:
            producer.close(timeout=5)
    err.print(f"{event['type']} for {ticket_id} by {event['actor']} ({chosen_role}"
              f"{', ' + codes['agency'] if codes['agency'] else ''}) sent to {TICKETS_EVENTS} "
              f"[{meta.partition}]@{meta.offset}; the worker checks it against the ticket's state", markup=False)
    typer.echo(event["event_id"])
