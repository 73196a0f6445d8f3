#!/usr/bin/python
# Copyright: parcelguard contributors
# Apache-2.0
"""Revoke every access a departed person has on this host, in order, with evidence."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: parcelguard_revoke_account
short_description: Revoke a departed person's access on one host (Provisions Art. 38)
description:
  - Runs the revocation steps in a fixed order and reports, per step, the state before
    and after. Every step is idempotent; a second run changes nothing.
  - 1 block new logins (expiry day 1, locked password, no-login shell, sshd deny group);
    2 remove every authorized_keys file sshd reads and the principals file;
    3 end sessions (disable lingering, terminate the user, kill until no process remains);
    4 remove crontab, at jobs and systemd user units;
    5 remove sudoers rules and supplementary groups;
    6 PostgreSQL role NOLOGIN, sessions terminated, memberships revoked;
    8 archive the home directory and everything removed, with a SHA-256 checksum.
  - Step 7 (shared secrets to rotate) is decided on the controller from configuration.
  - Removed files are moved into a root-only evidence folder, never deleted.
  - With I(purge_after_days), accounts revoked longer ago than that are deleted
    (userdel) after their archive has been verified; nothing else happens then.
options:
  name:
    description: The account to revoke.
    type: str
    required: true
  deny_group:
    description: Group named in sshd's DenyGroups.
    type: str
    default: parcelguard-revoked
  sshd_dropin:
    description: The sshd drop-in that denies the group (validated with sshd -t).
    type: path
    default: /etc/ssh/sshd_config.d/05-parcelguard-revoked.conf
  shell:
    description: The no-login shell.
    type: str
    default: /usr/sbin/nologin
  evidence_dir:
    description: Root-only folder for archives, removed files and revocation markers.
    type: path
    default: /var/lib/parcelguard/offboarded
  protected:
    description: Accounts that are never revoked.
    type: list
    elements: str
    default: [root]
  min_uid:
    description: Accounts below this UID are system accounts and never revoked.
    type: int
    default: 1000
  kill_timeout:
    description: Seconds to keep killing the person's processes before failing.
    type: int
    default: 20
  postgresql:
    description: Revoke the PostgreSQL role of the same name when a local server runs.
    type: bool
    default: true
  ticket:
    description: Change ticket, recorded in the marker.
    type: str
    default: ""
  job:
    description: parcelguard job id, recorded in the marker.
    type: str
    default: ""
  purge_after_days:
    description: Delete accounts revoked more than this many days ago (0 = never).
    type: int
    default: 0
"""

RETURN = r"""
present:
  description: Whether the host has an OS account or a database role of that name.
  type: bool
steps:
  description: Per step, its name, whether it changed something, and before/after.
  type: list
public_keys:
  description: Public key lines removed or found, for the verification login attempt.
  type: list
archive:
  description: Path and SHA-256 of the archive written by this run, if any.
  type: dict
"""

import contextlib
import datetime
import grp
import hashlib
import json
import os
import pwd
import re
import shutil
import stat
import tarfile
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")  # used with fullmatch: no trailing newline
KEY_LINE = re.compile(r"^(?:\S+\s+)?(?:ssh-|ecdsa-|sk-)[\w@.-]+\s+[A-Za-z0-9+/=]{16,}")
MAX_KEY_BYTES = 256 * 1024
PSQL = ["runuser", "-u", "postgres", "--", "psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"]


