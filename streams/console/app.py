"""The console's ASGI application: FastAPI with server-rendered pages (Jinja2) and the HTTP API.

``create_app`` wires settings, ledger, catalogue and the topic producer into one :class:`Console`, mounts
the pages (signed session cookies) and ``/api`` (bearer tokens), and turns every refusal into a clear
response: JSON ``{"error", "message"}`` under ``/api``, an HTML page elsewhere. ``serve`` runs it with
uvicorn until SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from config.settings import Settings
from models import word_index
from models.directory import Catalogue
from streams.console.publisher import Publisher
from streams.console.service import Console, ConsoleError
from streams.db import Ledger

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
SECRET_FILE = "web.secret"
SESSION_COOKIE = "hotline_session"
WORD_INDEX_EVERY_S = 2.0  # a round costs one read of the mark when nothing is new
# between two full rounds (a backlog): at most 200 tickets a second, ~4% of a core. Background upkeep yields to the
# routing, as autovacuum's cost delay does: in a burst the workers keep the cores, and the search reads the few
# thousand tickets left behind directly (~1 us each) until the index has caught up
WORD_INDEX_BACKLOG_PAUSE_S = 0.5
API_DESCRIPTION = """\
12345 热线工单智能分拨的 HTTP 接口：受理工单、查询工单、对工单办理（签收、退单、延期、办结、派单……）、
督办预警与考核指标。

**认证**：每个请求在 `Authorization` 头中带 `Bearer <令牌>`；令牌由管理员用 `hotline users token 用户名`
生成，只显示一次。没有或无效的令牌得到 401；承办单位查询非本单位的工单与查询不存在的工单一样得到 404
（不透露工单是否存在）。

**分页**：`GET /api/tickets` 每页至多 `limit` 张，最新受理的在前；还有更多时响应带
`Link: </api/tickets?...&before=<游标>>; rel="next"`，按它逐页取完，不会漏掉或重复工单。

**手机号**：来电号码只对当前承办单位显示全号，其他人看到的是 `138****5678`。按来电号码查询而查不到来电人的
次数过多时，该用户（或该网络地址）的号码查询暂停一段时间（429，`Retry-After` 头给出秒数）。

