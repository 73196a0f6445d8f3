"""``parcelguard offboard``: revoke a departed person's access, reconcile a roster, and
show what happened, host by host, with evidence."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from parcelguard.offboard.model import (
    DONE_HOST_STATES,
    HostState,
    Job,
    JobState,
    LeaverEvent,
    OffboardError,
    Source,
    check_login_name,
)
from parcelguard.offboard.store import OffboardStore, default_db

ACTIONS = ("revoke", "reconcile", "status", "report", "resume", "verify-trail", "token")
EXIT_OK, EXIT_PENDING, EXIT_ERROR = 0, 1, 2

DESCRIPTION = (
    "Revoke a departed employee's access on every host of an inventory (Provisions Art. 38), "
    "verify it independently, and keep a tamper-evident audit trail. Each trigger (this "
    "command, a roster, SCIM or a signed webhook under `parcelguard serve`) becomes a job in "
    "a durable queue; hosts that are unreachable stay pending and are retried until verified."
)
EPILOG = """\
examples:
  parcelguard offboard lihua --ticket HR-2026-0931 -i inventory.yml     (short for: revoke)
  parcelguard offboard lihua --ticket HR-2026-0931 -i inventory.yml --dry-run
  parcelguard offboard --roster active_staff.csv -i inventory.yml       (short for: reconcile)
  parcelguard offboard status                 every job; `status 7` for one job's hosts
  parcelguard offboard report -o leavers.csv  person x host, trigger to verified
  parcelguard offboard resume -i inventory.yml  finish pending hosts now
  parcelguard offboard verify-trail           check the audit trail's hash chain
  parcelguard offboard token add okta         a SCIM bearer token (shown once, stored hashed)

