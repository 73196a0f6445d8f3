"""Bring a lab fleet up, show it, take it down.

``up`` is all or nothing: whatever it created is removed again if any step fails or the
user presses Ctrl-C. ``down`` removes exactly what carries the lab's label and the lab's
own state folder, nothing else.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

from parcelguard.errors import ParcelguardError
from parcelguard.lab import image, seed
from parcelguard.lab.fleet import Fleet
from parcelguard.lab.podman import LABEL, ULIMITS, Podman, PodmanError
from parcelguard.paths import cache_home, state_home

# RFC 2544's benchmark range: never routed, so lab traffic cannot leave the machine.
LAB_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
FIRST_HOST_OCTET = 10
_LAB_NAME = re.compile(r"^[a-z][a-z0-9]{0,11}$")
WORKERS = 4  # podman and systemd start-up are CPU-bound; this machine has 2 cores
WAYBILL_ROWS = 500
EXPORT_ROWS = 50
Progress = Callable[[str], None]
T = TypeVar("T")
R = TypeVar("R")


class LabError(ParcelguardError):
    pass


@dataclass(frozen=True)
class LabHost:
    name: str
    role: str
    zones: tuple[str, ...]
    container: str
    addresses: dict[str, str]  # zone -> IPv4 address

    @property
    def address(self) -> str:
        return self.addresses[self.zones[0]]


@dataclass(frozen=True)
class LabPaths:
    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "lab.json"

    @property
    def inventory(self) -> Path:
        return self.root / "inventory.yml"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def admin_key(self) -> Path:
        return self.root / "admin_ed25519"

    @property
    def departed_key(self) -> Path:
        return self.root / "departed_lihua_ed25519"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets.json"


@dataclass(frozen=True)
class Lab:
    name: str
    image: str
    created: str
    networks: dict[str, dict[str, str]]  # zone -> {"name", "subnet"}
    hosts: tuple[LabHost, ...]
    paths: LabPaths

    def host(self, name: str) -> LabHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)


def lab_dir(name: str, state_root: Path | None = None) -> LabPaths:
    return LabPaths((state_root or state_home() / "labs") / name)


def check_name(name: str) -> None:
    if not _LAB_NAME.match(name):
        raise LabError(
            f"invalid lab name {name!r}",
            "use 1-12 lower-case letters and digits, starting with a letter",
        )


def preflight(podman: Podman) -> None:
    """Refuse early, with the fix, when this machine cannot run the lab."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (rootful podman with zone networks)", "run it with sudo")
    if not Podman.available(podman.binary):
        raise LabError("podman is not installed", "run: apt-get install -y podman runc")
    if shutil.which(podman.runtime) is None:
        raise LabError(f"the OCI runtime {podman.runtime} is missing", "apt-get install -y runc")
    if shutil.which("ssh-keygen") is None:
        raise LabError("ssh-keygen is missing", "apt-get install -y openssh-client")


def up(
    name: str,
    fleet: Fleet,
    *,
    podman: Podman | None = None,
    state_root: Path | None = None,
    progress: Progress = lambda _msg: None,
) -> Lab:
    """Build the image if needed and start the fleet; on any failure remove what was made."""
    check_name(name)
    podman = podman or Podman()
    preflight(podman)
    paths = lab_dir(name, state_root)
    if paths.root.exists() or podman.containers_labelled(LABEL, name):
        raise LabError(
            f"lab {name!r} already exists",
            f"see `parcelguard lab status --name {name}` or take it "
            f"down with `parcelguard lab down --name {name}`",
        )
    apt_cache = cache_home() / "apt-archives"
    (apt_cache / "partial").mkdir(parents=True, exist_ok=True)
    ref = image.ensure_image(podman, apt_cache, progress)
    _ensure_inotify(len(fleet.hosts), progress)

    created_networks: list[str] = []
    created_containers: list[str] = []
    try:
        paths.root.mkdir(parents=True, mode=0o700)
        networks = _create_networks(podman, name, fleet, created_networks)
        _keep_source_addresses()
        hosts = _plan_hosts(name, fleet, networks)
        secret_values = _make_secrets(paths)
        progress(f"starting {len(hosts)} hosts in zones {', '.join(fleet.zones)}")
        for h in hosts:
            created_containers.append(h.container)
        _parallel(lambda h: _start(podman, name, h, ref, networks, apt_cache), hosts)
        progress("waiting for systemd and provisioning (seeded weaknesses, waybill data)")
        settings = _provision_settings(paths, secret_values)
        _parallel(lambda h: _wait_and_provision(podman, h, settings), hosts)
        lab = Lab(
            name=name,
            image=ref,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            networks=networks,
            hosts=tuple(hosts),
            paths=paths,
        )
        _write_known_hosts(podman, lab)
        _write_inventory(lab)
        _write_manifest(lab)
        return lab
    except BaseException:
        progress("lab up failed: removing what it created")
        podman.remove_containers(created_containers)
        for n in created_networks:
            podman.remove_network(n)
        shutil.rmtree(paths.root, ignore_errors=True)
        raise


