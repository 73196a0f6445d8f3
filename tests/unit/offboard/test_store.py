"""The durable queue and the audit trail: duplicates, leases, resumption, tamper evidence."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from parcelguard.offboard.model import HostState, JobState, LeaverEvent, OffboardError, Source
from parcelguard.offboard.store import OffboardStore

HOSTS = ["web1", "db1"]


def event(key: str = "cli:lihua:HR-1", user: str = "lihua") -> LeaverEvent:
    return LeaverEvent(user, Source.CLI, "tester", "HR-1", key, datetime.now(UTC))


@pytest.fixture
def store(tmp_path: Path) -> OffboardStore:
    return OffboardStore(tmp_path / "off.db")


def test_the_store_file_is_private(store: OffboardStore) -> None:
    assert store.path.stat().st_mode & 0o777 == 0o600


def test_a_duplicate_event_does_nothing_twice(store: OffboardStore) -> None:
    first = store.enqueue(event(), inventory="inv.yml", hosts=HOSTS)
    again = store.enqueue(event(), inventory="inv.yml", hosts=HOSTS)
    assert first.created and not first.duplicate
    assert again.duplicate and again.job_id == first.job_id
    assert len(store.jobs()) == 1
    kinds = [e.kind for e in store.trail()]
    assert kinds == ["event_received", "job_created", "event_duplicate"]


def test_a_second_trigger_for_the_same_person_joins_the_open_job(store: OffboardStore) -> None:
    first = store.enqueue(event("cli:lihua:HR-1"), inventory="inv.yml", hosts=HOSTS)
    second = store.enqueue(event("scim:abc:deactivated:1"), inventory="inv.yml", hosts=HOSTS)
    assert not second.created and not second.duplicate and second.job_id == first.job_id
    assert len(store.events_of(first.job_id)) == 2


def test_a_finished_job_lets_a_new_trigger_start_a_new_job(store: OffboardStore) -> None:
    first = store.enqueue(event("k1"), inventory="inv.yml", hosts=HOSTS)
    store.release(first.job_id, JobState.VERIFIED)
    second = store.enqueue(event("k2"), inventory="inv.yml", hosts=HOSTS)
    assert second.created and second.job_id != first.job_id


def test_protected_and_malformed_names_never_become_events() -> None:
    for bad in ("root", "postgres", "Li Hua", "../etc", "", "a" * 40, "lihua;rm"):
        with pytest.raises(OffboardError):
            event(user=bad)


def test_a_live_workers_lease_is_respected_and_a_dead_ones_is_taken_over(
    store: OffboardStore,
) -> None:
    job_id = store.enqueue(event(), inventory="inv.yml", hosts=HOSTS).job_id
    # A live process on this machine holds it: nobody else may run it.
    alive = f"{socket.gethostname()}:{os.getpid()}"
    assert store.claim(job_id, owner=alive) is not None
    assert store.claim(job_id, owner="other:1") is None
    # The holder dies (a process that has exited): the job is resumed at once.
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = f"{socket.gethostname()}:{proc.stdout.strip()}"
    job2 = store.enqueue(event("k2", "wangwu"), inventory="inv.yml", hosts=HOSTS).job_id
    assert store.claim(job2, owner=dead) is not None
    resumed = store.claim(job2, owner=alive)
    assert resumed is not None and resumed.state is JobState.RUNNING
    assert "job_resumed" in [e.kind for e in store.trail(job2)]


def test_host_states_and_evidence_are_kept(store: OffboardStore) -> None:
    job_id = store.enqueue(event(), inventory="inv.yml", hosts=HOSTS).job_id
    steps = [
        {
            "step": "block_logins",
            "changed": True,
            "before": {"locked": False},
            "after": {"locked": True},
        }
    ]
    store.update_host(
        job_id,
        "web1",
        HostState.REVOKED,
        steps=steps,
        trail_kind="host_revoked",
        trail_data={"steps": steps},
    )
    store.update_host(
        job_id,
        "web1",
        HostState.VERIFIED,
        verification={"result": "passed"},
        trail_kind="host_verified",
        trail_data={},
    )
    store.update_host(
        job_id,
        "db1",
        HostState.PENDING,
        error="unreachable: timed out",
        trail_kind="host_revoke_unreachable",
        trail_data={},
    )
    job = store.job(job_id)
    assert job is not None
    web1, db1 = {h.host: h for h in job.hosts}["web1"], {h.host: h for h in job.hosts}["db1"]
    assert web1.state is HostState.VERIFIED and web1.steps[0]["after"] == {"locked": True}
    assert web1.revoked_at and web1.verified_at and web1.attempts == 1
    assert db1.state is HostState.PENDING and db1.attempts == 1 and "unreachable" in db1.last_error


def test_the_trail_is_append_only(store: OffboardStore) -> None:
    store.enqueue(event(), inventory="inv.yml", hosts=HOSTS)
    with sqlite3.connect(store.path) as db:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("UPDATE trail SET kind = 'nothing' WHERE seq = 1")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("DELETE FROM trail WHERE seq = 1")


def test_tampering_with_the_trail_is_detected(store: OffboardStore) -> None:
    store.enqueue(event(), inventory="inv.yml", hosts=HOSTS)
    store.record("host_revoked", {"host": "web1"})
    count, problems = store.verify_trail()
    assert (count, problems) == (3, [])
    with sqlite3.connect(store.path) as db:  # an attacker with write access drops the guard
        db.execute("DROP TRIGGER trail_no_update")
        db.execute('UPDATE trail SET data = \'{"host":"db1"}\' WHERE seq = 3')
    _, problems = store.verify_trail()
    assert problems == ["entry 3 (host_revoked): content was changed"]


def test_removing_an_entry_is_detected(store: OffboardStore) -> None:
    store.enqueue(event(), inventory="inv.yml", hosts=HOSTS)
    store.record("host_revoked", {"host": "web1"})
    with sqlite3.connect(store.path) as db:
        db.execute("DROP TRIGGER trail_no_delete")
        db.execute("DELETE FROM trail WHERE seq = 2")
    _, problems = store.verify_trail()
    assert any("missing" in p for p in problems)
    assert any("does not follow" in p for p in problems)


def test_tokens_are_stored_by_digest_only(store: OffboardStore) -> None:
    store.add_token("okta", "ab" * 32)
    with pytest.raises(OffboardError, match="exists"):
        store.add_token("okta", "cd" * 32)
    assert store.token_digests() == {"ab" * 32: "okta"}
    assert store.remove_token("okta") and not store.remove_token("okta")


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    store = OffboardStore(tmp_path / "off.db")
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    with pytest.raises(OffboardError, match="newer parcelguard"):
        OffboardStore(tmp_path / "off.db")


def test_the_secrets_a_person_knew_are_listed_for_rotation(tmp_path: Path) -> None:
    from parcelguard.offboard.service import Offboarder, OffboardSettings, shared_secrets

    example = Path(__file__).parents[3] / "inventory" / "example" / "hosts.yml"
    offboarder = Offboarder(OffboardStore(tmp_path / "o.db"), OffboardSettings(example))
    queued = offboarder.submit(event())  # queued only: no host is contacted
    job = offboarder.store.job(queued.job_id)
    assert job is not None
    assert job.secrets_to_rotate == ("waybill DB application password (waybill_app)",)
    assert {h.host for h in job.hosts} == {"web1", "waybill1", "waybill2", "pg1", "bastion1"}
    with pytest.raises(OffboardError, match="name and a holders list"):
        shared_secrets({"parcelguard_shared_secrets": [{"name": "x"}]}, "lihua")


def test_a_trigger_joins_only_an_open_job_over_the_same_hosts(store: OffboardStore) -> None:
    limited = store.enqueue(event("k1"), inventory="inv.yml", hosts=["db1"], host_limit="db1")
    whole = store.enqueue(event("k2"), inventory="inv.yml", hosts=HOSTS)
    again = store.enqueue(event("k3"), inventory="inv.yml", hosts=HOSTS)
    assert whole.created and whole.job_id != limited.job_id
    assert not again.created and again.job_id == whole.job_id


def test_a_worker_that_lost_its_lease_cannot_write(store: OffboardStore) -> None:
    from parcelguard.offboard.store import LeaseLost

    job_id = store.enqueue(event(), inventory="inv.yml", hosts=HOSTS).job_id
    alive = f"{socket.gethostname()}:{os.getpid()}"
    assert store.claim(job_id, owner="elsewhere:1") is not None  # another machine's worker
    with pytest.raises(LeaseLost):
        store.update_host(
            job_id,
            "web1",
            HostState.VERIFIED,
            owner=alive,
            trail_kind="host_verified",
            trail_data={},
        )
    with pytest.raises(LeaseLost):
        store.release(job_id, JobState.VERIFIED, owner=alive)
    job = store.job(job_id)
    assert job is not None and job.state is JobState.RUNNING
    assert {h.state for h in job.hosts} == {HostState.PENDING}
