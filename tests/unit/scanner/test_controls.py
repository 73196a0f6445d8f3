"""Every control judged on recorded Debian 12 output: PASS, FAIL and ERROR cases."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from parcelguard.scanners.catalog import Catalog, load_catalog
from parcelguard.scanners.context import HostContext
from parcelguard.scanners.engine import evaluate_control, evaluate_host
from parcelguard.scanners.model import ControlResult, Status

from .gather import FIXTURES, Sec, ctx_for, facts_for, load_profile

CATALOG: Catalog = load_catalog()
ALL_IDS = CATALOG.ids
NA_ON_HARDENED = {"PG-CRED-005", "PG-CRED-006", "PG-CRED-007"}


def run(
    control_id: str,
    profile: str = "hardened",
    overrides: Mapping[str, Sec | None] | None = None,
    ctx: HostContext | None = None,
) -> ControlResult:
    ctl = CATALOG.get(control_id)
    assert ctl is not None, control_id
    return evaluate_control(ctl, facts_for(profile, overrides), ctx or ctx_for())


def units(**changes: tuple[str, str]) -> Sec:
    """The hardened units section with some units' (enabled, active) replaced."""
    rows = []
    for line in load_profile("hardened")["units"].out.splitlines():
        name = line.split("\t")[0]
        key = name.replace("-", "_")
        rows.append("\t".join((name, *changes[key])) if key in changes else line)
    return Sec("\n".join(rows) + "\n")


def test_hardened_host_passes_every_applicable_control() -> None:
    results = {r.control_id: r for r in evaluate_host(CATALOG, facts_for("hardened"), ctx_for())}
    assert set(results) == set(ALL_IDS)
    for cid, r in results.items():
        expected = Status.NOT_APPLICABLE if cid in NA_ON_HARDENED else Status.PASS
        assert r.status == expected, f"{cid}: {r.status} {r.summary}"


NEGLECTED_MEASURED: dict[tuple[str, str, int], bool | None] = {
    ("mgmt1", "data1", 22): True,
    ("web1", "data1", 22): True,  # a DMZ host reaches SSH on the data host
    ("web1", "data1", 5432): True,  # and the database
    ("app1", "data1", 5432): True,
}


def test_neglected_lab_host_fails_every_applicable_control() -> None:
    ctx = ctx_for(measured=NEGLECTED_MEASURED)
    results = {r.control_id: r for r in evaluate_host(CATALOG, facts_for("neglected"), ctx)}
    for cid, r in results.items():
        expected = Status.NOT_APPLICABLE if cid in NA_ON_HARDENED else Status.FAIL
        assert r.status == expected, f"{cid}: {r.status} {r.summary}"


MYSQL_DENIED = Sec("none\tdenied\n" + "".join(f"{i}\tdenied\n" for i in range(27)))
REDIS_DENIED = Sec("none\tdenied\n0\tdenied\n1\tdenied\n")
SNMP_CLEAN = Sec("community-lines\t1\ndefault-community\t0\n")

# Controls not applicable on the hardened fixture get their PASS case here.
PASS_CASES: dict[str, dict[str, Sec | None]] = {
    "PG-CRED-005": {"mysql-login": MYSQL_DENIED, "units": units(mariadb=("enabled", "active"))},
    "PG-CRED-006": {
        "redis-login": REDIS_DENIED,
        "units": units(redis_server=("enabled", "active")),
    },
    "PG-CRED-007": {"snmp": SNMP_CLEAN},
}


@pytest.mark.parametrize("control_id", sorted(PASS_CASES))
def test_pass_cases_for_optional_services(control_id: str) -> None:
    r = run(control_id, overrides=PASS_CASES[control_id])
    assert r.status == Status.PASS, r.summary