def down(name: str, *, podman: Podman | None = None, state_root: Path | None = None) -> list[str]:
    """Remove the lab's containers, networks and state folder; return what was removed."""
    check_name(name)
    podman = podman or Podman()
    preflight(podman)
    removed: list[str] = []
    names = [c["Names"][0] for c in podman.containers_labelled(LABEL, name)]
    podman.remove_containers(names)
    removed += [f"container {cname}" for cname in names]
    for n in podman.networks_labelled(LABEL, name):
        podman.remove_network(n)
        removed.append(f"network {n}")
    paths = lab_dir(name, state_root)
    if paths.root.exists():
        shutil.rmtree(paths.root)
        removed.append(f"folder {paths.root}")
    if not podman.networks_labelled_any(LABEL) and _drop_source_rule():
        removed.append("the lab's no-NAT rule")
    return removed


# netavark masquerades traffic that leaves a network, so a host in one zone would see
# every other zone's traffic come from its own gateway and no firewall could tell zones
# apart. This rule, first in POSTROUTING, exempts traffic between lab networks.
_NO_NAT_RULE = (
    "POSTROUTING", "-s", str(LAB_RANGE), "-d", str(LAB_RANGE),
    "-m", "comment", "--comment", "parcelguard-lab: keep source addresses between zones",
    "-j", "ACCEPT",
)  # fmt: skip


def _iptables(*args: str) -> int:
    binary = shutil.which("iptables")
    if binary is None:
        raise LabError("iptables is missing", "apt-get install -y iptables")
    return subprocess.run(
        [binary, "-t", "nat", *args], capture_output=True, check=False, timeout=30
    ).returncode


def _keep_source_addresses() -> None:
    if (
        _iptables("-C", *_NO_NAT_RULE) != 0
        and _iptables("-I", *_NO_NAT_RULE[:1], "1", *_NO_NAT_RULE[1:]) != 0
    ):
        raise LabError("cannot add the lab's no-NAT rule to iptables' nat table")


def _drop_source_rule() -> bool:
    return _iptables("-C", *_NO_NAT_RULE) == 0 and _iptables("-D", *_NO_NAT_RULE) == 0


