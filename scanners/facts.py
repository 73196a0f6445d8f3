"""Fact gathering in one round trip: the script a host runs, and the parser of its output.

:func:`gather_script` returns a bash script that the runner feeds to ``bash -s`` as root on
the host. It prints one delimited section per fact source::

    <marker> BEGIN <name> <rc> <truncated>
    ...stdout, capped...
    <marker> STDERR <name>
    ...stderr, capped...
    <marker> END <name>

The marker is a random token per run, so output that a host controls (file names, cron
lines, unit descriptions) cannot forge a section boundary. :func:`parse_gather_output`
treats the whole text as hostile: it never raises, and whatever it cannot read becomes a
missing or incomplete section, which controls then report as ERROR.

The script never prints password hashes, private keys or user data: the shadow file is
analysed on the host (scheme, flags and ageing only), keys are reduced to fingerprints,
and data paths to modes and owners.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from parcelguard.scanners.context import DEFAULT_DATA_PATHS

_MARKER = re.compile(r"^[A-Za-z0-9]{16,64}$")
MAX_OUTPUT_CHARS = 16 * 1024 * 1024  # parse at most this much of a host's answer

# Well-known vendor and first-boot passwords, plus the most common weak ones in Chinese
# deployments (888888, 666666, 1qaz2wsx). The script reports a match as an index into
# this tuple, never the password, and also tries each account's own name.
# Kept short on purpose: every candidate costs one yescrypt hash per account (~11 ms on
# Debian 12's default cost) and one database login attempt; the account's own name is
# always tried as well. These are the defaults seen on courier-site appliances and in
# vendor installers, plus the most common weak passwords.
DEFAULT_PASSWORDS: tuple[str, ...] = (
    "support", "admin", "password", "123456", "12345678", "root", "toor", "changeme",
    "default", "postgres", "test", "guest", "admin123", "P@ssw0rd", "888888", "666666",
)  # fmt: skip

DEFAULT_EXPORT_TOOLS: tuple[str, ...] = (
    "pg_dump", "pg_dumpall", "mysqldump", "mariadb-dump", "scp", "rsync", "sftp",
    "/usr/lib/openssh/sftp-server", "curl", "wget", "tar", "psql",
)  # fmt: skip

UNITS: tuple[str, ...] = (
    "clamav-daemon", "clamav-freshclam", "nftables", "fail2ban", "auditd", "ssh", "nginx",
    "postgresql", "snmpd", "redis-server", "mysql", "mariadb", "rsyslog", "cron", "atd",
)  # fmt: skip


def new_marker() -> str:
    """A fresh, unguessable section marker for one gather run."""
    return secrets.token_hex(16)


@dataclass(frozen=True)
class GatherParams:
    """Everything the gather script depends on; validated so the script stays well-formed."""

    marker: str
    data_paths: tuple[str, ...] = DEFAULT_DATA_PATHS
    export_tools: tuple[str, ...] = DEFAULT_EXPORT_TOOLS
    default_passwords: tuple[str, ...] = DEFAULT_PASSWORDS
    command_timeout: int = 10  # seconds for each ordinary command
    slow_timeout: int = 60  # seconds for the shadow analysis and bounded `find`
    login_timeout: int = 5  # seconds for each default-password login attempt
    section_max_bytes: int = 64 * 1024
    find_max_entries: int = 200
    probe_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    # Credential-check cache (scanners/credcache.py): key, and (digest, match) pairs
    # already known for this host. Empty key: no cache, every hash is checked.
    cred_key: str = ""
    cred_known: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not _MARKER.match(self.marker):
            raise ValueError("marker must be 16-64 ASCII letters or digits")
        for p in self.data_paths:
            if not p.startswith("/") or _unprintable(p):
                raise ValueError(f"data path {p!r} must be absolute and printable")
        for tool in self.export_tools:
            if not tool or _unprintable(tool):
                raise ValueError(f"export tool {tool!r} must be a printable name or path")
        for pw in (*self.default_passwords, self.probe_password):
            if not pw or _unprintable(pw):
                raise ValueError("default passwords must be non-empty, one line each")
        if self.cred_key and not _HEX64.match(self.cred_key):
            raise ValueError("cred_key must be 64 hex characters")
        for digest, match in self.cred_known:
            if not _HEX64.match(digest) or not _MATCH.match(match):
                raise ValueError("cred_known entries must be (sha256 hex, match label)")
        for n in (
            self.command_timeout,
            self.slow_timeout,
            self.login_timeout,
            self.section_max_bytes,
            self.find_max_entries,
        ):
            if n <= 0:
                raise ValueError("timeouts and limits must be positive")


_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MATCH = re.compile(r"^(-|u|\d{1,3})$")


def cached_matches(facts: HostFacts) -> tuple[tuple[str, str], ...]:
    """The (digest, match) pairs the shadow analysis reported for the credential cache."""
    sec = facts.section("shadow")
    if sec is None or not sec.ok:
        return ()
    pairs = []
    for line in sec.stdout.split("\n"):
        f = line.split("\t")
        if len(f) == 3 and f[0] == "cache" and _HEX64.match(f[1]) and _MATCH.match(f[2]):
            pairs.append((f[1], f[2]))
    return tuple(pairs)


def _unprintable(value: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in value)


# Runs on the host under python3 (3.11 on Debian 12, whose crypt module goes through
# libxcrypt and so verifies yescrypt). Prints, per account: name, scheme, state, the
# shadow ageing fields and which candidate (index, or "u" for the account's own name)
# reproduces the hash, computed with the hash's own salt. Never prints a hash.
_SHADOW_PY = r"""
import hashlib, hmac, sys
try:
    import crypt
