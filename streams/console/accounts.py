"""Console users and API tokens, kept in the ledger (tables ``users`` and ``api_tokens``).

Passwords are hashed with scrypt (stdlib ``hashlib.scrypt``, a random salt per user); API tokens are
random, shown once when issued, and stored only as their SHA-256. Everything here is synchronous ledger
I/O: the console calls it off the event loop (FastAPI runs sync endpoints in a thread pool).

A console session carries a *stamp* of the user's stored password hash (:func:`session_stamp`), checked on
every request: a new password (a new salt, so a new hash) ends every session issued before it, and so does
disabling the user, which bumps the user's ``session_generation``, part of the stamp. Both also revoke the
user's API tokens, so re-enabling a user revives neither. Failed log-ins are throttled per user name and client
address, and per client address (:class:`LoginThrottle`), counted in the ledger (:class:`LedgerFailureCounts`,
migration 0016) so that every console process counts the same failures and a restart forgets none; the counting
serves the ticket search's throttle too (``streams.console.search``). :class:`FailureCounts` counts the same way
in one process's memory (what the rules' unit tests use).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import delete, func, select, update

from models import ledger as t
from models.directory import Catalogue
from streams.console.access import AGENCY, DISPATCHER, ROLES, SUPERVISOR, Principal
from streams.db import Ledger, _insert

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection

USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,31}$")
MIN_PASSWORD_CHARS = 8
# scrypt cost: 16 MiB and ~50 ms per check on this class of machine; a log-in is rare, a guess expensive.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
TOKEN_PREFIX = "hk_"
TOKEN_TOUCH_EVERY = timedelta(minutes=5)  # last_used_at is informative: don't write on every API call
# Failed log-ins: after this many for one user name from one client address within the window, that name may
# not try again from there for the lock-out time; after the second number from one address, whatever the
# names, that address may not (scrypt makes a guess slow; this makes guessing online hopeless).
LOGIN_MAX_FAILURES = 5
LOGIN_MAX_FAILURES_PER_ADDRESS = 20  # several people behind one office NAT mistype now and then
LOGIN_WINDOW_S = 15 * 60
LOGIN_LOCKOUT_S = 15 * 60
LOGIN_TRACKED = 10_000  # keys remembered at most per table (a flood of made-up names must not grow memory)

DEMO_PASSWORD = "demo12345"
# The agencies most demo tickets go to (city management, environment, labour, market regulation in
# 滨海新区, plus one body of 经开区 TEDA and one of 东丽区).
DEMO_AGENCIES = ("BH-CGW", "BH-STHJ", "BH-RSJ", "BH-SCJG", "TEDA-CGJ", "DL-CGW")


class AccountError(ValueError):
    """A user or token request that cannot be carried out; the message says why (for CLI and forms)."""


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a :func:`hash_password` string; False if malformed."""
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        digest = hashlib.scrypt(password.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def session_stamp(password_hash: str, generation: int) -> str:
    """What a session remembers of the credentials it was issued for: the stored hash and the user's session
    generation (the cookie is signed, not encrypted, so only a digest: nothing to test a password guess
    against)."""
    return hashlib.sha256(f"hotline-session:{generation}:{password_hash}".encode()).hexdigest()[:32]


# A real hash to check against when the user does not exist: a failed log-in costs the same either way.
_DUMMY_HASH = hash_password(secrets.token_hex(8))


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def validate_new_user(username: str, role: str, agency: str | None, catalogue: Catalogue | None) -> None:
    if not USERNAME.match(username):
        raise AccountError(f"username {username!r}: 2-32 lower-case letters, digits, '_', '.', '-', "
                           "starting with a letter or digit")
    if role not in ROLES:
        raise AccountError(f"role {role!r}: one of {', '.join(ROLES)}")
    if role == AGENCY and not agency:
        raise AccountError("an agency member needs --agency CODE (the agency the user belongs to)")
    if role != AGENCY and agency:
        raise AccountError(f"--agency is only for agency members, not for role {role}")
    if agency and catalogue is not None and agency not in catalogue.agencies:
        raise AccountError(f"unknown agency code {agency!r}")


def validate_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"the password needs at least {MIN_PASSWORD_CHARS} characters")