def load(name: str, state_root: Path | None = None) -> Lab:
    """Read a lab's manifest, as written by ``up``."""
    check_name(name)
    paths = lab_dir(name, state_root)
    try:
        data = json.loads(paths.manifest.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise LabError(f"lab {name!r} is not up", "start it with `parcelguard lab up`") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise LabError(f"lab manifest {paths.manifest} is unreadable: {exc}") from exc
    hosts = tuple(
        LabHost(h["name"], h["role"], tuple(h["zones"]), h["container"], dict(h["addresses"]))
        for h in data["hosts"]
    )
    return Lab(data["name"], data["image"], data["created"], data["networks"], hosts, paths)


@dataclass(frozen=True)
class HostStatus:
    host: LabHost
    state: str  # podman's container state, or "missing"
    system: str  # systemd's is-system-running answer, or "-"


def status(lab: Lab, podman: Podman | None = None) -> list[HostStatus]:
    podman = podman or Podman()
    states = {
        c["Names"][0]: c.get("State", "?") for c in podman.containers_labelled(LABEL, lab.name)
    }

    def one(h: LabHost) -> HostStatus:
        state = states.get(h.container, "missing")
        system = "-"
        if state == "running":
            proc = podman.exec(h.container, ["systemctl", "is-system-running"], timeout=20)
            system = proc.stdout.decode().strip() or "unknown"
        return HostStatus(h, state, system)

    return _parallel(one, lab.hosts)


# -- steps of `up` ---------------------------------------------------------------------


INOTIFY_LIMIT = Path("/proc/sys/fs/inotify/max_user_instances")
INOTIFY_PER_HOST = 16  # systemd, journald, logind, dbus... in every host, all as root


def _ensure_inotify(hosts: int, progress: Progress) -> None:
    """Raise the machine's inotify instance limit when the fleet needs more than it allows.

    All hosts' systemd run as the same root user, and Debian's default of 128 instances is
    exhausted at about 20 hosts: path units then fail and hosts boot degraded.
    """
    needed = 128 + INOTIFY_PER_HOST * hosts
    try:
        current = int(INOTIFY_LIMIT.read_text())
    except (OSError, ValueError):
        return
    if current >= needed:
        return
    progress(f"raising fs.inotify.max_user_instances from {current} to {needed} for {hosts} hosts")
    try:
        INOTIFY_LIMIT.write_text(f"{needed}\n")
    except OSError as exc:
        raise LabError(
            f"{hosts} hosts need fs.inotify.max_user_instances >= {needed} (now {current})",
            f"run: sysctl -w fs.inotify.max_user_instances={needed}",
        ) from exc


def _create_networks(
    podman: Podman, name: str, fleet: Fleet, created: list[str]
) -> dict[str, dict[str, str]]:
    used = podman.subnets_in_use()
    free = (s for s in LAB_RANGE.subnets(new_prefix=24) if not any(s.overlaps(u) for u in used))
    networks: dict[str, dict[str, str]] = {}
    for zone in fleet.zones:
        subnet = next(free, None)
        if subnet is None:
            raise LabError("no free /24 left in 198.18.0.0/15 for the lab's zone networks")
        net_name = f"pg-{name}-{zone}"
        podman.create_network(net_name, subnet, {LABEL: name, f"{LABEL}.zone": zone})
        created.append(net_name)
        networks[zone] = {"name": net_name, "subnet": str(subnet)}
    return networks


def _plan_hosts(name: str, fleet: Fleet, networks: dict[str, dict[str, str]]) -> list[LabHost]:
    next_octet = dict.fromkeys(networks, FIRST_HOST_OCTET)
    hosts = []
    for spec in fleet.hosts:
        addresses = {}
        for zone in spec.zones:
            subnet = ipaddress.ip_network(networks[zone]["subnet"])
            addresses[zone] = str(subnet.network_address + next_octet[zone])
            next_octet[zone] += 1
        hosts.append(LabHost(spec.name, spec.role, spec.zones, f"pg-{name}-{spec.name}", addresses))
    return hosts


def _start(
    podman: Podman,
    lab_name: str,
    h: LabHost,
    ref: str,
    networks: dict[str, dict[str, str]],
    apt_cache: Path,
) -> None:
    args = [
        "run",
        "--detach",
        "--name",
        h.container,
        "--hostname",
        h.name,
        "--label",
        f"{LABEL}={lab_name}",
        "--label",
        f"{LABEL}.host={h.name}",
        "--systemd",
        "always",
        *ULIMITS,
        "--cap-add",
        "NET_ADMIN,NET_RAW",
        # :O makes the shared cache the lower layer of a private overlay: hosts read what
        # is cached, write their own downloads, and never share an apt lock.
        "--volume",
        f"{apt_cache}:/var/cache/apt/archives:O",
    ]
    for zone in h.zones:
        args += ["--network", f"{networks[zone]['name']}:ip={h.addresses[zone]}"]
    podman.run([*args, ref, "/sbin/init"], timeout=180)


def _make_secrets(paths: LabPaths) -> dict[str, str]:
    for key, comment in ((paths.admin_key, "parcelguard-lab-admin"), (paths.departed_key, "lihua")):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)],
            check=True,
            capture_output=True,
        )
    values = {
        "root_password": secrets.token_urlsafe(12),
        "departed_password": secrets.token_urlsafe(12),
        "db_app_password": secrets.token_urlsafe(12),
        # Seeded weaknesses: these two are the vendors' defaults on purpose.
        "db_superuser_password": "postgres",
        "vendor_password": "support",
    }
    fd = os.open(paths.secrets, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(values, out, indent=2)
    return values


def _provision_settings(paths: LabPaths, values: dict[str, str]) -> dict[str, Any]:
    return {
        **values,
        "admin_pubkey": paths.admin_key.with_suffix(".pub").read_text(encoding="utf-8"),
        "departed_pubkey": paths.departed_key.with_suffix(".pub").read_text(encoding="utf-8"),
        "waybill_sql": seed.waybill_sql(WAYBILL_ROWS),
        "waybill_csv": seed.waybill_csv(EXPORT_ROWS),
    }


def _wait_for_systemd(podman: Podman, h: LabHost, timeout: float = 120) -> None:
    """Wait until systemd in the host reports ``running``; anything else is an error."""
    deadline = time.monotonic() + timeout
    state, detail = "", ""
    while time.monotonic() < deadline:
        # Right after `podman run`, exec can fail or the bus may not answer yet: retry.
        proc = podman.exec(h.container, ["systemctl", "is-system-running", "--wait"], timeout=120)
        state = proc.stdout.decode().strip()
        detail = proc.stderr.decode("utf-8", "replace").strip()
        if state == "running":
            return
        if state in ("degraded", "maintenance", "stopping"):
            failed = podman.exec(h.container, ["systemctl", "--failed", "--no-legend", "--plain"])
            detail = " ".join(ln.split()[0] for ln in failed.stdout.decode().splitlines() if ln)
            break
        time.sleep(0.5)
    raise LabError(
        f"host {h.name} did not boot cleanly: systemd is {state or 'unreachable'!r} "
        f"({detail or 'no detail'})"
    )


def _wait_and_provision(podman: Podman, h: LabHost, settings: dict[str, Any]) -> None:
    _wait_for_systemd(podman, h)
    script = resources.files("parcelguard.lab").joinpath("files/provision.py").read_text()
    payload = json.dumps({**settings, "role": h.role}).encode()
    proc = podman.exec(h.container, ["python3", "-c", script], stdin=payload, timeout=600)
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        raise LabError(f"provisioning {h.name} failed: {' '.join(tail)}")


def _write_known_hosts(podman: Podman, lab: Lab) -> None:
    """Record each host's real host keys, read through podman rather than over the network."""
    lines: list[str] = []
    for h in lab.hosts:
        proc = podman.exec(
            h.container,
            [
                "sh",
                "-c",
                "cat /etc/ssh/ssh_host_ed25519_key.pub /etc/ssh/ssh_host_ecdsa_key.pub "
                "/etc/ssh/ssh_host_rsa_key.pub",
            ],
        )
        if proc.returncode != 0:
            raise LabError(f"cannot read the host keys of {h.name}")
        for key in proc.stdout.decode().splitlines():
            ktype, blob = key.split()[:2]
            lines += [f"{addr} {ktype} {blob}" for addr in h.addresses.values()]
    lab.paths.known_hosts.write_text("\n".join(lines) + "\n", encoding="utf-8")


def inventory_data(lab: Lab) -> dict[str, Any]:
    """The Ansible inventory of a lab: zone groups, role groups, verified SSH connection."""
    ssh_args = (
        f"-o UserKnownHostsFile={lab.paths.known_hosts} -o StrictHostKeyChecking=yes "
        "-o IdentitiesOnly=yes"
    )
    zone_groups: dict[str, Any] = {}
    for zone in lab.networks:
        members = {h.name: None for h in lab.hosts if h.zones[0] == zone}
        extra = {h.name: None for h in lab.hosts if zone in h.zones[1:]}
        zone_groups[zone] = {
            "hosts": {**members, **extra},
            "vars": {"parcelguard_zone": zone},
        }
    role_groups: dict[str, Any] = {}
    for h in lab.hosts:
        role_groups.setdefault(h.role, {"hosts": {}})["hosts"][h.name] = None
    hostvars = {
        h.name: {
            "ansible_host": h.address,
            "parcelguard_host_zones": list(h.zones),
            "parcelguard_addresses": dict(h.addresses),
        }
        for h in lab.hosts
    }
    return {
        "all": {
            "hosts": hostvars,
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(lab.paths.admin_key),
                "ansible_ssh_common_args": ssh_args,
                "ansible_python_interpreter": "/usr/bin/python3",
                "parcelguard_lab": lab.name,
                "parcelguard_known_hosts": str(lab.paths.known_hosts),
                "parcelguard_zones": {
                    zone: {"subnet": net["subnet"]} for zone, net in lab.networks.items()
                },
                "parcelguard_zone_policy": _zone_policy(lab),
            },
            "children": {**zone_groups, **role_groups},
        }
    }