except ImportError:
    crypt = None
key, known, cands = b"", {}, []
for row in sys.stdin.read().split("\n"):
    kind, _, rest = row.partition("\t")
    if kind == "key":
        key = rest.encode()
    elif kind == "known":
        digest, _, label = rest.partition("\t")
        known[digest] = label
    elif kind == "cand" and rest:
        cands.append(rest)
print("shadow-analysis\t1\t" + ("crypt" if crypt else "nocrypt"))
with open(sys.argv[1], encoding="utf-8", errors="replace") as fh:
    for line in fh:
        f = line.rstrip("\n").split(":")
        if len(f) < 9:
            print("malformed\t%d" % len(f))
            continue
        name, h = f[0], f[1]
        core = h[1:] if h.startswith("!") else h
        while core.startswith("!"):
            core = core[1:]
        if core.startswith("$") and core.count("$") >= 2:
            scheme = "$" + core.split("$")[1] + "$"
        elif len(core) == 13 and not core.startswith("*"):
            scheme = "des"
        else:
            scheme = "none"
        if h == "":
            state = "empty"
        elif h.startswith("!"):
            state = "locked"
        elif scheme == "none":
            state = "disabled"
        else:
            state = "usable"
        match = "-"
        digest = ""
        if key and scheme != "none":
            # Keyed digest of the hash: lets the controller skip the slow check next
            # time the hash is unchanged, and tells nothing about it without the key.
            digest = hmac.new(key, (name + ":" + h).encode(), hashlib.sha256).hexdigest()
        if digest in known:
            match = known[digest]
        elif scheme != "none" and crypt is not None:
            for label, cand in [("u", name)] + [(str(i), c) for i, c in enumerate(cands)]:
                try:
                    if crypt.crypt(cand, core) == core:
                        match = label
                        break
                except Exception:
                    match = "?"
                    break
        elif scheme != "none":
            match = "?"
        if digest and match != "?":
            print("cache\t" + digest + "\t" + match)
        print("\t".join([name, scheme, state] + f[2:8] + [match]))
