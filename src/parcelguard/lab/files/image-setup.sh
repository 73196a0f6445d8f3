#!/bin/bash
# Runs once inside a container of the debootstrapped base, before it is committed as the
# lab image. It bakes in the demo services (nginx, PostgreSQL) and the neglected state
# every lab host starts in; per-host secrets and keys are set by provision.py at `lab up`.
# What the hardening roles must install (ClamAV, nftables, fail2ban, pgaudit, pwquality)
# is deliberately absent.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# No service may start while packages install: there is no init in this container.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 0755 /usr/sbin/policy-rc.d

cat > /etc/apt/sources.list <<'SOURCES'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SOURCES
# apt keeps what it downloads: /var/cache/apt/archives is shared by every lab host.
echo 'Binary::apt::APT::Keep-Downloaded-Packages "true";' > /etc/apt/apt.conf.d/10keep-debs
apt-get update -q
apt-get install -y -q --no-install-recommends \
    nginx-light postgresql postgresql-client ssl-cert openssh-client less cron at \
    dbus libpam-systemd
rm -f /usr/sbin/policy-rc.d

# Demo services start only on the hosts whose role needs them (provision.py).
systemctl disable nginx.service postgresql.service >/dev/null 2>&1 || true
# Units that cannot work in a container and would only mark the host degraded.
systemctl mask systemd-remount-fs.service getty@tty1.service console-getty.service \
    systemd-ask-password-console.path systemd-ask-password-wall.path >/dev/null 2>&1 || true

# logind stops a user's manager (user@UID.service) 10 s after their last session; in these
# containers that stop can hang for minutes and every new login waits behind it. Keep user
# managers running, as on a server where admins stay logged in.
mkdir -p /etc/systemd/logind.conf.d
printf '[Login]\nUserStopDelaySec=infinity\n' > /etc/systemd/logind.conf.d/10-parcelguard-lab.conf

# Host keys are made per host at first boot, never shared through the image.
rm -f /etc/ssh/ssh_host_*
cat > /etc/systemd/system/parcelguard-lab-hostkeys.service <<'UNIT'
[Unit]
Description=Generate this lab host's own SSH host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
systemctl enable parcelguard-lab-hostkeys.service ssh.service cron.service atd.service

# Seeded weakness: password and root logins over SSH (Art. 31).
cat > /etc/ssh/sshd_config.d/10-legacy-vendor.conf <<'SSHD'
# Left by the server vendor's installer.
PasswordAuthentication yes
PermitRootLogin yes
SSHD

# Seeded weakness: the handheld-terminal vendor's remote-support account, default password.
useradd -m -s /bin/bash -c "Vendor remote support" support
echo 'support:support' | chpasswd

# Staff accounts. lihua left on 2026-09-30; her account, key, cron job and sudo rule remain.
useradd -m -s /bin/bash -c "Wang Fang, operations" wangfang
useradd -m -s /bin/bash -c "Zhao Lei, waybill application" zhaolei
useradd -m -s /bin/bash -c "Li Hua, network administrator" lihua
echo 'lihua ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/90-lihua
chmod 0440 /etc/sudoers.d/90-lihua
echo '*/30 * * * * cp -a /srv/waybill/exports/. /home/lihua/.cache/exports/ 2>/dev/null' \
    | crontab -u lihua -
# ...and a systemd user service that keeps running as her (provision.py enables lingering).
mkdir -p /home/lihua/.config/systemd/user/default.target.wants
cat > /home/lihua/.config/systemd/user/export-sync.service <<'UNIT'
[Unit]
Description=Keep a copy of the waybill exports in sync

[Service]
ExecStart=/bin/sleep infinity

[Install]
WantedBy=default.target
UNIT
ln -s ../export-sync.service /home/lihua/.config/systemd/user/default.target.wants/
chown -R lihua:lihua /home/lihua/.config

mkdir -p /usr/local/lib/parcelguard-lab

# Fill the shared package cache (mounted here read-write) with what the hardening roles
# install, so every package downloads once. Nothing is installed: the roles do that.
# Hosts see this cache as the lower layer of a private overlay: concurrent installs on
# several hosts never fight over one apt lock.
apt-get install -y -q --download-only \
    nftables clamav clamav-daemon clamav-freshclam clamdscan libpam-pwquality auditd \
    rsyslog rsyslog-gnutls logrotate python3-psycopg2 postgresql-15-pgaudit cryptsetup \
    >/dev/null