A login named like an action (e.g. "status") is revoked with `offboard revoke status`.
exit codes: 0 done and verified, 1 hosts still pending (the job stays queued),
2 usage or input error."""


def rewrite_argv(argv: Sequence[str]) -> list[str]:
    """``offboard USER ...`` means ``offboard revoke USER ...``; ``offboard --roster F``
    means ``offboard reconcile --roster F``."""
    args = list(argv)
    if not args or args[0] != "offboard" or len(args) < 2:
        return args
    first = args[1]
    if first in ACTIONS or first in ("-h", "--help"):
        return args
    if first.startswith("-"):
        if any(a == "--roster" or a.startswith("--roster=") for a in args[1:]):
            return [args[0], "reconcile", *args[1:]]
        return args
    return [args[0], "revoke", *args[1:]]


def _progress(message: str) -> None:
    print(f"parcelguard: {message}", file=sys.stderr, flush=True)


def _store(args: argparse.Namespace) -> OffboardStore:
    return OffboardStore(Path(args.db) if args.db else default_db())


def _offboarder(args: argparse.Namespace) -> Any:
    from parcelguard.offboard.service import Offboarder, OffboardSettings

    if not args.inventory:
        raise OffboardError("offboarding needs an inventory", "give -i INVENTORY")
    settings = OffboardSettings(
        inventory=Path(args.inventory),
        limit=args.limit,
        known_hosts=Path(args.known_hosts) if args.known_hosts else None,
        verify_host_keys=not args.no_verify_host_keys,
        forks=args.forks,
        protected=frozenset(args.protect or ()),
    )
    return Offboarder(_store(args), settings, _progress)


def _run_to_end(offboarder: Any, job_id: int) -> Job:
    job: Job | None = offboarder.run_job(job_id)
    if job is None:
        raise OffboardError(f"job {job_id} vanished from the store")
    return job


def _revoke(args: argparse.Namespace) -> int:
    username = check_login_name(args.user)
    left_at = _parse_time(args.left_at) if args.left_at else None
    offboarder = _offboarder(args)
    now = datetime.now(UTC)
    key = f"cli:{username}:{args.ticket}:{args.limit or '*'}" + (
        f":dry-run:{secrets.token_hex(4)}" if args.dry_run else ""
    )
    event = LeaverEvent(
        username=username,
        source=Source.CLI,
        actor=_actor(),
        ticket=args.ticket,
        key=key,
        received_at=now,
        left_at=left_at,
    )
    queued = offboarder.submit(event, dry_run=args.dry_run)
    if queued.duplicate:
        _progress(f"ticket {args.ticket} for {username} was already received: job {queued.job_id}")
    elif not queued.created:
        _progress(f"{username} already has an open job {queued.job_id}: this event joins it")
    if args.no_wait:
        print(f"queued job {queued.job_id}; `parcelguard serve` or `offboard resume` runs it")
        return EXIT_OK
    job = _run_to_end(offboarder, queued.job_id)
    if args.dry_run:
        return _print_dry_run(offboarder.store, job)
    return _print_outcome(job)


def _reconcile(args: argparse.Namespace) -> int:
    from parcelguard.offboard.reconcile import check_limits, find_departed, load_roster_file

    roster = load_roster_file(Path(args.roster))  # aborts on an empty or cut-off roster
    offboarder = _offboarder(args)
    fleet = offboarder.fleet()
    _progress(f"reading the accounts of {len(fleet.targets)} host(s)")
    found = find_departed(
        fleet,
        roster.roster,
        protected=args.protect or (),
        known_hosts=offboarder.settings.known_hosts,
        verify_host_keys=offboarder.settings.verify_host_keys,
    )
    for host, why in sorted(found.unreadable.items()):
        _progress(f"{host}: accounts could not be read ({why}); it is not reconciled")
    if not found.departed:
        print(f"every human account on the fleet is on the roster ({found.humans} seen)")
        return EXIT_PENDING if found.unreadable else EXIT_OK
    for name, hosts in found.departed.items():
        print(f"not on the roster: {name} on {', '.join(hosts)}")
    check_limits(
        found, max_count=args.max_revocations, max_share=args.max_share, confirmed=args.yes
    )
    if args.dry_run:
        print(f"dry run: {len(found.departed)} account(s) would be revoked; nothing changed")
        return EXIT_OK
    worst = EXIT_OK
    now = datetime.now(UTC)
    for name in found.departed:
        event = LeaverEvent(
            username=name,
            source=Source.ROSTER,
            actor=f"roster {roster.path}",
            ticket=args.ticket or f"roster-{roster.digest[:12]}",
            key=f"roster:{name}:{roster.digest}",
            received_at=now,
        )
        queued = offboarder.submit(event)
        job = _run_to_end(offboarder, queued.job_id)
        worst = max(worst, _print_outcome(job))
    return EXIT_PENDING if found.unreadable else worst


def _resume(args: argparse.Namespace) -> int:
    offboarder = _offboarder(args)
    ran = 0
    for job in offboarder.store.jobs(open_only=True):
        result = _run_to_end(offboarder, job.id)
        ran += 1
        _print_outcome(result)
    if not ran:
        print("no unfinished job")
    left = offboarder.store.jobs(open_only=True)
    return EXIT_PENDING if left else EXIT_OK


def _print_outcome(job: Job) -> int:
    done = sum(h.state in DONE_HOST_STATES for h in job.hosts)
    print(
        f"job {job.id}: {job.username} (ticket {job.ticket}): {job.state.value}, "
        f"{done}/{len(job.hosts)} host(s) verified"
    )
    for h in job.hosts:
        detail = h.last_error if h.state not in DONE_HOST_STATES else _verified_detail(h.state)
        print(f"  {h.host:<20} {h.state.value:<9} {detail}")
    if job.secrets_to_rotate:
        print(
            f"  rotate these shared secrets {job.username} knew: {', '.join(job.secrets_to_rotate)}"
        )
    if all(h.state is HostState.ABSENT for h in job.hosts) and job.hosts:
        print(
            f"parcelguard: error: no account or database role named {job.username!r} on any of "
            f"{len(job.hosts)} host(s): nothing was revoked (check the name)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    if job.state is not JobState.VERIFIED:
        print(
            "  pending hosts are retried by `parcelguard serve`, or now with "
            "`parcelguard offboard resume`"
        )
        return EXIT_PENDING
    return EXIT_OK


def _verified_detail(state: HostState) -> str:
    return (
        "no account or role there (verified)"
        if state is HostState.ABSENT
        else "revoked and verified"
    )


def _print_dry_run(store: OffboardStore, job: Job) -> int:
    print(f"dry run for {job.username}: nothing was changed")
    for entry in store.trail(job.id):
        if entry.kind != "host_dry_run":
            continue
        d = entry.data
        if d["status"] != "revoked":
            print(f"  {d['host']:<20} {d['status']}: {d['error']}")
        elif not d["present"]:
            print(f"  {d['host']:<20} nothing of {job.username} here")
        else:
            print(f"  {d['host']:<20} would change: {', '.join(d['would_change']) or 'nothing'}")
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.job is not None:
        job = store.job(args.job)
        if job is None:
            raise OffboardError(f"no job {args.job}")
        if args.json:
            print(json.dumps(_job_json(store, job), indent=2))
            return EXIT_OK
        _print_outcome(job)
        for entry in store.trail(job.id):
            print(f"  {entry.at}  {entry.kind}  {_short(entry.data)}")
        return EXIT_OK
    jobs = store.jobs(username=args.user, open_only=args.open)
    if args.json:
        print(json.dumps([_job_json(store, j, trail=False) for j in jobs], indent=2))
        return EXIT_OK
    if not jobs:
        print("no offboarding job yet")
        return EXIT_OK
    print(
        f"{'job':>4}  {'user':<12} {'source':<8} {'ticket':<16} {'state':<9} hosts"
        "   trigger->verified"
    )
    for j in jobs:
        done = sum(h.state in DONE_HOST_STATES for h in j.hosts)
        took = _duration(j)
        print(
            f"{j.id:>4}  {j.username:<12} {j.source.value:<8} {j.ticket[:16]:<16} "
            f"{j.state.value:<9} {done:>2}/{len(j.hosts):<3}  {took}"
        )
    return EXIT_OK


def _short(data: dict[str, Any]) -> str:
    keep = {k: v for k, v in data.items() if k not in ("steps", "evidence", "detail")}
    return json.dumps(keep, ensure_ascii=False)[:160]


def _duration(job: Job) -> str:
    if not job.verified_at:
        return "-"
    seconds = (
        datetime.fromisoformat(job.verified_at) - datetime.fromisoformat(job.created_at)
    ).total_seconds()
    return f"{seconds:.0f} s"


def _job_json(store: OffboardStore, job: Job, trail: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": job.id,
        "username": job.username,
        "ticket": job.ticket,
        "source": job.source.value,
        "actor": job.actor,
        "state": job.state.value,
        "created_at": job.created_at,
        "verified_at": job.verified_at,
        "left_at": job.left_at,
        "dry_run": job.dry_run,
        "secrets_to_rotate": list(job.secrets_to_rotate),
        "hosts": [
            {
                "host": h.host,
                "state": h.state.value,
                "attempts": h.attempts,
                "last_error": h.last_error,
                "revoked_at": h.revoked_at,
                "verified_at": h.verified_at,
                "steps": list(h.steps),
                "verification": h.verification,
            }
            for h in job.hosts
        ],
    }
    if trail:
        doc["events"] = store.events_of(job.id)
        doc["trail"] = [
            {"seq": e.seq, "at": e.at, "kind": e.kind, "data": e.data, "hash": e.hash}
            for e in store.trail(job.id)
        ]
    return doc


def _report(args: argparse.Namespace) -> int:
    from parcelguard.offboard.report import render

    store = _store(args)
    text = render(store.jobs(), args.format)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        _progress(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _verify_trail(args: argparse.Namespace) -> int:
    count, problems = _store(args).verify_trail()
    for p in problems:
        print(f"TAMPERED: {p}")
    if problems:
        return EXIT_PENDING
    print(f"audit trail intact: {count} entries, hash chain verified")
    return EXIT_OK


def _token(args: argparse.Namespace) -> int:
    from parcelguard.server.auth import new_token, token_digest

    store = _store(args)
    if args.token_action in ("add", "remove") and not args.name:
        raise OffboardError(f"`token {args.token_action}` needs a token NAME")
    action: str = args.token_action
    if action == "add":
        if not args.name.replace("-", "").replace("_", "").isalnum():
            raise OffboardError("a token name is letters, digits, - and _")
        token = new_token()
        store.add_token(args.name, token_digest(token))
        print(token)
        _progress(f"token {args.name!r} stored hashed; this is the only time it is shown")
    elif action == "remove":
        if not store.remove_token(args.name):
            raise OffboardError(f"no token named {args.name!r}")
        print(f"removed token {args.name}")
    else:
        for name, created in store.token_names():
            print(f"{name}\t{created}")
    return EXIT_OK


def _actor() -> str:
    import getpass
    import os

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user} (cli)"


def _parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise OffboardError(f"--left-at {text!r} is not an ISO 8601 date or time") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _share(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError("must be a fraction in (0, 1]")
    return value


def add_offboard_parser(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "offboard",
        help="revoke departed staff's access on every host, verified (Art. 38)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="offboard_action", metavar="ACTION", required=True)

    def db_option(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "--db",
            metavar="PATH",
            help="offboarding store (default $XDG_STATE_HOME/parcelguard/offboarding.db)",
        )

    def fleet_options(q: argparse.ArgumentParser) -> None:
        db_option(q)
        q.add_argument("-i", "--inventory", metavar="FILE", help="Ansible inventory of the fleet")
        q.add_argument(
            "--limit", metavar="PATTERN", help="Ansible host pattern within the inventory"
        )
        q.add_argument(
            "--known-hosts",
            metavar="FILE",
            help="known_hosts for verification (default: inventory's)",
        )
        q.add_argument(
            "--no-verify-host-keys",
            action="store_true",
            help="do not verify SSH host keys during verification (proves nothing; lab only)",
        )
        q.add_argument(
            "--forks", type=_positive_int, default=50, help="hosts changed at once (default 50)"
        )
        q.add_argument(
            "--protect",
            action="append",
            metavar="LOGIN",
            help="an account that is never revoked (repeat); root and postgres always are",
        )

    revoke = actions.add_parser(
        "revoke",
        help="revoke one person (also: `offboard USER`)",
        description="Revoke USER on every host of the inventory, then verify every host. "
        "Blocks logins (expiry, lock, no-login shell, sshd deny group), removes SSH keys, "
        "ends sessions and processes, removes cron/at/systemd user jobs, sudo rules and "
        "groups, makes the PostgreSQL role NOLOGIN, archives the home directory. The "
        "account is kept disabled, never deleted at once.",
    )
    revoke.add_argument("user", metavar="USER", help="the Linux login name")
    revoke.add_argument("--ticket", required=True, help="HR or change ticket (recorded)")
    revoke.add_argument(
        "--dry-run", action="store_true", help="show what would change; change nothing"
    )
    revoke.add_argument(
        "--left-at", metavar="TIME", help="when the person left (ISO 8601); default now"
    )
    revoke.add_argument(
        "--no-wait", action="store_true", help="only queue the job for `parcelguard serve`"
    )
    fleet_options(revoke)
    revoke.set_defaults(handler=_revoke)

    rec = actions.add_parser(
        "reconcile",
        help="revoke every human account not on the roster (also: `offboard --roster F`)",
        description="Read every host's human accounts (as the PG-STAFF controls define them) "
        "and revoke those not on the active-staff roster. A roster that is empty, malformed "
        "or cut off aborts; more revocations than --max-revocations or --max-share stop "
        "for confirmation (--yes).",
    )
    rec.add_argument(
        "--roster", required=True, metavar="CSV", help="active-staff roster (username column)"
    )
    rec.add_argument(
        "--ticket", help="ticket recorded with each revocation (default: the roster's hash)"
    )
    rec.add_argument("--max-revocations", type=_positive_int, default=5, help="default 5")
    rec.add_argument(
        "--max-share", type=_share, default=0.2, help="fraction of human accounts (default 0.2)"
    )
    rec.add_argument("--yes", action="store_true", help="confirm a revocation above the limits")
    rec.add_argument(
        "--dry-run", action="store_true", help="list who would be revoked; change nothing"
    )
    fleet_options(rec)
    rec.set_defaults(handler=_reconcile)

    status = actions.add_parser(
        "status",
        help="jobs and their hosts",
        description="List offboarding jobs, or one job " "with its hosts and audit trail.",
    )
    status.add_argument("job", nargs="?", type=int, help="a job id for its details")
    status.add_argument("--user", help="only this person's jobs")
    status.add_argument("--open", action="store_true", help="only unfinished jobs")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    db_option(status)
    status.set_defaults(handler=_status)

    report = actions.add_parser(
        "report",
        help="every departed person x host: trigger to verified, logins after leaving",
        description="The offboarding evidence for auditors: per person and host, when the "
        "trigger came, when revocation was verified, how long it took, whether anyone logged "
        "in after the leaving time, and which shared secrets need rotation.",
    )
    report.add_argument("--format", choices=("md", "csv", "json"), default="md")
    report.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    db_option(report)
    report.set_defaults(handler=_report)

    resume = actions.add_parser(
        "resume",
        help="run every unfinished job now",
        description="Run every unfinished job "
        "now, ignoring its backoff: for hosts that are back, or after a crash.",
    )
    fleet_options(resume)
    resume.set_defaults(handler=_resume)

    trail = actions.add_parser(
        "verify-trail",
        help="check the audit trail's hash chain",
        description="Recompute the SHA-256 chain of the audit trail; exit 1 if any entry was "
        "changed, removed or reordered.",
    )
    db_option(trail)
    trail.set_defaults(handler=_verify_trail)

    token = actions.add_parser(
        "token",
        help="SCIM bearer tokens (stored hashed)",
        description="Add, list or remove the bearer tokens SCIM clients use. A new token is "
        "printed once; only its SHA-256 is stored.",
    )
    token.add_argument("token_action", choices=("add", "list", "remove"))
    token.add_argument("name", nargs="?", help="token name, e.g. okta or entra")
    db_option(token)
    token.set_defaults(handler=_token)