**异步**：办理动作写入 `tickets.events` 后立即返回 202（`status: submitted`）；路由工作进程随后按工单状态机
校验并记入台账，被拒绝的动作连同原因出现在工单的 `events` 中（`accepted: false`）。
"""


class LoginRequired(Exception):
    """A page needs a logged-in user (GET: redirect to the log-in page; otherwise 401)."""


def session_secret(settings: Settings) -> str:
    """``HOTLINE_WEB_SECRET``, or a secret generated once and kept in ``<data_dir>/web.secret`` (mode 0600),
    so sessions survive a restart of the console and every console on that data directory agrees."""
    if settings.web_secret is not None and settings.web_secret.get_secret_value().strip():
        return settings.web_secret.get_secret_value().strip()
    path = settings.data_dir / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # made before (or by a console starting at the same moment)
        secret = path.read_text(encoding="utf-8").strip()
        if len(secret) >= 32:
            return secret
        raise RuntimeError(f"{path} holds no usable secret; delete it (a new one is made) or set "
                           "HOTLINE_WEB_SECRET") from None
    secret = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secret + "\n")
    return secret


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api")


def error_response(request: Request, status: int, code: str, message: str, **extra: Any) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="hotline"'} if status == 401 and wants_json(request) else None
    if wants_json(request):
        return JSONResponse({"error": code, "message": message, **extra}, status_code=status, headers=headers)
    from streams.console.pages import render_error

    return render_error(request, status, message)


def create_app(settings: Settings, *, ledger: Ledger | None = None, catalogue: Catalogue | None = None,
               publisher: Publisher | None = None) -> FastAPI:
    """The console for ``settings``; tests may pass their own ledger, catalogue or publisher."""
    from config.catalogue import load_catalogue
    from streams.console import api, pages

    console = Console(settings, ledger or Ledger.from_settings(settings),
                      catalogue or load_catalogue(settings.domain_data_dir), publisher or Publisher(settings))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        indexing = asyncio.create_task(keep_word_index(console))
        yield
        indexing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await indexing
        console.publisher.close()
        console.ledger.dispose()

    app = FastAPI(title="12345 热线工单智能分拨 API", version="1", description=API_DESCRIPTION, lifespan=lifespan,
                  openapi_url="/api/openapi.json", docs_url=None, redoc_url=None)  # Swagger UI needs a CDN
    app.state.console = console

    @app.middleware("http")
    async def _schema_current(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        # inside the session middleware (added after it, so outside of this one): error pages show the user.
        # A console left running after a newer version's `hotline db upgrade` stops serving, pages and API alike
        writes = request.method not in ("GET", "HEAD", "OPTIONS")  # looked at before each, not every 10 s
        moved = await run_in_threadpool(functools.partial(console.schema_moved, writes=writes)) \
            if console.schema_check_due(writes=writes) else console.schema_moved()
        if moved is not None and not request.url.path.startswith("/static/"):
            return error_response(request, 503, "schema_moved",
                                  f"系统已升级（账本修订 {moved.found}），本控制台仍是旧版本（{moved.expected}），"
                                  f"请管理员以新版本重启控制台。/ {moved} ({moved.advice})")
        return await call_next(request)

    app.add_middleware(SessionMiddleware, secret_key=session_secret(settings), session_cookie=SESSION_COOKIE,
                       max_age=int(settings.web_session_hours * 3600), same_site="lax", https_only=False)

    @app.exception_handler(ConsoleError)
    async def _console_error(request: Request, exc: ConsoleError) -> Response:
        response = error_response(request, exc.status, exc.code, exc.message, **exc.extra)
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        if request.method == "GET":  # back to the same view after log-in, filters and all
            query = f"?{request.url.query}" if request.url.query else ""
            return RedirectResponse(f"/login?next={quote(request.url.path + query)}", status_code=303)
        return error_response(request, 401, "unauthorized", "登录已过期或尚未登录，请重新登录后再操作。")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        reasons = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return error_response(request, 400, "invalid_request", f"请求参数有误：{reasons}", reasons=reasons)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        messages = {404: "没有这个页面或接口。", 405: "不支持该请求方法。"}
        return error_response(request, exc.status_code, "not_found" if exc.status_code == 404 else "http_error",
                              messages.get(exc.status_code, str(exc.detail)))

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(api.router)
    app.include_router(pages.router)
    return app


async def keep_word_index(console: Console, every: float = WORD_INDEX_EVERY_S) -> None:
    """Keep the search's word index up with the ledger (``models.word_index``): a round every ``every`` seconds,
    and every ``WORD_INDEX_BACKLOG_PAUSE_S`` while a batch comes back full (a burst, or the whole ledger after a
    rebuild). Searches meanwhile read the tickets not indexed yet directly (SQLite: those after the mark;
    PostgreSQL: those queued), so they find them all the same."""
    while True:
        try:
            done = await run_in_threadpool(console.catch_up_word_index)
        except SQLAlchemyError as exc:  # locked or unreachable: the next round tries again
            log.warning("word index: catching up failed (%s); again in %.0f s", exc.__class__.__name__, every)
            done = 0
        except Exception:  # anything else is a bug, but one round's must not stop the index for good
            log.exception("word index: catching up failed; again in %.0f s", every)
            done = 0
        await asyncio.sleep(every if done < word_index.CATCH_UP_BATCH else min(every, WORD_INDEX_BACKLOG_PAUSE_S))


def make_server(settings: Settings) -> Any:
    """A uvicorn server for the console; ``.run()`` blocks, ``.should_exit = True`` stops it (e.g. from
    another thread: uvicorn installs its SIGINT/SIGTERM handlers only when run in the main thread)."""
    import uvicorn

    config = uvicorn.Config(create_app(settings), host=settings.web_host, port=settings.web_port,
                            log_level=settings.log_level.lower(), access_log=settings.log_level == "DEBUG",
                            server_header=False)
    return uvicorn.Server(config)


def serve(settings: Settings) -> None:
    """Run the console with uvicorn on ``HOTLINE_WEB_HOST:HOTLINE_WEB_PORT``; returns on SIGINT/SIGTERM."""
    make_server(settings).run()
