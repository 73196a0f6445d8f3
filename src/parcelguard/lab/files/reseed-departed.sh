#!/bin/bash
# Put the departed employee's access back on a lab host, as `lab up` seeded it, so the
# offboarding demo (and its tests) can run again. Reads the password on stdin.
set -euo pipefail
IFS= read -r password
pubkey=$1
id lihua >/dev/null 2>&1 || useradd -m -s /bin/bash -c "Li Hua, network administrator" lihua
printf 'lihua:%s\n' "$password" | chpasswd
usermod --expiredate '' --shell /bin/bash lihua
if getent group parcelguard-revoked >/dev/null; then
    gpasswd --delete lihua parcelguard-revoked >/dev/null 2>&1 || true
fi
install -d -m 0700 -o lihua -g lihua /home/lihua/.ssh
printf '%s\n' "$pubkey" > /home/lihua/.ssh/authorized_keys
chown lihua:lihua /home/lihua/.ssh/authorized_keys
chmod 0600 /home/lihua/.ssh/authorized_keys
echo 'lihua ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/90-lihua
chmod 0440 /etc/sudoers.d/90-lihua
echo '*/30 * * * * cp -a /srv/waybill/exports/. /home/lihua/.cache/exports/ 2>/dev/null' \
    | crontab -u lihua -
mkdir -p /home/lihua/.config/systemd/user/default.target.wants /home/lihua/.cache/exports
cat > /home/lihua/.config/systemd/user/export-sync.service <<'UNIT'
[Unit]
Description=Keep a copy of the waybill exports in sync

[Service]
ExecStart=/bin/sleep infinity

[Install]
WantedBy=default.target
UNIT
ln -sf ../export-sync.service /home/lihua/.config/systemd/user/default.target.wants/
chown -R lihua:lihua /home/lihua/.config /home/lihua/.cache
# A user manager killed by offboarding can hang in "final-sigkill" on cgroup v1 hosts,
# where the kernel never says the cgroup emptied: stop it for good before lingering again.
unit="user@$(id -u lihua).service"
timeout 30 systemctl stop "$unit" || systemctl kill --signal=KILL "$unit" || true
systemctl reset-failed "$unit" 2>/dev/null || true
loginctl enable-linger lihua
systemctl start "$unit"
# Wait for the lingering user manager to start her service.
for _ in $(seq 300); do pgrep -u lihua -x sleep >/dev/null && break; sleep 0.1; done
if command -v psql >/dev/null && systemctl is-active --quiet postgresql; then
    runuser -u postgres -- psql -q -c 'ALTER ROLE lihua LOGIN'
fi
pgrep -u lihua -x sleep >/dev/null