def _zone_policy(lab: Lab) -> dict[str, Any]:
    """The courier site's zone policy, with this machine as the management station.

    parcelguard and Ansible run on the machine, which reaches each zone from that zone
    network's gateway address (.1): those addresses may use the admin ports too.
    """
    gateways = [
        f"{ipaddress.IPv4Network(net['subnet']).network_address + 1}/32"
        for net in lab.networks.values()
    ]
    zones = set(lab.networks)
    flows = [
        {"from": src, "to": dst, "ports": ports}
        for src, dst, ports in (("dmz", "app", [8080]), ("app", "data", [5432]))
        if src in zones and dst in zones
    ]
    return {
        "mgmt_zone": "mgmt",
        "admin_ports": [22],
        "admin_sources": gateways,
        "flows": flows,
        "data_zones": ["data"] if "data" in zones else [],
    }


def _write_inventory(lab: Lab) -> None:
    header = (
        f"# Ansible inventory of parcelguard lab {lab.name!r}, written by `parcelguard lab up`.\n"
        "# Zone groups: dmz, app, data, mgmt. Role groups: web, waybill_app, database, bastion.\n"
    )
    body = yaml.safe_dump(inventory_data(lab), sort_keys=False, default_flow_style=False)
    lab.paths.inventory.write_text(header + body, encoding="utf-8")


