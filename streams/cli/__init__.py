"""The ``hotline`` command line: one Typer app, each command group in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="hotline",
    help="12345 热线工单智能分拨: route hotline tickets to the agency that must handle them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Command groups register themselves on `app` when imported; the order is the --help order.
from streams.cli import agency as _agency  # noqa: E402,F401
from streams.cli import catalogue as _catalogue  # noqa: E402,F401
from streams.cli import classify as _classify  # noqa: E402,F401
from streams.cli import docs as _docs  # noqa: E402,F401
from streams.cli import ingest as _ingest  # noqa: E402,F401
from streams.cli import platform as _platform  # noqa: E402,F401
from streams.cli import supervise as _supervise  # noqa: E402,F401
from streams.cli import web as _web  # noqa: E402,F401


def main() -> None:
    app()
