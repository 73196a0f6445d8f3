"""The ``parcelguard`` command: parse, run, render, exit.

Exit codes (a contract for pipelines): 0 success or compliant, 1 findings at or above the
``--fail-on`` severity, 2 usage, input or connection errors, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from parcelguard import __version__
from parcelguard.errors import ParcelguardError

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
