"""The console's pure parts: who may see and do what, password and token hashing, the dispatcher's
suggestions with legal bases, action checks, SVG charts, weekly hot spots and daily series, turning
corrections into training labels, the session secret, session stamps and the log-in throttle, the ticket list's
paging cursor, and the published OpenAPI document."""

from __future__ import annotations

import base64
import json
import stat
from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from config.catalogue import load_catalogue
from config.settings import Settings
from models.directory import Catalogue
from models.lifecycle import Status
from models.supervision import TicketFacts
from models.supervision.figures import replay, settle_all
from models.workcalendar import TZ
from streams.cli.agency import Action
from streams.console.access import (
    AGENCY,
    DISPATCHER,
    SUPERVISOR,
    Principal,
    allowed_actions,
    can_view_ticket,
    check_action,
    extension_pending,
    sees_full_phone,
)
from streams.console.accounts import (
    LoginThrottle,
    hash_password,
    session_stamp,
    token_digest,
    verify_password,
)
from streams.console.api import decode_cursor, encode_cursor
from streams.console.charts import bar_chart, line_chart
from streams.console.service import ConsoleError, action_options
from streams.console.suggest import suggestions
from streams.console.trends import daily_series, focus_groups, hotspot_weeks, weekly_hotspots
from streams.corrections import candidates_of, correction_label

ROOT = Path(__file__).resolve().parents[2]
A = Principal(1, "a", AGENCY, "BH-SCJG")
B = Principal(2, "b", AGENCY, "BH-STHJ")
D = Principal(3, "d", DISPATCHER)
S = Principal(4, "s", SUPERVISOR)
WHEN = datetime(2025, 6, 2, 9, 0, tzinfo=TZ)


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return load_catalogue()


def test_visibility_and_phone_masking() -> None:
    assert can_view_ticket(A, "BH-SCJG", set()) and not can_view_ticket(B, "BH-SCJG", set())
    assert can_view_ticket(B, "BH-SCJG", {"BH-STHJ"})  # was dispatched to B before: history stays visible
    assert can_view_ticket(D, None, set()) and can_view_ticket(S, "BH-SCJG", set())
    assert not can_view_ticket(Principal(9, "x", AGENCY, None), None, set())
    assert not can_view_ticket(Principal(9, "x", "guest"), "BH-SCJG", {"BH-SCJG"})
    assert sees_full_phone(A, "BH-SCJG")
    assert not any(sees_full_phone(p, "BH-SCJG") for p in (B, D, S))
    assert not sees_full_phone(A, None)


def check(p: Principal, action: Action, status: str, current: str | None = "BH-SCJG",
          pending: bool = False) -> tuple[int, str] | None:
    d = check_action(p, action, ticket_id="T1", status=status, current_agency=current, extension_pending=pending)
    return None if d is None else (d.status, d.message)


def test_actions_by_role_agency_and_state() -> None:
    assert check(A, Action.SIGN, Status.DISPATCHED) is None
    assert check(A, Action.RETURN, Status.SIGNED) is None
    assert check(B, Action.SIGN, Status.DISPATCHED)[0] == 403  # type: ignore[index]
    assert check(A, Action.RESOLVE, Status.DISPATCHED) == (409, "工单 T1 当前状态为「待签收」，不能办结。")
    assert check(A, Action.REASSIGN, Status.DISPATCHED)[0] == 403  # type: ignore[index]
    assert "派单员" in check(A, Action.REASSIGN, Status.DISPATCHED)[1]  # type: ignore[index]
    assert check(D, Action.REASSIGN, Status.MANUAL, None) is None
    assert check(D, Action.REASSIGN, Status.RETURNED, None)[0] == 409  # type: ignore[index]  # re-routing now
    assert check(D, Action.SIGN, Status.DISPATCHED)[0] == 403  # type: ignore[index]
    assert check(A, Action.EXTEND, Status.SIGNED, pending=True)[0] == 409  # type: ignore[index]
    assert check(S, Action.APPROVE_EXTENSION, Status.SIGNED, pending=False)[0] == 409  # type: ignore[index]
    assert check(S, Action.APPROVE_EXTENSION, Status.SIGNED, pending=True) is None
    assert allowed_actions(A, ticket_id="T1", status=Status.SIGNED, current_agency="BH-SCJG",
                           extension_pending=False) == [Action.RETURN, Action.EXTEND, Action.RESOLVE]
    assert allowed_actions(S, ticket_id="T1", status=Status.MANUAL, current_agency=None,
                           extension_pending=False) == []