FAIL_CASES: dict[str, dict[str, Sec | None]] = {
    "PG-CRED-005": {
        "mysql-login": Sec("none\taccepted\n"),
        "units": units(mariadb=("enabled", "active")),
    },
    "PG-CRED-006": {
        "redis-login": Sec("none\tdenied\n0\tdenied\n17\taccepted\n"),
        "units": units(redis_server=("enabled", "active")),
    },
    "PG-CRED-007": {"snmp": Sec("community-lines\t2\ndefault-community\t1\n")},
    "PG-ZONE-001": {"units": units(nftables=("disabled", "active"))},
    "PG-AV-003": {
        "clamav-db": Sec(
            "mtime\t/var/lib/clamav/daily.cld\t1795830000\n"
            "info\t/var/lib/clamav/daily.cld\tBuild time: 02 Nov 2026 09:43 +0000\n"
        )
    },
    "PG-AV-005": {
        "clamav-scan": Sec(
            "cmd\tExecStart=/usr/bin/clamdscan --move=/srv/quarantine /srv\n"
            "qdir\t1777 root root /srv/quarantine\n"
        )
    },
    "PG-TLS-004": {
        "certificates": Sec(
            "cert\t/etc/ssl/certs/waybill-api.pem\nnotAfter=Dec 10 08:00:00 2026 GMT\n"
        )
    },
    "PG-PRIV-003": {
        "group": Sec(
            load_profile("hardened")["group"].out.replace(
                "auditor:x:1102:", "auditor:x:1102:wangfang"
            )
        )
    },
    "PG-PWD-003": {
        "security-conf": Sec("==> /etc/security/faillock.conf <==\ndeny = 10\n"),
    },
    "PG-STOR-003": {
        "usb-storage": Sec(
            "source\tshowconfig\nconfig\tinstall usb_storage /bin/false\nloaded\tyes\nbuiltin\tno\n"
        )
    },
    "PG-AUD-001": {"auditctl": Sec("-w /srv/waybill -p rwa -k waybill\n")},
    "PG-AUD-002": {
        "pg-databases": Sec("db\twaybill\t\t\nsetting\twaybill\t*\tpgaudit.log=all,-read\n"),
    },
    "PG-AUD-004": {
        "rsyslog": Sec("==> /etc/rsyslog.d/60-forward.conf <==\n*.* @@logs.mgmt.example.cn:514\n")
    },
    "PG-PART-001": {"nft": None},  # replaced in the test by a ruleset with an open port
}


@pytest.mark.parametrize("control_id", sorted(set(FAIL_CASES) - {"PG-PART-001"}))
def test_targeted_fail_cases(control_id: str) -> None:
    r = run(control_id, overrides=FAIL_CASES[control_id])
    assert r.status == Status.FAIL, r.summary