def _principal(u: t.User) -> Principal:
    return Principal(user_id=u.id, username=u.username, role=u.role, agency=u.agency, display_name=u.display_name)


def add_user(ledger: Ledger, username: str, role: str, password: str, *, agency: str | None = None,
             display_name: str | None = None, catalogue: Catalogue | None = None) -> Principal:
    """Create an active user; AccountError when the name is taken or a value is invalid."""
    validate_new_user(username, role, agency, catalogue)
    validate_password(password)
    with ledger.session() as s:
        if s.scalar(select(t.User.id).where(t.User.username == username)) is not None:
            raise AccountError(f"user {username!r} exists already")
        user = t.User(username=username, role=role, agency=agency, display_name=display_name,
                      password_hash=hash_password(password), active=True, created_at=t.utcnow())
        s.add(user)
        s.flush()
        return _principal(user)


def _revoke_all(s: Any, user_id: int) -> int:
    return int(s.execute(update(t.ApiToken).where(t.ApiToken.user_id == user_id, t.ApiToken.revoked_at.is_(None))
                         .values(revoked_at=t.utcnow())).rowcount)


def set_password(ledger: Ledger, username: str, password: str) -> int:
    """Set a new password: the user's console sessions end (their stamp no longer matches) and every API token
    is revoked, so a stolen session or token does not outlive a reset. Returns how many tokens were live."""
    validate_password(password)
    with ledger.session() as s:
        user = s.scalar(select(t.User).where(t.User.username == username))
        if user is None:
            raise AccountError(f"no user {username!r}")
        user.password_hash = hash_password(password)
        return _revoke_all(s, user.id)


def set_active(ledger: Ledger, username: str, active: bool) -> int:
    """Enable or disable a user. Disabling ends the user's sessions and revokes the API tokens for good (enabling
    again revives neither: log in again, issue new tokens). Returns how many tokens disabling revoked."""
    with ledger.session() as s:
        user = s.scalar(select(t.User).where(t.User.username == username))
        if user is None:
            raise AccountError(f"no user {username!r}")
        user.active = active
        if active:
            return 0
        user.session_generation += 1
        return _revoke_all(s, user.id)


@dataclass(frozen=True, slots=True)
class Login:
    """A successful log-in: the user, and the stamp its session must carry (:func:`principal_for_session`)."""

    principal: Principal
    stamp: str


def authenticate(ledger: Ledger, username: str, password: str) -> Login | None:
    """The active user with this name and password, or None (no hint which of the two was wrong)."""
    with ledger.session() as s:
        user = s.scalar(select(t.User).where(t.User.username == username.strip().lower()))
        if user is None or not user.active:
            verify_password(password, _DUMMY_HASH)
            return None
        if not verify_password(password, user.password_hash):
            return None
        user.last_login_at = t.utcnow()
        return Login(_principal(user), session_stamp(user.password_hash, user.session_generation))


def principal_for_session(ledger: Ledger, user_id: int, stamp: str) -> Principal | None:
    """The session's user, if still active and the session was issued for the current credentials: a disabled
    user, or one whose password changed since, is logged out on the next request."""
    with ledger.session() as s:
        user = s.get(t.User, user_id)
        if user is None or not user.active:
            return None
        if not hmac.compare_digest(stamp.encode(), session_stamp(user.password_hash, user.session_generation).encode()):
            return None
        return _principal(user)


def issue_token(ledger: Ledger, username: str, name: str | None = None) -> str:
    """A new API token for the user; returned once, only its hash is kept."""
    token = new_token()
    with ledger.session() as s:
        user = s.scalar(select(t.User).where(t.User.username == username))
        if user is None:
            raise AccountError(f"no user {username!r}")
        if not user.active:
            raise AccountError(f"user {username!r} is disabled")
        s.add(t.ApiToken(user_id=user.id, token_hash=token_digest(token), name=name, created_at=t.utcnow()))
    return token


def revoke_tokens(ledger: Ledger, username: str) -> int:
    """Revoke every token of the user; returns how many were live."""
    with ledger.session() as s:
        user_id = s.scalar(select(t.User.id).where(t.User.username == username))
        if user_id is None:
            raise AccountError(f"no user {username!r}")
        return _revoke_all(s, user_id)


