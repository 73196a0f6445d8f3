"""The WSGI application of ``parcelguard serve`` and the offboarding worker behind it.

Routes:
  /scim/v2/...        SCIM 2.0 Users, ServiceProviderConfig, Schemas, ResourceTypes
  /webhook/leaver     the signed leaver webhook (when a secret is configured)
  /healthz            liveness and the number of unfinished jobs (no secrets)
  everything else     the dashboard (parcelguard.dashboard), when it is enabled

Every trigger is written to the durable queue before the response is sent; the worker
thread picks jobs up at once (it is woken) and retries pending hosts with backoff. After
a crash or restart the worker resumes every unfinished job.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from scim2_models import Resource

from parcelguard.dashboard.queries import NotFound, Views
from parcelguard.errors import ParcelguardError
from parcelguard.offboard.model import LeaverEvent, OffboardError, Source
from parcelguard.offboard.service import Offboarder, OffboardSettings
from parcelguard.offboard.store import OffboardStore
from parcelguard.scanners import store as scan_store
from parcelguard.scanners.catalog import load_catalog
from parcelguard.scanners.model import ScanResult
from parcelguard.server import webhook
from parcelguard.server.alerts import (
    Alert,
    AlertStore,
    cleared,
    overdue_conditions,
    scan_conditions,
)
from parcelguard.server.config import ServeConfig
from parcelguard.server.schedule import (
    Children,
    RunResult,
    Schedule,
    Scheduler,
    ScheduleState,
    run_scan,
    schedule_for_host,
)
from parcelguard.server.scim import (
    MAX_BODY,
    OffboardingStorage,
    ScimApplication,
    leaver_handler,
    provider,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger("parcelguard.serve")
HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
REPORT_SLOTS = 2  # reports rendered at once for the dashboard
PDF_MAX_HOSTS = 50  # about 45 s of WeasyPrint (docs/benchmarks.md: 20 hosts, 19 s)
SECURITY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
]


def _json(start_response: StartResponse, status: str, body: dict[str, Any]) -> Iterable[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            *SECURITY_HEADERS,
        ],
    )
    return [data]


def _length(environ: WSGIEnvironment) -> int | None:
    text = environ.get("CONTENT_LENGTH") or "0"
    return int(text) if text.isdigit() else None


class Service:
    def __init__(self, config: ServeConfig, progress: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.progress = progress or (lambda m: log.info("%s", m))
        self.store = OffboardStore(config.database)
        self.offboarder = Offboarder(
            self.store,
            OffboardSettings(
                inventory=config.inventory,
                limit=config.limit,
                known_hosts=config.known_hosts,
                forks=config.forks,
                retry_base=config.retry_base,
                retry_max=config.retry_max,
                protected=config.protected,
            ),
            self.progress,
        )
        self.wake = threading.Event()
        self.stopping = threading.Event()
        model = provider().model_for("User")
        if model is None or not issubclass(model, Resource):
            raise RuntimeError("the SCIM provider serves no User model")
        storage = OffboardingStorage(
            self.store,
            model,
            leaver_handler(self._submit_scim, self.store),
            domains=config.scim_domains,
        )
        self.scim = ScimApplication(storage, self.store)
        self.scan_store = scan_store.resolve(config.scans_database)
        self.alerts = AlertStore(config.database, [c.name for c in config.alerts.channels])
        self.channels = {c.name: c for c in config.alerts.channels}
        self.deliver_wake = threading.Event()
        self.schedule_state = ScheduleState(config.database)
        self.children = Children()
        self.scheduler = Scheduler(
            config.schedules, self.schedule_state, self._run_schedule, self.progress
        )
        self.catalog = load_catalog()
        self.views = Views(self.scan_store, self.catalog)
        self.dashboard: Callable[..., Iterable[bytes]] | None = None
        self.report_slots = threading.BoundedSemaphore(REPORT_SLOTS)
        if config.dashboard.enabled:
            # Created (or brought to the current schema) now, not during a request.
            scan_store.ScanStore(self.scan_store)
            from parcelguard.dashboard.accounts import Accounts
            from parcelguard.dashboard.web import create_app

            self.accounts = Accounts(
                config.database,
                idle_seconds=config.dashboard.idle_seconds,
                absolute_seconds=config.dashboard.absolute_seconds,
            )
            done = self.accounts.ensure_admin(
                config.dashboard.admin_user, config.dashboard.admin_password
            )
            self.accounts.audit(
                "config", "-", "admin account from secret file", config.dashboard.admin_user,
                done, "-",
            )  # fmt: skip
            if done.startswith("disabled"):
                self.progress(
                    f"dashboard admin {config.dashboard.admin_user} is disabled; the secret "
                    "file does not re-enable it (another admin can)"
                )
            self.dashboard = create_app(self).wsgi_app

    # -- the dashboard's actions ----------------------------------------------------------
    def scan_schedules(self) -> list[Schedule]:
        return [s for s in self.config.schedules if not s.reconcile]

    def schedule_rows(self) -> list[dict[str, Any]]:
        runs = self.schedule_state.runs()
        paused = self.schedule_state.paused()
        rows = []
        for s in self.config.schedules:
            run = runs.get(s.name, {})
            rows.append(
                {
                    "schedule": s,
                    "when": s.cron or f"every {s.every} s",
                    "last_run": run.get("last_run"),
                    "last_status": run.get("last_status", "never run"),
                    "last_scan": run.get("last_scan"),
                    "paused": paused.get(s.name),
                    "running": s.name in self.scheduler.running,
                }
            )
        return rows

    def run_schedule_now(self, name: str, actor: str) -> str:
        """A scan schedule's run, now. Reconciliations (which revoke access) and paused
        schedules are not started from the dashboard."""
        schedule = next((s for s in self.scan_schedules() if s.name == name), None)
        if schedule is None:
            return f"no scan schedule named {name}; nothing started"
        if name in self.schedule_state.paused():
            return f"{name} is paused by an admin; nothing started"
        if not self.scheduler.start(schedule):
            return f"{name} (or another run of group {schedule.group}) is running; not started"
        self.progress(f"schedule {name}: started by {actor} from the dashboard")
        return f"started {name}: a scan of {schedule.group}; it lands in Scans when done"

    def scan_host_now(self, host: str, actor: str) -> str:
        """One host's scan, now: a host of the inventory (within the service's limit),
        never a group; with the roster of the scan schedules; only while no other run is
        going on, so dashboard scans cannot pile up or overlap a schedule's."""
        from parcelguard.scanners.targets import InventoryError, load_inventory

        if not HOST_NAME.fullmatch(host):
            return f"{host!r} is not a host name; nothing started"
        try:
            fleet = load_inventory(self.config.inventory, self._pattern(host))
        except InventoryError:
            fleet = None
        if fleet is None or [t.name for t in fleet.targets] != [host]:
            return f"{host!r} is not a host of the service's inventory; nothing started"
        if self.scheduler.running:
            return "a scan or reconciliation is running; start this one when it ends"
        roster = next((s.roster for s in self.scan_schedules() if s.roster), None)
        if not self.scheduler.start(schedule_for_host(host, roster)):
            return f"a scan of {host} is running; not started"
        self.progress(f"scan of {host} started by {actor} from the dashboard")
        return f"started a scan of {host}; it lands in Scans when done"

    def render_report(self, scan_id: str, fmt: str, lang: str) -> tuple[str, bytes]:
        """A report as ``parcelguard report --scan`` makes it. At most REPORT_SLOTS render
        at once (the others are told to retry), so downloads never take every server
        thread from SCIM and the webhook; PDFs only of scans up to PDF_MAX_HOSTS hosts."""
        from parcelguard.dashboard.web import ReportRefused
        from parcelguard.reports.cli import build, default_args, render_all

        line = self.views.scan_line(scan_id)  # NotFound for an unknown scan
        if fmt == "pdf" and line.hosts > PDF_MAX_HOSTS:
            raise ReportRefused(
                f"a PDF of {line.hosts} hosts takes minutes; the dashboard makes PDFs of up "
                f"to {PDF_MAX_HOSTS} hosts. Use: parcelguard report --scan {scan_id} "
                "--format pdf",
                422,
            )
        if not self.report_slots.acquire(blocking=False):
            raise ReportRefused("other reports are being made; retry in a moment", 503)
        try:
            store = scan_store.ScanStore(self.scan_store)
            try:
                scan = store.load(scan_id)
            except ParcelguardError as exc:
                raise NotFound(exc.message) from exc
            model = build(scan, default_args(), store, lang)
            ((name, body),) = render_all(model, (fmt,)).items()
        finally:
            self.report_slots.release()
        return name, body

    # -- triggers -------------------------------------------------------------------------
    def _submit_scim(
        self, login: str, key: str, actor: str, ticket: str, detail: dict[str, Any]
    ) -> None:
        event = LeaverEvent(
            username=login,
            source=Source.SCIM,
            actor=actor,
            ticket=ticket,
            key=key,
            received_at=datetime.now(UTC),
            detail=detail,
        )
        queued = self.offboarder.submit(event)
        self.progress(f"SCIM {detail['reason']} of {detail['userName']}: job {queued.job_id}")
        self.wake.set()

    def _webhook(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self.config.webhook_key is None:
            return _json(start_response, "404 Not Found", {"error": "no webhook is configured"})
        if environ.get("REQUEST_METHOD") != "POST":
            return _json(start_response, "405 Method Not Allowed", {"error": "POST only"})
        ctype = (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return _json(
                start_response, "415 Unsupported Media Type", {"error": "send application/json"}
            )
        length = _length(environ)
        if length is None or length > webhook.MAX_BODY:
            return _json(start_response, "413 Content Too Large", {"error": "body too large"})
        body = environ["wsgi.input"].read(length)
        headers = {
            name: environ.get("HTTP_" + name.upper().replace("-", "_"), "")
            for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
        }
        try:
            leaver = webhook.verify(
                self.config.webhook_key, headers, body, tolerance=self.config.webhook_tolerance
            )
        except webhook.WebhookRejected as exc:
            # Logged, not written to the audit trail: anyone can send these, and the
            # append-only trail must not be floodable by unauthenticated requests.
            log.warning(
                "webhook refused (%s) from %s: %s",
                exc.status,
                environ.get("REMOTE_ADDR", "?"),
                exc.message,
            )
            status = {400: "400 Bad Request", 401: "401 Unauthorized"}[exc.status]
            return _json(start_response, status, {"error": exc.message})
        # The message id is the event's idempotency key: recorded with the event in one
        # transaction, so a replay is refused, and a failed attempt can be retried.
        try:
            queued = self.offboarder.submit(
                LeaverEvent(
                    username=leaver.username,
                    source=Source.WEBHOOK,
                    actor=f"webhook from {environ.get('REMOTE_ADDR', '?')}",
                    ticket=leaver.ticket,
                    key=f"webhook:{leaver.message_id}",
                    received_at=datetime.now(UTC),
                    left_at=leaver.left_at,
                )
            )
        except OffboardError as exc:
            return _json(start_response, "422 Unprocessable Content", {"error": str(exc)})
        if queued.duplicate:
            return _json(
                start_response, "409 Conflict", {"error": "this webhook-id was already received"}
            )
        self.wake.set()
        return _json(
            start_response,
            "202 Accepted",
            {"job": queued.job_id, "created": queued.created, "duplicate": queued.duplicate},
        )

    # -- WSGI -------------------------------------------------------------------------------
    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            # Bodies are bounded by their declared length; a chunked body has none.
            return _json(start_response, "411 Length Required", {"error": "send Content-Length"})
        if path == "/scim/v2" or path.startswith("/scim/v2/"):
            length = _length(environ)
            if length is None or length > MAX_BODY:
                return _json(start_response, "413 Content Too Large", {"error": "body too large"})
            environ = dict(environ)
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + "/scim"
            environ["PATH_INFO"] = path[len("/scim") :]
            return self.scim(environ, start_response)
        if path == "/webhook/leaver":
            return self._webhook(environ, start_response)
        if path == "/healthz":
            return _json(
                start_response,
                "200 OK",
                {"status": "ok", "unfinished_jobs": len(self.store.jobs(open_only=True))},
            )
        if self.dashboard is not None:
            return self.dashboard(environ, start_response)
        return _json(start_response, "404 Not Found", {"error": "not found"})

    # -- schedules and alerts -------------------------------------------------------------
    def _pattern(self, group: str) -> str:
        """A schedule's group within the service's own limit (Ansible intersection)."""
        if self.config.limit:
            return f"{self.config.limit}:&{group}"
        return group

    def _run_schedule(self, schedule: Schedule) -> RunResult:
        if schedule.reconcile:
            return self._reconcile(schedule)
        result, text = run_scan(
            self.config.inventory,
            schedule,
            str(self.scan_store),
            pattern=self._pattern(schedule.group),
            known_hosts=self.config.known_hosts,
            children=self.children,
        )
        if text is None:
            return result
        current = ScanResult.from_json(text)
        if not current.complete:
            # An interrupted scan proves nothing: no alert from it, and the next scan is
            # compared with the last complete one.
            return RunResult("incomplete", None, "the scan was interrupted; not compared")
        _, previous_id = self.schedule_state.last(schedule.name)
        previous = None
        if previous_id:
            try:
                previous = scan_store.ScanStore(self.scan_store).load(previous_id)
            except ParcelguardError as exc:
                self.progress(f"schedule {schedule.name}: previous scan unreadable: {exc}")
        conditions = scan_conditions(previous, current, self.config.alerts.min_severity)
        raised = self.alerts.update(
            schedule.name,
            current.scan_id,
            conditions,
            cleared(current),
            deliver=previous is not None,  # the first scan is the baseline
        )
        if raised and previous is None:
            self.progress(
                f"schedule {schedule.name}: baseline scan; {len(raised)} condition(s) recorded "
                "as open, not sent"
            )
        elif raised:
            self.progress(f"schedule {schedule.name}: {len(raised)} new alert(s)")
            self.deliver_wake.set()
        return result

    def _reconcile(self, schedule: Schedule) -> RunResult:
        assert schedule.roster is not None
        argv = [
            sys.executable, "-m", "parcelguard", "offboard", "reconcile",
            "--roster", schedule.roster,
            "-i", str(self.config.inventory),
            "--limit", self._pattern(schedule.group),
            "--db", str(self.config.database),
        ]  # fmt: skip
        for account in sorted(self.config.protected):
            argv += ["--protect", account]
        if self.config.known_hosts:
            argv += ["--known-hosts", str(self.config.known_hosts)]
        code, _, stderr = self.children.run(argv, timeout=3600)
        status = {0: "ok", 1: "pending"}.get(code, "error")
        tail = " ".join(stderr.strip().splitlines()[-1:])
        if code == 0:
            self.wake.set()
        return RunResult(status, None, tail[:300] if status == "error" else "")

    def check_overdue(self) -> None:
        conditions = overdue_conditions(
            self.store.jobs(open_only=True), self.config.alerts.overdue_minutes, datetime.now(UTC)
        )
        over = self.alerts.open_keys("offboarding") - {c.key for c in conditions}
        raised = self.alerts.update("offboarding", "-", conditions, over)
        if raised:
            self.deliver_wake.set()

    def evidence_link(self, alert: Alert) -> str:
        base = self.config.alerts.evidence_url
        if alert.scan_id == "-":
            return f"{base}/offboarding" if base else "parcelguard offboard status"
        if base:
            return f"{base}/scans/{alert.scan_id}#{alert.host}-{alert.control_id}"
        return f"parcelguard report --scan {alert.scan_id}"

    def deliver(self) -> int:
        """Send every due delivery once; returns how many were sent. One delivery's
        failure, whatever it is, is recorded and retried later: it never blocks others."""
        sent = 0
        for delivery_id, channel, alert in self.alerts.due(time.time()):
            target = self.channels.get(channel)
            if target is None:
                self.alerts.dropped(delivery_id, f"channel {channel} is no longer configured")
                continue
            try:
                target.send(alert, self.evidence_link(alert))
            except Exception as exc:
                self.alerts.failed(delivery_id, f"{type(exc).__name__}: {exc}")
                self.progress(f"alert {alert.id} via {channel}: {exc}; will retry")
                continue
            self.alerts.delivered(delivery_id)
            sent += 1
        return sent

    def schedule_loop(self) -> None:
        last_overdue = 0.0
        while not self.stopping.is_set():
            try:
                self.scheduler.tick()
                if time.time() - last_overdue >= 60:
                    self.check_overdue()
                    last_overdue = time.time()
            except Exception:
                log.exception("scheduler")
            self.stopping.wait(self.scheduler.wait_seconds())

    def deliver_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.deliver()
            except Exception:
                log.exception("alert delivery")
            self.deliver_wake.wait(10)
            self.deliver_wake.clear()

    def stop_children(self) -> None:
        """Stop the scans and reconciliations still running (on shutdown)."""
        self.children.terminate_all()
        self.scheduler.join(timeout=15)

    # -- worker -----------------------------------------------------------------------------
    def work(self) -> None:
        """Run due jobs until stopped; woken at once by new triggers."""
        unfinished = self.store.jobs(open_only=True)
        if unfinished:
            self.progress(f"resuming {len(unfinished)} unfinished job(s)")
        while not self.stopping.is_set():
            try:
                ran = self.offboarder.run_due()
            except Exception:  # the worker must outlive one bad job
                log.exception("offboarding worker")
                ran = None
            if ran is not None:
                continue
            due = self.store.next_due()
            wait = 30.0 if due is None else max(0.5, min(30.0, due - time.time()))
            self.wake.wait(wait)
            self.wake.clear()