# The ERROR case of every control: the section it depends on failed as it does on real
# hosts (command missing, no privileges, cut-off output) or the context lacks an input.
SSHD_FAILED = Sec("", rc=255, err="Missing privilege separation directory: /run/sshd\n")
ERROR_CASES: dict[str, tuple[dict[str, Sec | None], dict[str, object]]] = {
    "PG-ZONE-001": (
        {"nft": Sec("", 1, "netlink: Error: cache initialization failed: Operation not permitted")},
        {},
    ),
    "PG-ZONE-002": ({}, {"reachability": False}),
    "PG-ZONE-003": ({"nft": Sec('{"nftables": [{"metainfo": ')}, {}),
    "PG-ZONE-004": (
        {
            "fail2ban": Sec(
                "", 255, "Failed to access socket path: /var/run/fail2ban/fail2ban.sock"
            ),
            "nft": Sec("", 1, "Operation not permitted"),
        },
        {},
    ),
    "PG-AV-001": ({"clamav-packages": Sec("", 2, "dpkg-query: error: database is locked")}, {}),
    "PG-AV-002": ({"units": None}, {}),
    "PG-AV-003": ({"clamav-db": Sec("mtime\t/var/lib/clamav/daily.cld\t17958", cut=True)}, {}),
    "PG-AV-004": (
        {"timers": Sec("", 1, "System has not been booted with systemd as init system")},
        {},
    ),
    "PG-AV-005": ({"clamav-scan": None}, {}),
    "PG-CRED-001": ({"shadow": Sec("", 127, "python3 not installed")}, {}),
    "PG-CRED-002": (
        {
            "shadow": Sec(
                "shadow-analysis\t1\tcrypt\nwangfang\t$y$\tusable\t20760\t1\t90\t7\t\t\t?\n"
            )
        },
        {},
    ),
    "PG-CRED-003": ({"passwd": None}, {}),
    "PG-CRED-004": ({"pg-login": Sec("r\tunreachable\n")}, {}),
    "PG-CRED-005": (
        {"mysql-login": Sec("none\ttimeout\n"), "units": units(mariadb=("enabled", "active"))},
        {},
    ),
    "PG-CRED-006": (
        {"redis-login": Sec("none\tother\n"), "units": units(redis_server=("enabled", "active"))},
        {},
    ),
    "PG-CRED-007": ({"snmp": Sec("awk: cannot open /etc/snmp/snmpd.conf\n")}, {}),
    "PG-SSH-001": ({"sshd": SSHD_FAILED}, {}),
    "PG-SSH-002": ({"sshd": SSHD_FAILED}, {}),
    "PG-SSH-003": ({"sshd": SSHD_FAILED}, {}),
    "PG-SSH-004": ({"sshd": SSHD_FAILED}, {}),
    "PG-TLS-001": ({"nginx": Sec("", 1, 'nginx: [emerg] unknown directive "ssl_protocol"')}, {}),
    "PG-TLS-002": ({"nginx": Sec("", 1, 'nginx: [emerg] unknown directive "ssl_protocol"')}, {}),
    "PG-TLS-003": (
        {
            "pg-hba": Sec(
                "",
                2,
                'psql: error: connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" '
                "failed: No such file or directory",
            )
        },
        {},
    ),
    "PG-TLS-004": (
        {"certificates": Sec("cert\t/etc/ssl/certs/waybill-api.pem\nunable to load certificate\n")},
        {},
    ),
    "PG-PRIV-001": ({"sudoers": Sec("")}, {}),
    "PG-PRIV-002": ({"sudoers": None}, {}),
    "PG-PRIV-003": ({"group": Sec("garbage without colons\n")}, {}),
    "PG-PRIV-004": ({"passwd": Sec("\x00\x01 not a passwd file\n")}, {}),
    "PG-PRIV-005": ({"sudoers": Sec("", 124)}, {}),
    "PG-PWD-001": ({"pam": None}, {}),
    "PG-PWD-002": ({"login-defs": Sec("", 2, "grep: /etc/login.defs: Permission denied")}, {}),
    "PG-PWD-003": ({"security-conf": None}, {}),
    "PG-PWD-004": ({"security-conf": None}, {}),
    "PG-PWD-005": ({"shadow": Sec("shadow-analysis\t1\tnocrypt\n")}, {}),
    "PG-STOR-001": (
        {
            "data-paths": Sec(
                "top\t/srv/waybill\t750 root waybill directory\nfind\t/srv/waybill\t124\n"
            )
        },
        {},
    ),
    "PG-STOR-002": (
        {"mounts": Sec("mount\t/srv/waybill\t/ overlay overlay\nattr\t/srv/waybill\t\n")},
        {},
    ),
    "PG-STOR-003": (
        {
            "usb-storage": Sec(
                "source\tfiles\nconfig\tinstall usb-storage /bin/false\n"
                "loaded\tunknown\nbuiltin\tunknown\n"
            )
        },
        {},
    ),
    "PG-AUD-001": ({"auditctl": Sec("", 1, "You must be root to run this program.")}, {}),
    "PG-AUD-002": (
        {"pg-settings": Sec("", 2, "psql: error: FATAL:  the database system is starting up")},
        {},
    ),
    "PG-AUD-003": ({"logrotate": None}, {}),
    "PG-AUD-004": ({"rsyslog": Sec("", 124)}, {}),
    "PG-STAFF-001": ({"shadow": None}, {}),
    "PG-STAFF-002": ({"ssh-keys": None}, {}),
    "PG-STAFF-003": ({"sudoers": None}, {}),
    "PG-STAFF-004": (
        {"atq": Sec("", 1, "Can't open /var/run/atd.pid to signal atd. No atd running?")},
        {},
    ),
    "PG-STAFF-005": ({"processes": None}, {}),
    "PG-PART-001": ({"nft": Sec("not json at all")}, {}),
}


