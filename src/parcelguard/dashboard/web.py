"""The dashboard's pages (Flask, server-rendered Jinja2 with autoescaping; no JavaScript).

Who may do what:
  auditor   reads every page and downloads reports
  operator  and starts scans (a configured schedule, or one host) and offboarding
  admin     and manages accounts, SCIM tokens and schedules, and reads the audit log

Every request of a signed-in person, and every login attempt, is a row of the audit
log. Forms carry the session's CSRF token and a cross-site Origin is refused; the
session cookie is HttpOnly, SameSite=Strict, and with TLS ``__Host-`` and Secure.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from flask import Flask, Response, abort, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

from parcelguard.dashboard.accounts import AccountError, Role, Session
from parcelguard.dashboard.queries import NotFound, TrendDot
from parcelguard.errors import ParcelguardError
from parcelguard.offboard.model import LeaverEvent, OffboardError, Source
from parcelguard.reports.build import mask
from parcelguard.server.schedule import NAME

if TYPE_CHECKING:
    from parcelguard.server.app import Service

F = TypeVar("F", bound=Callable[..., Any])
PUBLIC = frozenset({"login", "static"})
FORMATS = ("html", "pdf", "md", "csv", "json", "junit")
TYPES = {
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "md": "text/markdown; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "junit": "application/xml",
}
ALERTS_SHOWN = 500
JOBS_SHOWN = 200
DIGITS = re.compile(r"[0-9]{1,18}")
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")
EN_DASH = "\u2013"  # shown where nothing was judged
CROSS_SITE = "cross-site request"
NO_CSRF = "missing or wrong CSRF token"
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


class ReportRefused(ParcelguardError):
    """A report the dashboard will not render now (busy) or at all (too big for PDF)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Chart:
    """A trend line's geometry; the template draws it as inline SVG."""

    points: str
    dots: tuple[tuple[float, float, TrendDot], ...]
    width: int = 640
    height: int = 160


def trend_chart(dots: tuple[TrendDot, ...]) -> Chart | None:
    known = [d for d in dots if d.percent is not None]
    if not known:
        return None
    step = 600 / max(1, len(known) - 1)
    placed = [
        (round(20 + i * step, 1), round(150 - 1.4 * (d.percent or 0), 1), d)
        for i, d in enumerate(known)
    ]
    return Chart(" ".join(f"{x},{y}" for x, y, _ in placed), tuple(placed))


def _pct(value: float | None) -> str:
    return EN_DASH if value is None else f"{value:.1f}%"


