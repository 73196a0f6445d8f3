"""A thin, typed wrapper around the podman CLI, as the lab needs it.

Every call runs the rootful podman with the runc runtime: on this machine kind the default
runtime (crun) cannot start containers (hybrid cgroups, rlimits that may not be raised).
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from parcelguard.errors import ParcelguardError

LABEL = "io.parcelguard.lab"  # every container and network the lab creates carries it
# runc refuses to raise rlimits here; these are explicit and low enough to be allowed.
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096")


class PodmanError(ParcelguardError):
    """A podman command that failed; the message carries podman's own last line."""


class Podman:
    def __init__(self, binary: str = "podman", runtime: str = "runc") -> None:
        self.binary = binary
        self.runtime = runtime

    @staticmethod
    def available(binary: str = "podman") -> bool:
        return shutil.which(binary) is not None

    def run(
        self,
        args: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float = 120,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        argv = [self.binary, "--runtime", self.runtime, *args]
        try:
            proc = subprocess.run(
                argv, input=stdin, capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise PodmanError(f"podman {args[0]} did not finish within {timeout:.0f} s") from exc
        if check and proc.returncode != 0:
            raise PodmanError(f"podman {' '.join(args[:2])} failed: {_last_line(proc.stderr)}")
        return proc

    def json(self, args: Sequence[str]) -> Any:
        out = self.run(args).stdout.decode("utf-8", "replace").strip()
        return json.loads(out) if out else []

    # images
    def image_exists(self, ref: str) -> bool:
        return self.run(["image", "exists", ref], check=False).returncode == 0

    # networks
    def subnets_in_use(self) -> set[ipaddress.IPv4Network]:
        """Every IPv4 subnet of every podman network on this machine, whoever made it."""
        used: set[ipaddress.IPv4Network] = set()
        names = [n["name"] for n in self.json(["network", "ls", "--format", "json"])]
        if not names:
            return used
        for net in self.json(["network", "inspect", *names]):
            for sub in net.get("subnets") or []:
                network = ipaddress.ip_network(sub["subnet"], strict=False)
                if isinstance(network, ipaddress.IPv4Network):
                    used.add(network)
        return used

    def create_network(
        self, name: str, subnet: ipaddress.IPv4Network, labels: Mapping[str, str]
    ) -> None:
        args = ["network", "create", "--subnet", str(subnet)]
        for key, value in labels.items():
            args += ["--label", f"{key}={value}"]
        self.run([*args, name])

    def networks_labelled(self, key: str, value: str) -> list[str]:
        nets = self.json(["network", "ls", "--format", "json", "--filter", f"label={key}={value}"])
        return sorted(n["name"] for n in nets)

    def networks_labelled_any(self, key: str) -> list[str]:
        """Networks that carry the label key, whatever its value."""
        nets = self.json(["network", "ls", "--format", "json", "--filter", f"label={key}"])
        return sorted(n["name"] for n in nets)

    def remove_network(self, name: str) -> None:
        self.run(["network", "rm", "--force", name], check=False)

    # containers
    def containers_labelled(self, key: str, value: str) -> list[dict[str, Any]]:
        found = self.json(["ps", "--all", "--format", "json", "--filter", f"label={key}={value}"])
        return list(found)

    def remove_containers(self, names: Sequence[str]) -> None:
        """Remove lab containers at once. They are disposable: no graceful stop (a
        systemd host waits out its services' stop timeouts, seconds per host)."""
        if names:
            self.run(["rm", "--force", "--time", "0", *names], check=False, timeout=600)

    def exec(
        self,
        container: str,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[bytes]:
        args = ["exec", *(["--interactive"] if stdin is not None else []), container, *argv]
        return self.run(args, stdin=stdin, timeout=timeout, check=False)

    def inspect(self, container: str) -> dict[str, Any]:
        data = self.json(["container", "inspect", container])
        return dict(data[0])


def _last_line(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"