def _write_manifest(lab: Lab) -> None:
    data = {
        "name": lab.name,
        "image": lab.image,
        "created": lab.created,
        "networks": lab.networks,
        "hosts": [asdict(h) for h in lab.hosts],
    }
    lab.paths.manifest.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def reseed_departed(
    lab: Lab, hosts: Iterable[str] | None = None, podman: Podman | None = None
) -> None:
    """Give the departed employee back her seeded access (password, key, sudo, cron,
    lingering service, database login) on ``hosts`` (default: all), to replay offboarding."""
    podman = podman or Podman()
    script = resources.files("parcelguard.lab").joinpath("files/reseed-departed.sh").read_text()
    password = json.loads(lab.paths.secrets.read_text(encoding="utf-8"))["departed_password"]
    pubkey = lab.paths.departed_key.with_suffix(".pub").read_text(encoding="utf-8").strip()
    names = {h.name for h in lab.hosts}
    unknown = sorted(set(hosts or ()) - names)
    if unknown:
        raise LabError(f"lab {lab.name!r} has no host {', '.join(unknown)}")
    chosen = [lab.host(h) for h in hosts] if hosts is not None else list(lab.hosts)

    def one(h: LabHost) -> None:
        proc = podman.exec(
            h.container,
            ["bash", "-c", script, "reseed", pubkey],
            stdin=f"{password}\n".encode(),
            timeout=120,
        )
        if proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:]
            raise LabError(f"re-seeding {h.name} failed: {' '.join(tail) or proc.returncode}")

    _parallel(one, chosen)


def _parallel(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """Run fn over items with a bound; the first failure is raised after the rest finish."""
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return list(pool.map(fn, items))


__all__ = [
    "Lab",
    "LabError",
    "LabHost",
    "PodmanError",
    "down",
    "load",
    "reseed_departed",
    "status",
    "up",
]
