"""``hotline ingest``: replay a CSV or JSONL file (or stdin) onto ``tickets.received``.

Every row passes through :func:`models.tickets.parse_ticket` before it is sent, so the person running
the import learns at once which rows are wrong and why. Rejected rows are reported (row number and
reason), recorded in the ledger and published on ``tickets.invalid`` like any other dead letter.

The reading and mapping below are plain functions (no broker, no database) so they are unit-tested
on their own; :func:`ingest` wires them to kafka-python, the ledger and a progress bar.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape as esc
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from models.clock import Clock
from models.tickets import (
    ID_PATTERN,
    MAX_ID_CHARS,
    Rejection,
    TicketIn,
    content_key,
    parse_ticket,
    shown_payload,
)
from streams.cli import app
from streams.cli.platform import load_settings

console = Console(stderr=True, highlight=False, soft_wrap=True)

FORMATS = ("csv", "jsonl")
EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
# Ticket fields in the order of the flags; the default column name of each is the field name itself.
FIELDS = ("id", "text", "address", "received_at", "title", "request_type", "urgency", "caller_phone", "channel",
          "complex_case")
MAX_REPORTED = 50  # rejected rows listed one by one; past that only the summary counts them

EXIT_OK, EXIT_REJECTED, EXIT_UNUSABLE, EXIT_BROKER = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # Ctrl-C, as the shell reports it


class UnusableInput(Exception):
    """The input as a whole cannot be imported (missing file, unknown format, no text column ...)."""


# --- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One record of the input: its row number as the user sees it, the values, or why it is unreadable."""

    row: int  # the line number in the input (the CSV header is line 1)
    values: dict[str, Any] | None
    raw: str
    error: str | None = None


def detect_format(path: str, given: str | None) -> str:
    """The format from ``--format`` or else the file extension; stdin defaults to JSONL."""
    if given:
        if given not in FORMATS:
            raise UnusableInput(f"unknown --format {given!r}; use csv or jsonl")
        return given
    if path == "-":
        return "jsonl"
    fmt = EXTENSIONS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UnusableInput(f"cannot tell the format of {path} from its extension; "
                            "use .csv or .jsonl, or pass --format csv|jsonl")
    return fmt