class Revocation:
    def __init__(self, module):
        self.m = module
        self.p = module.params
        self.name = self.p["name"]
        self.check = module.check_mode
        self.steps = []
        self.public_keys = []
        self.notes = []
        self.changed_config = False
        self.removed_dir = None
        self.stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")

    # -- helpers -------------------------------------------------------------------
    def run(self, argv, data=None, check=True, cwd=None):
        rc, out, err = self.m.run_command(argv, data=data, binary_data=data is not None, cwd=cwd)
        if check and rc != 0:
            self.m.fail_json(msg=f"{argv[0]} failed ({rc}): {err.strip()[:300]}", steps=self.steps)
        return rc, out, err

    def record(self, step, before, after):
        changed = before != after
        self.steps.append({"step": step, "changed": changed, "before": before, "after": after})
        return changed

    def evidence_root(self):
        root = self.p["evidence_dir"]
        if not self.check:
            os.makedirs(root, mode=0o700, exist_ok=True)
            os.chmod(root, 0o700)
        return root

    def stash(self, path, label):
        """Move ``path`` into this run's evidence folder (never delete evidence)."""
        if self.check:
            return
        if self.removed_dir is None:
            self.removed_dir = os.path.join(self.evidence_root(), self.name, self.stamp, "removed")
            os.makedirs(self.removed_dir, mode=0o700, exist_ok=True)
        target = os.path.join(self.removed_dir, label)
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        shutil.move(path, target)

    # -- state readers --------------------------------------------------------------
    def shadow(self):
        with open("/etc/shadow", encoding="utf-8") as fh:
            for line in fh:
                f = line.rstrip("\n").split(":")
                if len(f) >= 9 and f[0] == self.name:
                    return {"locked": f[1].startswith("!") or f[1] in ("*", ""), "expire": f[7]}
        return {"locked": None, "expire": None}

    def groups(self):
        return sorted(g.gr_name for g in grp.getgrall() if self.name in g.gr_mem)

    @staticmethod
    def unsafe_path(path, ent):
        """Why ``path`` must not be read or moved, or None.

        The person controls their home directory, and their processes may still run: a
        symbolic link there could point at another account's files or at /etc. Below the
        home directory (or below / elsewhere) no component may be a symbolic link or
        belong to anyone but the person or root, and a file must have a single link.
        """
        home = ent.pw_dir.rstrip("/") or "/"
        if path.startswith(home + "/"):
            cur, rest = home, path[len(home) + 1 :]
        else:
            cur, rest = "/", path.lstrip("/")
        st = None
        for part in rest.split("/"):
            cur = os.path.join(cur, part)
            try:
                st = os.lstat(cur)
            except FileNotFoundError:
                return None
            if stat.S_ISLNK(st.st_mode):
                return f"{cur} is a symbolic link"
            if st.st_uid not in (0, ent.pw_uid):
                return f"{cur} belongs to UID {st.st_uid}"
        if st is not None and stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            return f"{cur} has {st.st_nlink} hard links"
        return None

    def read_keys(self, path):
        """Public key lines of an authorized_keys file (nothing else is ever returned)."""
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(MAX_KEY_BYTES).decode("utf-8", "replace")
        return [ln.strip() for ln in data.splitlines() if KEY_LINE.match(ln.strip())]

    def key_files(self, ent):
        """authorized_keys and principals files sshd reads for this user."""
        rc, out, _ = self.run(
            ["sshd", "-T", "-C", f"user={self.name},host=localhost,addr=127.0.0.1"], check=False
        )
        keys, principals, command = [".ssh/authorized_keys", ".ssh/authorized_keys2"], [], ""
        if rc == 0:
            for line in out.splitlines():
                k, _, v = line.partition(" ")
                if k == "authorizedkeysfile":
                    keys = v.split()
                elif k == "authorizedprincipalsfile" and v != "none":
                    principals = v.split()
                elif k == "authorizedkeyscommand" and v != "none":
                    command = v

        def expand(p):
            p = p.replace("%%", "\0").replace("%h", ent.pw_dir).replace("%u", self.name)
            p = p.replace("%U", str(ent.pw_uid)).replace("\0", "%")
            return p if p.startswith("/") else os.path.join(ent.pw_dir, p)

        def personal(p):
            # A file named without the user (absolute, no %h %u %U) is shared by everyone.
            return not p.startswith("/") or any(t in p for t in ("%h", "%u", "%U"))

        shared = [expand(p) for p in keys + principals if not personal(p)]
        keys = [expand(p) for p in keys if personal(p)]
        principals = [expand(p) for p in principals if personal(p)]
        return keys, principals, command, shared

    def session_pids(self, uid):
        """Processes running as the person, or in a login session of theirs (loginuid),
        such as a root shell they opened with sudo."""
        pids = set()
        rc, out, _ = self.run(["pgrep", "-u", str(uid)], check=False)
        if rc == 0:
            pids |= {int(p) for p in out.split() if p.isdigit()}
        mine = {os.getpid(), os.getppid()}
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in mine:
                continue
            try:
                with open(f"/proc/{entry}/loginuid", encoding="ascii") as fh:
                    if fh.read().strip() == str(uid):
                        pids.add(int(entry))
            except OSError:
                continue
        return pids

    def processes(self, uid):
        return len(self.session_pids(uid))

    # -- steps ------------------------------------------------------------------------
    def deny_rule(self):
        """sshd refuses the deny group: a drop-in, validated with sshd -t, then a reload.

        Done here rather than in separate tasks so that one module run is the whole
        revocation of a host (a fleet of 50 is revoked within a minute on two cores).
        """
        path = self.p["sshd_dropin"]
        want = (
            "# Managed by parcelguard (role account_revocation): accounts revoked by\n"
            "# offboarding are put in this group, which sshd refuses (PG-STAFF-001).\n"
            f"DenyGroups {self.p['deny_group']}\n"
        )
        try:
            with open(path, encoding="utf-8") as fh:
                have = fh.read()
        except FileNotFoundError:
            have = None
        if have == want or self.check or not os.path.isdir(os.path.dirname(path)):
            return
        try:
            grp.getgrnam(self.p["deny_group"])
        except KeyError:
            self.run(["groupadd", "--system", self.p["deny_group"]])
        tmp = path + ".pg-new"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(want)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        rc, _, err = self.run(["sshd", "-t"], check=False)
        if rc != 0:
            if have is None:
                os.unlink(path)
            else:
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(have)
            self.m.fail_json(msg=f"sshd -t refused the deny rule: {err.strip()[:300]}")
        for unit in ("ssh.service", "sshd.service"):
            rc, _, _ = self.run(["systemctl", "reload-or-restart", unit], check=False)
            if rc == 0:
                break
        self.changed_config = True

    def deny_rule_effective(self):
        rc, out, _ = self.run(
            ["sshd", "-T", "-C", f"user={self.name},host=localhost,addr=127.0.0.1"], check=False
        )
        groups = []
        for line in out.splitlines() if rc == 0 else []:
            key, _, value = line.partition(" ")
            if key == "denygroups":
                groups += value.split()
        return self.p["deny_group"] in groups

    def block_logins(self, ent):
        before = dict(
            self.shadow(),
            shell=ent.pw_shell,
            deny_group=self.p["deny_group"] in self.groups(),
            sshd_denies_group=self.deny_rule_effective(),
        )
        self.deny_rule()
        if not self.check:
            try:
                grp.getgrnam(self.p["deny_group"])
            except KeyError:
                self.run(["groupadd", "--system", self.p["deny_group"]])
            # Expiry first: it is what stops key logins under PAM.
            self.run(
                ["usermod", "--expiredate", "1", "--lock", "--shell", self.p["shell"], self.name]
            )
            self.run(["gpasswd", "--add", self.name, self.p["deny_group"]])
        after = {
            "locked": True,
            "expire": "1",
            "shell": self.p["shell"],
            "deny_group": True,
            "sshd_denies_group": True,
        }
        if not self.check:
            after = dict(
                self.shadow(),
                shell=pwd.getpwnam(self.name).pw_shell,
                deny_group=self.p["deny_group"] in self.groups(),
                sshd_denies_group=self.deny_rule_effective(),
            )
        self.record("block_logins", before, after)

    def stashed_keys(self):
        """Public keys removed by earlier runs, kept in the evidence folder."""
        found = []
        base = os.path.join(self.p["evidence_dir"], self.name)
        if not os.path.isdir(base):
            return found
        for stamp in sorted(os.listdir(base)):
            folder = os.path.join(base, stamp, "removed", "keys")
            if not os.path.isdir(folder):
                continue
            for entry in sorted(os.listdir(folder)):
                path = os.path.join(folder, entry)
                if os.path.isfile(path) and not os.path.islink(path):
                    with open(path, encoding="utf-8", errors="replace") as fh:
                        found += [
                            ln.strip()
                            for ln in fh
                            if ln.strip() and not ln.lstrip().startswith("#")
                        ]
        return found

    def remove_keys(self, ent, step="remove_ssh_keys"):
        keys, principals, command, shared = self.key_files(ent)
        present = [p for p in keys + principals if os.path.lexists(p)]
        if step != "remove_ssh_keys" and not present:
            return
        refused = {p: why for p in present if (why := self.unsafe_path(p, ent))}
        if refused:
            self.m.fail_json(
                msg="refusing to touch key files that are not the person's own: "
                + "; ".join(refused.values())
                + " (revoke by hand; the deny group already refuses the login)",
                steps=self.steps,
            )
        found = []
        for path in present:
            if path in keys and os.path.isfile(path):
                found += self.read_keys(path)
        self.public_keys += found
        for i, path in enumerate(present):
            self.stash(path, f"keys/{self.stamp}-{step}-{i}-{os.path.basename(path)}")
        before = {"files": present, "keys": len(found)}
        after = {"files": [], "keys": 0}
        if not self.check:
            after = {"files": [p for p in present if os.path.lexists(p)], "keys": 0}
        if command:
            # An AuthorizedKeysCommand answers from a directory we do not control here;
            # the deny group still refuses the login. Reported for the auditors.
            before["authorized_keys_command"] = after["authorized_keys_command"] = command
        if shared:
            before["shared_files_left"] = after["shared_files_left"] = shared
        self.record(step, before, after)

    def end_sessions(self, ent):
        linger = f"/var/lib/systemd/linger/{self.name}"
        before = {"lingering": os.path.exists(linger), "processes": self.processes(ent.pw_uid)}
        if not self.check:
            has_logind = shutil.which("loginctl") is not None
            if before["lingering"]:
                if has_logind:
                    self.run(["loginctl", "disable-linger", self.name], check=False)
                if os.path.exists(linger):
                    os.unlink(linger)
            if has_logind:
                self.run(["loginctl", "terminate-user", self.name], check=False)
            deadline = time.monotonic() + self.p["kill_timeout"]
            while pids := self.session_pids(ent.pw_uid):
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, 9)
                if time.monotonic() > deadline:
                    self.m.fail_json(
                        msg=f"processes of {self.name} still running after "
                        f"{self.p['kill_timeout']} s",
                        steps=self.steps,
                    )
                time.sleep(0.2)
        after = {"lingering": False, "processes": 0}
        if not self.check:
            after = {"lingering": os.path.exists(linger), "processes": self.processes(ent.pw_uid)}
        self.record("end_sessions", before, after)

    def remove_jobs(self, ent):
        crontab = f"/var/spool/cron/crontabs/{self.name}"
        units = os.path.join(ent.pw_dir, ".config", "systemd", "user")
        rc, out, _ = self.run(["atq"], check=False) if shutil.which("atq") else (1, "", "")
        at_ids = []
        for line in out.splitlines() if rc == 0 else []:
            fields = line.split()
            if fields and fields[-1] == self.name:
                at_ids.append(fields[0])
        before = {
            "crontab": os.path.exists(crontab),
            "at_jobs": len(at_ids),
            "user_units": os.path.isdir(units) and bool(os.listdir(units)),
        }
        if os.path.lexists(units) and (why := self.unsafe_path(units, ent)):
            self.m.fail_json(msg=f"refusing to move {units}: {why}", steps=self.steps)
        if not self.check:
            if before["crontab"]:
                self.stash(crontab, "crontab")
            for job in at_ids:
                rc, script, _ = self.run(["at", "-c", job], check=False)
                if rc == 0:
                    path = os.path.join(tempfile.mkdtemp(), f"at-{job}")
                    with open(path, "w", encoding="utf-8") as fh:
                        fh.write(script)
                    self.stash(path, f"at/{job}")
                self.run(["atrm", job])
            if os.path.isdir(units):
                self.stash(units, "systemd-user")
        after = {"crontab": False, "at_jobs": 0, "user_units": False}
        if not self.check:
            after = {
                "crontab": os.path.exists(crontab),
                "at_jobs": 0,
                "user_units": os.path.isdir(units) and bool(os.listdir(units)),
            }
        self.record("remove_scheduled_jobs", before, after)

    def sudo_files(self):
        files = ["/etc/sudoers"]
        if os.path.isdir("/etc/sudoers.d"):
            files += sorted(
                os.path.join("/etc/sudoers.d", f)
                for f in os.listdir("/etc/sudoers.d")
                if not f.endswith("~") and "." not in f
            )
        return [f for f in files if os.path.isfile(f)]

    def strip_sudoers(self, text):
        """``text`` without the person: their user specs and Defaults entries go, and
        they are taken out of user lists and User_Alias lists. Continued lines (ending in
        a backslash) are read as one. Returns (new text, number of changes)."""
        physical = text.splitlines(keepends=True)
        logical, buf = [], ""
        for line in physical:
            buf += line
            if not line.rstrip("\n").endswith("\\"):
                logical.append(buf)
                buf = ""
        if buf:
            logical.append(buf)
        kept, hits = [], 0
        alias = re.compile(r"^(\s*User_Alias\s+[A-Z][A-Z0-9_]*\s*=\s*)(.*?)(\s*)$", re.S)
        defaults = re.compile(r"^(\s*Defaults:)([^\s]+)(\s.*)$", re.S)
        spec = re.compile(r"^(\s*)((?:[^\s,=#]+\s*,\s*)*[^\s,=#]+)(\s+[^=]+=.*)$", re.S)

        def without(listed):
            members = [m.strip() for m in listed.split(",")]
            return [m for m in members if m != self.name], self.name in members

        for line in logical:
            stripped = line.lstrip()
            if not stripped or stripped.startswith(("#", "@")):  # comments, #include, @include
                kept.append(line)
                continue
            m = alias.match(line)
            if m:
                rest, hit = without(m.group(2).replace("\\\n", " "))
                if hit:
                    hits += 1
                    if not rest:
                        continue
                    line = m.group(1) + ", ".join(rest) + "\n"
                kept.append(line)
                continue
            m = defaults.match(line)
            if m:
                rest, hit = without(m.group(2))
                if hit:
                    hits += 1
                    if not rest:
                        continue
                    line = m.group(1) + ",".join(rest) + m.group(3)
                kept.append(line)
                continue
            m = spec.match(line)
            if m and not stripped.startswith(
                ("Defaults", "Host_Alias", "Cmnd_Alias", "Cmd_Alias", "Runas_Alias", "@", "#")
            ):
                rest, hit = without(m.group(2))
                if hit:
                    hits += 1
                    if not rest:
                        continue
                    line = m.group(1) + ", ".join(rest) + m.group(3)
            kept.append(line)
        return "".join(kept), hits

    def remove_privileges(self):
        deny = self.p["deny_group"]
        rules = {}
        for path in self.sudo_files():
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
            new, hits = self.strip_sudoers(text)
            if hits:
                rules[path] = (text, new, hits)
        groups = [g for g in self.groups() if g != deny]
        before = {"sudo_rules": {p: r[2] for p, r in rules.items()}, "groups": groups}
        if not self.check:
            for path, (_, new, _) in rules.items():
                only_comments = all(
                    not ln.strip() or ln.lstrip().startswith("#") for ln in new.splitlines()
                )
                if path != "/etc/sudoers" and only_comments:
                    self.stash(path, f"sudoers.d/{os.path.basename(path)}")
                    continue
                fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".pg-")
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(new)
                os.chmod(tmp, 0o440)
                rc, _, err = self.run(["visudo", "-cqf", tmp], check=False)
                if rc != 0:
                    os.unlink(tmp)
                    self.m.fail_json(
                        msg=f"{path} would not validate without {self.name}: {err.strip()}",
                        steps=self.steps,
                    )
                backup = f"{path}.{self.stamp}"
                shutil.copy2(path, backup)
                self.stash(backup, f"sudoers/{os.path.basename(path)}")
                os.replace(tmp, path)
            for g in groups:
                self.run(["gpasswd", "--delete", self.name, g])
        after = {"sudo_rules": {}, "groups": []}
        if not self.check:
            left = {}
            for path in self.sudo_files():
                with open(path, encoding="utf-8", errors="replace") as fh:
                    hits = self.strip_sudoers(fh.read())[1]
                if hits:
                    left[path] = hits
            after = {"sudo_rules": left, "groups": [g for g in self.groups() if g != deny]}
        self.record("remove_privileges", before, after)

    def postgres_available(self):
        """True when a local server answers; False when none is installed or it is
        neither running nor enabled; a host whose enabled cluster does not answer fails,
        because its role cannot be shown revoked."""
        if not self.p["postgresql"] or shutil.which("psql") is None:
            return False
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return False
        rc, _, err = self.m.run_command([*PSQL, "-c", "select 1"], cwd="/")
        if rc == 0:
            return True
        clusters = (
            [d for d in os.listdir("/etc/postgresql") if os.path.isdir(f"/etc/postgresql/{d}")]
            if os.path.isdir("/etc/postgresql")
            else []
        )
        _, enabled, _ = self.m.run_command(["systemctl", "is-enabled", "postgresql.service"])
        if clusters and not enabled.strip().startswith("enabled"):
            # Installed but neither running nor started at boot: no login is possible.
            self.notes.append(
                "PostgreSQL is installed but not running and not enabled: its roles were "
                "not checked; revoke again if it is ever started"
            )
            return False
        if clusters:
            self.m.fail_json(
                msg="PostgreSQL is installed here but does not answer "
                f"({err.strip()[:200]}): the database role cannot be revoked; start it, "
                "or set account_revocation_postgresql: false",
                steps=self.steps,
            )
        return False

    def pg(self, sql):
        # psql variables quote the name: :'name' as a literal, :"name" as an identifier.
        _, out, _ = self.run([*PSQL, "-v", f"name={self.name}", "-f", "-"], data=sql, cwd="/")
        return out.strip()

    def pg_state(self):
        row = self.pg(
            "SELECT rolcanlogin, (SELECT count(*) FROM pg_stat_activity WHERE usename = :'name'),"
            " (SELECT string_agg(g.rolname, ',' ORDER BY g.rolname) FROM pg_auth_members m"
            "  JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid)"
            " FROM pg_roles r WHERE rolname = :'name';\n"
        )
        if not row:
            return None
        login, sessions, member_of = row.split("|")
        return {
            "login": login == "t",
            "sessions": int(sessions),
            "member_of": [x for x in member_of.split(",") if x],
        }

    def revoke_database(self):
        if not self.postgres_available():
            return False
        before = self.pg_state()
        if before is None:
            return False
        if not self.check:
            sql = 'ALTER ROLE :"name" NOLOGIN;\n'
            for group in before["member_of"]:
                sql += f'REVOKE "{group.replace(chr(34), chr(34) * 2)}" FROM :"name";\n'
            sql += (
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE usename = :'name';\n"
            )
            self.pg(sql)
            for _ in range(50):
                after = self.pg_state()
                if after and after["sessions"] == 0:
                    break
                time.sleep(0.1)
        else:
            after = {"login": False, "sessions": 0, "member_of": []}
        self.record("revoke_database_role", before, after)
        return True

    def archive(self, ent):
        root = self.evidence_root()
        marker = os.path.join(root, f"{self.name}.json")
        previous = {}
        if os.path.exists(marker):
            with open(marker, encoding="utf-8") as fh:
                previous = json.load(fh)
        changed_now = any(s["changed"] for s in self.steps)
        block = next((s for s in self.steps if s["step"] == "block_logins"), None)
        # Found usable again (re-hired, or access restored by hand): the retention period
        # starts anew from this revocation.
        reopened = block is not None and block["changed"]
        before = {"archive": previous.get("archive"), "sha256": previous.get("sha256")}
        if self.check or (
            previous.get("archive") and not changed_now and os.path.exists(previous["archive"])
        ):
            self.record("archive_home", before, before)
            return None
        folder = os.path.join(root, self.name, self.stamp)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        path = os.path.join(folder, "home.tar.gz")
        with tarfile.open(path, "w:gz") as tar:
            if os.path.isdir(ent.pw_dir):
                tar.add(ent.pw_dir, arcname="home")
            if self.removed_dir and os.path.isdir(self.removed_dir):
                tar.add(self.removed_dir, arcname="removed")
        os.chmod(path, 0o600)
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        with open(path + ".sha256", "w", encoding="utf-8") as fh:
            fh.write(f"{digest.hexdigest()}  home.tar.gz\n")
        record = {
            "name": self.name,
            "uid": ent.pw_uid,
            "revoked_at": self.stamp if reopened else previous.get("revoked_at") or self.stamp,
            "last_run": self.stamp,
            "ticket": self.p["ticket"],
            "job": self.p["job"],
            "archive": path,
            "sha256": digest.hexdigest(),
        }
        tmp = marker + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(record, fh, indent=1)
        os.chmod(tmp, 0o600)
        os.replace(tmp, marker)
        after = {"archive": path, "sha256": digest.hexdigest()}
        self.record("archive_home", before, after)
        return after

    def purge(self):
        """Delete accounts whose revocation is older than the retention period."""
        root = self.p["evidence_dir"]
        marker = os.path.join(root, f"{self.name}.json")
        if not os.path.exists(marker):
            return {"purged": False, "reason": "no revocation marker"}
        with open(marker, encoding="utf-8") as fh:
            record = json.load(fh)
        revoked = datetime.datetime.strptime(record["revoked_at"], "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc
        )
        age = (datetime.datetime.now(datetime.timezone.utc) - revoked).days
        if age < self.p["purge_after_days"]:
            return {"purged": False, "reason": f"revoked {age} day(s) ago"}
        try:
            pwd.getpwnam(self.name)
        except KeyError:
            return {"purged": False, "reason": "already deleted"}
        state = self.shadow()
        disabled = (
            state["locked"] and state["expire"] == "1" and self.p["deny_group"] in self.groups()
        )
        if not disabled:
            self.m.fail_json(
                msg=f"{self.name} is not disabled any more (re-hired or restored?): not "
                "deleted; revoke again, or remove the marker if the account is in use"
            )
        with open(record["archive"], "rb") as fh:
            if hashlib.sha256(fh.read()).hexdigest() != record["sha256"]:
                self.m.fail_json(msg=f"archive {record['archive']} does not match its checksum")
        if not self.check:
            self.run(["userdel", "--remove", self.name])
        return {"purged": True, "reason": f"revoked {age} day(s) ago"}