def test_every_control_has_an_error_case() -> None:
    assert set(ERROR_CASES) == set(ALL_IDS)


@pytest.mark.parametrize("control_id", sorted(ERROR_CASES))
def test_error_cases(control_id: str) -> None:
    overrides, ctx_args = ERROR_CASES[control_id]
    ctx = ctx_for(reachability=bool(ctx_args.get("reachability", True)))
    r = run(control_id, overrides=overrides, ctx=ctx)
    assert r.status == Status.ERROR, f"{r.status}: {r.summary}"
    assert r.reason, "an ERROR must say why"


@pytest.mark.parametrize("control_id", [c for c in ALL_IDS if c.startswith("PG-STAFF-")])
def test_staff_controls_need_a_roster(control_id: str) -> None:
    r = run(control_id, "neglected", ctx=ctx_for(roster=None))
    assert r.status == Status.ERROR
    assert r.reason == "no staff roster supplied"


def test_every_control_errors_on_an_empty_answer() -> None:
    empty = facts_for("hardened", {name: None for name in load_profile("hardened")})
    for r in evaluate_host(CATALOG, empty, ctx_for(reachability=False)):
        assert r.status == Status.ERROR, f"{r.control_id}: {r.status} {r.summary}"


# --- behaviour worth pinning down -------------------------------------------------------


def test_kernel_audit_unavailable_is_error_not_pass() -> None:
    r = run("PG-AUD-001", overrides={"auditctl": Sec("", 1, "audit support not in kernel\n")})
    assert r.status == Status.ERROR
    assert "kernel audit not available" in r.reason


def test_audit_config_missing_fails_even_without_kernel_audit() -> None:
    r = run(
        "PG-AUD-001",
        overrides={"audit-rules": Sec(""), "auditctl": Sec("", 1, "audit support not in kernel")},
    )
    assert r.status == Status.FAIL


def test_departed_staff_are_named() -> None:
    ctx = ctx_for()
    for cid in ("PG-STAFF-001", "PG-STAFF-002", "PG-STAFF-003", "PG-STAFF-004", "PG-STAFF-005"):
        r = run(cid, "neglected", ctx=ctx)
        assert r.status == Status.FAIL
        assert "lihua" in r.summary + " ".join(e.value for e in r.evidence), cid
    r = run("PG-STAFF-001", "neglected", ctx=ctx)
    assert "wangfang" not in r.summary and "zhaolei" not in r.summary


def test_locked_but_not_expired_departed_account_fails() -> None:
    shadow = load_profile("hardened")["shadow"].out.replace(
        "lihua\t$y$\tlocked\t20726\t1\t90\t7\t\t20726", "lihua\t$y$\tlocked\t20726\t1\t90\t7\t\t"
    )
    r = run("PG-STAFF-001", overrides={"shadow": Sec(shadow)})
    assert r.status == Status.FAIL
    assert "lihua" in r.summary


def test_roster_member_with_account_passes_but_removed_member_fails() -> None:
    r = run("PG-STAFF-005", ctx=ctx_for(roster=frozenset({"zhaolei"})))
    assert r.status == Status.FAIL
    assert "wangfang" in r.summary


def test_default_password_is_reported_by_index_not_value() -> None:
    r = run("PG-CRED-002", "neglected")
    assert r.status == Status.FAIL
    assert "support" in r.summary
    assert any(e.value == "own name" for e in r.evidence)


def test_postgres_trust_is_detected_by_the_random_probe() -> None:
    r = run("PG-CRED-004", overrides={"pg-login": Sec("r\taccepted\n0\taccepted\n")})
    assert r.status == Status.FAIL
    assert "random password" in r.summary


