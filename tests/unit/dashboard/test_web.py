"""The dashboard's pages, roles, sessions, CSRF and audit log, through Flask's client."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from parcelguard.dashboard.accounts import Role
from parcelguard.server.config import ConfigError, parse_config
from parcelguard.server.schedule import NAME, RunResult, Schedule
from tests.unit.dashboard.conftest import ADMIN_SECRET, Dash, csrf_of, login, make_service

READ_PAGES = ["/", "/hosts", "/hosts/web1", "/articles/38", "/scans", "/alerts", "/offboarding"]


def test_every_page_needs_a_login(dash: Dash) -> None:
    client = dash.client()
    for path in [*READ_PAGES, "/admin", "/scans/scan-two", "/drift?before=a&after=b"]:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("role", ["auditor", "operator", "admin"])
def test_each_role_reads_every_page(dash: Dash, role: str) -> None:
    client = dash.client(role)
    for path in [*READ_PAGES, f"/scans/{dash.second.scan_id}"]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert f"{role} ({role})" in response.get_data(as_text=True)
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["Cache-Control"] == "no-store"


def test_the_fleet_page_shows_articles_zones_and_trend(dash: Dash) -> None:
    page = dash.client("auditor").get("/").get_data(as_text=True)
    hosts = len(dash.first.hosts)
    assert f"{hosts} host{'s' if hosts != 1 else ''}," in page
    assert "Art. 38" in page and "polyline" in page
    for zone in {z for h in dash.first.hosts for z in h.zones}:
        assert f"<td>{zone}</td>" in page


def test_drift_shows_the_regression(dash: Dash) -> None:
    client = dash.client("auditor")
    scan_page = client.get(f"/scans/{dash.second.scan_id}").get_data(as_text=True)
    assert f"before={dash.first.scan_id}" in scan_page.replace("&amp;", "&")
    page = client.get(f"/drift?before={dash.first.scan_id}&after={dash.second.scan_id}").get_data(
        as_text=True
    )
    assert "Regressed (now FAIL or ERROR): 1" in page
    assert dash.regressed in page and "Fixed: 0" in page
    host = client.get(f"/hosts/web1?scan={dash.second.scan_id}").get_data(as_text=True)
    assert "regressed in the test" in host


def test_reports_download_in_every_format(dash: Dash) -> None:
    client = dash.client("auditor")
    for fmt, magic in [("json", b"{"), ("csv", b""), ("md", b"#"), ("html", b"<!doctype")]:
        response = client.get(f"/scans/{dash.second.scan_id}/report.{fmt}")
        assert response.status_code == 200, fmt
        assert response.data.lower().startswith(magic)
        assert "attachment" in response.headers["Content-Disposition"]
    assert client.get(f"/scans/{dash.second.scan_id}/report.exe").status_code == 404
    assert client.get("/scans/nope/report.json").status_code == 404


def test_an_auditor_cannot_start_a_scan_or_offboarding(dash: Dash) -> None:
    client = dash.client("auditor")
    assert 'id="scan-now"' not in client.get("/").get_data(as_text=True)
    token = csrf_of(client)
    assert client.post("/actions/scan", data={"csrf": token, "schedule": "web"}).status_code == 403
    response = client.post(
        "/actions/offboard", data={"csrf": token, "username": "lihua", "ticket": "T-1"}
    )
    assert response.status_code == 403
    assert client.get("/admin").status_code == 403
    assert dash.service.store.jobs() == []
    refused = [e for e in dash.service.accounts.audit_log() if e.outcome.startswith("refused")]
    assert {e.user for e in refused} == {"auditor"} and len(refused) == 3


def test_an_operator_starts_a_scan_but_cannot_administer(dash: Dash) -> None:
    started: list[Schedule] = []
    release = threading.Event()

    def run(schedule: Schedule) -> RunResult:
        started.append(schedule)
        release.wait(10)
        return RunResult("ok", None, "")

    dash.service.scheduler.run = run
    client = dash.client("operator")
    token = csrf_of(client)

    def scan(**form: str) -> str:
        return client.post("/actions/scan", data={"csrf": token, **form}).get_data(as_text=True)

    assert "started web" in scan(schedule="web")
    # nothing else starts while a run is going on: no pile-up, no overlap
    assert "is running" in scan(schedule="web")
    assert "a scan or reconciliation is running" in scan(host="web1")
    release.set()
    dash.service.scheduler.join(timeout=5)
    assert "started a scan of web1" in scan(host="web1")
    dash.service.scheduler.join(timeout=5)
    # a group, an unknown host or a pattern is not a host
    for name in ("web", "all", "nope", "web1,web2", "web*"):
        assert "nothing started" in scan(host=name), name
    # reconciliations revoke access: never from the dashboard
    assert "no scan schedule named roster" in scan(schedule="roster")
    assert [(s.group, s.roster is not None) for s in started] == [("web", True), ("web1", True)]
    runs = dash.service.schedule_state.runs()
    assert runs["web"]["last_status"] == "ok"
    assert client.get("/admin").status_code == 403
    made = client.post("/admin/users", data={"csrf": token, "name": "eve", "role": "admin"})
    assert made.status_code == 403
    assert dash.service.accounts.user("eve") is None


def test_a_paused_schedule_is_not_started_by_hand_or_by_its_time(dash: Dash) -> None:
    dash.service.schedule_state.pause("web", "admin")
    client = dash.client("operator")
    page = client.post("/actions/scan", data={"csrf": csrf_of(client), "schedule": "web"})
    assert "paused by an admin" in page.get_data(as_text=True)
    dash.service.scheduler.run = lambda _s: RunResult("ok", None, "")  # no real runs
    assert dash.service.scheduler.tick(now=10**12) == ["roster"]  # web is paused
    dash.service.scheduler.join(timeout=5)


def test_host_scans_never_share_a_name() -> None:
    from parcelguard.server.schedule import schedule_for_host

    assert schedule_for_host("web.1").name != schedule_for_host("web-1").name
    assert NAME.fullmatch(schedule_for_host("a" * 200).name)


def test_a_post_without_the_session_csrf_token_is_refused(dash: Dash) -> None:
    client = dash.client("operator")
    assert client.post("/actions/scan", data={"schedule": "web"}).status_code == 403
    assert (
        client.post("/actions/scan", data={"csrf": "x" * 43, "schedule": "web"}).status_code == 403
    )
    other = dash.client("admin")
    stolen = csrf_of(other)
    assert client.post("/actions/scan", data={"csrf": stolen, "schedule": "web"}).status_code == 403
    cross = client.post(
        "/actions/scan",
        data={"csrf": csrf_of(client), "schedule": "web"},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403


def test_login_failures_are_audited_and_throttled(dash: Dash) -> None:
    client = dash.client()
    for _ in range(5):
        assert login(client, "operator", "wrong password!").status_code == 401
    # the right password is refused too while the account is throttled
    response = login(client, "operator", dash.passwords["operator"])
    assert response.status_code == 401
    assert "15 minutes" in response.get_data(as_text=True)
    outcomes = [e.outcome for e in dash.service.accounts.audit_log() if e.action == "login"]
    assert outcomes.count("failed: wrong password") == 5 and "failed: throttled" in outcomes
    # an unknown name fails the same way
    assert login(client, "nobody", "whatever").status_code == 401


def test_the_session_cookie_is_httponly_strict_and_ends_at_logout(dash: Dash) -> None:
    client = dash.client()
    response = login(client, "auditor", dash.passwords["auditor"])
    cookie = response.headers.getlist("Set-Cookie")
    session_cookie = next(c for c in cookie if c.startswith("pg_session="))
    assert "HttpOnly" in session_cookie and "SameSite=Strict" in session_cookie
    token = session_cookie.split(";")[0].split("=", 1)[1]
    # only its digest is stored
    assert dash.service.accounts.session(token) is not None
    import sqlite3

    with sqlite3.connect(dash.service.config.database) as db:
        stored = [r[0] for r in db.execute("SELECT digest FROM dash_sessions")]
    assert token not in stored and len(stored) == 1
    client.post("/logout", data={"csrf": csrf_of(client)})
    assert dash.service.accounts.session(token) is None
    assert client.get("/").status_code == 302


def test_login_redirects_only_within_the_site(dash: Dash) -> None:
    client = dash.client()
    page = client.get("/login?next=//evil.example/x").get_data(as_text=True)
    assert "evil.example" not in page


def test_an_admin_creates_an_account_shown_once_and_disables_it(dash: Dash) -> None:
    client = dash.client("admin")
    token = csrf_of(client, "/admin")
    page = client.post("/admin/users", data={"csrf": token, "name": "wang.fang", "role": "auditor"})
    text = page.get_data(as_text=True)
    import re

    password = re.search(r'<pre id="secret">([^<]+)</pre>', text)
    assert password
    other = dash.client()
    assert login(other, "wang.fang", password.group(1)).status_code == 302
    assert other.get("/").status_code == 200
    client.post("/admin/users/wang.fang/disable", data={"csrf": token})
    assert other.get("/").status_code == 302  # its session ended at once
    assert "ADMIN_SECRET" not in text and ADMIN_SECRET not in text
    actions = {e.action for e in dash.service.accounts.audit_log()}
    assert {"create account", "disable account", "login"} <= actions


def test_an_admin_creates_and_revokes_scim_tokens_stored_hashed(dash: Dash) -> None:
    client = dash.client("admin")
    token = csrf_of(client, "/admin")
    text = client.post("/admin/tokens", data={"csrf": token, "name": "okta"}).get_data(as_text=True)
    assert "pgt_" in text
    secret = text.split('<pre id="secret">')[1].split("<")[0]
    assert dash.service.store.token_digests() and secret not in str(
        dash.service.store.token_digests()
    )
    client.post("/admin/tokens/okta/revoke", data={"csrf": token})
    assert dash.service.store.token_names() == []


def test_an_admin_pauses_and_resumes_a_schedule(dash: Dash) -> None:
    client = dash.client("admin")
    token = csrf_of(client, "/admin")
    client.post("/admin/schedules/web/pause", data={"csrf": token})
    assert "web" in dash.service.schedule_state.paused()
    dash.service.scheduler.run = lambda _s: RunResult("ok", None, "")  # no real runs
    assert "web" not in dash.service.scheduler.tick(now=10**12)
    dash.service.scheduler.join(timeout=5)
    client.post("/admin/schedules/web/resume", data={"csrf": token})
    assert dash.service.schedule_state.paused() == {}
    assert client.post("/admin/schedules/nope/pause", data={"csrf": token}).status_code == 404


def test_the_audit_log_is_append_only(dash: Dash) -> None:
    import sqlite3

    dash.client("auditor").get("/hosts")
    with sqlite3.connect(dash.service.config.database) as db:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM dash_audit")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE dash_audit SET user = 'x'")
    views = [e for e in dash.service.accounts.audit_log() if e.target == "/hosts"]
    assert views and views[0].user == "auditor" and views[0].outcome == "200"


def test_hostile_text_from_a_host_is_escaped(dash: Dash, tmp_path: Path) -> None:
    import dataclasses

    from parcelguard.scanners.store import ScanStore

    h = dash.second.hosts[0]
    r = dataclasses.replace(h.results[0], summary="<script>alert(1)</script>")
    evil = dataclasses.replace(
        dash.second,
        scan_id="scan-evil",
        hosts=(dataclasses.replace(h, results=(r, *h.results[1:])),),
    )
    ScanStore(tmp_path / "scans.db").save(evil)
    page = dash.client("auditor").get(f"/hosts/{h.host}?scan=scan-evil").get_data(as_text=True)
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page


def test_the_service_needs_an_admin_secret(tmp_path: Path) -> None:
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all: {}\n")
    with pytest.raises(ConfigError, match="admin_password_file is required"):
        parse_config({"inventory": str(inventory)})
    short = tmp_path / "short"
    short.write_text("admin\n")
    short.chmod(0o600)
    with pytest.raises(ConfigError, match="fewer than 12"):
        parse_config(
            {"inventory": str(inventory), "dashboard": {"admin_password_file": str(short)}}
        )
    short.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        parse_config(
            {"inventory": str(inventory), "dashboard": {"admin_password_file": str(short)}}
        )
    config = parse_config({"inventory": str(inventory), "dashboard": {"enabled": False}})
    assert not config.dashboard.enabled


def test_a_changed_admin_secret_replaces_the_old_password(tmp_path: Path) -> None:
    service = make_service(tmp_path)
    assert isinstance(service.accounts.login("admin", ADMIN_SECRET), tuple)
    again = make_service(tmp_path, "another long admin secret")
    assert again.accounts.login("admin", ADMIN_SECRET) == "wrong password"
    assert isinstance(again.accounts.login("admin", "another long admin secret"), tuple)


def test_a_second_visit_to_the_login_page_keeps_its_nonce(dash: Dash) -> None:
    """Browsers fetch /favicon.ico, which is redirected to the login page: that must not
    replace the nonce of the form already shown."""
    client = dash.client()
    first = client.get("/login").get_data(as_text=True)
    assert client.get("/favicon.ico").status_code == 302
    client.get("/login?next=/favicon.ico")
    nonce = first.split('name="nonce" value="')[1].split('"')[0]
    signed_in = client.post(
        "/login",
        data={"nonce": nonce, "username": "auditor", "password": dash.passwords["auditor"]},
    )
    assert signed_in.status_code == 302


def test_an_empty_store_shows_empty_pages(tmp_path: Path) -> None:
    from parcelguard.dashboard.web import create_app

    service = make_service(tmp_path)
    client = create_app(service).test_client()
    assert login(client, "admin", ADMIN_SECRET).status_code == 302
    for path in ("/", "/hosts", "/scans"):
        page = client.get(path)
        assert page.status_code == 200 and "No scan has been stored yet" in page.get_data(
            as_text=True
        ), path


def test_an_operator_starts_offboarding_and_reads_its_timeline(dash: Dash) -> None:
    client = dash.client("operator")
    token = csrf_of(client, "/offboarding")
    refused = client.post("/actions/offboard", data={"csrf": token, "username": "lihua"})
    assert refused.status_code == 400 and dash.service.store.jobs() == []
    started = client.post(
        "/actions/offboard", data={"csrf": token, "username": "lihua", "ticket": "HR-77"}
    )
    assert started.status_code == 302
    (job,) = dash.service.store.jobs()
    assert started.headers["Location"] == f"/offboarding/{job.id}"
    assert (job.username, job.ticket, job.source.value) == ("lihua", "HR-77", "dashboard")
    assert job.actor == "dashboard user operator"
    page = client.get(f"/offboarding/{job.id}").get_data(as_text=True)
    assert "lihua" in page and "HR-77" in page and "web1" in page
    kinds = [e.kind for e in dash.service.store.trail(job.id)]
    assert kinds and all(k in page for k in kinds)
    listing = dash.client("auditor").get("/offboarding").get_data(as_text=True)
    assert f"/offboarding/{job.id}" in listing
    root = client.post(
        "/actions/offboard", data={"csrf": token, "username": "root", "ticket": "HR-78"}
    )
    assert root.status_code == 400 and len(dash.service.store.jobs()) == 1


def test_open_alerts_are_listed_with_their_deliveries(dash: Dash) -> None:
    from parcelguard.server.alerts import Condition

    regression = Condition("regression", "web1", dash.regressed, "high", "<b>PASS to FAIL</b>")
    dash.service.alerts.update("web", dash.second.scan_id, [regression], set())
    page = dash.client("auditor").get("/alerts").get_data(as_text=True)
    assert "Open alerts: 1" in page
    assert f'href="/hosts/web1#{dash.regressed}"' in page
    assert f'href="/scans/{dash.second.scan_id}"' in page
    assert "&lt;b&gt;PASS to FAIL" in page and "not sent" in page


@pytest.mark.parametrize(
    "target",
    ["//evil.example/x", "/%09/evil.example", "/\t/evil.example", "https://evil.example",
     "/\\evil.example", "javascript:alert(1)", "/ok\r\nSet-Cookie: x=y"],
)  # fmt: skip
def test_sign_in_never_redirects_off_the_site(dash: Dash, target: str) -> None:
    from urllib.parse import quote

    client = dash.client()
    page = client.get(f"/login?next={quote(target, safe='')}").get_data(as_text=True)
    nonce = page.split('name="nonce" value="')[1].split('"')[0]
    response = client.post(
        f"/login?next={quote(target, safe='')}",
        data={"nonce": nonce, "username": "auditor", "password": dash.passwords["auditor"]},
    )
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location == "/" or (location.startswith("/") and not location.startswith("//"))
    assert "evil" not in location or location == "/%09/evil.example"


def test_report_downloads_are_bounded(dash: Dash, monkeypatch: pytest.MonkeyPatch) -> None:
    from parcelguard.server import app as service_module

    client = dash.client("auditor")
    monkeypatch.setattr(service_module, "PDF_MAX_HOSTS", 2)
    pdf = client.get(f"/scans/{dash.second.scan_id}/report.pdf")
    assert pdf.status_code == 422 and "parcelguard report --scan" in pdf.get_data(as_text=True)
    slots = dash.service.report_slots
    assert slots.acquire(blocking=False) and slots.acquire(blocking=False)
    try:
        busy = client.get(f"/scans/{dash.second.scan_id}/report.json")
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "30"
    finally:
        slots.release()
        slots.release()
    assert client.get(f"/scans/{dash.second.scan_id}/report.json").status_code == 200
    outcomes = [e.outcome for e in dash.service.accounts.audit_log()]
    assert any(o.startswith("refused: other reports") for o in outcomes)


def test_concurrent_wrong_passwords_cannot_pass_the_throttle(dash: Dash) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(
            pool.map(lambda _i: dash.service.accounts.login("operator", "wrong!"), range(12))
        )
    assert outcomes.count("wrong password") == 5
    assert outcomes.count("throttled") == 7


def test_a_disabled_bootstrap_admin_stays_disabled_after_a_restart(tmp_path: Path) -> None:
    service = make_service(tmp_path)
    service.accounts.create("second", Role.ADMIN, "admin")
    service.accounts.set_disabled("admin", True)
    again = make_service(tmp_path)
    user = again.accounts.user("admin")
    assert user is not None and user.disabled
    assert again.accounts.login("admin", ADMIN_SECRET) == "account disabled"


def test_behind_a_tls_proxy_the_public_url_sets_origin_and_secure_cookies(
    tmp_path: Path,
) -> None:
    from parcelguard.dashboard.web import create_app

    service = make_service(tmp_path)
    service.config = dataclasses.replace(
        service.config,
        dashboard=dataclasses.replace(service.config.dashboard, public_url="https://audit.example"),
    )
    client = create_app(service).test_client()
    page = client.get("/login")
    assert (
        "__Host-pg_login" in page.headers["Set-Cookie"] and "Secure" in page.headers["Set-Cookie"]
    )
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    nonce = page.get_data(as_text=True).split('name="nonce" value="')[1].split('"')[0]
    form = {"nonce": nonce, "username": "admin", "password": ADMIN_SECRET}
    wrong = client.post("/login", data=form, headers={"Origin": "http://localhost"})
    assert wrong.status_code == 403
    right = client.post("/login", data=form, headers={"Origin": "https://audit.example"})
    assert right.status_code == 302 and "__Host-pg_session" in right.headers["Set-Cookie"]
    refused = [
        e for e in service.accounts.audit_log() if e.outcome == "refused: cross-site request"
    ]
    assert refused and refused[0].user == "admin"


def test_public_url_is_checked(tmp_path: Path) -> None:
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all: {}\n")
    secret = tmp_path / "s"
    secret.write_text("a long enough secret\n")
    secret.chmod(0o600)
    for bad in ("http://audit.example", "https://audit.example/dash", "ftp://x", "https://u:p@x"):
        with pytest.raises(ConfigError, match="public_url"):
            parse_config(
                {
                    "inventory": str(inventory),
                    "dashboard": {"admin_password_file": str(secret), "public_url": bad},
                }
            )


def test_secrets_in_an_offboarding_trail_are_masked(dash: Dash) -> None:
    dash.service.store.record(
        "note", {"password": "hunter2hunter2", "detail": "token=abcdefabcdef", "host": "web1"}
    )
    client = dash.client("operator")
    client.post(
        "/actions/offboard",
        data={"csrf": csrf_of(client), "username": "lihua", "ticket": "HR-1"},
    )
    (job,) = dash.service.store.jobs()
    dash.service.store.record("note", {"password": "hunter2hunter2"}, job.id)
    page = client.get(f"/offboarding/{job.id}").get_data(as_text=True)
    assert "hunter2" not in page and "***" in page


def test_drift_always_runs_from_the_older_scan(dash: Dash) -> None:
    client = dash.client("auditor")
    page = client.get(f"/drift?before={dash.second.scan_id}&after={dash.first.scan_id}").get_data(
        as_text=True
    )
    assert "Regressed (now FAIL or ERROR): 1" in page


def test_a_one_host_scan_is_not_taken_for_a_fleet_scans_predecessor(
    dash: Dash, tmp_path: Path
) -> None:
    from datetime import timedelta

    from parcelguard.scanners.store import ScanStore

    one = dataclasses.replace(
        dash.first,
        scan_id="scan-one-host",
        started=dash.first.started + timedelta(minutes=30),
        hosts=tuple(h for h in dash.first.hosts if h.host == "web1"),
    )
    ScanStore(tmp_path / "scans.db").save(one)
    assert dash.service.views.previous_scan(dash.second.scan_id) == dash.first.scan_id
    assert dash.service.views.previous_scan("scan-one-host") == dash.first.scan_id
    assert dash.service.views.previous_scan(dash.first.scan_id) is None