def uid_max():
    """UID_MAX from /etc/login.defs (60000 by default): above it are system and
    dynamic users such as nobody (65534), never a person."""
    try:
        with open("/etc/login.defs", encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) == 2 and parts[0] == "UID_MAX" and parts[1].isdigit():
                    return int(parts[1])
    except OSError:
        pass
    return 60000


def connecting_accounts():
    """The account Ansible logged in as (sudo's SUDO_USER, the session's loginuid)."""
    names = set()
    if os.environ.get("SUDO_USER"):
        names.add(os.environ["SUDO_USER"])
    try:
        with open("/proc/self/loginuid", encoding="ascii") as fh:
            uid = int(fh.read().strip())
        if uid != 4294967295:
            names.add(pwd.getpwuid(uid).pw_name)
    except (OSError, ValueError, KeyError):
        pass
    return names


def refuse_unsafe_account(module, ent):
    """System accounts, and accounts whose UID or home another account shares (killing
    by UID or moving files from the home would hit that account too), are refused."""
    p = module.params
    if ent.pw_uid < p["min_uid"] or ent.pw_uid > uid_max():
        module.fail_json(
            msg=f"refusing to revoke {ent.pw_name}: UID {ent.pw_uid} is not a person's"
        )
    others = [e for e in pwd.getpwall() if e.pw_name != ent.pw_name]
    same_uid = [e.pw_name for e in others if e.pw_uid == ent.pw_uid]
    if same_uid:
        module.fail_json(
            msg=f"refusing to revoke {ent.pw_name}: UID {ent.pw_uid} is shared with "
            f"{', '.join(same_uid)}; revoke by hand"
        )
    home = ent.pw_dir.rstrip("/")
    same_home = [e.pw_name for e in others if e.pw_dir.rstrip("/") == home and home]
    if same_home or home in ("", "/"):
        module.fail_json(
            msg=f"refusing to revoke {ent.pw_name}: home {ent.pw_dir!r} is shared with "
            f"{', '.join(same_home) or 'the system'}; revoke by hand"
        )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            deny_group=dict(type="str", default="parcelguard-revoked"),
            sshd_dropin=dict(
                type="path", default="/etc/ssh/sshd_config.d/05-parcelguard-revoked.conf"
            ),
            shell=dict(type="str", default="/usr/sbin/nologin"),
            evidence_dir=dict(type="path", default="/var/lib/parcelguard/offboarded"),
            protected=dict(type="list", elements="str", default=["root"]),
            min_uid=dict(type="int", default=1000),
            kill_timeout=dict(type="int", default=20),
            postgresql=dict(type="bool", default=True),
            ticket=dict(type="str", default=""),
            job=dict(type="str", default=""),
            purge_after_days=dict(type="int", default=0),
        ),
        supports_check_mode=True,
    )
    name = module.params["name"]
    if not NAME.fullmatch(name):
        module.fail_json(msg=f"refusing account name {name!r}: not a plain login name")
    if name in module.params["protected"] or name in ("root", "postgres", "nobody"):
        module.fail_json(msg=f"refusing to revoke protected account {name}")
    if name in connecting_accounts():
        module.fail_json(msg=f"refusing to revoke {name}: it is the account running this change")
    rev = Revocation(module)
    try:
        ent = pwd.getpwnam(name)
    except KeyError:
        ent = None
    if ent is not None:
        refuse_unsafe_account(module, ent)
    if module.params["purge_after_days"] > 0:
        result = rev.purge()
        module.exit_json(changed=result["purged"], present=ent is not None, purge=result)
    if ent is not None:
        rev.block_logins(ent)
        rev.remove_keys(ent)
        rev.end_sessions(ent)
        # A process of theirs may have written a key before it was killed.
        rev.remove_keys(ent, step="remove_ssh_keys_after_sessions")
        rev.remove_jobs(ent)
        rev.remove_privileges()
    has_role = rev.revoke_database()
    archive = rev.archive(ent) if ent is not None else None
    module.exit_json(
        changed=any(s["changed"] for s in rev.steps),
        present=ent is not None or has_role,
        account=ent is not None,
        steps=rev.steps,
        public_keys=sorted(set(rev.public_keys) | set(rev.stashed_keys())),
        archive=archive,
        notes=rev.notes,
    )


if __name__ == "__main__":
    main()