def test_extension_pending_follows_the_events() -> None:
    assert extension_pending(["routed", "signed", "extension_requested"])
    assert not extension_pending(["routed", "signed", "extension_requested", "extension_approved"])
    assert not extension_pending(["signed", "extension_requested", "returned", "routed"])
    assert not extension_pending([])


def test_passwords_and_tokens_are_hashed() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    assert verify_password("correct horse", stored) and not verify_password("correct horsE", stored)
    assert hash_password("same") != hash_password("same")  # salted
    for broken in ("", "scrypt$x", "bcrypt$1$2$3$a$b", "scrypt$16384$8$1$!!$??"):
        assert verify_password("x", broken) is False
    assert len(token_digest("hk_abc")) == 32 and token_digest("hk_abc") != token_digest("hk_abd")


def routed_message(**extra: Any) -> dict[str, Any]:
    return {"matter": "HB-001", "agency": "BH-STHJ", "confidence": 0.42, "alternatives": [
        {"matter": "HB-001", "agency": "BH-CGW", "confidence": 0.2},
        {"matter": "SJ-002", "agency": "BH-SCJG", "confidence": 0.1},
        {"matter": "NOPE-1", "agency": None, "confidence": 0.05},
        {"matter": "HB-005", "agency": "BH-STHJ", "confidence": 0.04}], **extra}


def test_suggestions_name_three_agencies_with_their_legal_basis(cat: Catalogue) -> None:
    got = suggestions(routed_message(), address="滨海新区新港街道", received_at=WHEN, catalogue=cat,
                      default_jurisdiction="BH", excluded={"BH-SCJG"})
    assert [s.agency for s in got] == ["BH-STHJ", "BH-CGW", "BH-SCJG"]
    assert got[0].matter_name == "餐饮油烟扰民" and "大气污染防治法" in (got[0].basis or "")
    assert got[1].basis and got[1].basis != ""  # the co-owner's own items (or the lead's basis)
    assert "食品安全法" in (got[2].basis or "") and got[2].excluded and not got[0].excluded
    assert suggestions(None, address=None, received_at=WHEN, catalogue=cat, default_jurisdiction="BH") == []
    one = suggestions(routed_message(), address="", received_at=WHEN, catalogue=cat, default_jurisdiction="BH", n=1)
    assert len(one) == 1


def test_action_options_explain_what_is_missing(cat: Catalogue) -> None:
    def refused(action: Action, **options: Any) -> str:
        with pytest.raises(ConsoleError) as exc:
            action_options(action, options, cat)
        assert exc.value.status == 400
        return exc.value.message

    assert "退单理由" in refused(Action.RETURN, basis="《x》")
    assert "法律依据" in refused(Action.RETURN, reason_code="NOT_OUR_DUTY", basis="   ")
    assert "1 至 30" in refused(Action.EXTEND, days="99", explanation="x")
    assert "理由" in refused(Action.EXTEND, days=3)
    assert "答复" in refused(Action.RESOLVE, reply="")
    assert "BH-NOPE" in refused(Action.REASSIGN, to="BH-NOPE")
    assert "2000" in refused(Action.RESOLVE, reply="x" * 2001)
    assert "文本" in refused(Action.RESOLVE, reply=["x"])
    assert action_options(Action.RETURN, {"reason_code": "DUPLICATE", "basis": " 《x》 "}, cat) == {
        "reason_code": "DUPLICATE", "basis": "《x》", "explanation": None}
    assert action_options(Action.EXTEND, {"days": "5", "explanation": "需现场监测"}, cat)["days"] == 5


def test_charts_are_escaped_svg_with_gaps_and_round_axes() -> None:
    svg = bar_chart([("06-01", 3), ("<b>", 7)], title="受理量 <script>")
    assert svg.startswith("<svg") and "<script>" not in svg and "&lt;script&gt;" in svg and "&lt;b&gt;" in svg
    assert ">8<" in svg  # the axis tops at a round 8 for a largest value of 7
    assert "暂无数据" in bar_chart([], title="x") and "暂无数据" in line_chart([], [], title="x")
    lines = line_chart(["a", "b", "c", "d"], [("按时签收率", [0.5, None, 1.0, 0.75])], title="按时率")
    assert lines.count("<circle") == 3 and lines.count("<polyline") == 1  # the gap splits the line
    assert ">100%<" in lines