"""

# Each section is a bash function; every external command runs under `t` (timeout) and
# every parameter reaches bash as a shlex-quoted array element, never inside code.
_FUNCTIONS = r"""
t() { timeout -k 2 "$T" "$@"; }
ts() { timeout -k 2 "$TS" "$@"; }
have() { command -v "$1" >/dev/null 2>&1; }
kv() { printf '%s\t%s\n' "$1" "$2"; }
files() {
  local f
  for f in "$@"; do
    [ -f "$f" ] || continue
    printf '==> %s <==\n' "$f"
    t grep -v -E '^[[:space:]]*(#|$)' -- "$f"
  done
  return 0
}
pgq() {
  have psql || { echo absent; return 127; }
  t runuser -u postgres -- psql -X -A -t -q -F "$TAB" -d postgres -c "$1"
}
classify() {
  if [ "$1" -eq 0 ]; then echo accepted; return 0; fi
  if [ "$1" -eq 124 ] || [ "$1" -eq 137 ]; then echo timeout; return 0; fi
  local denied='authentication failed|access denied|no password supplied|no pg_hba|WRONGPASS'
  denied+='|NOAUTH|invalid password|invalid username'
  local down='could not connect|connection refused|can.t connect|is the server running'
  down+='|no such file'
  if grep -qiE "$denied" "$W/try"; then
    echo denied
  elif grep -qiE "$down" "$W/try"; then
    echo unreachable
  else
    echo other
  fi
}
try_pg() {
  PGPASSWORD=$1 PGCONNECT_TIMEOUT=$TL timeout -k 2 "$TL" psql -X -w -h 127.0.0.1 \
    -U postgres -d postgres -A -t -c 'select 1' >"$W/try" 2>&1
  classify $?
}
try_mysql() {
  if [ -n "$1" ]; then
    MYSQL_PWD=$1 timeout -k 2 "$TL" mysql --protocol=TCP -h 127.0.0.1 -u root \
      --connect-timeout="$TL" -N -s -e 'select 1' >"$W/try" 2>&1
  else
    timeout -k 2 "$TL" mysql --protocol=TCP -h 127.0.0.1 -u root \
      --connect-timeout="$TL" -N -s -e 'select 1' >"$W/try" 2>&1 </dev/null
  fi
  classify $?
}
try_redis() {
  if [ -n "$1" ]; then
    REDISCLI_AUTH=$1 timeout -k 2 "$TL" redis-cli -h 127.0.0.1 ping >"$W/try" 2>&1
  else
    timeout -k 2 "$TL" redis-cli -h 127.0.0.1 ping >"$W/try" 2>&1
  fi
  local rc=$?
  # redis-cli exits 0 on error replies: only PONG proves the login worked.
  if grep -q '^PONG' "$W/try"; then echo accepted
  elif [ "$rc" -eq 0 ]; then classify 1
  else classify "$rc"; fi
}
attempts() {
  local fn=$1 label=$2 pw=$3 i=0 cls
  cls=$("$fn" "$pw"); printf '%s\t%s\n' "$label" "$cls"
  case $cls in unreachable|timeout|other) return 0 ;; esac
  for pw in "${CANDS[@]}"; do
    cls=$("$fn" "$pw"); printf '%s\t%s\n' "$i" "$cls"; i=$((i + 1))
    # One accepted default is proof enough; the rest would only cost time.
    case $cls in unreachable|timeout|accepted) return 0 ;; esac
  done
}
# Forks cost ~1 ms each in a container and a gather runs ~50 sections: the bookkeeping
# below uses bash builtins (read, printf) only.
emit() {
  local name=$1 rc trunc=0 out="" err=""; shift
  "$@" </dev/null 2>"$W/err" | head -c "$CAP" >"$W/out"
  rc=${PIPESTATUS[0]}
  IFS= read -r -d '' out <"$W/out"
  IFS= read -r -d '' -n 2048 err <"$W/err"
  [ "${#out}" -ge "$CAP" ] && trunc=1
  printf '%s BEGIN %s %s %s\n%s\n%s STDERR %s\n%s\n%s END %s\n' \
    "$M" "$name" "$rc" "$trunc" "$out" "$M" "$name" "$err" "$M" "$name"
}