def principal_for_token(ledger: Ledger, token: str, *, now: datetime | None = None) -> Principal | None:
    """The active user a live token belongs to, or None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    now = now or t.utcnow()
    with ledger.session() as s:
        row = s.execute(select(t.ApiToken, t.User).join(t.User, t.User.id == t.ApiToken.user_id)
                        .where(t.ApiToken.token_hash == token_digest(token))).first()
        if row is None:
            return None
        tok, user = row
        if tok.revoked_at is not None or not user.active:
            return None
        if tok.last_used_at is None or now - tok.last_used_at > TOKEN_TOUCH_EVERY:
            tok.last_used_at = now
        return _principal(user)


@dataclass(frozen=True, slots=True)
class UserRow:
    username: str
    role: str
    agency: str | None
    display_name: str | None
    active: bool
    live_tokens: int
    created_at: datetime
    last_login_at: datetime | None


def list_users(ledger: Ledger) -> list[UserRow]:
    with ledger.session() as s:
        live = dict(s.execute(select(t.ApiToken.user_id, func.count()).where(t.ApiToken.revoked_at.is_(None))
                              .group_by(t.ApiToken.user_id)).all())
        return [UserRow(u.username, u.role, u.agency, u.display_name, u.active, live.get(u.id, 0), u.created_at,
                        u.last_login_at)
                for u in s.scalars(select(t.User).order_by(t.User.role, t.User.agency, t.User.username))]


@dataclass(frozen=True, slots=True)
class DemoLogin:
    """One demo log-in, to print for the person trying the demo."""

    username: str
    password: str
    role: str
    agency: str | None
    agency_name: str | None


def ensure_demo_users(ledger: Ledger, catalogue: Catalogue) -> list[DemoLogin]:
    """The demo's users (idempotent): supervisor ``jiandu``, dispatcher ``paidan`` and one member of each
    agency in :data:`DEMO_AGENCIES` (user name = the agency code in lower case), all with password
    :data:`DEMO_PASSWORD`. Existing demo users are re-enabled and get the demo password and role back."""
    wanted: list[tuple[str, str, str | None, str]] = [
        ("jiandu", SUPERVISOR, None, "督办演示账号"), ("paidan", DISPATCHER, None, "派单演示账号")]
    wanted += [(code.lower(), AGENCY, code, catalogue.agencies[code].name)
               for code in DEMO_AGENCIES if code in catalogue.agencies]
    out: list[DemoLogin] = []
    with ledger.session() as s:
        for username, role, agency, display in wanted:
            user = s.scalar(select(t.User).where(t.User.username == username))
            if user is None:
                s.add(t.User(username=username, role=role, agency=agency, display_name=display,
                             password_hash=hash_password(DEMO_PASSWORD), active=True, created_at=t.utcnow()))
            else:
                if not verify_password(DEMO_PASSWORD, user.password_hash):
                    user.password_hash = hash_password(DEMO_PASSWORD)
                user.role, user.agency, user.active = role, agency, True
                user.display_name = user.display_name or display
            out.append(DemoLogin(username, DEMO_PASSWORD, role, agency,
                                 catalogue.agencies[agency].name if agency else None))
    return out


@dataclass(slots=True)
class _Attempts:
    failures: list[float] = field(default_factory=list)  # monotonic times within the window
    locked_until: float = 0.0


def address_key(address: str | None) -> str:
    """The client address a throttle counts by: an IPv6 address by its /64 (one host commonly holds a whole
    /64, so counting single addresses would let it spray from billions of them); anything else as given."""
    if not address:
        return "-"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # not an IP (a test client, a Unix socket): counted as given
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:203.0.113.9 is 203.0.113.9
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def client_address(request: HTTPConnection) -> str | None:
    """The address the throttles count by (failed log-ins, number searches that found no one): the connection's
    peer as the ASGI server reports it. Behind a reverse proxy that is the proxy's address for every user (everyone
    would share one address's ceiling): uvicorn then takes the client from X-Forwarded-For, but only on connections
    from the addresses in its ``FORWARDED_ALLOW_IPS`` environment variable (by default the loopback ones: a proxy on
    the same host); set it to the proxy's address. The console has no setting of its own to trust X-Forwarded-For:
    from anyone else the header is forged at will, and a throttle keyed by it is no throttle."""
    return request.client.host if request.client is not None else None


class FailureCounts:
    """Failures per key within a sliding window, in this process's memory: ``limit`` of them within ``window_s``
    lock the key out for ``lockout_s`` (its count then starts again). At most ``tracked`` keys are kept.

    Monotonic time, not the deployment's clock: a demo's simulated clock runs fast."""

    def __init__(self, limit: int, window_s: float, lockout_s: float, *, tracked: int = LOGIN_TRACKED,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window_s, self.lockout_s, self.tracked = limit, window_s, lockout_s, tracked
        self._clock = clock
        self._table: dict[Hashable, _Attempts] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._table

    def retry_after(self, key: Hashable) -> int:
        """Seconds until ``key``'s lock-out ends; 0 when it is not locked out."""
        with self._lock:
            entry = self._table.get(key)
            left = entry.locked_until - self._clock() if entry is not None else 0.0
        return max(0, int(left + 0.999))

    def failed(self, key: Hashable) -> int:
        """Count a failure under ``key``; the seconds of the lock-out it started, or 0."""
        now = self._clock()
        with self._lock:
            if key not in self._table and len(self._table) >= self.tracked:
                self._forget_stale(now)
            entry = self._table.setdefault(key, _Attempts())
            entry.failures = [f for f in entry.failures if now - f < self.window_s] + [now]
            if len(entry.failures) < self.limit:
                return 0
            entry.failures.clear()
            entry.locked_until = now + self.lockout_s
        return max(1, int(self.lockout_s + 0.999))

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._table.pop(key, None)

    def _forget_stale(self, now: float) -> None:
        table = self._table
        stale = [k for k, e in table.items()
                 if e.locked_until <= now and all(now - f >= self.window_s for f in e.failures)]
        for k in stale:
            del table[k]
        # still full: forget keys that are not locked out first (a flood of made-up names must not lift a
        # lock-out while others can go), the oldest-tracked first
        for k in [k for k, e in table.items() if e.locked_until <= now] + list(table):
            if len(table) < self.tracked:
                break
            table.pop(k, None)


