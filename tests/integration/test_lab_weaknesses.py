"""The demo fleet is real and neglected: every seeded weakness is present on the hosts.

These are the findings the scanner must report and the roles must fix (docs/lab.md).
"""

from __future__ import annotations

import json
import stat

import paramiko
import pytest

from parcelguard.lab import core, seed

from .conftest import run, ssh_client

pytestmark = pytest.mark.lab


def _secrets(lab: core.Lab) -> dict[str, str]:
    data: dict[str, str] = json.loads(lab.paths.secrets.read_text())
    return data


def test_lab_files_are_private(lab: core.Lab) -> None:
    for path in (lab.paths.secrets, lab.paths.admin_key, lab.paths.departed_key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(lab.paths.root.stat().st_mode) == 0o700


def test_every_host_accepts_ssh_verified_against_recorded_host_key(lab: core.Lab) -> None:
    for h in lab.hosts:
        with ssh_client(lab, h.name) as client:
            rc, out = run(client, "hostname; systemctl is-system-running")
        assert rc == 0, out
        assert out.split() == [h.name, "running"]


def test_an_unrecorded_host_key_is_refused(lab: core.Lab) -> None:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        client.connect(
            lab.hosts[0].address,
            username="root",
            key_filename=str(lab.paths.admin_key),
            timeout=10,
            allow_agent=False,
            look_for_keys=False,
        )
    client.close()


def test_hosts_have_their_own_host_keys(lab: core.Lab) -> None:
    keys = [ln.split()[2] for ln in lab.paths.known_hosts.read_text().splitlines()]
    assert len(keys) == 3 * len(lab.hosts)
    assert len(set(keys)) == len(keys), "two hosts share a host key"


def test_password_and_root_logins_are_allowed(lab: core.Lab) -> None:
    creds = _secrets(lab)
    with ssh_client(lab, "app1") as client:
        rc, out = run(client, "sshd -T | grep -E '^(passwordauthentication|permitrootlogin) '")
    assert rc == 0
    assert "passwordauthentication yes" in out
    assert "permitrootlogin yes" in out
    with ssh_client(lab, "app1", "root", password=creds["root_password"]) as client:
        assert run(client, "id -u") == (0, "0\n")


def test_departed_employee_can_still_log_in_and_act(lab: core.Lab) -> None:
    creds = _secrets(lab)
    for host in ("web1", "db1", "bastion1"):
        with ssh_client(lab, host, "lihua", password=creds["departed_password"]) as client:
            assert run(client, "sudo -n id -u") == (0, "0\n"), "lihua's sudo rule is gone"
            rc, out = run(client, "crontab -l")
            assert rc == 0 and "/srv/waybill/exports" in out
            rc, out = run(client, "pgrep -u lihua -x sleep && loginctl show-user lihua -p Linger")
            assert rc == 0 and "Linger=yes" in out, "her lingering user service is not running"
        with ssh_client(lab, host, "lihua", key_filename=str(lab.paths.departed_key)) as client:
            assert run(client, "whoami") == (0, "lihua\n")


def test_vendor_default_account_logs_in_with_default_password(lab: core.Lab) -> None:
    with ssh_client(lab, "api1", "support", password="support") as client:
        assert run(client, "whoami") == (0, "support\n")


def test_database_superuser_default_password_works_across_zones(lab: core.Lab) -> None:
    db = lab.host("db1").address
    query = "select count(*), min(recipient_id_number), max(sender_phone) from waybill"
    with ssh_client(lab, "bastion1") as client:
        rc, out = run(
            client,
            f"PGPASSWORD=postgres psql -h {db} -U postgres -d waybill -w -AF ' ' -tc '{query}'",
        )
    assert rc == 0, out
    count, an_id, a_phone = out.split()
    assert int(count) == core.WAYBILL_ROWS
    assert seed.is_valid_resident_id(an_id)
    assert len(a_phone) == 11 and a_phone.startswith("1")


def test_no_firewall_no_antivirus_weak_password_policy(lab: core.Lab) -> None:
    checks = (
        "command -v nft iptables fail2ban-client clamscan clamd || true; "
        "grep -c pam_pwquality /etc/pam.d/common-password || true; "
        "grep -E '^PASS_MAX_DAYS' /etc/login.defs"
    )
    for h in lab.hosts:
        with ssh_client(lab, h.name) as client:
            rc, out = run(client, checks)
        assert rc == 0
        assert out.split() == ["0", "PASS_MAX_DAYS", "99999"], f"{h.name}: {out!r}"


def test_every_zone_reaches_every_other_before_hardening(lab: core.Lab) -> None:
    db = lab.host("db1").address
    for source in ("web1", "app1", "bastion1"):
        with ssh_client(lab, source) as client:
            rc, out = run(client, f"timeout 5 bash -c 'echo > /dev/tcp/{db}/5432' && echo open")
        assert (rc, out) == (0, "open\n"), source


def test_traffic_between_zones_keeps_its_source_address(lab: core.Lab) -> None:
    """Without this, every zone would look like the destination's own gateway and no
    host firewall could tell zones apart."""
    db = lab.host("db1").address
    with ssh_client(lab, "bastion1") as client:
        rc, out = run(
            client,
            f"PGPASSWORD=postgres psql -h {db} -U postgres -w -Atc 'select inet_client_addr()'",
        )
    assert (rc, out.strip()) == (0, lab.host("bastion1").address)


def test_plaintext_waybill_export_is_world_readable_on_app_hosts(lab: core.Lab) -> None:
    with ssh_client(lab, "app2") as client:
        rc, out = run(client, "stat -c %a /srv/waybill/exports/waybills-2026-10.csv")
        assert (rc, out) == (0, "644\n")
        rc, out = run(client, "sed -n 2p /srv/waybill/exports/waybills-2026-10.csv")
    assert seed.is_valid_resident_id(out.split(",")[3])
