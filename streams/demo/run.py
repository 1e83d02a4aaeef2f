"""``hotline demo``: the whole product on one machine, fed a scripted week of tickets on a sped-up clock.

What runs, and who owns it:

* this process owns the embedded broker (Tansu, memory only) and stops it last;
* the router worker (``hotline worker``) and the web console (``python -m streams.demo.web``) run as child
  processes in sessions of their own. Ctrl-C reaches only this process, which then stops them in order —
  the ticket player first, then web and worker with SIGTERM (their own graceful shutdown), then the
  broker — so nothing is cut off mid-write and no child prints a traceback into the terminal. On Linux
  the children also get SIGTERM if this process dies without cleaning up (``PR_SET_PDEATHSIG``);
* the ticket player (:mod:`streams.demo.player`) runs in a thread here, the progress display in the
  main thread.

The demo's data lives in ``<data dir>/demo`` and is wiped at every start: topics on the embedded broker
are memory-only, so a ledger left from an earlier run would hold tickets the new broker never saw (the
scripted ids repeat, so the old rows would also swallow the new tickets). A fresh directory keeps ledger,
topics and the simulated clock (``clock.json``) in step. Logs of all three parts stay there afterwards.

Simulated time: one hour per real second by default (``--speed`` or ``HOTLINE_CLOCK_SPEED`` change it).
The week then takes 168 s (2.8 min): long enough to follow a ticket, short enough to watch whole. Office
hours pass in 9 s, the general sign-for limit (one working day) in ~24 s, so overdue warnings and alerts
show within the first minute; urgent limits (15 min) pass in a quarter of a second, so urgent tickets go
overdue: that is the clock, not the router. The week starts on Monday 08:30 of the latest plain week
(``HOTLINE_CLOCK_ORIGIN`` overrides), and the clock starts when the worker is ready.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from pydantic import SecretStr
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from config.settings import Settings, get_settings
from models.clock import Clock
from streams.broker import die_with_parent
from streams.demo.scenario import DEFAULT_SEED, DEFAULT_TICKETS
from streams.runner import QUIET_LOGGERS

log = logging.getLogger(__name__)

DEMO_SPEED = 3600.0  # simulated seconds per real second: see the module docstring
DEMO_DIR = "demo"
DEMO_MODEL_DIR = "demo-model"
MARKER = ".hotline-demo"  # only a directory carrying this is ever wiped
READY_MARK = "[^Worker]: Ready"  # faust's line once the worker runs its agents
WORKER_START_TIMEOUT = 120.0
QUICK_MODEL_PER_MATTER = 15  # a model good enough for the demo's tickets, trained in a fraction of the time
WEEKDAYS_ZH = "一二三四五六日"
EXIT_INTERRUPTED = 130


class DemoError(RuntimeError):
    """The demo cannot start or had to stop; the message says why and where to look."""


@dataclass
class DemoOptions:
    speed: float | None = None  # None: HOTLINE_CLOCK_SPEED when set, else DEMO_SPEED
    seed: int = DEFAULT_SEED
    tickets: int = DEFAULT_TICKETS
    web: bool = True
    patience: float = 60.0  # real seconds a player step may wait for the worker before it is given up


# --- stopping -------------------------------------------------------------------------------------------
@dataclass
class Stop:
    """Set by SIGINT/SIGTERM; a second signal asks for a forced stop (kill instead of waiting)."""

    event: threading.Event = field(default_factory=threading.Event)
    signal: int | None = None
    force: bool = False

    def handler(self, signum: int, _frame: FrameType | None) -> None:
        if self.event.is_set():
            self.force = True
        self.signal = self.signal or signum
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()


@contextlib.contextmanager
def signals_to(stop: Stop) -> Iterator[None]:
    previous = {s: signal.signal(s, stop.handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class Child:
    """A child process with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name, self.log_path = name, log_path
        self._log = open(log_path, "wb")  # kept open for the child's lifetime, closed in wait()
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=die_with_parent())

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def terminate(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()

    def wait(self, timeout: float, stop: Stop) -> bool:
        """Wait for the exit; a forced stop (second Ctrl-C) kills at once. True when it exited by itself."""
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline and not stop.force:
            time.sleep(0.05)
        clean = not self.alive()
        if not clean:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait(timeout=5)
        self._log.close()
        return clean


# --- preparing ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """One demo per data directory: a second one would wipe the first one's ledger under it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as fh:
        try:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - Windows: no lock, the user runs one demo
            pass
        except OSError:
            raise DemoError(f"another `hotline demo` is running on {path.parent} (lock {path.name}); "
                            "stop it first, or point HOTLINE_DATA_DIR elsewhere") from None
        yield


def fresh_dir(path: Path) -> None:
    """Empty ``path`` for a new run; refuse to wipe a directory the demo did not make."""
    if path.exists():
        if any(path.iterdir()) and not (path / MARKER).exists():
            raise DemoError(f"{path} exists and was not made by `hotline demo`; move it away or set "
                            "HOTLINE_DATA_DIR to another directory")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MARKER).write_text("made by `hotline demo`; wiped at its next start\n", encoding="utf-8")