def test_postgres_not_running_is_not_applicable() -> None:
    r = run(
        "PG-CRED-004",
        overrides={
            "pg-login": Sec("r\tunreachable\n"),
            "pg-settings": Sec("", 2, "psql: error: connection to server failed"),
            "units": units(postgresql=("disabled", "inactive")),
            "listening": Sec(""),
        },
    )
    assert r.status == Status.NOT_APPLICABLE


def test_second_root_is_named() -> None:
    r = run("PG-PRIV-004", "neglected")
    assert r.status == Status.FAIL and "toor" in r.summary


def test_nopasswd_without_space_is_caught() -> None:
    sudoers = load_profile("hardened")["sudoers"].out + (
        "==> /etc/sudoers.d/50-deploy <==\ndeploy ALL=(ALL) NOPASSWD:ALL\n"
    )
    r = run("PG-PRIV-002", overrides={"sudoers": Sec(sudoers)})
    assert r.status == Status.FAIL and "deploy" in r.summary


def test_sudoers_files_sudo_ignores_are_ignored() -> None:
    # sudo skips includedir files whose names contain a dot.
    sudoers = load_profile("hardened")["sudoers"].out + (
        "==> /etc/sudoers.d/50-deploy.dpkg-old <==\ndeploy ALL=(ALL) NOPASSWD:ALL\n"
    )
    r = run("PG-PRIV-002", overrides={"sudoers": Sec(sudoers)})
    assert r.status == Status.PASS


def test_stock_sudo_group_counts_once_it_has_members() -> None:
    group = load_profile("hardened")["group"].out.replace("sudo:x:27:", "sudo:x:27:zhaolei")
    r = run("PG-PRIV-001", overrides={"group": Sec(group)})
    assert r.status == Status.FAIL and "%sudo" in r.summary


def test_world_readable_export_is_named_with_phone_masked() -> None:
    r = run("PG-STOR-001", "neglected")
    assert r.status == Status.FAIL
    values = " ".join(e.value for e in r.evidence)
    assert "waybill-2026-11-27.csv" in values
    assert "13812345678" not in values and "138****5678" in values


def test_usb_blacklist_alone_passes_but_loaded_module_fails() -> None:
    blacklisted = Sec(
        "source\tshowconfig\nconfig\tblacklist usb_storage\nloaded\tno\nbuiltin\tno\n"
    )
    assert run("PG-STOR-003", overrides={"usb-storage": blacklisted}).status == Status.PASS
    builtin = Sec("source\tshowconfig\nconfig\tblacklist usb_storage\nloaded\tno\nbuiltin\tyes\n")
    assert run("PG-STOR-003", overrides={"usb-storage": builtin}).status == Status.FAIL


def test_fscrypt_directory_counts_as_encrypted() -> None:
    mounts = Sec(
        "mount\t/srv/waybill\t/ /dev/sda2 ext4\nattr\t/srv/waybill\t----------E-----e-------\n"
    )
    r = run("PG-STOR-002", overrides={"mounts": mounts})
    assert r.status == Status.PASS


def test_nginx_without_ssl_protocols_uses_the_insecure_default() -> None:
    nginx = load_profile("hardened")["nginx"].out.replace("\tssl_protocols TLSv1.2 TLSv1.3;\n", "")
    r = run("PG-TLS-001", overrides={"nginx": Sec(nginx)})
    assert r.status == Status.FAIL and "TLSv1.1" in r.summary


def test_nginx_stopped_is_not_applicable() -> None:
    r = run("PG-TLS-001", overrides={"units": units(nginx=("disabled", "inactive"))})
    assert r.status == Status.NOT_APPLICABLE


def test_ssh_prohibit_password_passes_and_yes_fails() -> None:
    sshd = load_profile("hardened")["sshd"].out
    ok = sshd.replace("permitrootlogin without-password", "permitrootlogin no")
    assert run("PG-SSH-002", overrides={"sshd": Sec(ok)}).status == Status.PASS
    bad = sshd.replace("permitrootlogin without-password", "permitrootlogin yes")
    assert run("PG-SSH-002", overrides={"sshd": Sec(bad)}).status == Status.FAIL