s_os_release() { t cat /etc/os-release; }
s_passwd() { t cat /etc/passwd; }
s_group() { t cat /etc/group; }
s_shadow() {
  have python3 || { echo 'python3 not installed' >&2; return 127; }
  {
    printf 'key\t%s\n' "$CRED_KEY"
    printf 'known\t%s\n' "${CRED_KNOWN[@]}"
    printf 'cand\t%s\n' "${CANDS[@]}"
  } | ts python3 -W ignore -c "$PY_SHADOW" /etc/shadow
}
s_login_defs() { files /etc/login.defs; }
s_pam() {
  files /etc/pam.d/common-auth /etc/pam.d/common-account /etc/pam.d/common-password \
    /etc/pam.d/common-session /etc/pam.d/sshd /etc/pam.d/sudo
}
s_security() {
  files /etc/security/pwquality.conf /etc/security/pwquality.conf.d/*.conf \
    /etc/security/faillock.conf /etc/security/pwhistory.conf
}
# sshd -T and nginx -T outputs are kept in $W for the sections that read them again.
s_sshd() { have sshd || return 127; t sshd -T | tee "$W/sshd-T"; }
s_ssh_keys() {
  local akf u uid home p line
  set -f
  [ -s "$W/sshd-T" ] || t sshd -T >"$W/sshd-T" 2>/dev/null
  akf=$(awk '$1 == "authorizedkeysfile" { $1 = ""; print substr($0, 2) }' "$W/sshd-T")
  [ -n "$akf" ] || akf='.ssh/authorized_keys .ssh/authorized_keys2'
  printf 'files\t%s\n' "$akf"
  while IFS=: read -r u _ uid _ _ home _; do
    for p in $akf; do
      p=${p//%h/$home}; p=${p//%u/$u}; p=${p//%%/%}
      case $p in /*) ;; *) p="$home/$p" ;; esac
      [ -f "$p" ] || continue
      if t ssh-keygen -l -f "$p" >"$W/keys" 2>/dev/null; then
        head -n 100 "$W/keys" | while IFS= read -r line; do
          printf 'key\t%s\t%s\t%s\n' "$u" "$p" "$line"
        done
      elif [ -s "$p" ]; then
        printf 'unreadable\t%s\t%s\n' "$u" "$p"
      fi
    done
  done </etc/passwd
}
s_sudoers() { files /etc/sudoers /etc/sudoers.d/*; }
s_crontabs() {
  local f
  for f in /var/spool/cron/crontabs/*; do
    [ -f "$f" ] || continue
    printf '==> %s <==\n' "${f##*/}"
    t grep -v -E '^[[:space:]]*(#|$)' -- "$f"
  done
  return 0
}
s_cron_system() { files /etc/crontab /etc/cron.d/*; }
s_atq() { have atq || return 127; t atq; }
s_linger() { [ -d /var/lib/systemd/linger ] || return 0; t ls -1 /var/lib/systemd/linger; }
s_processes() { t ps -eo user:32,pid,comm --no-headers | head -n 5000; }
# One systemctl call for every unit: NAME, enabled state (not-found when absent), active state.
s_units() {
  local u args=()
  for u in "${UNITS[@]}"; do args+=("$u.service"); done
  t systemctl show --no-pager -p Id -p LoadState -p UnitFileState -p ActiveState -- "${args[@]}" |
    awk -F= 'function out() { if (id != "") { sub(/\.service$/, "", id)
               if (load == "not-found" || uf == "") uf = "not-found"
               printf "%s\t%s\t%s\n", id, uf, (act == "" ? "unknown" : act) }
             id = ""; load = ""; uf = ""; act = "" }
         /^$/ { out(); next }
         $1 == "Id" { id = $2 } $1 == "LoadState" { load = $2 }
         $1 == "UnitFileState" { uf = $2 } $1 == "ActiveState" { act = $2 }
         END { out() }'
}
s_timers() { t systemctl list-timers --all --no-legend --no-pager; }
s_nft() { have nft || return 127; t nft -j list ruleset; }
s_fail2ban() { have fail2ban-client || return 127; t fail2ban-client status; }
s_clamav_pkgs() {
  t dpkg-query -W -f='${Package}\t${Status}\t${Version}\n' clamav clamav-daemon clamav-freshclam
}
s_clamav_db() {
  local f line
  for f in /var/lib/clamav/*.cvd /var/lib/clamav/*.cld; do
    printf 'mtime\t%s\t%s\n' "$f" "$(stat -c %Y -- "$f")"
    case ${f##*/} in
      daily.cvd|daily.cld)
        have sigtool || continue
        t sigtool --info "$f" 2>/dev/null | while IFS= read -r line; do
          case $line in 'Build time:'*|'Version:'*) printf 'info\t%s\t%s\n' "$f" "$line" ;; esac
        done ;;
    esac
  done
  return 0
}
s_clamd_conf() {
  [ -f /etc/clamav/clamd.conf ] || { echo absent; return 0; }
  t grep -E '^(LocalSocket|TCPSocket|TCPAddr|User|VirusEvent|OnAccess[A-Za-z]*)[[:space:]]' \
    /etc/clamav/clamd.conf
  return 0
}
s_clamav_scan() {
  local where=(/etc/systemd/system /etc/cron.d /etc/crontab /etc/cron.daily /etc/cron.weekly
    /var/spool/cron/crontabs)
  local line d
  t grep -rhsE 'clamd?scan' "${where[@]}" | head -n 50 | while IFS= read -r line; do
    printf 'cmd\t%s\n' "$line"
  done
  t grep -rhosE -- '--(move|copy)=[^[:space:]"]+' "${where[@]}" | sort -u | head -n 10 |
    while IFS= read -r line; do
      d=${line#*=}
      if [ -d "$d" ]; then printf 'qdir\t%s\n' "$(stat -c '%a %U %G %n' -- "$d")"
      else printf 'qdir-missing\t%s\n' "$d"; fi
    done
  return 0
}
s_listening() { t ss -H -tulnp; }
s_nginx() {
  have nginx || return 127
  t nginx -T | tee "$W/nginx-T" |
    awk '/^# configuration file /{ print; next } /^[[:space:]]*(#|$)/{ next } { print }'
}
s_certs() {
  local p
  have openssl || return 127
  {
    if have nginx; then
      [ -s "$W/nginx-T" ] || t nginx -T >"$W/nginx-T" 2>/dev/null
      awk '$1 == "ssl_certificate" { sub(/;$/, "", $2); print $2 }' "$W/nginx-T"
    fi
    # No PostgreSQL (or no TLS in it) is not an error of this section.
    pgq "$Q_PG_CERT" 2>/dev/null | grep '^/' || true
  } | { grep -v '[$]' || true; } | sort -u | head -n 20 | while IFS= read -r p; do
    if [ -f "$p" ]; then
      printf 'cert\t%s\n' "$p"
      t openssl x509 -noout -enddate -subject -in "$p"
    else
      printf 'missing\t%s\n' "$p"
    fi
  done
}
s_pg_settings() { pgq "$Q_PG_SETTINGS"; }
s_pg_hba() { pgq "$Q_PG_HBA"; }
s_pg_databases() { pgq "$Q_PG_DBS"; }
s_pg_login() { have psql || { echo absent; return 127; }; attempts try_pg r "$PROBE"; }
s_mysql_login() { have mysql || { echo absent; return 127; }; attempts try_mysql none ''; }
s_redis_login() { have redis-cli || { echo absent; return 127; }; attempts try_redis none ''; }
s_snmp() {
  [ -f /etc/snmp/snmpd.conf ] || { echo absent; return 0; }
  t awk 'BEGIN { n = 0; d = 0 }
    { k = tolower($1) }
    k ~ /^(ro|rw)community6?$/ { n++; if ($2 == "public" || $2 == "private") d++ }
    k ~ /^com2sec6?$/ { n++; if ($NF == "public" || $NF == "private") d++ }
    END { printf "community-lines\t%d\ndefault-community\t%d\n", n, d }' \
    /etc/snmp/snmpd.conf /etc/snmp/snmpd.conf.d/*.conf
}
s_usb_storage() {
  local m
  if have modprobe; then
    kv source showconfig
    t modprobe --showconfig 2>/dev/null | grep -E '^(install|blacklist) usb[_-]storage( |$)' |
      awk '{ print "config\t" $0 }'
  else
    kv source files
    t grep -hsE '^[[:space:]]*(install|blacklist)[[:space:]]+usb[_-]storage([[:space:]]|$)' \
      /etc/modprobe.d/*.conf /lib/modprobe.d/*.conf | awk '{ print "config\t" $0 }'
  fi
  if [ -r /proc/modules ]; then
    if grep -q '^usb_storage ' /proc/modules; then kv loaded yes; else kv loaded no; fi
  else
    kv loaded unknown
  fi
  m=/lib/modules/$(uname -r)
  if [ -f "$m/modules.builtin" ]; then
    if grep -q '/usb-storage\.ko' "$m/modules.builtin"; then kv builtin yes; else kv builtin no; fi
  else
    kv builtin unknown
  fi
  return 0
}
s_auditctl() { have auditctl || { echo absent; return 127; }; t auditctl -l; }
s_audit_rules() { files /etc/audit/rules.d/*.rules /etc/audit/audit.rules; }
s_auditd_conf() { files /etc/audit/auditd.conf; }
s_export_tools() {
  local tool p
  for tool in "${TOOLS[@]}"; do
    case $tool in
      /*) [ -e "$tool" ] && p=$tool || p='' ;;
      *) p=$(command -v -- "$tool" 2>/dev/null) || p='' ;;
    esac
    [ -n "$p" ] && printf '%s\t%s\t%s\n' "$tool" "$p" "$(readlink -f -- "$p")"
  done
  return 0
}
s_journald() {
  if [ -d /var/log/journal ]; then kv journal-dir present; else kv journal-dir absent; fi
  files /etc/systemd/journald.conf /etc/systemd/journald.conf.d/*.conf \
    /usr/lib/systemd/journald.conf.d/*.conf /run/systemd/journald.conf.d/*.conf
}
s_logrotate() { files /etc/logrotate.conf /etc/logrotate.d/*; }
s_rsyslog() { files /etc/rsyslog.conf /etc/rsyslog.d/*.conf; }
s_data_paths() {
  local p
  for p in "${DATA_PATHS[@]}"; do
    if [ ! -e "$p" ]; then printf 'missing\t%s\n' "$p"; continue; fi
    printf 'top\t%s\t%s\n' "$p" "$(stat -c '%a %U %G %F' -- "$p")"
    ts find "$p" -maxdepth 3 ! -type l \( -perm -o=r -o -perm -o=w \) \
      -printf 'open\t%m %u %g %y %p\n' 2>/dev/null | head -n "$FMAX"
    printf 'find\t%s\t%s\n' "$p" "${PIPESTATUS[0]}"
  done
}
s_mounts() {
  local p
  for p in "${DATA_PATHS[@]}"; do
    [ -e "$p" ] || continue
    printf 'mount\t%s\t%s\n' "$p" "$(t findmnt -n -r -o TARGET,SOURCE,FSTYPE -T "$p" | head -n 1)"
    printf 'attr\t%s\t%s\n' "$p" "$(t lsattr -d -- "$p" 2>/dev/null | awk '{ print $1 }')"
  done
}
s_lsblk() { have lsblk || return 127; t lsblk -J -o NAME,TYPE,FSTYPE,MOUNTPOINT; }
"""

_PG_SETTINGS = (
    "select name, setting from pg_settings where name in ('ssl', 'password_encryption', "
    "'shared_preload_libraries', 'pgaudit.log', 'pgaudit.log_relation', 'log_connections', "
    "'log_disconnections', 'listen_addresses', 'ssl_min_protocol_version', 'port') "
    "order by name"
)
_PG_HBA = (
    "select line_number, type, array_to_string(database, ','), "
    "array_to_string(user_name, ','), coalesce(address, ''), coalesce(netmask, ''), "
    "coalesce(auth_method, ''), coalesce(error, '') from pg_hba_file_rules order by line_number"
)
_PG_DBS = (
    "select 'db', datname, '', '' from pg_database where not datistemplate "
    "union all select 'setting', coalesce(d.datname, '*'), coalesce(r.rolname, '*'), "
    "array_to_string(s.setconfig, ';') from pg_db_role_setting s "
    "left join pg_database d on d.oid = s.setdatabase left join pg_roles r on r.oid = s.setrole"
)
_PG_CERT = (
    "select case when setting like '/%' then setting "
    "else current_setting('data_directory') || '/' || setting end "
    "from pg_settings where name = 'ssl_cert_file' and current_setting('ssl') = 'on'"
)

# (section name, bash function). The order is the order of the output.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("os-release", "s_os_release"),
    ("passwd", "s_passwd"),
    ("group", "s_group"),
    ("shadow", "s_shadow"),
    ("login-defs", "s_login_defs"),
    ("pam", "s_pam"),
    ("security-conf", "s_security"),
    ("sshd", "s_sshd"),
    ("ssh-keys", "s_ssh_keys"),
    ("sudoers", "s_sudoers"),
    ("crontabs", "s_crontabs"),
    ("cron-system", "s_cron_system"),
    ("atq", "s_atq"),
    ("linger", "s_linger"),
    ("processes", "s_processes"),
    ("units", "s_units"),
    ("timers", "s_timers"),
    ("nft", "s_nft"),
    ("fail2ban", "s_fail2ban"),
    ("clamav-packages", "s_clamav_pkgs"),
    ("clamav-db", "s_clamav_db"),
    ("clamd-conf", "s_clamd_conf"),
    ("clamav-scan", "s_clamav_scan"),
    ("listening", "s_listening"),
    ("nginx", "s_nginx"),
    ("certificates", "s_certs"),
    ("pg-settings", "s_pg_settings"),
    ("pg-hba", "s_pg_hba"),
    ("pg-databases", "s_pg_databases"),
    ("pg-login", "s_pg_login"),
    ("mysql-login", "s_mysql_login"),
    ("redis-login", "s_redis_login"),
    ("snmp", "s_snmp"),
    ("usb-storage", "s_usb_storage"),
    ("auditctl", "s_auditctl"),
    ("audit-rules", "s_audit_rules"),
    ("auditd-conf", "s_auditd_conf"),
    ("export-tools", "s_export_tools"),
    ("journald", "s_journald"),
    ("logrotate", "s_logrotate"),
    ("rsyslog", "s_rsyslog"),
    ("data-paths", "s_data_paths"),
    ("mounts", "s_mounts"),
    ("lsblk", "s_lsblk"),
)
SECTION_NAMES: tuple[str, ...] = tuple(name for name, _ in SECTIONS)


def _array(name: str, values: Iterable[str]) -> str:
    return f"{name}=({' '.join(shlex.quote(v) for v in values)})"


def _assign(name: str, value: str | int) -> str:
    return f"{name}={shlex.quote(str(value))}"


def gather_script(params: GatherParams, sections: Sequence[str] | None = None) -> str:
    """Return the bash script that gathers ``sections`` (default: all) in one run.

    Every value from ``params`` enters the script through :func:`shlex.quote` as a
    variable assignment; the section code itself is constant.
    """
    chosen = SECTION_NAMES if sections is None else tuple(sections)
    functions = dict(SECTIONS)
    unknown = [s for s in chosen if s not in functions]
    if unknown:
        raise ValueError(f"unknown gather section(s): {', '.join(unknown)}")
    lines = [
        "#!/bin/bash",
        "# parcelguard fact gathering: read-only, one run per host scan.",
        "set -u -o pipefail",
        "shopt -s nullglob",
        "export LC_ALL=C",
        "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "umask 077",
        _assign("M", params.marker),
        _assign("T", params.command_timeout),
        _assign("TS", params.slow_timeout),
        _assign("TL", params.login_timeout),
        _assign("CAP", params.section_max_bytes),
        _assign("FMAX", params.find_max_entries),
        _assign("PROBE", params.probe_password),
        "TAB=$'\\t'",
        _array("DATA_PATHS", params.data_paths),
        _array("TOOLS", params.export_tools),
        _array("CANDS", params.default_passwords),
        _assign("CRED_KEY", params.cred_key),
        _array("CRED_KNOWN", (f"{d}\t{m}" for d, m in params.cred_known)),
        _array("UNITS", UNITS),
        _assign("PY_SHADOW", _SHADOW_PY),
        _assign("Q_PG_SETTINGS", _PG_SETTINGS),
        _assign("Q_PG_HBA", _PG_HBA),
        _assign("Q_PG_DBS", _PG_DBS),
        _assign("Q_PG_CERT", _PG_CERT),
        'W=$(mktemp -d) || { printf "%s FATAL mktemp\\n" "$M"; exit 1; }',
        "trap 'rm -rf -- \"$W\"' EXIT",
        _FUNCTIONS,
    ]
    lines.extend(f"emit {name} {functions[name]}" for name in chosen)
    lines.append('printf "%s DONE\\n" "$M"')
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Section:
    """One section of a host's answer. ``complete`` is False when its END never came."""

    name: str
    rc: int
    stdout: str
    stderr: str = ""
    truncated: bool = False
    complete: bool = True

    @property
    def ok(self) -> bool:
        return self.rc == 0 and self.complete

    def first_error_line(self) -> str:
        for line in self.stderr.splitlines():
            if line.strip():
                return line.strip()[:200]
        return ""


@dataclass(frozen=True)
class HostFacts:
    """Every section a host answered, plus what the parser could not make sense of."""

    sections: tuple[Section, ...] = ()
    problems: tuple[str, ...] = ()
    finished: bool = False  # the script reached its end

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name), None)


class FactUnavailable(Exception):
    """A fact a control needs is missing or unreadable; the control reports ERROR."""


def need(facts: HostFacts, name: str, ok_rcs: Iterable[int] = (0,)) -> Section:
    """Return section ``name`` or raise :class:`FactUnavailable` saying why it is unusable."""
    sec = facts.section(name)
    if sec is None:
        raise FactUnavailable(f"section {name!r} missing from the host's answer")
    if not sec.complete:
        raise FactUnavailable(f"section {name!r} was cut off")
    if sec.rc not in tuple(ok_rcs):
        detail = sec.first_error_line()
        if sec.rc == 127 and not detail:
            detail = "command not installed"
        elif sec.rc == 124:
            detail = "timed out"
        raise FactUnavailable(f"{name} failed (rc {sec.rc})" + (f": {detail}" if detail else ""))
    if sec.truncated:
        raise FactUnavailable(f"section {name!r} exceeded the size cap and was truncated")
    return sec


_HEADER = re.compile(r"^(BEGIN|STDERR|END|DONE|FATAL)(?: (\S+))?(?: (\S+))?(?: (\S+))?$")


def parse_gather_output(text: str, marker: str) -> HostFacts:
    """Parse a host's answer into :class:`HostFacts`; never raises, whatever ``text`` is."""
    try:
        return _parse(text, marker)
    except Exception as exc:  # hostile input must not crash a scan
        return HostFacts(problems=(f"unparseable output: {type(exc).__name__}",))


def _parse(text: str, marker: str) -> HostFacts:
    problems: list[str] = []
    if not isinstance(text, str):
        return HostFacts(problems=("output is not text",))
    if len(text) > MAX_OUTPUT_CHARS:
        problems.append(f"output longer than {MAX_OUTPUT_CHARS} characters was cut")
        text = text[:MAX_OUTPUT_CHARS]
    prefix = marker + " "
    sections: dict[str, Section] = {}
    finished = False
    current: dict[str, object] | None = None
    out: list[str] = []
    err: list[str] = []
    part = "out"

    def close(complete: bool) -> None:
        assert current is not None
        name = str(current["name"])
        if name in sections:
            problems.append(f"duplicate section {name!r} ignored")
            return
        sections[name] = Section(
            name=name,
            rc=int(str(current["rc"])),
            stdout="\n".join(out),
            stderr="\n".join(err).strip("\n"),
            truncated=bool(current["truncated"]),
            complete=complete,
        )

    for line in text.split("\n"):
        if not line.startswith(prefix):
            if current is None:
                if line.strip():
                    problems.append("text outside any section ignored")
            elif part == "out":
                out.append(line)
            else:
                err.append(line)
            continue
        m = _HEADER.match(line[len(prefix) :])
        if m is None:
            problems.append("malformed marker line ignored")
            continue
        kind, name = m.group(1), m.group(2) or ""
        if kind == "BEGIN":
            if current is not None:
                close(complete=False)
            rc_text, trunc_text = m.group(3) or "", m.group(4) or ""
            rc = int(rc_text) if rc_text.isdigit() else -1
            current = {"name": name, "rc": rc, "truncated": trunc_text == "1"}
            out, err, part = [], [], "out"
        elif kind == "STDERR" and current is not None and name == current["name"]:
            # The script prints one newline after stdout so that the marker starts a
            # line; splitting on "\n" absorbs exactly that newline.
            part = "err"
        elif kind == "END" and current is not None and name == current["name"]:
            close(complete=part == "err")
            current = None
        elif kind == "DONE":
            finished = True
        elif kind == "FATAL":
            problems.append(f"gather script failed: {name}")
        else:
            problems.append(f"unexpected {kind} line ignored")
    if current is not None:
        close(complete=False)
    if not finished:
        problems.append("the gather script did not finish")
    if not sections:
        problems.append("no sections found (wrong marker or not parcelguard output)")
    return HostFacts(tuple(sections.values()), tuple(dict.fromkeys(problems)), finished)