def read_csv(stream: IO[str]) -> tuple[list[str], Iterator[Record]]:
    """The header and the records of a CSV stream; raises UnusableInput when there is no header."""
    reader = csv.DictReader(stream)
    try:
        # a BOM read as text (--encoding utf-8 on an Excel export) is no part of the first column's name
        header = [h.replace("\ufeff", "").strip() for h in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise UnusableInput(f"cannot read the CSV header: {exc}") from None
    if not any(header):
        raise UnusableInput("the CSV file is empty (no header row)")
    reader.fieldnames = header  # headers with stray spaces still match the column flags

    def records() -> Iterator[Record]:
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield Record(reader.line_num, None, "", f"unreadable CSV: {exc}")
                continue
            row = reader.line_num  # the line the record ends on: what an editor or spreadsheet shows
            extra = values.pop(None, None)  # type: ignore[call-overload]  # cells beyond the header
            raw = json.dumps(values, ensure_ascii=False)
            if extra:
                yield Record(row, None, raw, f"{len(header) + len(extra)} cells but the header has {len(header)}")
            elif all(v in (None, "") for v in values.values()):
                continue  # a blank line in a spreadsheet export is no ticket and no error
            else:
                yield Record(row, values, raw)

    return header, records()


def read_jsonl(stream: IO[str]) -> Iterator[Record]:
    """One record per non-blank line; lines that are not a JSON object become unreadable records."""
    for number, line in enumerate(stream, start=1):
        # a byte-order mark read as text (--encoding utf-8 on a file saved "with BOM") is no part of the JSON
        text = (line.removeprefix("\ufeff") if number == 1 else line).strip()
        if not text:
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            yield Record(number, None, text, f"not JSON: {exc}")
            continue
        except RecursionError:  # e.g. 200,000 "[": the decoder gives up, the import goes on
            yield Record(number, None, text, "not JSON: nested too deeply")
            continue
        if not isinstance(data, dict):
            yield Record(number, None, text, f"not a JSON object but {type(data).__name__}")
            continue
        yield Record(number, data, text)


# --- mapping ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnMap:
    """Which input column feeds which ticket field; ``explicit`` are those named by a flag."""

    columns: dict[str, str] = field(default_factory=lambda: {f: f for f in FIELDS})
    explicit: frozenset[str] = frozenset()
    id_prefix: str = ""

    @classmethod
    def from_flags(cls, flags: dict[str, str | None], id_prefix: str = "") -> ColumnMap:
        columns = {f: (flags.get(f) or f) for f in FIELDS}
        return cls(columns, frozenset(f for f in FIELDS if flags.get(f)), id_prefix)

    def check_header(self, header: list[str]) -> None:
        """A CSV header must hold the text column and every column named by a flag."""
        missing = [f"{self.columns[f]!r} (for {f})" for f in FIELDS
                   if (f == "text" or f in self.explicit) and self.columns[f] not in header]
        if missing:
            raise UnusableInput(f"no column {', '.join(missing)} in the header; columns found: "
                                f"{', '.join(header)}. Name the right ones with --text-col, --id-col ...")

    def check_first(self, values: dict[str, Any]) -> None:
        """JSONL has no header: the first object stands for the file (a wrong --text-col fails here)."""
        if self.columns["text"] not in values:
            raise UnusableInput(f"the first record has no {self.columns['text']!r} key (keys: "
                                f"{', '.join(values) or 'none'}); name the text key with --text-col")

    def to_ticket(self, values: dict[str, Any]) -> dict[str, Any]:
        """The ticket dict for :func:`parse_ticket`; blank optional cells are left out, ids generated."""
        out: dict[str, Any] = {}
        for f in FIELDS:
            value = values.get(self.columns[f])
            if isinstance(value, str):
                value = value.strip()
                if not value and f != "text":  # an empty text must be rejected, not skipped
                    continue
            if value is None:
                continue
            out[f] = normalise_time(value) if f == "received_at" and isinstance(value, str) else value
        if self.columns["id"] in values:
            if isinstance(out.get("id"), str | int) and not isinstance(out.get("id"), bool):
                out["id"] = f"{self.id_prefix}{out['id']}"
        elif "id" not in self.explicit:  # a named id column that is missing is an error, not a licence
            out["id"] = generated_id(out, self.id_prefix)
        return out


def generated_id(ticket: dict[str, Any], prefix: str = "") -> str:
    """A deterministic id from the ticket's content: importing the same file twice sends the same ids."""
    content = json.dumps({k: ticket[k] for k in sorted(ticket) if k != "id"}, ensure_ascii=False, default=str)
    digest = hashlib.sha1(content.encode()).hexdigest()
    return f"{prefix}h{digest[:20]}"[:MAX_ID_CHARS]


_LOCAL_TIME = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?(.*)$")


def normalise_time(value: str) -> str:
    """Spreadsheet exports write ``2025/3/1 8:05``; make that ISO 8601, leave anything else alone."""
    m = _LOCAL_TIME.match(value.strip())
    if not m:
        return value
    y, mo, d, h, mi, s, rest = m.groups()
    date = f"{y}-{int(mo):02d}-{int(d):02d}"
    if h is None:
        return date + rest
    return f"{date}T{int(h):02d}:{mi}:{s or '00'}{rest}"


def repeated_id(ticket: TicketIn, row: int, raw: str, first_rows: dict[str, int]) -> Rejection | None:
    """A Rejection when an earlier record of this input already used the ticket's id, else None (and the id is
    remembered). The router keeps the first ticket of an id and drops later ones without a word, so a second
    row under the same id would count as sent and never be routed."""
    first = first_rows.setdefault(ticket.id, row)
    if first == row:
        return None
    return Rejection(ticket.id, f"ticket id {ticket.id!r} is already used by row {first} of this input; "
                     "the router keeps only the first ticket of an id", shown_payload(raw)[:2000])


def check_row(record: Record, columns: ColumnMap, *, now: datetime | None = None,
              max_skew: timedelta | None = None) -> TicketIn | Rejection:
    """Turn one record into a ticket, or a Rejection whose reason names what is wrong. ``now`` (the deployment's
    clock) stamps a row without a receipt time; with ``max_skew``, a row received later than ``now`` beyond it
    is rejected, as the router would reject it (:func:`models.tickets.parse_ticket`)."""
    if record.values is None:
        return Rejection(content_key(record.raw), record.error or "unreadable", shown_payload(record.raw)[:2000])
    result = parse_ticket(columns.to_ticket(record.values), now=now, max_skew=max_skew)
    if isinstance(result, Rejection):  # report the row as it was in the file, not our mapped version
        return Rejection(result.key, result.reason, shown_payload(record.raw)[:2000])
    return result


# --- pacing -----------------------------------------------------------------------------------


class TokenBucket:
    """At most ``rate`` takes per second on average, bursts up to ``burst``; sleeps, never spins."""

    def __init__(self, rate: float, burst: float | None = None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate, self.capacity = rate, max(1.0, burst if burst is not None else rate)
        self.clock, self.sleep = clock, sleep
        self.tokens, self.last = self.capacity, clock()

    def take(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1:
            self.sleep((1 - self.tokens) / self.rate)
            self.tokens, self.last = 1.0, self.clock()
        self.tokens -= 1


# --- the command ------------------------------------------------------------------------------


@dataclass
class Outcome:
    sent: int = 0
    rejected: list[tuple[int, Rejection]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # broker delivery errors
    stopped: str | None = None  # why reading stopped early (undecodable input, Ctrl-C)
    interrupted: bool = False  # Ctrl-C: what was sent is still said, and the exit code is 130


def open_input(path: str, encoding: str) -> tuple[IO[str], IO[bytes] | None, int | None]:
    """(text stream, underlying binary file for progress, size in bytes) of a file or stdin."""
    if path == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding=encoding, newline=""), None, None
    p = Path(path)
    if not p.is_file():
        raise UnusableInput(f"no such file: {path}" if not p.exists() else f"not a file: {path}")
    binary = p.open("rb")
    return io.TextIOWrapper(binary, encoding=encoding, newline=""), binary, p.stat().st_size


def source_label(path: str) -> str:
    if path == "-":
        return "stdin"
    label = str(Path(path).resolve())
    return label if len(label) <= 120 else "…" + label[-119:]  # the ledger's dedup key holds 200 chars


@app.command()
def ingest(
    file: str = typer.Argument(..., metavar="FILE|-", help="CSV or JSONL file, or - for stdin"),
    fmt: str | None = typer.Option(None, "--format", help="csv or jsonl (default: by extension; stdin: jsonl)"),
    id_col: str | None = typer.Option(None, "--id-col", help="column of the ticket id (default: id; without "
                                      "such a column ids are generated from the content)"),
    text_col: str | None = typer.Option(None, "--text-col", help="column of the ticket text (default: text)"),
    address_col: str | None = typer.Option(None, "--address-col", help="column of the address (default: address)"),
    received_at_col: str | None = typer.Option(None, "--received-at-col", help="column of the receipt time (default: received_at)"),
    title_col: str | None = typer.Option(None, "--title-col", help="column of the title (default: title)"),
    request_type_col: str | None = typer.Option(None, "--request-type-col", help="column of the request type (咨询/求助/投诉/举报/建议) (default: request_type)"),
    urgency_col: str | None = typer.Option(None, "--urgency-col", help="column of the urgency (紧急/水电气热/一般) (default: urgency)"),
    phone_col: str | None = typer.Option(None, "--phone-col", help="column of the caller's phone (default: caller_phone)"),
    channel_col: str | None = typer.Option(None, "--channel-col", help="column of the channel (default: channel)"),
    complex_col: str | None = typer.Option(None, "--complex-col", help="column saying whether it is a complex case "
                                           "(复杂件: 是/否, true/false, 1/0) (default: complex_case)"),
    id_prefix: str = typer.Option("", "--id-prefix", help="prepended to every ticket id (given or generated)"),
    rate: float | None = typer.Option(None, "--rate", min=0.001, help="at most N tickets per second"),
    limit: int | None = typer.Option(None, "--limit", min=1, help="read at most N records"),
    encoding: str = typer.Option("utf-8-sig", "--encoding", help="text encoding of the input (e.g. gbk)"),
) -> None:
    """Send tickets from a CSV or JSONL file onto tickets.received, validating every row first.

    Rejected rows are listed with their row number and reason, recorded in the ledger and published on
    tickets.invalid. Exit code: 0 all rows sent; 1 some rows rejected; 2 unusable input (missing file,
    no text column, wrong encoding ...); 3 broker unavailable or a delivery failed.
    """
    columns = ColumnMap.from_flags({
        "id": id_col, "text": text_col, "address": address_col, "received_at": received_at_col,
        "title": title_col, "request_type": request_type_col, "urgency": urgency_col,
        "caller_phone": phone_col, "channel": channel_col, "complex_case": complex_col}, id_prefix)
    if id_prefix and not ID_PATTERN.match(id_prefix):
        _unusable(f"--id-prefix {id_prefix!r} may contain only letters, digits and _ . : - "
                  "(and start with a letter or digit)")
    # The input is checked before any broker is contacted: a typo costs no connection timeout.
    try:
        form = detect_format(file, fmt)
        stream, binary, size = open_input(file, encoding)
    except (UnusableInput, LookupError) as exc:  # LookupError: unknown --encoding
        _unusable(str(exc))
    try:
        records = _records(stream, form, columns)
        settings = load_settings()
        from streams.broker import BrokerUnavailable, client_bootstrap

        try:
            bootstrap = client_bootstrap(settings)
        except BrokerUnavailable as exc:
            console.print(f"[red]{esc(str(exc))}[/red]")
            raise typer.Exit(EXIT_BROKER) from None
        from kafka.errors import KafkaError

        try:
            sink = _Sink(bootstrap, settings, source_label(file))
        except KafkaError as exc:
            console.print(f"[red]cannot connect to the broker at {bootstrap}:[/red] {esc(str(exc))}")
            raise typer.Exit(EXIT_BROKER) from None
        from streams.wiring import clock_for_settings, clock_skew

        clock = clock_for_settings(settings)  # the deployment's "now", shared with the worker (demo, tests)
        try:
            outcome = _run(records, columns, sink, binary, size, rate, limit, clock=clock,
                           max_skew=clock_skew(settings, clock))
        finally:
            sink.close()
    finally:
        if file != "-":  # stdin belongs to the caller
            stream.close()
    raise typer.Exit(_summarise(outcome, file))


def _unusable(message: str) -> NoReturn:
    console.print(f"[red]cannot import:[/red] {esc(message)}")
    raise typer.Exit(EXIT_UNUSABLE)


def _records(stream: IO[str], form: str, columns: ColumnMap) -> Iterator[Record]:
    """The input's records after the whole-file checks (header, first record) have passed."""
    try:
        if form == "csv":
            header, records = read_csv(stream)
            columns.check_header(header)
            return records
        records = read_jsonl(stream)
        first = next(records, None)
        if first is None:
            raise UnusableInput("the input holds no records")
        if first.values is not None:
            columns.check_first(first.values)
        return _chain(first, records)
    except UnicodeDecodeError as exc:
        _unusable(f"the input is not {stream.encoding} ({exc.reason}); pass --encoding (e.g. gbk)")
    except UnusableInput as exc:
        _unusable(str(exc))


def _chain(first: Record, rest: Iterator[Record]) -> Iterator[Record]:
    yield first
    yield from rest


class _Sink:
    """Where rows go: valid tickets to tickets.received, rejections to the ledger and tickets.invalid."""

    def __init__(self, bootstrap: str, settings: Any, label: str) -> None:
        from kafka import KafkaProducer

        self.settings, self.label = settings, label
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                                      client_id="hotline-ingest")
        self.ledger: Any = None
        self.ledger_error: str | None = None
        self.failed: list[str] = []

    def _send(self, topic: str, key: str, value: bytes, what: str) -> None:
        from kafka.errors import KafkaError

        try:
            fut = self.producer.send(topic, key=key.encode(), value=value)
        except KafkaError as exc:  # e.g. the broker went away and the send buffer stayed full
            self.failed.append(f"{what}: {exc}")
            return
        fut.add_errback(lambda exc: self.failed.append(f"{what}: {exc}"))

    def ticket(self, ticket: TicketIn) -> None:
        from streams.app import TICKETS_RECEIVED  # faust comes with it: imported when needed, not on --help
        from streams.intake import ticket_json

        self._send(TICKETS_RECEIVED, ticket.id, ticket_json(ticket), ticket.id)

    def rejection(self, row: int, rejection: Rejection) -> None:
        from models.events import InputRejected
        from streams.app import TICKETS_INVALID

        self._record(row, rejection)
        event = InputRejected(key=rejection.key, reason=f"row {row}: {rejection.reason}", source="ingest",
                              payload=rejection.payload, rejected_at=datetime.now(UTC))
        self._send(TICKETS_INVALID, rejection.key, event.dumps(), f"row {row} (dead letter)")

    def flush(self) -> None:
        from kafka.errors import KafkaError

        try:
            self.producer.flush(timeout=30)
        except KafkaError as exc:
            self.failed.append(f"flush: {exc}")

    def _record(self, row: int, rejection: Rejection) -> None:
        """Into the ledger; a ledger that cannot be reached is reported once and does not stop the import."""
        from sqlalchemy.exc import SQLAlchemyError

        from streams.db import LedgerUnavailable, NotMigrated, open_migrated

        if self.ledger_error is not None:
            return
        try:
            if self.ledger is None:  # at the code's revision only: never written the old way after an upgrade
                self.ledger = open_migrated(self.settings)
            # the content hash keeps a corrected re-import's new bad row from hiding behind the old one
            self.ledger.record_rejection(
                dedup_key=f"ingest:{self.label}:{row}:{content_key(rejection.payload)[5:17]}",
                key=rejection.key, source="ingest", reason=f"row {row}: {rejection.reason}",
                payload=rejection.payload)
        except (NotMigrated, LedgerUnavailable) as exc:
            self.ledger_error = str(exc)
            console.print(f"[yellow]rejections are not recorded in the ledger: {esc(self.ledger_error)}[/yellow]")
        except SQLAlchemyError as exc:
            self.ledger_error = str(getattr(exc, "orig", exc) or exc).strip().splitlines()[0]
            console.print(f"[yellow]rejections are not recorded in the ledger "
                          f"({self.settings.safe_database_url}): {esc(self.ledger_error)}; "
                          "run `hotline db upgrade`?[/yellow]")

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.producer.close(timeout=5)
            if self.ledger is not None:
                self.ledger.dispose()


def _run(records: Iterator[Record], columns: ColumnMap, sink: _Sink, binary: IO[bytes] | None,
         size: int | None, rate: float | None, limit: int | None, *, clock: Clock | None = None,
         max_skew: timedelta | None = None) -> Outcome:
    outcome = Outcome()
    bucket = TokenBucket(rate) if rate else None
    progress = Progress(TextColumn("[bold]ingest[/bold]"), BarColumn(), MofNCompleteColumn() if size is None
                        else TextColumn("{task.percentage:>3.0f}%"), TextColumn("{task.fields[counts]}"),
                        TimeElapsedColumn(), console=console, disable=not console.is_terminal)
    with progress:
        task = progress.add_task("ingest", total=size, counts="")
        seen = 0
        first_rows: dict[str, int] = {}  # ticket id -> the row that used it first
        try:
            for record in records:
                if limit is not None and seen >= limit:
                    break
                seen += 1
                result = check_row(record, columns, now=clock.now() if clock is not None else None,
                                   max_skew=max_skew)
                if isinstance(result, TicketIn):
                    result = repeated_id(result, record.row, record.raw, first_rows) or result
                if isinstance(result, Rejection):
                    outcome.rejected.append((record.row, result))
                    if len(outcome.rejected) <= MAX_REPORTED:
                        progress.console.print(f"[yellow]row {record.row}[/yellow] rejected: {esc(result.reason)}")
                    sink.rejection(record.row, result)
                else:
                    if bucket is not None:
                        bucket.take()
                    sink.ticket(result)
                    outcome.sent += 1
                counts = f"{outcome.sent} sent, {len(outcome.rejected)} rejected"
                progress.update(task, completed=binary.tell() if binary is not None else seen, counts=counts)
        except UnicodeDecodeError as exc:
            outcome.stopped = (f"stopped after {seen} records: the input is not valid text ({exc.reason}); "
                               "pass --encoding (e.g. gbk)?")
        except KeyboardInterrupt:  # a replay stopped by hand: say what went (it exited saying nothing)
            outcome.stopped, outcome.interrupted = f"interrupted (Ctrl-C) after {seen} record(s)", True
        if size is not None and outcome.stopped is None:
            progress.update(task, completed=size)
    sink.flush()
    outcome.failed = sink.failed
    return outcome


def _summarise(outcome: Outcome, file: str) -> int:
    source = "stdin" if file == "-" else file
    console.print(f"{outcome.sent} ticket(s) from {source} sent to tickets.received", markup=False)
    if outcome.stopped:
        console.print(f"[red]cannot import the rest:[/red] {esc(outcome.stopped)}")
    for failure in outcome.failed[:10]:
        console.print(f"[red]not delivered:[/red] {esc(failure)}")
    if outcome.rejected:
        rows = ", ".join(str(r) for r, _ in outcome.rejected[:20]) + (" ..." if len(outcome.rejected) > 20 else "")
        console.print(f"[yellow]{len(outcome.rejected)} row(s) rejected[/yellow] (rows {rows}); "
                      "recorded in the ledger and published on tickets.invalid")
    if outcome.failed:
        console.print(f"[red]{len(outcome.failed)} message(s) were not acknowledged by the broker[/red]")
        return EXIT_BROKER
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    if outcome.stopped:
        return EXIT_UNUSABLE
    return EXIT_REJECTED if outcome.rejected else EXIT_OK