def test_weekly_hotspots_group_the_reports_focus_matters(cat: Catalogue) -> None:
    assert focus_groups(cat.matters["HB-001"]) == ["餐饮油烟"]
    assert focus_groups(cat.matters["JY-002"]) == ["教育培训"] and focus_groups(cat.matters["RS-002"]) == ["劳动保障"]
    assert focus_groups(None) == []
    today = date(2025, 6, 4)  # a Wednesday
    assert hotspot_weeks(today, 2) == [date(2025, 5, 26), date(2025, 6, 2)]
    counts = [(date(2025, 6, 2), "HB-001", 3), (date(2025, 5, 26), "HB-001", 1), (date(2025, 6, 2), "RS-002", 1),
              (date(2025, 6, 2), None, 5),  # not yet classified: in no group
              (date(2024, 12, 30), "JY-002", 9)]  # too old: outside the weeks shown
    h = weekly_hotspots(counts, cat, today=today, weeks=2)
    assert h.weeks == [date(2025, 5, 26), date(2025, 6, 2)]
    assert h.focus == {"教育培训": [0, 0], "劳动保障": [0, 1], "餐饮油烟": [1, 3]}
    assert h.top == [("HB-001", "餐饮油烟扰民", [1, 3], 4), ("RS-002", cat.matters["RS-002"].name, [0, 1], 1)]


def event(tid: str, kind: str, when: datetime, agency: str | None, **extra: Any) -> SimpleNamespace:
    role = {"routed": "system"}.get(kind, "agency")
    return SimpleNamespace(event_id=f"{tid}-{kind}-{when.isoformat()}", ticket_id=tid, type=kind, actor="t",
                           role=role, agency=agency, occurred_at=when, **extra)


def test_daily_series_counts_by_dispatch_day(cat: Catalogue) -> None:
    now = datetime(2025, 6, 4, 18, 0, tzinfo=TZ)
    day1, day2 = datetime(2025, 6, 3, 9, 0, tzinfo=TZ), datetime(2025, 6, 4, 9, 0, tzinfo=TZ)
    routed = {"attempt": 1, "decision": "auto", "decided_by": "router"}
    histories = [
        (TicketFacts("X1", day1), [event("X1", "routed", day1, "BH-SCJG", **routed),
                                   event("X1", "signed", day1 + timedelta(hours=1), "BH-SCJG")]),
        (TicketFacts("X2", day2), [event("X2", "routed", day2, "BH-SCJG", **routed)]),
    ]
    replayed = [replay(intake, evs, cat) for intake, evs in histories]
    late, _ = settle_all([r.pending for r in replayed if r.pending is not None], now, cat.calendar)
    stages = [st for r in replayed for st in r.stages] + late
    s = daily_series({day1.date(): 1, day2.date(): 2, date(2025, 5, 1): 7}, stages, now=now, days=3)
    assert s.days == [date(2025, 6, 2), date(2025, 6, 3), date(2025, 6, 4)]
    assert s.received == [0, 1, 2] and s.dispatched == [0, 1, 1]
    assert s.sign_on_time == [None, 1.0, None]  # day 2's sign-for is still open and not yet due


def test_corrections_become_labels_of_the_trained_kind(cat: Catalogue) -> None:
    msgs = [routed_message(), {"matter": None, "agency": "BH-CGW", "alternatives": []}]
    cands = candidates_of(msgs + [None])
    assert cands[0] == ("HB-001", "BH-STHJ") and [m for m, _ in cands] == ["HB-001", "SJ-002", "NOPE-1", "HB-005"]
    kw: dict[str, Any] = {"address": "滨海新区新港街道", "received_at": WHEN, "default_jurisdiction": "BH"}
    assert correction_label("BH-SCJG", "matter", cands, cat, **kw) == "SJ-002"
    assert correction_label("BH-CGW", "matter", cands, cat, **kw) == "HB-001"  # a co-owner of 油烟
    assert correction_label("BH-SCJG", "domain", cands, cat, **kw) == cat.matters["SJ-002"].domain
    assert correction_label("BH-SCJG", "agency", [], cat, **kw) == "BH-SCJG"
    assert correction_label("BH-WJW", "matter", cands, cat, **kw) is None  # owns no candidate matter
    assert correction_label("NOPE", "agency", cands, cat, **kw) is None


