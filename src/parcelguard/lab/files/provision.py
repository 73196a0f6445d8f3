"""Per-host set-up of a lab host, run inside it (python3 -c) with its settings on stdin.

Settings arrive as JSON on stdin, never on the command line, because they carry the lab's
secrets. What it sets up is the neglected state documented in docs/lab.md.
"""

import json
import os
import pathlib
import pwd
import re
import subprocess
import sys


def write(path: str, text: str, mode: int, owner: str = "root") -> None:
    p = pathlib.Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    p.chmod(mode)
    user = pwd.getpwnam(owner)
    os.chown(path, user.pw_uid, user.pw_gid)


def sh(*argv: str, stdin: str | None = None) -> None:
    subprocess.run(argv, input=stdin, text=True, check=True, capture_output=stdin is not None)


def authorize(user: str, pubkey: str) -> None:
    home = pwd.getpwnam(user).pw_dir
    pathlib.Path(home, ".ssh").mkdir(mode=0o700, exist_ok=True)
    ent = pwd.getpwnam(user)
    os.chown(f"{home}/.ssh", ent.pw_uid, ent.pw_gid)
    write(f"{home}/.ssh/authorized_keys", pubkey.strip() + "\n", 0o600, user)


def psql(sql: str, database: str = "postgres") -> None:
    sh(
        "runuser",
        "-u",
        "postgres",
        "--",
        "psql",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        database,
        stdin=sql,
    )


def database(cfg: dict) -> None:  # type: ignore[type-arg]
    # Seeded weakness: listening on every address, any client, password auth without TLS.
    write(
        "/etc/postgresql/15/main/conf.d/10-vendor.conf",
        "listen_addresses = '*'\n",
        0o644,
        "postgres",
    )
    with pathlib.Path("/etc/postgresql/15/main/pg_hba.conf").open("a", encoding="utf-8") as hba:
        hba.write("host    all    all    0.0.0.0/0    scram-sha-256\n")
    sh("systemctl", "enable", "--quiet", "--now", "postgresql.service")
    sh("runuser", "-u", "postgres", "--", "pg_isready", "-t", "60", "-q")
    psql(
        f"ALTER ROLE postgres PASSWORD '{cfg['db_superuser_password']}';\n"
        "CREATE DATABASE waybill;\n"
        f"CREATE ROLE waybill_app LOGIN PASSWORD '{cfg['db_app_password']}';\n"
        f"CREATE ROLE lihua LOGIN PASSWORD '{cfg['departed_password']}';\n"
    )
    psql(cfg["waybill_sql"], "waybill")
    psql(
        "GRANT SELECT, INSERT, UPDATE ON waybill TO waybill_app;\n"
        "GRANT SELECT ON waybill TO lihua;\n",
        "waybill",
    )


def waybill_app(cfg: dict) -> None:  # type: ignore[type-arg]
    # Seeded weakness: a plaintext export of delivery-user records, readable by everyone.
    write("/srv/waybill/exports/waybills-2026-10.csv", cfg["waybill_csv"], 0o644)
    write(
        "/etc/waybill/app.conf",
        "[database]\nhost = db1\nname = waybill\nuser = waybill_app\n"
        f"password = {cfg['db_app_password']}\n",
        0o644,
    )


def main() -> None:
    cfg = json.load(sys.stdin)
    # Values go into SQL and chpasswd lines: refuse anything but plain tokens.
    for key in ("root_password", "departed_password", "db_app_password", "db_superuser_password"):
        if not re.fullmatch(r"[A-Za-z0-9_-]{4,64}", cfg[key]):
            raise SystemExit(f"refusing unsafe value for {key}")
    # On a cgroup v1 host (this lab's kind) systemd never hears that a cgroup emptied, so
    # a session scope or user manager whose processes offboarding killed waits out its
    # whole stop timeout (90 s), and the person's next login waits with it. A short
    # timeout ends that wait; real (cgroup v2) hosts are unaffected.
    write(
        "/etc/systemd/system.conf.d/90-parcelguard-lab.conf",
        "[Manager]\nDefaultTimeoutStopSec=5s\n",
        0o644,
    )
    write(
        "/etc/systemd/system/user@.service.d/90-parcelguard-lab.conf",
        "[Service]\nTimeoutStopSec=3s\n",
        0o644,
    )
    sh("systemctl", "daemon-reload")
    authorize("root", cfg["admin_pubkey"])
    authorize("lihua", cfg["departed_pubkey"])
    pathlib.Path("/home/lihua/.cache/exports").mkdir(parents=True, exist_ok=True)
    sh("chown", "-R", "lihua:lihua", "/home/lihua/.cache")
    sh("loginctl", "enable-linger", "lihua")
    sh("chpasswd", stdin=f"root:{cfg['root_password']}\nlihua:{cfg['departed_password']}\n")
    role = cfg["role"]
    if role == "web":
        sh("systemctl", "enable", "--quiet", "--now", "nginx.service")
    elif role == "database":
        database(cfg)
    elif role == "waybill_app":
        waybill_app(cfg)


main()