class Counts(Protocol):
    """Failures per key within a sliding window, as one throttle counts them (:class:`FailureCounts`,
    :class:`LedgerFailureCounts`)."""

    def retry_after(self, key: Hashable) -> int: ...

    def failed(self, key: Hashable) -> int: ...

    def forget(self, key: Hashable) -> None: ...


CountsFactory = Callable[[str, int, float, float], Counts]  # (counter, limit, window_s, lockout_s) -> its counts


def in_memory(*, tracked: int = LOGIN_TRACKED, clock: Callable[[], float] = time.monotonic) -> CountsFactory:
    """Counts in this process's memory (:class:`FailureCounts`)."""
    return lambda counter, limit, window_s, lockout_s: FailureCounts(limit, window_s, lockout_s, tracked=tracked,
                                                                      clock=clock)


def in_ledger(ledger: Ledger, *, clock: Callable[[], float] = time.time) -> CountsFactory:
    """Counts in the ledger, shared by every console process (:class:`LedgerFailureCounts`)."""
    return lambda counter, limit, window_s, lockout_s: LedgerFailureCounts(ledger, counter, limit, window_s,
                                                                            lockout_s, clock=clock)


def _stored_key(key: Hashable) -> str:
    return ("\x1f".join(map(str, key)) if isinstance(key, tuple) else str(key))[:200]


