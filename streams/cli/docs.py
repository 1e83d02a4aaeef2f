"""Contract documents: ``schemas write|check`` — the JSON Schemas and the AsyncAPI document under ``docs/``.

Both are generated from the code (``models.schemas``) and committed, so other teams can integrate
without reading our code; ``tests/unit/test_schemas.py`` fails when they are stale.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from config.catalogue import CatalogueError, load_catalogue
from config.settings import Settings
from models.schemas import WRITE_COMMAND, stale_files, write_schemas
from streams.cli import app

err = Console(stderr=True, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

schemas_app = typer.Typer(help="消息契约: JSON Schemas + AsyncAPI of the topics, generated from the code.",
                          no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")

OutDir = typer.Option(Path("docs"), "--out", help="folder for asyncapi.yaml and schemas/*.schema.json")
DataDir = typer.Option(None, "--data-dir",
                       help="domain data folder for the agency list (default: the shipped data)")


def _agencies(data_dir: Path | None) -> dict[str, str]:
    try:
        catalogue = load_catalogue(data_dir)
    except CatalogueError as exc:
        err.print(f"[red]domain data has {len(exc.problems)} problem(s); run `hotline catalogue check`[/red]")
        raise typer.Exit(1) from None
    return {code: a.name for code, a in catalogue.agencies.items()}


def embedded_host() -> str:
    """The documented embedded-broker host: the settings' default, not this machine's override."""
    return str(Settings.model_fields["embedded_host"].default)


@schemas_app.command("write")
def write(out_dir: Path = OutDir, data_dir: Path | None = DataDir) -> None:
    """(Re)generate the JSON Schemas and the AsyncAPI document."""
    for path in write_schemas(out_dir, _agencies(data_dir), embedded_host()):
        out.print(f"wrote {path}")


@schemas_app.command("check")
def check(out_dir: Path = OutDir, data_dir: Path | None = DataDir) -> None:
    """Exit 1 when the files under --out differ from what the code generates now."""
    stale = stale_files(out_dir, _agencies(data_dir), embedded_host())
    for rel in stale:
        err.print(f"[red]stale[/red] {out_dir / rel}")
    if stale:
        err.print(f"regenerate with `{WRITE_COMMAND}` and commit the result")
        raise typer.Exit(1)
    out.print(f"ok: {out_dir} matches the code")
