"""The ``parcelguard`` command: parse, run, render, exit.

Exit codes (a contract for pipelines): 0 success or compliant, 1 findings at or above the
``--fail-on`` severity, 2 usage, input or connection errors, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from parcelguard import __version__
from parcelguard.errors import ParcelguardError

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130

if TYPE_CHECKING:
    from parcelguard.scanners.waivers import Waiver

Handler = Callable[[argparse.Namespace], int]


def _progress(message: str) -> None:
    print(f"parcelguard: {message}", file=sys.stderr, flush=True)


# -- lab -------------------------------------------------------------------------------


def _lab_up(args: argparse.Namespace) -> int:
    from parcelguard.lab import core, fleet

    if args.fleet and args.hosts is not None:
        raise ParcelguardError("give either --hosts or --fleet, not both")
    if args.fleet:
        chosen = fleet.load_fleet_file(Path(args.fleet))
    elif args.hosts is not None:
        chosen = fleet.scaled_fleet(args.hosts)
    else:
        chosen = fleet.DEFAULT_FLEET
    lab = core.up(args.name, chosen, progress=_progress)
    _print_hosts(lab, None)
    print(f"\ninventory:   {lab.paths.inventory}")
    print(f"known_hosts: {lab.paths.known_hosts}")
    print(f"lab secrets: {lab.paths.secrets} (mode 0600; the seeded weak passwords)")
    print(f"try:  ansible -i {lab.paths.inventory} all -m ping")
    return EXIT_OK


def _lab_status(args: argparse.Namespace) -> int:
    from parcelguard.lab import core

    lab = core.load(args.name)
    rows = core.status(lab)
    _print_hosts(lab, {r.host.name: (r.state, r.system) for r in rows})
    healthy = all(r.state == "running" and r.system == "running" for r in rows)
    return EXIT_OK if healthy else EXIT_FINDINGS


def _print_hosts(lab: object, states: dict[str, tuple[str, str]] | None) -> None:
    from parcelguard.lab.core import Lab

    assert isinstance(lab, Lab)
    print(f"lab {lab.name} (image {lab.image}, created {lab.created})")
    header = f"{'HOST':<12} {'ROLE':<12} {'ZONES':<12} {'ADDRESS':<16}"
    print(header + (f" {'CONTAINER':<10} SYSTEMD" if states is not None else ""))
    for h in lab.hosts:
        line = f"{h.name:<12} {h.role:<12} {','.join(h.zones):<12} {h.address:<16}"
        if states is not None:
            state, system = states.get(h.name, ("missing", "-"))
            line += f" {state:<10} {system}"
        print(line)


def _lab_down(args: argparse.Namespace) -> int:
    from parcelguard.lab import core

    removed = core.down(args.name)
    for item in removed:
        print(f"removed {item}")
    if not removed:
        print(f"lab {args.name!r}: nothing to remove")
    return EXIT_OK


def _lab_reseed(args: argparse.Namespace) -> int:
    from parcelguard.lab import core

    lab = core.load(args.name)
    core.reseed_departed(lab, args.host or None)
    hosts = args.host or [h.name for h in lab.hosts]
    print(f"lihua's seeded access is back on {', '.join(hosts)}")
    return EXIT_OK


# -- scan ------------------------------------------------------------------------------

SEVERITIES = ("low", "medium", "high", "critical")


def _scan(args: argparse.Namespace) -> int:
    from parcelguard.scanners import catalog, connection, credcache, runner, store, targets
    from parcelguard.scanners.model import Severity, Status

    if args.inventory:
        fleet = targets.load_inventory(Path(args.inventory), args.limit)
    elif args.limit:
        raise ParcelguardError("--limit needs an inventory (-i)")
    else:
        fleet = targets.local_fleet()
    options = runner.ScanOptions(
        parallel=args.parallel,
        connect_timeout=args.connect_timeout,
        command_timeout=args.timeout,
        verify_host_keys=not args.no_verify_host_keys,
        known_hosts=Path(args.known_hosts) if args.known_hosts else None,
        measure_zones=not args.no_zone_probe,
        roster=_load_roster(args.roster),
        waivers=_load_waivers(args.waivers),
        credential_cache=None if args.no_credential_cache else credcache.default_path(),
    )
    out_path = Path(args.output) if args.output else None
    if out_path is not None:
        _check_writable(out_path)
    scan_store = None if args.no_store else store.ScanStore(store.resolve(args.store))
    connection.quiet_paramiko()
    if not options.verify_host_keys:
        connection.warn_unverified()
    cat = catalog.load_catalog()
    _progress(
        f"scanning {len(fleet.targets)} host(s) from {fleet.source} with {len(cat.ids)} controls"
    )
    scan = runner.FleetScan(fleet, cat, options, _progress).run()
    if scan_store is not None:
        scan_store.save(scan)
        _progress(f"stored scan {scan.scan_id} in {scan_store.path}")
    if out_path is not None:
        _write_atomically(out_path, scan.to_json() + "\n")
        _progress(f"wrote {out_path}")
    if args.json:
        print(scan.to_json())
    else:
        _print_scan(scan)
    if not scan.complete:
        return EXIT_INTERRUPTED
    if any(not h.reachable for h in scan.hosts):
        return EXIT_ERROR
    threshold = Severity(args.fail_on).rank
    failing = (Status.FAIL, Status.ERROR)
    found = any(
        r.status in failing and r.severity.rank >= threshold for h in scan.hosts for r in h.results
    )
    return EXIT_FINDINGS if found else EXIT_OK


def _load_roster(path: str | None) -> frozenset[str] | None:
    from parcelguard.scanners import roster

    if path is None:
        return None
    try:
        return frozenset(m.username for m in roster.load_roster(Path(path)).members)
    except roster.RosterError as exc:
        raise ParcelguardError(f"roster: {exc}") from exc


def _load_waivers(path: str | None) -> tuple[Waiver, ...]:
    from parcelguard.scanners import waivers

    if path is None:
        return ()
    try:
        return waivers.load_waivers(Path(path))
    except waivers.WaiverError as exc:
        raise ParcelguardError(f"waivers: {exc}") from exc


def _check_writable(path: Path) -> None:
    parent = path.resolve().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ParcelguardError(f"cannot write {path}: {parent} is not a writable folder")


def _write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside path, then rename: never a partial file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.resolve().parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _print_scan(scan: object) -> None:
    from parcelguard.scanners.model import ScanResult, Status

    assert isinstance(scan, ScanResult)
    shown = (Status.FAIL, Status.ERROR)
    print(
        f"scan {scan.scan_id}: {len(scan.hosts)} host(s)"
        + ("" if scan.complete else " (INCOMPLETE: interrupted)")
    )
    print(f"{'HOST':<16} {'PASS':>5} {'FAIL':>5} {'ERROR':>5} {'N/A':>5} {'WAIVED':>6}")
    for h in scan.hosts:
        count = {s: sum(1 for r in h.results if r.status == s) for s in Status}
        print(
            f"{h.host:<16} {count[Status.PASS]:>5} {count[Status.FAIL]:>5} "
            f"{count[Status.ERROR]:>5} {count[Status.NOT_APPLICABLE]:>5} {count[Status.WAIVED]:>6}"
            + ("  UNREACHABLE: " + h.error if not h.reachable else "")
        )
    for h in scan.hosts:
        if not h.reachable:
            continue
        for r in h.results:
            if r.status in shown:
                print(
                    f"{r.status.value:<5} {r.severity.value:<8} {r.control_id:<13} "
                    f"{h.host:<14} {r.summary}"
                )
    for note in scan.notes:
        print(f"note: {note}")


def _controls(args: argparse.Namespace) -> int:
    from parcelguard.scanners import catalog

    cat = catalog.load_catalog()
    if args.json:
        rows = [
            {
                "id": c.meta.id,
                "title": c.meta.title,
                "articles": list(c.meta.articles),
                "severity": c.meta.severity.value,
                "role": c.meta.remediation_role,
                "tag": c.meta.remediation_tag,
            }
            for c in cat.controls
        ]
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return EXIT_OK
    for c in cat.controls:
        arts = ",".join(str(a) for a in c.meta.articles)
        print(f"{c.meta.id:<13} art. {arts:<8} {c.meta.severity.value:<8} {c.meta.title}")
    return EXIT_OK


# -- parser ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parcelguard",
        description=(
            "Harden and audit courier servers under the Provisions on the information "
            "security of delivery-service users."
        ),
        epilog="Exit codes: 0 ok/compliant, 1 findings, 2 usage or connection error.",
    )
    parser.add_argument("--version", action="version", version=f"parcelguard {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    lab = commands.add_parser(
        "lab",
        help="a demo courier fleet of real Debian 12 hosts (podman, needs root)",
        description=(
            "Run a demo courier fleet: systemd + sshd Debian 12 containers on zone networks "
            "(dmz, app, data, mgmt) in 198.18.0.0/15, in the neglected state the scanner must "
            "flag and the roles must fix. The image is built once and cached."
        ),
    )
    lab_cmds = lab.add_subparsers(dest="lab_command", metavar="ACTION", required=True)

    def lab_action(
        name: str, handler: Handler, help_text: str, desc: str
    ) -> argparse.ArgumentParser:
        p = lab_cmds.add_parser(name, help=help_text, description=desc)
        p.add_argument(
            "--name", default="demo", help="lab name: several labs can coexist (default: demo)"
        )
        p.set_defaults(handler=handler)
        return p

    up = lab_action(
        "up",
        _lab_up,
        "build the image (once) and start the fleet",
        "Start a fleet and write its Ansible inventory and known_hosts. The default fleet is "
        "6 hosts: web1 and api1 (dmz, nginx), app1 and app2 (app), db1 (data, PostgreSQL with "
        "synthetic waybills), bastion1 (mgmt). Nothing is left half-created on failure.",
    )
    size = up.add_mutually_exclusive_group()
    size.add_argument(
        "--hosts",
        type=int,
        metavar="N",
        help="scale the default fleet's shape to N hosts (4-200), e.g. 50 for benchmarks",
    )
    size.add_argument(
        "--fleet",
        metavar="FILE",
        help="YAML fleet file: hosts: [{name: web1, role: web, zones: [dmz]}, ...]; "
        "roles web, waybill_app, database, bastion; zones dmz, app, data, mgmt",
    )
    lab_action(
        "status",
        _lab_status,
        "show the fleet's hosts, addresses and health",
        "Show each host's role, zones, address, container state and systemd state. "
        "Exit 1 when a host is not running cleanly.",
    )
    lab_action(
        "down",
        _lab_down,
        "remove the fleet's hosts, networks and files",
        "Remove every container and network labelled with the lab's name and the lab's state "
        "folder (inventory, keys, secrets). The cached image and apt cache are kept.",
    )
    reseed = lab_action(
        "reseed",
        _lab_reseed,
        "give the departed employee her seeded access back (to replay offboarding)",
        "Put back lihua's password, SSH key, NOPASSWD sudo rule, cron job, lingering user "
        "service and database login on the lab's hosts, as `lab up` seeded them, so the "
        "offboarding demo can run again. Lab hosts only.",
    )
    reseed.add_argument(
        "--host", action="append", metavar="NAME", help="only this host (repeat); default all"
    )
    scan = commands.add_parser(
        "scan",
        help="check hosts against the controls of the Provisions",
        description=(
            "Scan hosts against every control of the catalog (see `parcelguard controls`). "
            "Without -i, scans this machine. With an Ansible inventory, scans its hosts over "
            "SSH, verifying host keys against the inventory's known_hosts "
            "(UserKnownHostsFile in ansible_ssh_common_args, or parcelguard_known_hosts), and "
            "measures reachability between zones from one host in each zone. Every scan is "
            "stored for history and drift."
        ),
        epilog=(
            "Exit codes: 0 compliant; 1 a FAIL or ERROR at or above --fail-on; 2 usage error or "
            "a host that could not be scanned; 130 interrupted (what finished is saved).  "
            "Example: parcelguard scan -i ~/.local/state/parcelguard/labs/demo/inventory.yml "
            "--roster staff.csv -o scan.json"
        ),
    )
    scan.add_argument("-i", "--inventory", metavar="FILE", help="Ansible inventory to scan")
    scan.add_argument(
        "-l", "--limit", metavar="PATTERN", help="Ansible host pattern, e.g. data:app"
    )
    scan.add_argument(
        "--roster",
        metavar="CSV",
        help="active staff roster (CSV with a username column): accounts of anyone else FAIL "
        "the departed-staff controls (Art. 38); without it those controls report ERROR",
    )
    scan.add_argument(
        "--waivers",
        metavar="YAML",
        help="waiver file: control, hosts, justification, expires, ticket",
    )
    scan.add_argument("-o", "--output", metavar="FILE", help="also write the results as JSON here")
    scan.add_argument("--json", action="store_true", help="print the JSON results on stdout")
    scan.add_argument(
        "--store",
        metavar="PATH|URL",
        help="scan store: SQLite path or sqlite:///path "
        "(default $XDG_STATE_HOME/parcelguard/scans.db)",
    )
    scan.add_argument("--no-store", action="store_true", help="do not store this scan")
    scan.add_argument(
        "--fail-on",
        choices=SEVERITIES,
        default="low",
        help="lowest severity of FAIL/ERROR that makes the exit code 1 (default: low)",
    )
    scan.add_argument(
        "--parallel",
        type=_positive_int,
        default=10,
        metavar="N",
        help="hosts scanned at once (default 10)",
    )
    scan.add_argument(
        "--timeout",
        type=_positive_float,
        default=120,
        metavar="S",
        help="seconds a host may take to answer a command (default 120)",
    )
    scan.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=10,
        metavar="S",
        help="seconds to wait for an SSH connection (default 10)",
    )
    scan.add_argument(
        "--known-hosts",
        metavar="FILE",
        help="verify host keys against this known_hosts file instead",
    )
    scan.add_argument(
        "--no-verify-host-keys",
        action="store_true",
        help="DANGEROUS: accept any host key (a man-in-the-middle could answer); warns loudly",
    )
    scan.add_argument(
        "--no-credential-cache",
        action="store_true",
        help="check every password hash against the default passwords again, even when it "
        "has not changed since the last scan (the check costs ~0.5 s of host CPU)",
    )
    scan.add_argument(
        "--no-zone-probe", action="store_true", help="do not measure reachability between zones"
    )
    scan.set_defaults(handler=_scan)

    controls = commands.add_parser(
        "controls",
        help="list the control catalog with articles and severities",
        description="List every control: id, articles of the Provisions, severity, title.",
    )
    controls.add_argument("--json", action="store_true", help="as JSON, with role and tag")
    controls.set_defaults(handler=_controls)
    from parcelguard.reports.cli import add_report_parser

    add_report_parser(commands)

    from parcelguard.offboard.cli import add_offboard_parser
    from parcelguard.server.run import add_serve_parser
    from parcelguard.server.systemd import add_schedule_parser

    add_offboard_parser(commands)
    add_serve_parser(commands)
    add_schedule_parser(commands)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    from parcelguard.offboard.cli import rewrite_argv

    parser = build_parser()
    args = parser.parse_args(rewrite_argv(sys.argv[1:] if argv is None else argv))
    handler: Handler = args.handler
    try:
        return handler(args)
    except ParcelguardError as exc:
        # One line: what went wrong and, in brackets, what to do about it.
        print(f"parcelguard: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("parcelguard: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