class LedgerFailureCounts:
    """:class:`FailureCounts` kept in the ledger (``throttle_failures``, ``throttle_lockouts``; migration 0016):
    every console process counts the same failures, so two consoles behind one address allow no more tries than
    one, and a restart lifts no lock-out. A failure deletes its counter's failures older than the window and its
    lock-outs that have ended, so the tables hold what the windows hold.

    Wall-clock time, not monotonic: processes share it (and not the deployment's clock: a demo's runs fast).
    Synchronous ledger I/O, like the rest of this module: call it off the event loop."""

    def __init__(self, ledger: Ledger, counter: str, limit: int, window_s: float, lockout_s: float, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.ledger, self.counter = ledger, counter
        self.limit, self.window, self.lockout_s = limit, timedelta(seconds=window_s), lockout_s
        self._clock = clock

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def retry_after(self, key: Hashable) -> int:
        """Seconds until ``key``'s lock-out ends; 0 when it is not locked out."""
        lo = t.ThrottleLockout
        with self.ledger.session() as s:
            until = s.scalar(select(lo.until).where(lo.counter == self.counter, lo.key == _stored_key(key)))
        return 0 if until is None else max(0, int((until - self._now()).total_seconds() + 0.999))

    def failed(self, key: Hashable) -> int:
        """Count a failure under ``key``; the seconds of the lock-out it started, or 0."""
        now, stored, fa, lo = self._now(), _stored_key(key), t.ThrottleFailure, t.ThrottleLockout
        with self.ledger.session() as s:
            s.execute(delete(fa).where(fa.counter == self.counter, fa.at <= now - self.window))
            s.execute(delete(lo).where(lo.counter == self.counter, lo.until <= now))
            s.add(fa(counter=self.counter, key=stored, at=now))
            s.flush()
            mine = (fa.counter == self.counter, fa.key == stored)
            if s.scalar(select(func.count()).select_from(fa).where(*mine)) < self.limit:
                return 0
            s.execute(delete(fa).where(*mine))  # the count starts again after the lock-out, as in memory
            until = now + timedelta(seconds=self.lockout_s)
            s.execute(_insert(s)(lo).values(counter=self.counter, key=stored, until=until)
                      .on_conflict_do_update(index_elements=["counter", "key"], set_={"until": until}))
        return max(1, int(self.lockout_s + 0.999))

    def forget(self, key: Hashable) -> None:
        fa = t.ThrottleFailure
        with self.ledger.session() as s:
            s.execute(delete(fa).where(fa.counter == self.counter, fa.key == _stored_key(key)))


class LoginThrottle:
    """Failed log-ins, counted two ways (in the ledger, :class:`LedgerFailureCounts`, as the console counts them;
    by default in this process's memory, :class:`FailureCounts`):

    * per (user name, client address): after ``max_failures`` within ``window_s`` that name may not log in
      from that address for ``lockout_s``, also with the right password. Not per name alone: then anyone
      who knows a name could lock its user out from anywhere; the real user, elsewhere, is not affected.
    * per client address, across all names: after ``address_max_failures`` within ``window_s`` the address
      may not log in at all for ``lockout_s`` (one address trying a password on many names).

    A successful log-in clears only its (name, address) count: a sprayer who knows one password must not
    reset the address's. Guessing one name from many addresses is slowed by scrypt only, the usual price
    of not letting strangers lock accounts. Each table keeps at most ``tracked`` keys."""

    def __init__(self, *, max_failures: int = LOGIN_MAX_FAILURES, window_s: float = LOGIN_WINDOW_S,
                 lockout_s: float = LOGIN_LOCKOUT_S, address_max_failures: int = LOGIN_MAX_FAILURES_PER_ADDRESS,
                 tracked: int = LOGIN_TRACKED, clock: Callable[[], float] = time.monotonic,
                 counts: CountsFactory | None = None) -> None:
        counts = counts or in_memory(tracked=tracked, clock=clock)
        self._by_name = counts("login_name", max_failures, window_s, lockout_s)
        self._by_address = counts("login_address", address_max_failures, window_s, lockout_s)

    @staticmethod
    def _key(username: str, address: str | None) -> tuple[str, str]:
        return username.strip().lower()[:64], address_key(address)

    def address_retry_after(self, address: str | None) -> int:
        """Seconds until any log-in from ``address`` may be tried again; 0 when now."""
        return self._by_address.retry_after(address_key(address))

    def retry_after(self, username: str, address: str | None = None) -> int:
        """Seconds until ``username`` may try again from ``address``; 0 when it may now."""
        return max(self._by_name.retry_after(self._key(username, address)), self.address_retry_after(address))

    def failed(self, username: str, address: str | None = None) -> int:
        """Count a failed log-in; the seconds of the lock-out it started (of the name here, or of the whole
        address), or 0."""
        return max(self._by_name.failed(self._key(username, address)), self._by_address.failed(address_key(address)))

    def succeeded(self, username: str, address: str | None = None) -> None:
        self._by_name.forget(self._key(username, address))
