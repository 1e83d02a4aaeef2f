"""Classifier commands: ``train``, ``evaluate``, ``classify``."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from streams.cli import app
from streams.cli.agency import catalogue_or_exit
from streams.cli.platform import domain_data_errors, load_settings

console = Console(stderr=True)


@app.command()
def train(
    data: Path | None = typer.Option(None, "--data", help="CSV or JSONL of your own historical tickets"),
    text_col: str = typer.Option("text", help="column (or JSON key) holding the ticket text"),
    label_col: str = typer.Option("label", help="column holding the label: matter code, domain or agency code"),
    per_matter: int = typer.Option(40, help="team corpus: tickets per matter"),
    corrections: bool = typer.Option(True, "--corrections/--no-corrections",
                                     help="add the dispatchers' corrections stored in the ledger"),
    encoding: str = typer.Option("utf-8-sig", "--encoding", help="--data: text encoding of the file (e.g. gbk)"),
) -> None:
    """Train the matter classifier (default: the team's corpus) and make it the current model.

    The dispatchers' corrections (every manual dispatch, kept in the ledger) are added to the data unless
    --no-corrections: each as the label of the kind being trained (agency, or the candidate matter that
    agency owns for the ticket's place and date; corrections that fit no candidate are skipped)."""
    from classifier.training import Dataset, TrainingDataError, read_labelled, team_dataset
    from classifier.training import train as run_training

    settings = load_settings()
    catalogue = catalogue_or_exit(settings)
    try:
        ds = (read_labelled(data, text_col, label_col, catalogue, encoding=encoding) if data
              else team_dataset(catalogue, per_matter))
    except TrainingDataError as exc:
        # the message quotes the user's labels and path: printed as they are, not read as markup
        console.print(f"[red]cannot train:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    if corrections:
        extra = _corrections(settings, catalogue, ds.label_kind)
        if extra is not None and extra.texts:
            ds = Dataset(ds.texts + extra.texts, ds.labels + extra.labels, ds.label_kind,
                         f"{ds.source} + {len(extra.texts)} dispatcher correction(s)")
    mode = {"matter": "matter codes (full routing through the responsibility list)",
            "domain": "first-level domains (the model names a domain; agencies are chosen by dispatchers)",
            "agency": "agency codes (the model names the agency directly; no matter or legal basis)"}
    console.print(f"training on {len(ds.texts)} tickets from {escape(ds.source)}; "
                  f"labels are {mode[ds.label_kind]}")
    try:
        path, report = run_training(ds, catalogue, settings.resolved_model_dir,
                                    threshold=settings.confidence_threshold, signing_key=settings.signing_key)
    except TrainingDataError as exc:  # one label only, or too few examples to hold some out
        console.print(f"[red]cannot train:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    meta = json.loads((path / "metadata.json").read_text(encoding="utf-8"))
    console.print(f"model {meta['version']} saved in {path} ({meta['train_seconds']}s); hold-out accuracy "
                  f"{report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f}, auto share "
                  f"{report['auto_share']:.2f} at threshold {report['threshold']}")
    typer.echo(meta["version"])


def _corrections(settings, catalogue, label_kind: str):  # type: ignore[no-untyped-def]
    """The ledger's dispatcher corrections, or None (said why) when there is no usable ledger."""
    from sqlalchemy.exc import SQLAlchemyError

    from streams.corrections import load_corrections
    from streams.db import Ledger, migration_status

    if not settings.database_url and not (settings.data_dir / "ledger.sqlite3").is_file():
        return None  # no ledger yet (a fresh install): nothing was corrected, and don't create one
    ledger = Ledger.from_settings(settings)
    try:
        current, head = migration_status(ledger.engine)
        if current != head:
            console.print(f"corrections not used: the ledger is at revision {current or 'none'} "
                          "(run hotline db upgrade)")
            return None
        found = load_corrections(ledger, catalogue, label_kind, settings.default_jurisdiction)
    except SQLAlchemyError as exc:
        console.print(f"corrections not used: cannot read the ledger ({str(exc).splitlines()[0]})")
        return None
    finally:
        ledger.dispose()
    if found.texts or found.skipped:
        console.print(f"dispatcher corrections: {len(found.texts)} used"
                      + (f", {found.skipped} skipped (the chosen agency owns none of the ticket's candidate matters)"
                         if found.skipped else ""))
    return found


@app.command()
def evaluate(
    data: Path = typer.Option(..., "--data", help="CSV or JSONL with text and label"),
    text_col: str = typer.Option("text"),
    label_col: str = typer.Option("label"),
    threshold: float | None = typer.Option(None, help="default: HOTLINE_CONFIDENCE_THRESHOLD"),
    as_json: bool = typer.Option(False, "--json", help="print the report as one JSON object"),
    encoding: str = typer.Option("utf-8-sig", "--encoding", help="text encoding of the file (e.g. gbk)"),
) -> None:
    """Evaluate the current model on labelled tickets (labels: matter codes, domains or agency codes)."""
    from classifier.model import ModelError, load
    from classifier.router import configure_tokenizer
    from classifier.training import TrainingDataError, read_labelled
    from classifier.training import evaluate as run_eval

    settings = load_settings()
    catalogue = catalogue_or_exit(settings)
    try:
        model = load(settings.resolved_model_dir, signing_key=settings.signing_key)
        ds = read_labelled(data, text_col, label_col, catalogue, encoding=encoding)
        configure_tokenizer(model, catalogue)  # the model's own terms, as the router does
        report = run_eval(model, ds.texts, ds.labels, catalogue,
                          threshold=settings.confidence_threshold if threshold is None else threshold,
                          label_kind=ds.label_kind)
    except (ModelError, TrainingDataError) as exc:  # also labels of a kind the model cannot be scored on
        console.print(f"[red]cannot evaluate:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    report["model_version"] = model.version
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False))
        return
    out = Console()
    out.print(f"model {model.version} on {escape(ds.source)}: {report['n']} tickets, "
              f"labels are {report['label_kind']}")
    out.print(f"accuracy {report['accuracy']:.3f}   macro-F1 {report['macro_f1']:.3f}   "
              f"at threshold {report['threshold']}: auto share {report['auto_share']:.2f}, "
              f"precision of auto {report['auto_precision']}")
    table = Table(title="per class")
    for col in ("label", "precision", "recall", "f1", "support"):
        table.add_column(col)
    for label, d in sorted(report["per_class"].items(), key=lambda kv: -kv[1].get("support", 0)):
        table.add_row(label, f"{d['precision']:.2f}", f"{d['recall']:.2f}", f"{d['f1-score']:.2f}",
                      str(int(d["support"])))
    out.print(table)
    out.print("most confused (gold -> predicted): " + "; ".join(
        f"{c['gold']}->{c['predicted']} ×{c['count']}" for c in report["confusions"]))


def _parse_time(value: Any) -> datetime | None:
    """A received time in Shanghai time; ValueError (saying what is wrong) for a malformed or impossible one."""
    if value in (None, ""):
        return None
    from models.tickets import hotline_time

    try:
        dt = datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError("is not an ISO 8601 time") from None
    return hotline_time(dt)


def decision_line(ticket_id: Any, d) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The JSON shape of ``hotline classify --jsonl`` (a contract for scripts)."""
    return {
        "id": ticket_id, "matter": d.matter, "matter_name": d.matter_name, "domain": d.domain,
        "agency": d.agency, "agency_name": d.agency_name, "agency_kind": d.agency_kind,
        "jurisdiction": d.jurisdiction, "street": d.street, "address_resolved": d.address_resolved,
        "confidence": round(d.confidence, 4), "decision": d.decision, "reason": d.reason,
        "alternatives": [{"matter": a.matter, "agency": a.agency, "agency_kind": a.agency_kind,
                          "confidence": a.confidence} for a in d.alternatives],
        "basis": d.basis, "model_version": d.model_version,
    }


@app.command()
def classify(
    text: str | None = typer.Argument(None, help="the ticket text (omit with --jsonl)"),
    address: str | None = typer.Option(None, "--address", help="where the problem is"),
    at: str | None = typer.Option(None, "--at", help="received time, ISO 8601 (default now)"),
    jsonl: bool = typer.Option(False, "--jsonl", help="read JSON lines {id,text,address?,received_at?} "
                                                      "from stdin, write one JSON line each"),
    batch: int = typer.Option(256, help="--jsonl: lines classified together"),
) -> None:
    """Decide where a ticket goes: matter, agency, legal basis, confidence, alternatives."""
    from classifier.model import ModelError
    from classifier.router import Router
    from config.catalogue import CatalogueError

    settings = load_settings()
    try:
        router = Router.load(settings)
    except ModelError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    except CatalogueError as exc:  # the router loads the catalogue first: its errors, not a traceback
        console.print(domain_data_errors(exc))
        raise typer.Exit(2) from None
    if jsonl:
        _classify_stream(router, batch)
        return
    if not text:
        console.print("[red]give a TEXT, or --jsonl to read JSON lines from stdin[/red]")
        raise typer.Exit(2)
    try:
        received = _parse_time(at)
    except ValueError as exc:
        console.print(f"[red]--at {escape(repr(at))} {exc}[/red]")
        raise typer.Exit(2) from None
    d = router.route(text, address, received)
    out = Console()
    label = {"auto": "[green]自动派单[/green]", "manual": "[yellow]转人工[/yellow]",
             "unroutable": "[blue]无需派单[/blue]"}[d.decision]
    out.print(f"{label}  {d.reason}")
    if d.matter:
        out.print(f"事项     {d.matter} {d.matter_name}（{d.domain}）")
    if d.agency:
        out.print(f"承办单位 {d.agency} {d.agency_name}（{d.agency_kind}）")
    out.print(f"辖区     {d.jurisdiction}{' ' + d.street if d.street else ''}"
              f"{'' if d.address_resolved else '（地址未定位，按默认辖区）'}")
    if d.basis:
        out.print(f"法律依据 {d.basis}")
    out.print(f"置信度   {d.confidence:.3f}    模型 {d.model_version}")
    for i, a in enumerate(d.alternatives, 1):
        out.print(f"备选{i}    {a.matter} {a.matter_name} → {a.agency or '无'} {a.agency_name or ''} ({a.confidence:.3f})")


def _classify_stream(router, batch: int) -> None:  # type: ignore[no-untyped-def]
    """One output line per input line, in order; a bad line gets an ``error`` and the stream goes on."""
    from classifier.router import RouteRequest

    pending: list[tuple[int, Any, RouteRequest | None, str | None]] = []

    def flush() -> None:
        good = [(i, r) for i, (_, _, r, _) in enumerate(pending) if r is not None]
        decisions = dict(zip([i for i, _ in good], router.route_many([r for _, r in good]), strict=True))
        for i, (n, tid, _, err) in enumerate(pending):
            _write_line(n, {"id": tid, "error": err} if err else decision_line(tid, decisions[i]))
        _flush_stdout()
        pending.clear()

    for n, raw in enumerate(_stdin_lines(), 1):
        if not raw.strip():
            continue
        tid: Any = None
        try:
            # decoded here, line by line: one bad byte makes one error line, not the end of the stream
            obj = json.loads(raw.removeprefix(b"\xef\xbb\xbf" if n == 1 else b"").decode("utf-8"),
                             parse_constant=_not_json, parse_float=_finite)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
            tid = obj.get("id")
            text = obj.get("text")
            if not isinstance(text, str):
                raise ValueError("'text' must be a string")
            if len(text) > 20_000:
                raise ValueError(f"'text' has {len(text)} characters, more than 20000")
            address = obj.get("address")
            if address is not None and not isinstance(address, str):
                raise ValueError("'address' must be a string")
            try:
                received = _parse_time(obj.get("received_at"))
            except ValueError as exc:
                raise ValueError(f"'received_at' {exc}") from None
            pending.append((n, tid, RouteRequest(text, address, received), None))
        except UnicodeDecodeError as exc:
            pending.append((n, None, None, f"line {n}: not UTF-8 text ({exc.reason} at byte {exc.start})"))
        except RecursionError:
            pending.append((n, tid, None, f"line {n}: not JSON (nested too deeply)"))
        except json.JSONDecodeError as exc:
            pending.append((n, tid, None, f"line {n}: not JSON ({exc})"))
        except (ValueError, TypeError, OverflowError) as exc:
            pending.append((n, tid, None, f"line {n}: {exc}"))
        if len(pending) >= batch:
            flush()
    flush()


def _not_json(token: str) -> Any:
    """NaN and Infinity are Python's extensions, not JSON: an id holding one would be echoed back as a line
    that strict readers (jq, JavaScript, Go) refuse, so such an input line is an error line instead."""
    raise ValueError(f"not JSON ({token} is not a JSON number)")


def _finite(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):  # 1e999 is read as infinity, and would be written back as Infinity
        raise ValueError(f"{token} is too large a number")
    return value


def _stdin_lines() -> Iterator[bytes]:
    """Stdin's lines as bytes (a text stdin without a byte buffer, e.g. in a test, is encoded back)."""
    binary = getattr(sys.stdin, "buffer", None)
    if binary is not None:
        yield from binary
    else:
        for line in sys.stdin:
            yield line.encode("utf-8", "surrogatepass")


def _write_line(n: int, line: dict[str, Any]) -> None:
    """Write one JSON line as UTF-8 bytes. A lone surrogate (``"\\ud800"`` is valid JSON) has no UTF-8 form:
    such a line is written ASCII-escaped, which reads back the same. An id that cannot be written back at
    all (nested deeper than the encoder goes) gets an error line without it."""
    try:
        text = json.dumps(line, ensure_ascii=False)
    except (RecursionError, ValueError, TypeError):
        text = json.dumps({"id": None, "error": f"line {n}: the id cannot be written back (nested too deeply)"})
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        data = json.dumps(line).encode("ascii")
    _write_bytes(data + b"\n")


def _write_bytes(data: bytes) -> None:
    binary = getattr(sys.stdout, "buffer", None)
    if binary is None:  # a text-only stdout (e.g. in a test): our bytes are UTF-8 or ASCII
        sys.stdout.write(data.decode("utf-8"))
    else:
        sys.stdout.flush()  # anything written as text goes out before our bytes
        binary.write(data)


def _flush_stdout() -> None:
    sys.stdout.flush()
    binary = getattr(sys.stdout, "buffer", None)
    if binary is not None:
        binary.flush()
