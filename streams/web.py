"""HTTP views served by the worker's own web server (faust/aiohttp): ``GET /healthz`` only.

Liveness and readiness for orchestrators (docker compose health checks). Everything people and other
systems use over HTTP — intake, the ledger's view of a ticket, actions, the console — is the separate
web console (``streams.console``, ``hotline web``), which authenticates every request.
"""

from __future__ import annotations

import asyncio

from faust.web import Request, Response, View
from sqlalchemy import text

from streams.app import app
from streams.wiring import services


def _ping_ledger() -> None:
    with services().ledger.session() as s:
        s.execute(text("SELECT 1"))


@app.page("/healthz")
class Health(View):
    """Liveness and readiness: 200 when the worker runs and its ledger answers, else 503."""

    async def get(self, request: Request) -> Response:
        try:
            await _run_with_timeout()
        except Exception as exc:  # any failure = not ready; say why
            return self.json({"status": "unavailable", "ledger": str(exc).splitlines()[0]}, status=503)
        return self.json({"status": "ok"})


async def _run_with_timeout() -> None:
    loop = asyncio.get_running_loop()
    # Not services().db(): that one retries forever, a health check must answer promptly.
    await asyncio.wait_for(loop.run_in_executor(None, _ping_ledger), timeout=3)