def ensure_model(base: Settings, console: Console) -> Path:
    """The model directory to use: yours when it holds a usable model, else a quick demo model.

    The full team model takes over a minute to train on a small machine; the demo's own
    (``QUICK_MODEL_PER_MATTER`` texts per matter) trains in a fraction of that, routes the scripted
    tickets well, and lives in ``<data dir>/demo-model`` so it never replaces a model you trained.
    """
    from classifier.model import ModelError, read_metadata, verify_signature
    from classifier.training import team_dataset, train
    from config.catalogue import load_catalogue

    for folder in (base.resolved_model_dir, base.data_dir / DEMO_MODEL_DIR):
        try:
            meta = read_metadata(folder / "current")
            verify_signature(meta, base.signing_key, folder)  # one the worker would refuse is not usable
        except ModelError:
            continue
        console.print(f"  model: {meta['version']} ({folder})")
        return folder
    folder = base.data_dir / DEMO_MODEL_DIR
    console.print(f"  model: none in {base.resolved_model_dir} — training a quick demo model into {folder} "
                  "(`hotline train` builds the full one, which the demo then uses)")
    started = time.monotonic()
    catalogue = load_catalogue(base.domain_data_dir)
    path, report = train(team_dataset(catalogue, per_matter=QUICK_MODEL_PER_MATTER), catalogue, folder,
                         threshold=base.confidence_threshold, signing_key=base.signing_key)
    console.print(f"  model: {path.name} trained in {time.monotonic() - started:.0f}s "
                  f"(hold-out accuracy {report['accuracy']:.3f})")
    return folder


def port_or_free(host: str, port: int) -> int:
    """``port`` when nothing listens there, else a free one (a second console or a dev server may hold it)."""
    from streams.broker import free_port

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
            return port
        except OSError:
            return free_port(host)


def child_env(settings: Settings) -> dict[str, str]:
    """The environment of a child: the demo's settings, every one spelled out as ``HOTLINE_*``.

    Explicit values win over a ``.env`` in the working directory, so worker, web and player agree
    (same data directory, broker, model and clock). The database password is not passed: the demo's
    ledger is SQLite, and a production password has no business in a demo's environment.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    for name, value in settings.model_dump().items():
        if value is None or name == "database_password":
            continue
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
        elif isinstance(value, datetime):
            text = value.isoformat()
        elif isinstance(value, list | tuple | dict | set):
            text = json.dumps(list(value) if isinstance(value, set | tuple) else value)  # how pydantic reads them
        else:
            text = str(value)
        env[f"HOTLINE_{name.upper()}"] = text
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def demo_settings(base: Settings, *, demo_dir: Path, bootstrap: str, model_dir: Path, speed: float,
                  origin: datetime) -> Settings:
    overrides: dict[str, Any] = {
        "data_dir": demo_dir, "database_url": "", "database_password": None, "kafka_bootstrap": bootstrap,
        "model_dir": model_dir, "clock_speed": speed, "clock_origin": origin,
        "worker_web_port": port_or_free(base.worker_web_host, base.worker_web_port),
    }
    if hasattr(base, "web_port"):
        overrides["web_port"] = port_or_free(base.web_host, base.web_port)
    return get_settings(**overrides)


def client_env(settings: Settings) -> str:
    """What a client command (``hotline queue``/``act``/``alerts``/``report``) needs to join this demo: its data
    directory and its clock. With the data directory alone a command runs on real time beside the simulated
    week (a digest of the wrong day, actions stamped weeks off); another speed or origin would restart the
    shared clock, so both are spelled exactly."""
    origin = settings.clock_origin.isoformat() if settings.clock_origin is not None else ""
    return (f"HOTLINE_DATA_DIR={shlex.quote(str(settings.data_dir))} HOTLINE_CLOCK_SPEED={settings.clock_speed!r} "
            f"HOTLINE_CLOCK_ORIGIN={origin}")


def demo_speed(base: Settings, given: float | None) -> float:
    """``--speed``, else ``HOTLINE_CLOCK_SPEED`` when it was set to something other than real time."""
    if given is not None:
        if given <= 0:
            raise DemoError("--speed must be positive")
        return float(given)
    return base.clock_speed if base.clock_speed != 1.0 else DEMO_SPEED


def console_available() -> str | None:
    """None when the web console can be served, else why not."""
    try:
        import streams.console as web

        if not callable(getattr(web, "serve", None)):
            return "streams.console has no serve()"
        from streams.console import app as _app  # noqa: F401  (loads FastAPI, uvicorn, templates)
    except ImportError as exc:
        return f"the web console is not installed ({exc})"
    return None


def seed_users(ledger: Any, catalogue: Any) -> tuple[list[Any], str | None]:
    """The console's demo logins, or why there are none."""
    try:
        from streams.console.accounts import ensure_demo_users
    except ImportError as exc:
        return [], f"no demo accounts ({exc})"
    try:
        return list(ensure_demo_users(ledger, catalogue)), None
    except Exception as exc:  # e.g. the schema has no users table yet: the demo runs without logins
        log.exception("seeding the demo users failed")
        return [], f"could not create the demo accounts: {exc}"


