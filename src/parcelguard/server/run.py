"""``parcelguard serve``: run the HTTP service (cheroot) and the offboarding worker."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import ssl
import sys
import threading
from pathlib import Path
from typing import Any

from parcelguard.scanners.connection import quiet_paramiko
from parcelguard.server.config import ConfigError, load_config

DESCRIPTION = (
    "Serve the auditors' dashboard (/), SCIM 2.0 (/scim/v2) and a signed leaver webhook "
    "(/webhook/leaver) that start offboarding jobs; run the worker that carries them out, "
    "the scheduled scans and the alerts. The configuration file is validated at start-up, "
    "and the service refuses to start without a dashboard admin secret (there is no "
    "default password); see docs/continuous-audit.md and docs/offboarding.md."
)
EPILOG = """\
examples:
  parcelguard serve --config /etc/parcelguard/serve.yml
  parcelguard serve --new-admin-secret /etc/parcelguard/admin.secret
  parcelguard serve --new-webhook-secret /etc/parcelguard/webhook.secret
  parcelguard offboard token add okta        (a SCIM bearer token, stored hashed)"""


def _progress(message: str) -> None:
    print(f"parcelguard serve: {message}", file=sys.stderr, flush=True)


def _write_secret(path: Path, admin: bool = False) -> int:
    from parcelguard.dashboard.accounts import new_password
    from parcelguard.server.webhook import new_secret

    secret = new_password() + new_password() if admin else new_secret()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"{path} exists; remove it first to rotate the secret") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(secret + "\n")
    print(secret)
    if admin:
        _progress(f"wrote {path} (mode 0600); name it as dashboard.admin_password_file")
    else:
        _progress(f"wrote {path} (mode 0600); give the same secret to the HR system")
    return 0


def _serve(args: argparse.Namespace) -> int:
    if args.new_webhook_secret:
        return _write_secret(Path(args.new_webhook_secret))
    if args.new_admin_secret:
        return _write_secret(Path(args.new_admin_secret), admin=True)
    if not args.config:
        raise ConfigError("serve needs --config FILE", "see docs/offboarding.md for an example")
    from cheroot import wsgi

    from parcelguard.server.app import Service

    config = load_config(Path(args.config))
    logging.basicConfig(level=logging.INFO, format="parcelguard serve: %(message)s")
    quiet_paramiko()
    service = Service(config, _progress)
    server = wsgi.Server((config.host, config.port), service, numthreads=8, timeout=30)
    server.max_request_body_size = 1024 * 1024
    server.max_request_header_size = 64 * 1024
    if config.certificate and config.key:
        from cheroot.ssl.builtin import BuiltinSSLAdapter

        adapter = BuiltinSSLAdapter(str(config.certificate), str(config.key))
        adapter.context.minimum_version = ssl.TLSVersion.TLSv1_2
        server.ssl_adapter = adapter
    worker = threading.Thread(target=service.work, name="offboarding-worker", daemon=True)
    scheduler = threading.Thread(target=service.schedule_loop, name="scheduler", daemon=True)
    deliverer = threading.Thread(target=service.deliver_loop, name="alerts", daemon=True)

    def stop(_signum: int, _frame: Any) -> None:
        service.stopping.set()
        service.wake.set()
        service.deliver_wake.set()
        # server.stop() waits for the serving loop, which runs in this (main) thread:
        # calling it from the handler directly would wait for itself.
        threading.Thread(target=server.stop, name="stop", daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.prepare()  # binds now, so a busy port fails before anything else starts
    scheme = "https" if server.ssl_adapter else "http"
    host, port = server.bind_addr[0], server.bind_addr[1]
    _progress(
        f"listening on {scheme}://{host}:{port} (SCIM at /scim/v2, webhook at /webhook/leaver"
        + (", dashboard at /)" if service.dashboard else "; dashboard disabled)")
    )
    worker.start()
    scheduler.start()
    deliverer.start()
    if config.schedules:
        _progress(
            f"{len(config.schedules)} schedule(s): {', '.join(s.name for s in config.schedules)}"
        )
    try:
        server.serve()
    finally:
        service.stopping.set()
        service.wake.set()
        service.deliver_wake.set()
        service.stop_children()  # running scans stop now, not after the service is gone
        worker.join(timeout=30)
        scheduler.join(timeout=10)
        deliverer.join(timeout=10)
    _progress("stopped")
    return 0


def add_serve_parser(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="SCIM 2.0 and webhook triggers for offboarding, and its worker",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="FILE", help="service configuration (YAML)")
    p.add_argument(
        "--new-webhook-secret",
        metavar="FILE",
        help="write a new webhook signing secret to FILE (mode 0600), print it, and exit",
    )
    p.add_argument(
        "--new-admin-secret",
        metavar="FILE",
        help="write a new dashboard admin password to FILE (mode 0600), print it, and exit",
    )
    p.set_defaults(handler=_serve)