def _when(value: str | float | None) -> str:
    if value is None or value == "":
        return EN_DASH
    if isinstance(value, float | int):
        moment = datetime.fromtimestamp(value, UTC)
    else:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def create_app(service: Service) -> Flask:
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=64 * 1024, TEMPLATES_AUTO_RELOAD=False)
    app.jinja_env.autoescape = True  # every template, whatever its name
    app.jinja_env.filters["pct"] = _pct
    app.jinja_env.filters["when"] = _when
    app.jinja_env.filters["mask"] = mask  # evidence is masked again, as in the reports
    app.jinja_env.filters["mask_tree"] = mask_tree
    accounts = service.accounts
    views = service.views
    # The address people use: the service's own TLS, or a TLS proxy's (public_url).
    public = service.config.dashboard.public_url
    secure = service.config.certificate is not None or public.startswith("https://")
    cookie = "__Host-pg_session" if secure else "pg_session"
    login_cookie = "__Host-pg_login" if secure else "pg_login"

    def remote() -> str:
        return request.remote_addr or "?"

    def keep_cookie(response: Response | WerkzeugResponse, name: str, value: str) -> None:
        response.set_cookie(name, value, httponly=True, secure=secure, samesite="Strict", path="/")

    def drop_cookie(response: Response | WerkzeugResponse, name: str) -> None:
        response.delete_cookie(name, path="/", secure=secure, samesite="Strict")

    def login_page(nonce: str, target: str, error: str | None, status: int) -> Response:
        """The sign-in form, and its nonce cookie (the form sends the nonce back)."""
        page = render_template("login.html", nonce=nonce, next=target, error=error)
        response = Response(page, status=status)
        keep_cookie(response, login_cookie, nonce)
        return response

    def audit(action: str, target: str, outcome: str) -> None:
        session: Session | None = g.get("session")
        tried = request.form.get("username", "") if request.endpoint == "login" else ""
        user = session.user.name if session else g.get("login_name") or tried.strip().lower()
        user = user[:64] or "-"
        role = session.user.role.value if session else "-"
        accounts.audit(user, role, action, target, outcome, remote())

    def needs(role: Role) -> Callable[[F], F]:
        def wrap(view: F) -> F:
            @wraps(view)
            def inner(*args: Any, **kwargs: Any) -> Any:
                if not g.session.user.role.may(role):
                    g.refused = f"needs {role.value}"
                    abort(403)
                return view(*args, **kwargs)

            return inner  # type: ignore[return-value]

        return wrap

    @app.before_request
    def authenticate() -> Any:
        g.session = accounts.session(request.cookies.get(cookie))
        if request.method not in ("GET", "HEAD", "POST"):
            abort(405)
        if request.method == "POST" and not _same_origin():
            g.refused = CROSS_SITE
            abort(403)
        if request.endpoint in PUBLIC:
            return None
        if g.session is None:
            target = request.full_path if request.method == "GET" else "/"
            return redirect(url_for("login", next=target.rstrip("?")))
        if request.method == "POST" and not accounts.csrf_ok(g.session, request.form.get("csrf")):
            g.refused = NO_CSRF
            abort(403)
        return None

    def _same_origin() -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not sent by every client; the CSRF token still decides
        expected = public or f"{'https' if secure else 'http'}://{request.host}"
        # The scheme is the service's own (TLS or not), not what the WSGI server says.
        return bool(origin == expected)

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        # same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on
        # form posts, which the origin check must refuse.
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers.setdefault("Cache-Control", "no-store")
        if secure:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        if request.endpoint != "static" and (
            g.get("session") is not None or g.get("refused") is not None
        ):
            what = g.get("action") or f"{request.method} {request.endpoint}"
            outcome = g.get("outcome") or str(response.status_code)
            if g.get("refused"):
                outcome = f"refused: {g.refused}"
            audit(what, g.get("target") or request.full_path.rstrip("?"), outcome)
        return response

    @app.context_processor
    def inject() -> dict[str, Any]:
        session: Session | None = g.get("session")
        return {
            "me": session.user if session else None,
            "csrf": session.csrf if session else "",
            "may_operate": bool(session and session.user.role.may(Role.OPERATOR)),
            "may_admin": bool(session and session.user.role.may(Role.ADMIN)),
            "Role": Role,
        }

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[str, int]:
        code = exc.code or 500
        message = {
            403: "You may not do this with your role; the attempt was recorded.",
            404: exc.description or "Not found.",
            405: "That method is not allowed here.",
            413: "The form was too large.",
        }.get(code, exc.description or "Error.")
        if code == 403 and g.get("refused") in (CROSS_SITE, NO_CSRF):
            message = "The form had expired or came from another site. Reload the page and retry."
        return render_template("error.html", code=code, message=message), code

    @app.errorhandler(NotFound)
    def not_found(exc: NotFound) -> tuple[str, int]:
        return render_template("error.html", code=404, message=str(exc)), 404

    # -- sign-in ------------------------------------------------------------------------------
    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        target = local_path(request.args.get("next", "/"))
        if request.method == "GET":
            # One nonce per browser until it signs in: a second GET (another tab, or the
            # favicon request a browser makes and that is redirected here) keeps it.
            nonce = request.cookies.get(login_cookie, "")
            if not 20 <= len(nonce) <= 64:
                nonce = secrets.token_urlsafe(24)
            return login_page(nonce, target, None, 200)
        nonce = request.cookies.get(login_cookie, "")
        sent = request.form.get("nonce", "")
        name = request.form.get("username", "")
        g.login_name = name.strip().lower()[:64] or "-"
        if not nonce or not secrets.compare_digest(nonce.encode(), sent.encode()):
            accounts.audit(g.login_name, "-", "login", "", "refused: no login nonce", remote())
            abort(403)
        outcome = accounts.login(name, request.form.get("password", ""))
        if isinstance(outcome, str):
            accounts.audit(g.login_name, "-", "login", "", f"failed: {outcome}", remote())
            error = (
                "Too many failed attempts: this account is refused for 15 minutes."
                if outcome == "throttled"
                else "Wrong account name or password."
            )
            return login_page(secrets.token_urlsafe(24), target, error, 401)
        token, session = outcome
        if g.session is not None:  # signing in again, or as someone else: the old one ends
            accounts.logout(g.session)
        g.session = session
        g.action, g.target, g.outcome = "login", "", "signed in"
        signed_in = redirect(target)
        keep_cookie(signed_in, cookie, token)
        drop_cookie(signed_in, login_cookie)
        return signed_in

    @app.post("/logout")
    def logout() -> Any:
        accounts.logout(g.session)
        g.action, g.outcome = "logout", "signed out"
        response = redirect(url_for("login"))
        drop_cookie(response, cookie)
        return response

    # -- reading ------------------------------------------------------------------------------
    @app.get("/")
    def fleet() -> str:
        data = views.fleet()
        return render_template(
            "fleet.html",
            fleet=data,
            chart=trend_chart(data.trend),
            schedules=service.scan_schedules(),
        )

    @app.get("/hosts")
    def hosts() -> str:
        return render_template("hosts.html", hosts=views.hosts())

    @app.get("/hosts/<name>")
    def host(name: str) -> str:
        page = views.host(name, request.args.get("scan") or None)
        return render_template("host.html", page=page, catalog=service.catalog)

    @app.get("/articles/<int:number>")
    def article(number: int) -> str:
        title, lines = views.article(number)
        return render_template("article.html", number=number, title=title, lines=lines)

    @app.get("/scans")
    def scans() -> str:
        return render_template(
            "scans.html",
            scans=views.scans(limit=100, before=request.args.get("before") or None),
            schedules=service.scan_schedules(),
        )

    @app.get("/scans/<scan_id>")
    def scan(scan_id: str) -> str:
        line, host_lines = views.scan(scan_id)
        return render_template(
            "scan.html",
            scan=line,
            hosts=host_lines,
            previous=views.previous_scan(scan_id),
            others=views.scans(limit=50),
            formats=FORMATS,
        )

    @app.get("/scans/<scan_id>/report.<fmt>")
    def report(scan_id: str, fmt: str) -> Response:
        if fmt not in FORMATS:
            abort(404)
        lang = request.args.get("lang", "en")
        if lang not in ("en", "zh-CN"):
            abort(404)
        try:
            name, body = service.render_report(scan_id, fmt, lang)
        except ReportRefused as exc:
            g.action, g.target = "download report", f"{scan_id} {fmt} {lang}"
            g.outcome = f"refused: {exc.message}"
            page = render_template("error.html", code=exc.status, message=exc.message)
            refused = Response(page, status=exc.status)
            if exc.status == 503:
                refused.headers["Retry-After"] = "30"
            return refused
        g.action, g.target = "download report", f"{scan_id} {fmt} {lang}"
        response = Response(body, mimetype=TYPES[fmt])
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        if fmt == "html":
            # A downloaded report opened from here keeps its own strict policy.
            response.headers["Content-Security-Policy"] = CSP
        return response

    @app.get("/drift")
    def drift() -> str:
        before, after = request.args.get("before", ""), request.args.get("after", "")
        if not before or not after:
            abort(404, "choose two scans to compare")
        return render_template("drift.html", drift=views.drift(before, after))

    @app.get("/alerts")
    def alerts() -> str:
        open_alerts = service.alerts.alerts(open_only=True)
        shown_alerts = open_alerts[::-1][:ALERTS_SHOWN]
        states: dict[int, list[dict[str, Any]]] = {}
        for d in service.alerts.deliveries([a.id for a in shown_alerts]):
            states.setdefault(d["alert_id"], []).append(d)
        return render_template(
            "alerts.html",
            alerts=shown_alerts,
            total=len(open_alerts),
            deliveries=states,
            shown=ALERTS_SHOWN,
        )

    @app.get("/offboarding")
    def offboarding() -> str:
        jobs = service.store.jobs()
        return render_template(
            "offboarding.html", jobs=jobs[::-1][:JOBS_SHOWN], total=len(jobs), shown=JOBS_SHOWN
        )

    @app.get("/offboarding/<int:job_id>")
    def case(job_id: int) -> str:
        job = service.store.job(job_id)
        if job is None:
            raise NotFound(f"no offboarding job {job_id}")
        return render_template("case.html", job=job, trail=service.store.trail(job_id))

    # -- operating ----------------------------------------------------------------------------
    @app.post("/actions/scan")
    @needs(Role.OPERATOR)
    def scan_now() -> Any:
        name = request.form.get("schedule", "")
        host_name = request.form.get("host", "")
        g.action = "start scan"
        if host_name:
            g.target = f"host {host_name}"
            message = service.scan_host_now(host_name, g.session.user.name)
        else:
            g.target = f"schedule {name}"
            message = service.run_schedule_now(name, g.session.user.name)
        g.outcome = message
        return render_template("done.html", message=message)

    @app.post("/actions/offboard")
    @needs(Role.OPERATOR)
    def offboard_now() -> Any:
        username = request.form.get("username", "").strip()
        ticket = request.form.get("ticket", "").strip()
        g.action, g.target = "start offboarding", f"{username} ticket {ticket}"
        if not ticket:
            g.outcome = "refused: no ticket"
            return render_template("error.html", code=400, message="A ticket is required."), 400
        try:
            queued = service.offboarder.submit(
                LeaverEvent(
                    username=username,
                    source=Source.DASHBOARD,
                    actor=f"dashboard user {g.session.user.name}",
                    ticket=ticket,
                    key=f"dashboard:{uuid.uuid4()}",
                    received_at=datetime.now(UTC),
                )
            )
        except OffboardError as exc:
            g.outcome = f"refused: {exc.message}"
            return render_template("error.html", code=400, message=exc.message), 400
        service.wake.set()
        g.outcome = f"job {queued.job_id}"
        return redirect(url_for("case", job_id=queued.job_id))

    # -- administering ------------------------------------------------------------------------
    @app.get("/admin")
    @needs(Role.ADMIN)
    def admin() -> str:
        return admin_page(None)

    def admin_page(shown: dict[str, str] | None) -> str:
        """The admin page; ``shown``: a password or token to show this once."""
        return render_template(
            "admin.html",
            users=accounts.users(),
            tokens=service.store.token_names(),
            schedules=service.schedule_rows(),
            shown=shown,
        )

    def _shown(kind: str, name: str, secret: str) -> str:
        return admin_page({"kind": kind, "name": name, "secret": secret})

    @app.post("/admin/users")
    @needs(Role.ADMIN)
    def add_user() -> Any:
        name = request.form.get("name", "").strip()
        role_text = request.form.get("role", "")
        g.action, g.target = "create account", f"{name} as {role_text}"
        try:
            role = Role(role_text)
            password = accounts.create(name, role, g.session.user.name)
        except ValueError:
            g.outcome = "refused: unknown role"
            abort(400)
        except AccountError as exc:
            g.outcome = f"refused: {exc.message}"
            return render_template("error.html", code=400, message=exc.message), 400
        g.outcome = "created"
        return _shown("password", name, password)

    @app.post("/admin/users/<name>/<verb>")
    @needs(Role.ADMIN)
    def change_user(name: str, verb: str) -> Any:
        g.action, g.target = f"{verb} account", name
        if name == g.session.user.name and verb != "reset":
            g.outcome = "refused: own account"
            return render_template(
                "error.html", code=400, message="You cannot disable your own account."
            ), 400
        try:
            if verb == "reset":
                password = accounts.reset(name)
                g.outcome = "password reset; sessions ended"
                return _shown("password", name, password)
            if verb not in ("disable", "enable"):
                abort(404)
            accounts.set_disabled(name, verb == "disable")
        except AccountError as exc:
            g.outcome = f"refused: {exc.message}"
            return render_template("error.html", code=400, message=exc.message), 400
        g.outcome = "done"
        return redirect(url_for("admin"))

    @app.post("/admin/tokens")
    @needs(Role.ADMIN)
    def add_token() -> Any:
        from parcelguard.server.auth import new_token, token_digest

        name = request.form.get("name", "").strip()
        g.action, g.target = "create SCIM token", name
        if not NAME.fullmatch(name) or name in dict(service.store.token_names()):
            g.outcome = "refused: bad or used name"
            return render_template(
                "error.html", code=400, message="Give a new name of lower-case letters and digits."
            ), 400
        token = new_token()
        service.store.add_token(name, token_digest(token))
        g.outcome = "created"
        return _shown("SCIM token", name, token)

    @app.post("/admin/tokens/<name>/revoke")
    @needs(Role.ADMIN)
    def revoke_token(name: str) -> Any:
        g.action, g.target = "revoke SCIM token", name
        g.outcome = "revoked" if service.store.remove_token(name) else "no such token"
        return redirect(url_for("admin"))

    @app.post("/admin/schedules/<name>/<verb>")
    @needs(Role.ADMIN)
    def change_schedule(name: str, verb: str) -> Any:
        g.action, g.target = f"{verb} schedule", name
        if name not in {s.name for s in service.config.schedules} or verb not in (
            "pause",
            "resume",
        ):
            abort(404)
        if verb == "pause":
            service.schedule_state.pause(name, g.session.user.name)
        else:
            service.schedule_state.resume(name)
        g.outcome = "done"
        return redirect(url_for("admin"))

    @app.get("/admin/audit")
    @needs(Role.ADMIN)
    def audit_log() -> str:
        before = request.args.get("before", "")
        entries = accounts.audit_log(200, int(before) if DIGITS.fullmatch(before) else None)
        return render_template("audit.html", entries=entries)

    return app


SECRET_KEY = re.compile(
    r"(?i)(.*[_.-])?(password|passwd|passphrase|pwd|secret|token|api[_-]?key|private[_-]?key)"
)


def mask_tree(value: Any, key: str = "") -> Any:
    """A JSON-like value with every string masked, and the values of secret-named keys
    replaced (``{"password": "x"}``, which text masking would not see once quoted)."""
    if SECRET_KEY.fullmatch(key) and value not in (None, "", [], {}):
        return "***"
    if isinstance(value, dict):
        return {k: mask_tree(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_tree(v) for v in value]
    if isinstance(value, str):
        return mask(value)
    return value


def local_path(target: str) -> str:
    """``target`` if it is a path on this site, else ``/``: no scheme, no host, no
    control characters or backslashes (which browsers may read as ``//``)."""
    if CONTROL_CHARS.search(target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target
