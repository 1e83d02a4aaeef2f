"""The service's one settings object.

Every value comes from an environment variable with the ``HOTLINE_`` prefix (or a ``.env`` file);
the defaults describe the embedded profile: a broker started by the process itself, SQLite under
the data directory. Components receive the object explicitly; nothing reads the environment on
its own. Host names appear here and nowhere else.
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_FILES_DIR = Path(__file__).resolve().parent / "data"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Settings(BaseSettings):
    # A refused value is never repeated in the error: it may be a secret (the password in a database URL).
    model_config = SettingsConfigDict(
        env_prefix="HOTLINE_", env_file=".env", env_file_encoding="utf-8", extra="ignore",
        hide_input_in_errors=True,
    )

    # --- Kafka -----------------------------------------------------------------------------
    kafka_bootstrap: str = Field(
        default="",
        description="host:port[,host:port] of a Kafka cluster; empty = start the embedded broker",
    )
    embedded_host: str = Field(default="127.0.0.1", description="loopback address of the embedded broker")
    embedded_port: int = Field(default=0, description="port of the embedded broker; 0 = pick a free one")
    topic_partitions: int = Field(default=4, ge=1, le=256, description="partitions per topic")
    topic_replicas: int = Field(default=1, ge=1, description="replication factor of created topics")
    processing_guarantee: str = Field(
        default="at_least_once",
        description="at_least_once, or exactly_once (real Kafka only: needs transactions)",
    )

    # --- worker ----------------------------------------------------------------------------
    worker_web_port: int = Field(default=6066, description="port of the worker's web server")
    worker_web_host: str = Field(default="127.0.0.1", description="address the worker's web server binds")
    # Faust defaults (60 s rebalance / 60 s session / 3 s heartbeat) make a fresh consumer group
    # wait ~30 s on the embedded broker; these were measured to give first consumption in ~5 s.
    broker_rebalance_timeout: float = Field(default=4.0, gt=0, description="consumer-group rebalance timeout (s)")
    broker_session_timeout: float = Field(default=6.0, gt=0, description="consumer-group session timeout (s)")
    broker_fetch_max_wait_ms: int = Field(
        default=100, ge=10, le=5000,
        description="longest a consumer fetch waits for data (faust fixes 1500 ms; the embedded broker "
                    "answers only when the wait expires, so this bounds per-hop latency)")
    stream_batch_wait_ms: int = Field(
        default=10, ge=1, le=5000,
        description="longest the routing and lifecycle stages wait to fill a batch (up to 200) before "
                    "handling what they have: the floor of a quiet ticket's latency, irrelevant under a "
                    "backlog (at 100 tickets/s, 50 ms gave p99 258 ms to the queue, 10 ms 187 ms)")
    producer_linger_ms: int = Field(
        default=5, ge=0, le=1000,
        description="how long the worker's producer gathers messages into one request (faust's default 0 "
                    "sent many small requests: a tenth of the worker's CPU in socket writes)")
    broker_heartbeat_interval: float = Field(default=1.0, gt=0, description="consumer heartbeat interval (s)")
    broker_connect_timeout: float = Field(
        default=120.0, gt=0,
        description="how long a starting worker keeps retrying a Kafka cluster that does not answer (s)")

    # --- web console and HTTP API (streams/console) ------------------------------------------
    web_host: str = Field(default="127.0.0.1", description="address the web console binds")
    web_port: int = Field(default=8080, ge=1, le=65535, description="port of the web console")
    web_secret: SecretStr | None = Field(
        default=None,
        description="key that signs session cookies; empty = generated once and kept in <data_dir>/web.secret")
    web_session_hours: float = Field(
        default=12.0, gt=0, le=24 * 30, description="how long a console log-in lasts (hours)")
    # a search by a caller's number that finds no one tells a user who sees the number masked (138****5678) that a
    # guess at its hidden digits was wrong: these bound the guesses (streams.console.search.NumberSearchThrottle)
    number_search_misses: int = Field(
        default=20, ge=1, le=10_000,
        description="a user's searches by a caller's number that found no one: after this many within "
                    "number_search_window_minutes, the user's number searches are refused for that long")
    number_search_window_minutes: float = Field(
        default=10.0, gt=0, le=24 * 60, description="the window (and the refusal's length) of number_search_misses")
    number_search_misses_per_day: int = Field(
        default=200, ge=1, le=10_000,
        description="after this many number searches that found no one within 24 hours, the user's number searches "
                    "are refused for 24 hours")
    number_search_misses_per_address: int = Field(
        default=60, ge=1, le=100_000,
        description="as number_search_misses, for all users at one client address together (an office behind one "
                    "address shares it)")

    # --- storage ---------------------------------------------------------------------------
    data_dir: Path = Field(default=PROJECT_ROOT / "var", description="where SQLite, models and state live")
    database_url: str = Field(default="", description="SQLAlchemy URL; empty = SQLite under data_dir")
    database_password: SecretStr | None = Field(
        default=None, description="password merged into database_url (keeps it out of logs)"
    )

    # --- classifier ------------------------------------------------------------------------
    model_dir: Path | None = Field(default=None, description="classifier artifacts; default data_dir/models")
    confidence_threshold: float = Field(
        default=0.5, ge=0.0, le=1.0, description="below this the ticket goes to the manual queue"
    )
    model_signing_key: SecretStr | None = Field(
        default=None,
        description="key that signs the models `hotline train` writes (HMAC-SHA256 of their metadata and hash); "
                    "when set, a model not signed with it is refused. Empty = unsigned: any model of ours whose "
                    "hash matches loads")
    default_jurisdiction: str = Field(
        default="BH", description="jurisdiction used when a ticket's address resolves to none"
    )
    classify_processes: int = Field(
        default=0, ge=0, le=16,
        description="child processes the worker classifies in (each imports the libraries and loads the model once, ~4 s of CPU); "
                    "0 = a thread of the worker itself, sharing its GIL with the event loop. Worth it only with "
                    "cores to spare: +4% on this 2-core machine (docs/results.md)")

    # --- supervision -----------------------------------------------------------------------
    supervision_tick_seconds: float = Field(
        default=1.0, gt=0, le=60, description="how often (real seconds) the supervision timer checks deadlines"
    )
    reconcile_seconds: float = Field(
        default=10.0, ge=0, le=3600,
        description="how often (real seconds) a worker checks that every offset of tickets.received below the "
                    "group's committed offset reached the ledger, and routes any that did not; 0 = never")
    reannounce_after_seconds: float = Field(
        default=300.0, ge=0, le=86400,
        description="how long (real seconds) after its publication a routing's 'routed' announcement may still be "
                    "unrecorded by the lifecycle before the reconciler sends it again (a lost announcement would "
                    "leave its ticket unwatched by supervision); looked for in the hour after that, at each "
                    "reconciler round; 0 = never")
    stuck_dispatch_seconds: float = Field(
        default=30.0, ge=0, le=3600,
        description="how often (real seconds) a worker looks for follow-up dispatches (re-routing after a return, "
                    "designation, a dispatcher's reassignment) that have not landed; one still pending at the "
                    "next look is done again (idempotent by routing id); 0 = never")
    max_clock_skew: float = Field(
        default=300.0, ge=0, le=86400,
        description="how far (real seconds) a time stamped elsewhere may be ahead of this deployment's clock: a "
                    "ticket received later than now + this, or a lifecycle event that happened later than that or "
                    "earlier than the ticket's previous step minus twice this (two senders' clocks), is refused. On "
                    "a sped-up clock (HOTLINE_CLOCK_SPEED) it stretches with it: clocks apart and messages in "
                    "flight are real time")
    review_confidence: float = Field(
        default=0.8, ge=0.0, le=1.0,
        description="an agency signing a ticket the classifier gave another agency with at least this "
                    "confidence raises a review hint",
    )

    # --- misc ------------------------------------------------------------------------------
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING, ERROR")
    clock_speed: float = Field(default=1.0, gt=0, description="simulated seconds per real second")
    clock_origin: datetime | None = Field(
        default=None,
        description="simulated time at the clock's first use (ISO datetime, naive = Asia/Shanghai); "
                    "empty = real now at first use. Kept with the anchor in <data_dir>/clock.json",
    )
    domain_data_dir: Path = Field(default=DATA_FILES_DIR, description="jurisdictions, catalogue, calendar")

    @field_validator("log_level")
    @classmethod
    def _upper(cls, v: str) -> str:
        if v.upper() not in LOG_LEVELS:  # refused here, not by logging.basicConfig's traceback at start
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return v.upper()

    @field_validator("clock_origin", "model_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: object) -> object:
        # `HOTLINE_CLOCK_ORIGIN=` is the documented "real now"; an empty model dir is the default, not "."
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("database_url")
    @classmethod
    def _usable_url(cls, v: str) -> str:
        """Refuse a URL no command could connect with, before a command tries to (each would end in a traceback)."""
        if not v:
            return v
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(v).get_dialect().import_dbapi()
        except ArgumentError as exc:  # not a URL, or a dialect SQLAlchemy does not know (no password in these)
            raise ValueError(f"is not a usable SQLAlchemy URL ({exc}), e.g. "
                             f"postgresql+psycopg://user@host:5432/hotline") from None
        except ImportError as exc:
            raise ValueError(f"needs the database driver {exc.name or exc}, which is not installed") from None
        return v

    @field_validator("processing_guarantee")
    @classmethod
    def _guarantee(cls, v: str) -> str:
        if v not in ("at_least_once", "exactly_once"):
            raise ValueError("must be at_least_once or exactly_once")
        return v

    @model_validator(mode="after")
    def _exactly_once_needs_kafka(self) -> Settings:
        if self.processing_guarantee == "exactly_once" and self.embedded:
            raise ValueError("HOTLINE_PROCESSING_GUARANTEE=exactly_once needs a Kafka cluster with transactions "
                             "(set HOTLINE_KAFKA_BOOTSTRAP); the embedded broker runs at_least_once")
        return self

    @property
    def embedded(self) -> bool:
        return not self.kafka_bootstrap.strip()

    @cached_property
    def resolved_database_url(self) -> str:
        """The URL to connect with, the password merged in (never log this one)."""
        from sqlalchemy.engine import make_url

        if not self.database_url:
            return f"sqlite:///{self.data_dir / 'ledger.sqlite3'}"
        url = make_url(self.database_url)
        if self.database_password is not None:
            url = url.set(password=self.database_password.get_secret_value())
        return url.render_as_string(hide_password=False)

    @property
    def safe_database_url(self) -> str:
        """The URL with any password hidden, for logs and reports."""
        from sqlalchemy.engine import make_url

        return make_url(self.resolved_database_url).render_as_string(hide_password=True)

    @property
    def resolved_model_dir(self) -> Path:
        return self.model_dir or (self.data_dir / "models")

    @property
    def signing_key(self) -> bytes | None:
        """The model signing key as bytes, or None when models are not signed (unset or empty)."""
        key = self.model_signing_key.get_secret_value() if self.model_signing_key else ""
        return key.encode("utf-8") or None


def describe_errors(exc: ValidationError) -> str:
    """A settings validation error as one line per wrong value, named by its environment variable."""
    return "; ".join(f"{'HOTLINE_' + '_'.join(str(p) for p in e['loc']).upper() if e['loc'] else 'settings'}: "
                     f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors())


def get_settings(**overrides: object) -> Settings:
    """Build the settings from the environment; keyword overrides win (tests, CLI flags)."""
    return Settings(**overrides)  # type: ignore[arg-type]