def test_session_secret_is_made_once_and_private(tmp_path: Path) -> None:
    from streams.console.app import session_secret

    settings = Settings(data_dir=tmp_path)
    first = session_secret(settings)
    path = tmp_path / "web.secret"
    assert len(first) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert session_secret(settings) == first
    assert session_secret(Settings(data_dir=tmp_path, web_secret="x" * 40)) == "x" * 40
    path.write_text("short\n")
    with pytest.raises(RuntimeError, match="web.secret"):
        session_secret(settings)


def test_published_openapi_document_matches_the_code(tmp_path: Path) -> None:
    from streams.console import create_app

    spec = create_app(Settings(data_dir=tmp_path)).openapi()
    assert {"/api/tickets", "/api/tickets/{ticket_id}", "/api/tickets/{ticket_id}/actions", "/api/alerts",
            "/api/figures", "/api/me"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    intake = spec["paths"]["/api/tickets"]["post"]
    assert {"202", "400", "401", "403", "413"} <= set(intake["responses"])
    assert "text" in intake["requestBody"]["content"]["application/json"]["schema"]["properties"]
    published = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    assert published == json.loads(json.dumps(spec)), "docs/openapi.json is stale: hotline web --openapi > it"


def test_a_session_stamp_changes_with_the_password_and_with_each_new_generation() -> None:
    stored = hash_password("correct horse")
    # sessions issued for the old hash no longer match, nor those of an older generation (a disabled user)
    stamps = {session_stamp(stored, 0), session_stamp(stored, 1), session_stamp(hash_password("correct horse"), 0)}
    assert len(stamps) == 3
    assert session_stamp(stored, 0) == session_stamp(stored, 0) and stored not in session_stamp(stored, 0)
    assert verify_password("correct horse", stored) and not verify_password("correct horse", stored + "$g2")


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_login_throttle_locks_a_name_after_repeated_failures_and_forgets_on_success() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(max_failures=3, window_s=60, lockout_s=300, clock=clock)
    assert throttle.failed("wang") == 0 and throttle.failed(" WANG ") == 0  # one name, however typed
    assert throttle.retry_after("wang") == 0
    clock.t += 61  # the first two fell out of the window
    assert throttle.failed("wang") == 0 and throttle.failed("wang") == 0
    assert throttle.failed("wang") == 300 and throttle.retry_after("wang") == 300
    assert throttle.retry_after("li") == 0  # another name is not affected
    clock.t += 299.5
    assert throttle.retry_after("wang") == 1
    clock.t += 1
    assert throttle.retry_after("wang") == 0  # the lock-out is over; the count starts again
    assert throttle.failed("wang") == 0 and throttle.failed("wang") == 0
    throttle.succeeded("wang")
    assert throttle.failed("wang") == 0 and throttle.failed("wang") == 0 and throttle.retry_after("wang") == 0


def test_login_throttle_memory_is_bounded_without_lifting_a_lock_out() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(max_failures=2, window_s=60, lockout_s=300, tracked=10, clock=clock)
    throttle.failed("victim")
    throttle.failed("victim")
    for i in range(50):  # a flood of made-up names
        throttle.failed(f"x{i}")
    assert len(throttle._by_name) <= 10 and throttle.retry_after("victim") > 0


def test_the_ticket_cursor_round_trips_and_refuses_anything_else() -> None:
    at = datetime(2025, 6, 2, 1, 2, 3, 456789, tzinfo=TZ)
    cursor = encode_cursor(at, "T-1:a.b")
    assert "=" not in cursor and decode_cursor(cursor) == (at, "T-1:a.b")
    b64 = lambda raw: base64.urlsafe_b64encode(raw).decode()  # noqa: E731
    bad = {"not base64!": "base64url", b64(b"{nope"): "受理时间", b64(b"[1, 2, 3]"): "受理时间",
           b64(b'["yesterday", "T-1"]'): "受理时间", b64(b'["2025-06-02T01:00:00", "T-1"]'): "时区",
           b64(b'["2025-06-02T01:00:00+08:00", "bad id!"]'): "编号", b64(b'["2025-06-02T01:00:00+08:00", 7]'): "编号"}
    for value, reason in bad.items():
        with pytest.raises(ConsoleError) as caught:
            decode_cursor(value)
        assert caught.value.status == 400 and caught.value.code == "invalid_cursor", value
        assert reason in caught.value.message and "Link" in caught.value.message, value
