"""The offboarding worker: every trigger becomes a job; a job runs until every host is
verified, however many restarts and unreachable hosts it takes.

A run of a job: claim its lease; run the revocation playbook on the hosts not yet
revoked; verify every revoked host independently; hosts that were unreachable, failed or
did not pass verification stay pending and the job is retried with backoff. A host is
only ever reported done after verification passed on it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from parcelguard.offboard import playbook, verify
from parcelguard.offboard.model import (
    DONE_HOST_STATES,
    HostState,
    Job,
    JobState,
    LeaverEvent,
    OffboardError,
)
from parcelguard.offboard.store import Enqueued, LeaseLost, OffboardStore, worker_id
from parcelguard.scanners.targets import Fleet, Target, load_inventory

Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    return None


@dataclass(frozen=True)
class OffboardSettings:
    inventory: Path
    limit: str | None = None
    known_hosts: Path | None = None
    verify_host_keys: bool = True
    connect_timeout: float = 10
    forks: int = 50
    retry_base: float = 30.0  # seconds before the first retry of a pending job
    retry_max: float = 900.0  # longest wait between retries
    playbook_timeout: float = 900.0
    deny_group: str = "parcelguard-revoked"
    protected: frozenset[str] = frozenset()
    extra_vars: dict[str, Any] = field(default_factory=dict)


def shared_secrets(fleet_vars: dict[str, Any], username: str) -> list[str]:
    """Secrets the inventory says ``username`` knows (``parcelguard_shared_secrets``).

    Each entry: ``{name: ..., holders: [login, ...]}``; malformed entries are refused.
    """
    entries = fleet_vars.get("parcelguard_shared_secrets") or []
    if not isinstance(entries, list):
        raise OffboardError("parcelguard_shared_secrets must be a list of {name, holders}")
    found: list[str] = []
    for i, entry in enumerate(entries):
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("name"), str)
            or not isinstance(entry.get("holders"), list)
        ):
            raise OffboardError(f"parcelguard_shared_secrets[{i}] needs a name and a holders list")
        if username in entry["holders"]:
            found.append(entry["name"])
    return found


class Offboarder:
    def __init__(
        self, store: OffboardStore, settings: OffboardSettings, progress: Progress = _quiet
    ) -> None:
        self.store = store
        self.settings = settings
        self.progress = progress
        self.owner = worker_id()

    # -- fleet -------------------------------------------------------------------------
    def fleet(self, limit: str | None = None) -> Fleet:
        return load_inventory(self.settings.inventory, limit or self.settings.limit)

    def _all_vars(self) -> dict[str, Any]:
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
        from ansible.vars.manager import VariableManager

        loader = DataLoader()
        inv = InventoryManager(loader=loader, sources=[str(self.settings.inventory)])
        manager = VariableManager(loader=loader, inventory=inv)
        # Secrets may be declared per group: gather every host's list, each once.
        merged: list[Any] = []
        for host in inv.get_hosts(self.settings.limit or "all"):
            entries = manager.get_vars(host=host).get("parcelguard_shared_secrets") or []
            if not isinstance(entries, list):
                raise OffboardError(
                    f"{host.name}: parcelguard_shared_secrets must be a list of {{name, holders}}"
                )
            merged += [e for e in entries if e not in merged]
        return {"parcelguard_shared_secrets": merged}

    # -- triggers --------------------------------------------------------------------------
    def submit(self, event: LeaverEvent, *, dry_run: bool = False) -> Enqueued:
        if event.username in self.settings.protected:
            raise OffboardError(f"refusing to revoke protected account {event.username!r}")
        fleet = self.fleet()
        if not fleet.targets:
            raise OffboardError("the inventory selects no host")
        connecting = sorted({t.name for t in fleet.targets if t.user == event.username})
        if connecting:
            raise OffboardError(
                f"refusing to revoke {event.username!r}: parcelguard and Ansible connect as "
                f"this account (on {', '.join(connecting[:5])})"
            )
        secrets = shared_secrets(self._all_vars(), event.username)
        return self.store.enqueue(
            event,
            inventory=str(self.settings.inventory),
            hosts=[t.name for t in fleet.targets],
            host_limit=self.settings.limit,
            dry_run=dry_run,
            secrets=secrets,
        )

    # -- running jobs -------------------------------------------------------------------------
    def run_job(self, job_id: int) -> Job | None:
        """Run one job now if no live worker holds it; returns its state afterwards."""
        job = self.store.claim(job_id, owner=self.owner)
        if job is None:
            return self.store.job(job_id)
        self._process(job)
        return self.store.job(job_id)

    def run_due(self) -> int | None:
        """Run the next due job, if any; returns its id."""
        job = self.store.claim(owner=self.owner)
        if job is None:
            return None
        self._process(job)
        return job.id

    def _process(self, job: Job) -> None:
        stop_renewing = threading.Event()
        renewer = threading.Thread(
            target=self._renew, args=(job.id, stop_renewing), daemon=True, name="lease"
        )
        renewer.start()
        try:
            if job.dry_run:
                self._dry_run(job)
                return
            self._revoke_and_verify(job)
        except LeaseLost as exc:
            self.progress(f"job {job.id}: {exc}; leaving it to the worker that holds it")
        except Exception as exc:
            # Nothing is lost: hosts keep their states, the job is retried later.
            self.store.record("job_error", {"error": str(exc)[:500]}, job.id)
            self.progress(f"job {job.id}: {exc}")
            with contextlib.suppress(LeaseLost):
                self.store.release(job.id, JobState.PENDING, self._next_attempt(job), self.owner)
        finally:
            stop_renewing.set()
            renewer.join(timeout=5)

    def _renew(self, job_id: int, stop: threading.Event) -> None:
        while not stop.wait(20):
            self.store.renew(job_id, self.owner)

    def _next_attempt(self, job: Job) -> float:
        delay: float = min(
            self.settings.retry_base * 2.0 ** max(job.attempts - 1, 0), self.settings.retry_max
        )
        return datetime.now(UTC).timestamp() + delay

    def _targets(self, job: Job) -> dict[str, Target]:
        fleet = load_inventory(Path(job.inventory), job.limit)
        return {t.name: t for t in fleet.targets}

    def _dry_run(self, job: Job) -> None:
        hosts = [h.host for h in job.hosts]
        self.progress(
            f"job {job.id}: dry run of the revocation of {job.username} on {len(hosts)} host(s)"
        )
        outcomes = playbook.run_revocation(
            job.inventory,
            hosts,
            job.username,
            ticket=job.ticket,
            job_id=job.id,
            check=True,
            forks=self.settings.forks,
            timeout=self.settings.playbook_timeout,
            extra_vars=self.settings.extra_vars,
        )
        for host, out in sorted(outcomes.items()):
            self.store.record(
                "host_dry_run",
                {
                    "host": host,
                    "status": out.status,
                    "present": out.present,
                    "would_change": list(out.would_change),
                    "error": out.error,
                },
                job.id,
            )
        self.store.cancel(job.id, "dry run: nothing was changed")

    def _revoke_and_verify(self, job: Job) -> None:
        targets = self._targets(job)
        todo = [h for h in job.hosts if h.state not in DONE_HOST_STATES]
        missing = [h.host for h in todo if h.host not in targets]
        for host in missing:
            self.store.update_host(
                job.id,
                host,
                HostState.PENDING,
                error="no longer in the inventory",
                trail_kind="host_missing",
                trail_data={"error": "no longer in the inventory"},
            )
        to_revoke = [h.host for h in todo if h.state is HostState.PENDING and h.host in targets]
        present: dict[str, bool] = {h.host: bool(h.steps) for h in job.hosts}
        if to_revoke:
            self.progress(f"job {job.id}: revoking {job.username} on {len(to_revoke)} host(s)")
            outcomes = playbook.run_revocation(
                job.inventory,
                to_revoke,
                job.username,
                ticket=job.ticket,
                job_id=job.id,
                forks=self.settings.forks,
                timeout=self.settings.playbook_timeout,
                extra_vars=self.settings.extra_vars,
            )
            keys: list[str] = []
            for host in to_revoke:
                out = outcomes[host]
                if out.status == "revoked":
                    present[host] = out.present
                    keys += out.public_keys
                    self.store.update_host(
                        job.id,
                        host,
                        HostState.REVOKED,
                        steps=out.steps,
                        owner=self.owner,
                        trail_kind="host_revoked",
                        trail_data={
                            "present": out.present,
                            "changed": out.changed,
                            "steps": list(out.steps),
                            "archive": out.archive,
                        },
                    )
                else:
                    self.progress(f"job {job.id}: {host}: {out.status}: {out.error}")
                    self.store.update_host(
                        job.id,
                        host,
                        HostState.PENDING,
                        error=f"{out.status}: {out.error}",
                        owner=self.owner,
                        trail_kind=f"host_revoke_{out.status}",
                        trail_data={"error": out.error},
                    )
            self.store.add_public_keys(job.id, keys)
        job = self.store.job(job.id) or job
        to_verify = [h.host for h in job.hosts if h.state is HostState.REVOKED]
        if to_verify:
            self.progress(f"job {job.id}: verifying {len(to_verify)} host(s)")
            self._verify(job, [targets[h] for h in to_verify if h in targets], present)
        job = self.store.job(job.id) or job
        left = [h.host for h in job.hosts if h.state not in DONE_HOST_STATES]
        if left:
            self.progress(
                f"job {job.id}: {len(left)} host(s) not verified yet ({', '.join(left[:10])});"
                " they will be retried"
            )
            self.store.release(job.id, JobState.PENDING, self._next_attempt(job), self.owner)
        else:
            self.store.release(job.id, JobState.VERIFIED, owner=self.owner)

    def _verify(self, job: Job, targets: Sequence[Target], present: dict[str, bool]) -> None:
        left_at = datetime.fromisoformat(job.left_at) if job.left_at else None

        def one(t: Target) -> tuple[Target, dict[str, Any]]:
            try:
                return t, verify.verify_host(
                    t,
                    job.username,
                    job.public_keys,
                    left_at,
                    known_hosts=self.settings.known_hosts,
                    verify_host_keys=self.settings.verify_host_keys,
                    connect_timeout=self.settings.connect_timeout,
                    deny_group=self.settings.deny_group,
                )
            except Exception as exc:  # one host's surprise must not stop the others
                return t, {"result": "error", "checks": [], "error": str(exc)[:300]}

        with ThreadPoolExecutor(max_workers=min(16, max(1, len(targets)))) as pool:
            results = list(pool.map(one, targets))
        for t, evidence in results:
            outcome = evidence["result"]
            if outcome == "passed":
                state = HostState.VERIFIED if present.get(t.name, True) else HostState.ABSENT
                self.store.update_host(
                    job.id,
                    t.name,
                    state,
                    verification=evidence,
                    owner=self.owner,
                    trail_kind="host_verified",
                    trail_data={"result": outcome, "state": state.value, "evidence": evidence},
                )
                continue
            failed = [c["name"] for c in evidence.get("checks", []) if c["ok"] is False]
            error = evidence.get("error") or ", ".join(failed) or "inconclusive"
            # A failed check means access is still there: revoke again on the next run.
            # Unreachable or inconclusive: verify again, the revocation itself succeeded.
            state = HostState.PENDING if outcome == "failed" else HostState.REVOKED
            self.progress(f"job {job.id}: {t.name}: verification {outcome}: {error}")
            self.store.update_host(
                job.id,
                t.name,
                state,
                error=f"verification {outcome}: {error}",
                verification=evidence,
                owner=self.owner,
                trail_kind="host_verification_" + outcome,
                trail_data={"result": outcome, "evidence": evidence},
            )
