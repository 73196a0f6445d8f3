"""Run ``playbooks/offboard.yml`` (role account_revocation) and read its per-host outcome.

ansible-playbook runs as a child process with the JSON stdout callback; its output is
the only thing read back. Hosts are limited with a file of exact names (``--limit
@file``), so an inventory name is never read as a host pattern.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parcelguard.offboard.model import OffboardError

ROOT = Path(__file__).resolve().parents[3]
PLAYBOOK = ROOT / "playbooks" / "offboard.yml"
REVOKE_TASK = "Revoke each account"


@dataclass(frozen=True)
class HostOutcome:
    host: str
    status: str  # "revoked", "unreachable" or "failed"
    present: bool = False
    changed: bool = False
    steps: tuple[dict[str, Any], ...] = ()
    public_keys: tuple[str, ...] = ()
    archive: dict[str, Any] | None = None
    error: str = ""
    would_change: tuple[str, ...] = field(default_factory=tuple)


def ansible_playbook() -> str:
    local = Path(sys.executable).parent / "ansible-playbook"
    return str(local) if local.exists() else "ansible-playbook"


def run_revocation(
    inventory: str,
    hosts: Sequence[str],
    username: str,
    *,
    ticket: str,
    job_id: int,
    check: bool = False,
    forks: int = 50,
    timeout: float = 900,
    extra_vars: dict[str, Any] | None = None,
) -> dict[str, HostOutcome]:
    """Revoke ``username`` on ``hosts``; one outcome per host, every host accounted for."""
    if not PLAYBOOK.exists():
        raise OffboardError(f"playbook {PLAYBOOK} is missing", "run parcelguard from its checkout")
    variables = {
        **(extra_vars or {}),
        "account_revocation_users": [username],
        "account_revocation_ticket": ticket,
        "account_revocation_job": str(job_id),
    }
    with tempfile.TemporaryDirectory(prefix="parcelguard-offboard-") as tmp:
        vars_file = Path(tmp) / "vars.json"
        vars_file.write_text(json.dumps(variables), encoding="utf-8")
        limit_file = Path(tmp) / "hosts"
        limit_file.write_text("".join(f"{h}\n" for h in hosts), encoding="utf-8")
        argv = [
            ansible_playbook(),
            "-i",
            inventory,
            str(PLAYBOOK),
            "--limit",
            f"@{limit_file}",
            "--forks",
            str(max(1, min(forks, len(hosts)))),
            "-e",
            f"@{vars_file}",
        ]
        if check:
            argv.append("--check")
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_NOCOLOR": "1",
            # Fresh SSH master connections for every run: a master left from an earlier
            # run to a host that has since hung would block forever. Keepalives turn a
            # host that hangs during the run into "unreachable" within 15 s.
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(Path(tmp) / "cp"),
            "ANSIBLE_SSH_ARGS": (
                "-C -o ControlMaster=auto -o ControlPersist=15s"
                " -o ServerAliveInterval=5 -o ServerAliveCountMax=3"
            ),
        }
        try:
            proc = subprocess.run(
                argv,
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise OffboardError(f"ansible-playbook did not finish within {timeout:.0f} s") from exc
        except OSError as exc:
            raise OffboardError(f"cannot run ansible-playbook: {exc}") from exc
    return parse_output(proc.stdout, proc.stderr, hosts)


def parse_output(stdout: str, stderr: str, hosts: Sequence[str]) -> dict[str, HostOutcome]:
    """Per-host outcomes from the JSON callback's document."""
    try:
        doc = json.loads(stdout[stdout.find("{") :]) if "{" in stdout else None
    except json.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict) or "stats" not in doc:
        tail = " ".join((stderr or stdout).strip().splitlines()[-3:])
        raise OffboardError(f"ansible-playbook failed before reaching any host: {tail[:500]}")
    stats: dict[str, dict[str, int]] = doc["stats"]
    tasks = [t for play in doc.get("plays", []) for t in play.get("tasks", [])]
    outcomes: dict[str, HostOutcome] = {}
    for host in hosts:
        st = stats.get(host)
        if st is None:
            outcomes[host] = HostOutcome(host, "unreachable", error="not in the playbook's run")
            continue
        error = _first_error(tasks, host)
        if st.get("unreachable"):
            outcomes[host] = HostOutcome(host, "unreachable", error=error or "unreachable")
            continue
        if st.get("failures"):
            outcomes[host] = HostOutcome(host, "failed", error=error or "a task failed")
            continue
        result = _revoke_result(tasks, host)
        if result is None:
            outcomes[host] = HostOutcome(host, "failed", error="the revocation task did not run")
            continue
        steps = tuple(result.get("steps", ()))
        outcomes[host] = HostOutcome(
            host,
            "revoked",
            present=bool(result.get("present")),
            changed=bool(result.get("changed")),
            steps=steps,
            public_keys=tuple(str(k) for k in result.get("public_keys", ())),
            archive=result.get("archive"),
            would_change=tuple(s["step"] for s in steps if s.get("changed")),
        )
    return outcomes


def _revoke_result(tasks: list[dict[str, Any]], host: str) -> dict[str, Any] | None:
    for task in tasks:
        if REVOKE_TASK not in task["task"]["name"]:
            continue
        res = task["hosts"].get(host)
        if res is None or res.get("skipped"):
            return None
        items = res.get("results") or [res]
        return dict(items[0])
    return None


def _first_error(tasks: list[dict[str, Any]], host: str) -> str:
    for task in tasks:
        res = task["hosts"].get(host)
        if not res:
            continue
        for item in res.get("results") or [res]:
            if item.get("unreachable") or item.get("failed"):
                msg = str(item.get("msg", "")).strip()
                return " ".join(msg.split())[:500] or task["task"]["name"]
    return ""
