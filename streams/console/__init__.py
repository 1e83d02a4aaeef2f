"""The web console and HTTP API (FastAPI + Jinja2, served by uvicorn; ``hotline web``).

Supervisors, agencies and dispatchers log in here; other systems use ``/api`` with bearer tokens. The
console reads the ledger and writes lifecycle events and tickets to the topics; the worker does the rest.
This package's top level stays light (the CLI imports ``accounts`` without loading FastAPI).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from config.settings import Settings


def create_app(settings: Settings, **kwargs: object) -> FastAPI:
    """The console's ASGI app for ``settings`` (see :func:`streams.console.app.create_app`)."""
    from streams.console.app import create_app as _create

    return _create(settings, **kwargs)  # type: ignore[arg-type]


def serve(settings: Settings) -> None:
    """Run the console with uvicorn until SIGINT/SIGTERM (see :func:`streams.console.app.serve`)."""
    from streams.console.app import serve as _serve

    _serve(settings)


__all__ = ["create_app", "serve"]