def test_ssh_cbc_cipher_fails() -> None:
    sshd = load_profile("hardened")["sshd"].out.replace("aes128-ctr", "aes128-ctr,aes256-cbc")
    r = run("PG-SSH-003", overrides={"sshd": Sec(sshd)})
    assert r.status == Status.FAIL and "aes256-cbc" in r.summary


def test_faillock_default_deny_is_three() -> None:
    r = run("PG-PWD-003", overrides={"security-conf": Sec("")})
    assert r.status == Status.PASS
    assert r.evidence[0].value == "3"


def test_log_retention_counts_rotate_times_period() -> None:
    logrotate = load_profile("hardened")["logrotate"].out.replace(
        "\trotate 30\n\tweekly\n\tmissingok", "\trotate 4\n\tweekly\n\tmissingok"
    )
    r = run("PG-AUD-003", overrides={"logrotate": Sec(logrotate)})
    assert r.status == Status.FAIL and "28 days" in r.summary


def test_forwarding_without_tls_fails_and_anonymous_tls_fails() -> None:
    anon = Sec(
        '==> /etc/rsyslog.d/60.conf <==\naction(type="omfwd" target="logs" port="6514" '
        'protocol="tcp" StreamDriver="gtls" StreamDriverMode="1")\n'
    )
    assert run("PG-AUD-004", overrides={"rsyslog": anon}).status == Status.FAIL


def test_reachability_violation_names_the_source() -> None:
    r = run("PG-ZONE-002", ctx=ctx_for(measured=NEGLECTED_MEASURED))
    assert r.status == Status.FAIL
    assert any("web1" in e.value for e in r.evidence)


def test_unmeasured_pair_is_error_not_pass() -> None:
    measured = {("app1", "data1", 5432): True, ("web1", "data1", 22): None}
    r = run("PG-ZONE-002", ctx=ctx_for(measured=measured))
    assert r.status == Status.ERROR


RULESETS = FIXTURES / "rulesets"  # JSON from nft -j, rules beside it in *.nft
OPEN_DB_RULESET = (RULESETS / "open-db.json").read_text()
PARTNER_DB_RULESET = (RULESETS / "partner-db.json").read_text()


def test_partner_control_fails_on_open_database_port_behind_a_jump() -> None:
    r = run("PG-PART-001", overrides={"nft": Sec(OPEN_DB_RULESET)})
    assert r.status == Status.FAIL
    assert any("5432" in e.value for e in r.evidence)
    # The same ruleset keeps SSH to the management zone, so ZONE-003 passes.
    assert run("PG-ZONE-003", overrides={"nft": Sec(OPEN_DB_RULESET)}).status == Status.PASS


def test_partner_allow_list_admits_declared_partner() -> None:
    from dataclasses import replace

    from parcelguard.scanners.policy import DEFAULT_POLICY, DEFAULT_ZONES, parse_zone_policy

    ruleset = PARTNER_DB_RULESET
    policy_vars = dict(DEFAULT_POLICY)
    policy_vars["partners"] = {"cainiao": ["203.0.113.0/28"]}
    policy_vars["partner_access"] = [{"partner": "cainiao", "to": "data", "ports": [5432]}]
    ctx = replace(ctx_for(), policy=parse_zone_policy(DEFAULT_ZONES, policy_vars))
    assert run("PG-PART-001", overrides={"nft": Sec(ruleset)}, ctx=ctx).status == Status.PASS
    # Without the allow-list entry the same rule is undeclared access.
    assert run("PG-PART-001", overrides={"nft": Sec(ruleset)}).status == Status.FAIL


def test_partner_control_not_applicable_outside_data_zone() -> None:
    r = run("PG-PART-001", ctx=ctx_for(zones=("app",)))
    assert r.status == Status.NOT_APPLICABLE