# --- the display ----------------------------------------------------------------------------------------
def when_zh(moment: datetime | None) -> str:
    if moment is None:
        return "--"
    return f"周{WEEKDAYS_ZH[moment.weekday()]} {moment:%m-%d %H:%M}"


def figures_line(f: Any) -> str:
    return (f"received {f.tickets} · routed {f.routed} · manual now {f.manual} · returns {f.returns} · "
            f"alerts {f.alerts}" + (f" · refused {f.refused}" if f.refused else ""))


def logins_table(logins: list[Any]) -> Table:
    table = Table(title="demo logins", title_justify="left", show_edge=False, pad_edge=False)
    for col in ("user", "password", "role", "agency"):
        table.add_column(col)
    for login in logins:
        agency = f"{login.agency} {login.agency_name or ''}".strip() if login.agency else ""
        table.add_row(login.username, login.password, login.role, agency)
    return table


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.2)
    return False


def _setup_file_logging(path: Path, level: str) -> None:
    """This process logs to ``demo.log``: the terminal shows the progress display, not log lines."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name, floor in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(max(floor, logging.getLevelName(level)))


# --- the run --------------------------------------------------------------------------------------------
def run_demo(base: Settings, options: DemoOptions, console: Console) -> int:
    """Run the demo until Ctrl-C (SIGINT, exit code 130) or SIGTERM (0). Raises DemoError on failure."""
    from config.catalogue import load_catalogue
    from streams.demo.scenario import build_scenario, demo_origin, describe

    started = time.monotonic()
    demo_dir = base.data_dir / DEMO_DIR
    speed = demo_speed(base, options.speed)
    with exclusive(base.data_dir / "demo.lock"):
        fresh_dir(demo_dir)
        _setup_file_logging(demo_dir / "demo.log", base.log_level)
        catalogue = load_catalogue(base.domain_data_dir)
        origin = base.clock_origin or demo_origin(catalogue.calendar, date.today())
        scenario = build_scenario(catalogue, origin, seed=options.seed, tickets=options.tickets)
        console.print(f"[bold]12345 work-order router — demo[/bold]  (data: {demo_dir}, fresh for this run)")
        model_dir = ensure_model(base, console)  # before our signal handlers: Ctrl-C here just aborts
        stop = Stop()
        with signals_to(stop):
            _Session(base, options, console, stop, started, demo_dir, speed, origin, model_dir, catalogue,
                     scenario, describe(scenario)).run()
        if stop.signal == signal.SIGINT:
            return EXIT_INTERRUPTED
        return 0


class _Session:
    """One run of the demo: start everything, play, watch, stop everything (in that order)."""

    def __init__(self, base: Settings, options: DemoOptions, console: Console, stop: Stop, started: float,
                 demo_dir: Path, speed: float, origin: datetime, model_dir: Path, catalogue: Any,
                 scenario: Any, summary: str) -> None:
        self.base, self.options, self.console, self.stop = base, options, console, stop
        self.started, self.demo_dir, self.speed, self.origin = started, demo_dir, speed, origin
        self.model_dir, self.catalogue, self.scenario, self.summary = model_dir, catalogue, scenario, summary
        self.broker: Any = None
        self.settings: Settings = base
        self.clock: Clock | None = None
        self.children: list[Child] = []
        self.ledger: Any = None
        self.player: Any = None
        self.player_thread: threading.Thread | None = None
        self.first_routed: float | None = None
        self.first_alert: float | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def run(self) -> None:
        try:
            self._start()
            if not self.stop.is_set():
                self._watch()
        finally:
            self._shutdown()

    # --- start ------------------------------------------------------------------------------------------
    def _start(self) -> None:
        from streams.broker import ADDRESS_FILE, EmbeddedBroker
        from streams.db import Ledger
        from streams.demo.player import Player
        from streams.wiring import clock_for_settings

        con = self.console
        self.broker = EmbeddedBroker(self.base.embedded_host, self.base.embedded_port).start()
        settings = demo_settings(self.base, demo_dir=self.demo_dir, bootstrap=self.broker.bootstrap,
                                 model_dir=self.model_dir, speed=self.speed, origin=self.origin)
        self.settings = settings
        # the client commands (hotline queue/act/alerts with HOTLINE_DATA_DIR=<demo dir>) find the broker here
        (self.demo_dir / ADDRESS_FILE).write_text(self.broker.bootstrap, encoding="utf-8")
        pid = self.broker.process.pid if self.broker.process is not None else "?"
        con.print(f"  broker: embedded Tansu at {self.broker.bootstrap} (memory only, pid {pid})")
        self._upgrade(settings)
        con.print(f"  ledger: {settings.safe_database_url}")
        env = child_env(settings)
        worker = Child("worker", [sys.executable, "-m", "streams.cli", "worker"], env,
                       self.demo_dir / "worker.log")
        self.children.append(worker)
        self.ledger = Ledger.from_settings(settings)
        logins, no_logins = seed_users(self.ledger, self.catalogue) if self.options.web else ([], None)
        con.print(f"  worker: starting (pid {worker.pid}, log {worker.log_path})")
        self._wait_ready(worker)
        if self.stop.is_set():
            return
        # Simulated time starts now, Monday 08:30: the worker is ready, so no ticket meets a stale clock.
        clock = self.clock = clock_for_settings(settings)
        con.print(f"  worker: ready {self.elapsed():.1f}s after start; simulated clock at {when_zh(clock.now())} "
                  f"({self.origin:%Y-%m-%d}), {self.speed:g}x — a simulated week in "
                  f"{7 * 86400 / self.speed / 60:.1f} real minutes")
        self._start_web(settings, env, logins, no_logins)
        con.print(f"  scenario: {self.summary}")
        con.print(f"  try: {escape(client_env(settings))} hotline alerts   (or hotline queue BH-SCJG, "
                  "hotline report)\n  Ctrl-C stops everything.")
        self.player = Player(self.scenario, bootstrap=self.broker.bootstrap, ledger=Ledger.from_settings(settings),
                             clock=clock, catalogue=self.catalogue, stop=self.stop.event,
                             patience=self.options.patience)
        self.player_thread = threading.Thread(target=self._play, name="demo-player", daemon=True)
        self.player_thread.start()

    def _wait_ready(self, worker: Child) -> None:
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while not self.stop.is_set():
            if READY_MARK in worker.log_text():
                return
            if not worker.alive():
                raise DemoError(f"the worker exited with code {worker.proc.returncode} while starting; "
                                f"its log ({worker.log_path}) ends with:\n{worker.tail()}")
            if time.monotonic() > deadline:
                raise DemoError(f"the worker was not ready after {WORKER_START_TIMEOUT:.0f}s; its log "
                                f"({worker.log_path}) ends with:\n{worker.tail()}")
            self.stop.event.wait(0.1)

    @staticmethod
    def _upgrade(settings: Settings) -> None:
        """Migrate the demo's ledger; one a newer version migrated (a demo folder kept across versions) is refused
        with a message, as the worker would refuse it, instead of Alembic's traceback."""
        from streams.db import SchemaAhead, make_engine, migration_status, revision_mismatch, upgrade

        engine = make_engine(settings.resolved_database_url)
        try:
            current, head = migration_status(engine)
        finally:
            engine.dispose()
        if current != head and isinstance(ahead := revision_mismatch(settings.safe_database_url, current, head),
                                          SchemaAhead):
            raise DemoError(str(ahead))
        upgrade(settings.resolved_database_url)

    def _start_web(self, settings: Settings, env: dict[str, str], logins: list[Any], no_logins: str | None) -> None:
        con = self.console
        if not self.options.web:
            con.print("  web console: not started (--no-web)")
            return
        why = console_available()
        if why is not None:
            con.print(f"  [yellow]web console unavailable:[/yellow] {escape(why)}")
            return
        web = Child("web", [sys.executable, "-m", "streams.demo.web"], env, self.demo_dir / "web.log")
        self.children.append(web)
        url = f"http://{settings.web_host}:{settings.web_port}/"
        con.print(f"  web console: [bold]{url}[/bold]  (pid {web.pid}, log {web.log_path})")
        if logins:
            con.print(logins_table(logins))
        elif no_logins:
            con.print(f"  [yellow]{escape(no_logins)}[/yellow]")

    def _play(self) -> None:
        try:
            self.player.run()
        except Exception:  # never take the demo down: the worker and console keep running
            log.exception("the demo player stopped")

    # --- watch ------------------------------------------------------------------------------------------
    def _watch(self) -> None:
        from streams.demo.player import Figures, ledger_figures

        figures = Figures()
        announced_done = False
        web_checked = False
        # Two lines, so that an 80-column terminal shows them whole: the week's progress, then the figures.
        progress = Progress(TextColumn("[bold cyan]{task.fields[clock]}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("steps"), TimeElapsedColumn())
        task = progress.add_task("demo", total=len(self.scenario.steps), clock="--")
        status = Text("")
        with Live(Group(progress, status), console=self.console, refresh_per_second=4) as live:
            say = live.console.print
            while not self.stop.is_set():
                with contextlib.suppress(Exception):  # a locked or busy ledger: next round
                    figures = ledger_figures(self.ledger)
                stats = self.player.stats
                if figures.routed and self.first_routed is None:
                    self.first_routed = self.elapsed()
                    say(f"  first ticket routed {self.first_routed:.1f}s after `hotline demo` started")
                if figures.alerts and self.first_alert is None:
                    self.first_alert = self.elapsed()
                    say(f"  first supervision alert {self.first_alert:.1f}s after start")
                if not web_checked and len(self.children) > 1:
                    web_checked = self._check_web(live.console)
                # the clock's own now: it runs on after the scripted week is over
                progress.update(task, completed=stats.settled, clock=when_zh(self.clock.now() if self.clock else None))
                status.plain = "  " + figures_line(figures)
                if stats.finished and not announced_done:
                    announced_done = True
                    say(f"  the scripted week is played ({stats.submitted} tickets, {stats.acted} actions"
                        f"{f', {stats.gave_up} given up' if stats.gave_up else ''}); the clock runs on — "
                        "overdue reminders keep coming. Ctrl-C stops everything.")
                for child in [c for c in self.children if not c.alive()]:
                    if child.name == "worker":  # without the worker nothing moves: stop the demo
                        raise DemoError(f"the worker exited with code {child.proc.returncode}; its log "
                                        f"({child.log_path}) ends with:\n{child.tail()}")
                    # the console is a window on the ledger: the demo goes on without it
                    say(f"  [yellow]the web console exited with code {child.proc.returncode}[/yellow]; see "
                        f"{child.log_path}. The demo goes on without it.")
                    child.wait(0, self.stop)
                    self.children.remove(child)
                self.stop.event.wait(0.5)
        if not self.console.is_terminal:
            self.console.print()  # a log file or pipe: end the last status line

    def _check_web(self, con: Console) -> bool:
        settings = self.settings
        if wait_for_port(settings.web_host, settings.web_port, 0.05):
            con.print(f"  web console answering at http://{settings.web_host}:{settings.web_port}/ "
                      f"({self.elapsed():.1f}s after start)")
            return True
        return False

    # --- stop -------------------------------------------------------------------------------------------
    def _shutdown(self) -> None:
        """Player, then web and worker together (SIGTERM, their graceful stop), then the broker."""
        self.stop.event.set()
        con = self.console
        stopped: list[str] = []
        if self.player_thread is not None:
            self.player_thread.join(timeout=5)
            stopped.append("player")
        for child in self.children:
            child.terminate()
        for child in self.children:
            clean = child.wait(timeout=15, stop=self.stop)
            stopped.append(child.name if clean else f"{child.name} (killed)")
        if self.broker is not None:
            self.broker.stop()
            stopped.append("broker")
            with contextlib.suppress(OSError):
                from streams.broker import ADDRESS_FILE

                (self.demo_dir / ADDRESS_FILE).unlink()
        if self.ledger is not None:
            self.ledger.dispose()
        if self.player is not None:
            self.player.ledger.dispose()
        if stopped:
            timing = ""
            if self.first_routed is not None:
                timing = f"; first routed ticket after {self.first_routed:.1f}s"
                if self.first_alert is not None:
                    timing += f", first alert after {self.first_alert:.1f}s"
            con.print(f"stopped: {', '.join(stopped)}{timing}. The demo's ledger and logs stay in "
                      f"{self.demo_dir} until the next `hotline demo`.")
