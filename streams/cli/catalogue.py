"""Domain-data commands: ``catalogue check|stats|owner|address`` and ``sla deadline|limits``."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from config.catalogue import CatalogueError, Problem, build_catalogue, load_calendar, load_catalogue, load_sla
from config.settings import Settings, get_settings
from models.directory import Catalogue
from models.domain import REQUEST_TYPES, URGENCIES
from models.ownership import NoOwner
from models.sla import STAGES
from models.tickets import hotline_time
from models.workcalendar import TZ
from streams.cli import app

err = Console(stderr=True, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

catalogue_app = typer.Typer(
    help="派单目录与权责清单: check the domain data, show figures, ask who owns a matter.",
    no_args_is_help=True,
)
sla_app = typer.Typer(help="时限: deadlines on the official working-day calendar.", no_args_is_help=True)
app.add_typer(catalogue_app, name="catalogue")
app.add_typer(sla_app, name="sla")

DataDir = typer.Option(None, "--data-dir", help="domain data folder (default: settings.domain_data_dir)")


def _data_dir(data_dir: Path | None) -> Path:
    return data_dir if data_dir is not None else _settings().domain_data_dir


def _settings() -> Settings:
    try:
        return get_settings()
    except Exception as exc:  # pydantic ValidationError: a wrong HOTLINE_* variable
        from streams.cli.platform import config_error

        err.print(f"[red]configuration error:[/red] {escape(config_error(exc))}")
        raise typer.Exit(2) from None


def _print_problems(problems: list[Problem]) -> None:
    for p in problems:
        colour = "red" if p.severity == "error" else "yellow"
        err.print(f"[{colour}]{p.severity}[/{colour}] {p}", markup=True, highlight=False)


def _catalogue(data_dir: Path | None) -> Catalogue:
    try:
        return load_catalogue(_data_dir(data_dir))
    except CatalogueError as exc:
        _print_problems(exc.problems)
        err.print("[red]domain data has errors; run `hotline catalogue check`[/red]")
        raise typer.Exit(1) from None


def _parse_moment(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        err.print(f"[red]{option}: not an ISO 8601 date or datetime: {text!r}[/red]")
        raise typer.Exit(2) from None
    try:
        return hotline_time(moment)
    except ValueError as exc:
        err.print(f"[red]{option}: {text!r} {exc}[/red]")
        raise typer.Exit(2) from None


# --- catalogue ------------------------------------------------------------------------------
@catalogue_app.command("check")
def check(data_dir: Path | None = DataDir) -> None:
    """Validate every data file; exit 1 with file: field: reason lines on any error."""
    catalogue, problems = build_catalogue(_data_dir(data_dir))
    _print_problems(problems)
    errors = [p for p in problems if p.severity == "error"]
    if errors or catalogue is None:
        err.print(f"[red]{len(errors)} error(s)[/red], {len(problems) - len(errors)} warning(s)")
        raise typer.Exit(1)
    s = catalogue.stats()
    out.print(
        f"ok: {s.jurisdictions} jurisdictions, {s.streets} 街镇, {s.agencies} agencies "
        f"({s.agency_kinds} kinds), {s.matters} matters, {s.responsibility_items} responsibility items, "
        f"calendar {', '.join(map(str, s.calendar_years))}; {len(problems)} warning(s)"
    )


@catalogue_app.command("stats")
def stats(
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
    data_dir: Path | None = DataDir,
) -> None:
    """Counts of jurisdictions, agencies, kinds, matters, responsibility items, calendar years."""
    catalogue = _catalogue(data_dir)
    s = catalogue.stats()
    figures = {
        "jurisdictions": s.jurisdictions,
        "streets": s.streets,
        "agencies": s.agencies,
        "agency_kinds": s.agency_kinds,
        "matters": s.matters,
        "domains": s.domains,
        "responsibility_items": s.responsibility_items,
        "calendar_years": list(s.calendar_years),
    }
    if as_json:
        typer.echo(json.dumps(figures, ensure_ascii=False))
        return
    table = Table("figure", "value")
    for key, value in figures.items():
        table.add_row(key, ", ".join(map(str, value)) if isinstance(value, list) else str(value))
    out.print(table)


@catalogue_app.command("owner")
def owner(
    matter: str = typer.Argument(..., help="matter code, e.g. CG-003"),
    where: str = typer.Option(..., "--where", help="free-text address"),
    at: str = typer.Option(None, "--at", help="ISO date or datetime (default: now)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    data_dir: Path | None = DataDir,
) -> None:
    """Who must handle MATTER at the address on the date, with the responsibility item and basis."""
    catalogue = _catalogue(data_dir)
    moment: date | datetime = _parse_moment(at, "--at") if at else datetime.now(TZ)
    default = _settings().default_jurisdiction
    if matter not in catalogue.matters:
        err.print(f"[red]unknown matter {matter}[/red]")
        raise typer.Exit(1)
    try:
        placement = catalogue.place(matter, where, moment, default_jurisdiction=default)
    except NoOwner as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    o = placement.ownership
    if as_json:
        data = o.as_dict()
        data["address"] = {
            "resolved": placement.address.resolved,
            "reason": placement.address.reason,
            "defaulted": placement.defaulted,
        }
        typer.echo(json.dumps(data, ensure_ascii=False))
        return
    jur = catalogue.jurisdictions[placement.jurisdiction]
    address_line = placement.address.reason
    if placement.defaulted:
        address_line += f"；按默认辖区 {jur.name} 处理"
    out.print(f"事项    {o.matter.code} {o.matter.name}（{o.matter.domain}）")
    out.print(f"地址    {address_line}")
    out.print(f"辖区    {jur.name}（{jur.code}）" + (f" {o.street.name}" if o.street else ""))
    out.print(f"承办单位 {o.agency.code} {o.agency.name}（{o.agency.kind}）")
    if o.lead and o.co_owners:
        out.print(f"牵头    是（首接负责）；协办：{'、'.join(a.name for a in o.co_owners)}")
    item = o.item
    period = f"{item.effective_from} 起" + (f"，至 {item.effective_to}" if item.effective_to else "")
    out.print(f"权责事项 {item.power.name}（{item.power.type}）[{item.id}]，{period}")
    out.print(f"法律依据 {o.basis}")
    if o.note:
        out.print(f"说明    {o.note}")
    if item.note:
        out.print(f"清单备注 {item.note}")


@catalogue_app.command("address")
def address(
    text: str = typer.Argument(..., help="free-text address"), data_dir: Path | None = DataDir
) -> None:
    """Where an address lies (jurisdiction, 街镇), or why it cannot be placed."""
    catalogue = _catalogue(data_dir)
    r = catalogue.explain_address(text)
    if r.match is None:
        out.print(f"未能定位：{r.reason}")
        raise typer.Exit(1)
    m = r.match
    out.print(
        f"{m.jurisdiction} {catalogue.jurisdictions[m.jurisdiction].name} {m.street_name or ''}".rstrip()
    )
    out.print(f"{r.reason}（{m.method}）")


# --- sla ------------------------------------------------------------------------------------
@sla_app.command("deadline")
def deadline(
    start: str = typer.Option(..., "--from", help="ISO 8601 datetime (naive = Asia/Shanghai)"),
    working_days: int = typer.Option(None, "--working-days", min=0, max=2500, help="N working days (at most 2500, about ten years)"),
    hours: float = typer.Option(None, "--hours", min=0, help="hours on the 24x7 clock"),
    data_dir: Path | None = DataDir,
) -> None:
    """Print the deadline as ISO 8601 with +08:00."""
    if (working_days is None) == (hours is None):
        err.print("[red]give exactly one of --working-days and --hours[/red]")
        raise typer.Exit(2)
    moment = _parse_moment(start, "--from")
    try:
        calendar = load_calendar(_data_dir(data_dir))
    except CatalogueError as exc:
        _print_problems(exc.problems)
        raise typer.Exit(1) from None
    try:
        if hours is not None:
            due = calendar.deadline_hours(moment, hours)
        else:
            due = calendar.deadline_working_days(moment, working_days)
    except (OverflowError, ValueError):  # --hours inf/nan or 1e308, or a deadline past year 9999
        err.print("[red]no such deadline: the amount is too large (or not a number)[/red]")
        raise typer.Exit(2) from None
    typer.echo(due.isoformat())


@sla_app.command("limits")
def limits(
    request_type: str = typer.Option("投诉", "--type", help="/".join(REQUEST_TYPES)),
    urgency: str = typer.Option("一般", "--urgency", help="/".join(URGENCIES)),
    complex_case: bool = typer.Option(False, "--complex", help="a complex case"),
    data_dir: Path | None = DataDir,
) -> None:
    """The time limit of each stage for one kind of ticket."""
    if request_type not in REQUEST_TYPES or urgency not in URGENCIES:
        err.print(f"[red]--type one of {REQUEST_TYPES}, --urgency one of {URGENCIES}[/red]")
        raise typer.Exit(2)
    try:
        rules = load_sla(_data_dir(data_dir))
    except CatalogueError as exc:
        _print_problems(exc.problems)
        raise typer.Exit(1) from None
    table = Table("stage", "limit", "clock", "source")
    for stage in STAGES:
        rule = rules.limit(stage, request_type, urgency, complex_case)
        table.add_row(stage, rule.describe(), rule.clock, rule.source)
    out.print(table)
    out.print(
        f"warnings at {', '.join(f'{f:.0%}' for f in rules.warning_fractions)}; reminder every "
        f"{rules.reminder_every_working_days} working day(s) once overdue; 通报 after "
        f"{rules.censure_after_working_days} working days; the hotline designates the handler after "
        f"{rules.max_dispatch_attempts} returned dispatches"  # what the lifecycle counts (not routings)
    )
