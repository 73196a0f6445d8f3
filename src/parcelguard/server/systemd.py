"""``parcelguard schedule install|remove|list``: a scan on the OS scheduler (systemd).

For sites that prefer systemd to ``parcelguard serve``: a oneshot service that runs
``parcelguard scan`` and a timer with ``Persistent=true`` (a run missed while the machine
was off is made once at boot). The service is sandboxed: no new privileges, a read-only
system, private /tmp, writable only in its state folder /var/lib/parcelguard (scan store
and credential cache; systemd creates it for the account the scan runs as) and, with
--store elsewhere, that store's folder.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parcelguard.errors import ParcelguardError

UNIT_DIR = Path("/etc/systemd/system")
SERVICE_STATE = Path("/var/lib/parcelguard")
PREFIX = "parcelguard-scan-"
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


class ScheduleInstallError(ParcelguardError):
    pass


@dataclass(frozen=True)
class ScanTimer:
    name: str
    inventory: Path
    on_calendar: str
    limit: str | None = None
    roster: Path | None = None
    store: Path | None = None
    user: str = "root"

    @property
    def service_name(self) -> str:
        return f"{PREFIX}{self.name}.service"

    @property
    def timer_name(self) -> str:
        return f"{PREFIX}{self.name}.timer"


def quote(arg: str) -> str:
    """One argument for an ExecStart= line (systemd.service(5) quoting and specifiers)."""
    if any(c in arg for c in "\n\r\0"):
        raise ScheduleInstallError(f"argument {arg!r} holds a line break")
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def check_calendar(expr: str) -> str:
    """Normalised OnCalendar expression, checked by systemd-analyze when it is there."""
    if not expr.strip() or any(c in expr for c in "\n\r\0"):
        raise ScheduleInstallError("--on-calendar needs an expression such as daily or *-*-* 02:00")
    tool = shutil.which("systemd-analyze")
    if tool is None:
        return expr.strip()
    proc = subprocess.run(
        [tool, "calendar", "--", expr], capture_output=True, text=True, timeout=20, check=False
    )
    if proc.returncode != 0:
        why = " ".join(proc.stderr.strip().splitlines()[-1:])
        raise ScheduleInstallError(
            f"invalid --on-calendar {expr!r}: {why}",
            "see systemd.time(7), e.g. daily, hourly, Mon *-*-* 02:00",
        )
    for line in proc.stdout.splitlines():
        if line.strip().startswith("Normalized form:"):
            return line.split(":", 1)[1].strip()
    return expr.strip()


def render(timer: ScanTimer) -> tuple[str, str]:
    """The service and timer unit files."""
    # The service's own state (scan store, credential cache) lives in StateDirectory=,
    # which systemd creates for the account the scan runs as.
    store = timer.store or SERVICE_STATE / "scans.db"
    argv = [
        sys.executable,
        "-m",
        "parcelguard",
        "scan",
        "-i",
        str(timer.inventory),
        "--store",
        str(store),
    ]
    if timer.limit:
        argv += ["--limit", timer.limit]
    if timer.roster:
        argv += ["--roster", str(timer.roster)]
    extra = "" if store.parent == SERVICE_STATE else f"ReadWritePaths=-{quote(str(store.parent))}\n"
    user = "" if timer.user == "root" else f"User={timer.user}\n"
    service = (
        "# Written by `parcelguard schedule install`; remove with `parcelguard schedule remove`.\n"
        "[Unit]\n"
        f"Description=parcelguard scan {timer.name} (Provisions Art. 33: regular internal audit)\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"{user}"
        "# The system is read-only here: Ansible's inventory code gets its scratch space in\n"
        "# the private /tmp.\n"
        "Environment=ANSIBLE_HOME=/tmp/ansible ANSIBLE_LOCAL_TEMP=/tmp/ansible/tmp\n"
        "Environment=XDG_STATE_HOME=/var/lib XDG_CACHE_HOME=/tmp/cache\n"
        f"ExecStart={' '.join(quote(a) for a in argv)}\n"
        "# Exit 1 means the scan found failures: the scan itself succeeded.\n"
        "SuccessExitStatus=1\n"
        "TimeoutStartSec=3h\n"
        "NoNewPrivileges=yes\n"
        "PrivateTmp=yes\n"
        "ProtectSystem=strict\n"
        "StateDirectory=parcelguard\n"
        "StateDirectoryMode=0700\n"
        f"{extra}"
        "ProtectKernelTunables=yes\n"
        "ProtectKernelModules=yes\n"
        "ProtectControlGroups=yes\n"
        "RestrictSUIDSGID=yes\n"
        "LockPersonality=yes\n"
        "RestrictRealtime=yes\n"
        "UMask=0077\n"
    )
    timer_unit = (
        "# Written by `parcelguard schedule install`; remove with `parcelguard schedule remove`.\n"
        "[Unit]\n"
        f"Description=Run the parcelguard scan {timer.name} on schedule\n\n"
        "[Timer]\n"
        f"OnCalendar={timer.on_calendar}\n"
        "# A run missed while the machine was off is made once, at the next boot.\n"
        "Persistent=true\n"
        f"Unit={timer.service_name}\n\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )
    return service, timer_unit


def _systemctl(*args: str) -> None:
    proc = subprocess.run(
        ["systemctl", *args], capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        why = " ".join(proc.stderr.strip().splitlines()[-1:])
        raise ScheduleInstallError(f"systemctl {' '.join(args)} failed: {why}")


def _install(args: argparse.Namespace) -> int:
    if not NAME.fullmatch(args.name):
        raise ScheduleInstallError("a schedule name is lower-case letters, digits and -")
    if not USER.fullmatch(args.user):
        raise ScheduleInstallError(f"--user {args.user!r} is not a login name")
    inventory = Path(args.inventory).resolve()
    if not inventory.is_file():
        raise ScheduleInstallError(f"inventory {inventory} does not exist")
    roster = Path(args.roster).resolve() if args.roster else None
    if roster is not None and not roster.is_file():
        raise ScheduleInstallError(f"roster {roster} does not exist")
    timer = ScanTimer(
        name=args.name,
        inventory=inventory,
        on_calendar=check_calendar(args.on_calendar),
        limit=args.limit,
        roster=roster,
        store=Path(args.store).resolve() if args.store else None,
        user=args.user,
    )
    unit_dir = Path(args.unit_dir)
    service_path, timer_path = unit_dir / timer.service_name, unit_dir / timer.timer_name
    if (service_path.exists() or timer_path.exists()) and not args.replace:
        raise ScheduleInstallError(
            f"schedule {args.name} is installed already", "use --replace to change it"
        )
    service, timer_text = render(timer)
    unit_dir.mkdir(parents=True, exist_ok=True)
    for path, text in ((service_path, service), (timer_path, timer_text)):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o644)
        tmp.replace(path)
    print(f"wrote {service_path} and {timer_path} (OnCalendar={timer.on_calendar})")
    if args.no_enable:
        print(
            f"enable it with: systemctl daemon-reload && systemctl enable --now {timer.timer_name}"
        )
        return 0
    _systemctl("daemon-reload")
    _systemctl("enable", "--now", timer.timer_name)
    print(f"enabled {timer.timer_name}; see `systemctl list-timers {timer.timer_name}`")
    return 0


def _remove(args: argparse.Namespace) -> int:
    if not NAME.fullmatch(args.name):
        raise ScheduleInstallError("a schedule name is lower-case letters, digits and -")
    unit_dir = Path(args.unit_dir)
    paths = [unit_dir / f"{PREFIX}{args.name}.timer", unit_dir / f"{PREFIX}{args.name}.service"]
    if not any(p.exists() for p in paths):
        raise ScheduleInstallError(f"no schedule {args.name} in {unit_dir}")
    if not args.no_enable:
        _systemctl("disable", "--now", f"{PREFIX}{args.name}.timer")
        _systemctl("stop", f"{PREFIX}{args.name}.service")  # a scan still running
    for p in paths:
        p.unlink(missing_ok=True)
    if not args.no_enable:
        _systemctl("daemon-reload")
    print(f"removed schedule {args.name}")
    return 0


def _list(args: argparse.Namespace) -> int:
    unit_dir = Path(args.unit_dir)
    timers = sorted(unit_dir.glob(f"{PREFIX}*.timer"))
    for t in timers:
        calendar = next(
            (
                ln.split("=", 1)[1]
                for ln in t.read_text(encoding="utf-8").splitlines()
                if ln.startswith("OnCalendar=")
            ),
            "?",
        )
        print(f"{t.name.removeprefix(PREFIX).removesuffix('.timer')}\t{calendar}")
    if not timers:
        print("no scheduled scan installed")
    return 0


def add_schedule_parser(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "schedule",
        help="run scans from systemd timers instead of `parcelguard serve`",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="schedule_action", metavar="ACTION", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--unit-dir", default=str(UNIT_DIR), help=f"default {UNIT_DIR}")
        q.add_argument(
            "--no-enable",
            action="store_true",
            help="only write (or only delete) the unit files; do not call systemctl",
        )

    inst = actions.add_parser(
        "install",
        help="write and enable a timer + service for a scan",
        description="Write parcelguard-scan-NAME.service and .timer, then daemon-reload and "
        "enable the timer. Example: parcelguard schedule install nightly -i /etc/parcelguard/"
        "inventory.yml --on-calendar '*-*-* 02:00'",
    )
    inst.add_argument("name", help="schedule name: lower-case letters, digits and -")
    inst.add_argument("-i", "--inventory", required=True, help="Ansible inventory to scan")
    inst.add_argument(
        "--on-calendar",
        default="daily",
        help="systemd calendar expression (default: daily); see systemd.time(7)",
    )
    inst.add_argument("--limit", help="Ansible host pattern within the inventory")
    inst.add_argument("--roster", help="staff roster CSV for the Art. 38 controls")
    inst.add_argument("--store", help="scan store (default /var/lib/parcelguard/scans.db)")
    inst.add_argument("--user", default="root", help="account the scan runs as (default root)")
    inst.add_argument("--replace", action="store_true", help="overwrite an installed schedule")
    common(inst)
    inst.set_defaults(handler=_install)
    rem = actions.add_parser(
        "remove",
        help="disable and delete a scheduled scan",
        description="Disable the timer and delete both unit files.",
    )
    rem.add_argument("name")
    common(rem)
    rem.set_defaults(handler=_remove)
    lst = actions.add_parser(
        "list",
        help="installed scheduled scans",
        description="List installed parcelguard scan timers.",
    )
    lst.add_argument("--unit-dir", default=str(UNIT_DIR), help=f"default {UNIT_DIR}")
    lst.set_defaults(handler=_list)
