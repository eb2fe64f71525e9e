#!/usr/bin/env bash
# Installs tppscan as a systemd service: user and groups, folders, default config, unit, udev rule, tmpfiles.
#   sudo systemd/install.sh                 install from this checkout into /opt/tppscan and enable the service
#   systemd/install.sh --destdir DIR        write every file under DIR only (no users, no systemctl): a dry run
# Safe to run again: an existing /etc/tppscan/config.yaml is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
DESTDIR=""
PREFIX=/opt/tppscan

usage() { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --destdir) [ $# -ge 2 ] || { echo "install.sh: --destdir needs a folder" >&2; exit 2; }; DESTDIR=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option '$1' (allowed: --destdir DIR, --help)" >&2; exit 2 ;;
    esac
done

log() { printf '[install] %s\n' "$*" >&2; }
real=1; [ -n "$DESTDIR" ] && real=0
if [ "$real" = 1 ] && [ "$(id -u)" -ne 0 ]; then echo "install.sh: run as root (or use --destdir DIR)" >&2; exit 1; fi

put() {  # put MODE SOURCE TARGET: copy a file into place under DESTDIR
    install -D -m "$1" "$2" "$DESTDIR$3"
    log "wrote $3"
}

if [ "$real" = 1 ]; then
    getent group tppscan >/dev/null || groupadd --system tppscan
    getent group gpio >/dev/null || groupadd --system gpio
    for g in dialout video; do getent group "$g" >/dev/null || groupadd --system "$g"; done
    id tppscan >/dev/null 2>&1 || useradd --system --gid tppscan --home-dir /var/lib/tppscan --no-create-home \
        --shell /usr/sbin/nologin --comment "tppscan slide scanner" tppscan
    usermod -a -G dialout,video,gpio tppscan
    log "user tppscan in groups tppscan, dialout, video, gpio"
    if [ "$SRC" != "$PREFIX" ]; then
        mkdir -p "$PREFIX"
        tar -C "$SRC" --exclude=./.venv --exclude=./.git --exclude=./out -cf - . | tar -C "$PREFIX" -xf -
    fi
    bash "$PREFIX/scripts/setup.sh"
    chown -R root:root "$PREFIX"
fi

put 0644 systemd/tppscan.service /etc/systemd/system/tppscan.service
put 0644 systemd/99-tppscan-stage.rules /etc/udev/rules.d/99-tppscan-stage.rules
put 0644 systemd/tppscan.tmpfiles.conf /etc/tmpfiles.d/tppscan.conf
if [ -e /etc/nv_tegra_release ] || [ -n "${TPPSCAN_JETSON:-}" ]; then  # a Jetson: its GPU and CSI cameras
    put 0644 systemd/tppscan-jetson.conf /etc/systemd/system/tppscan.service.d/jetson.conf
fi
if [ -e "$DESTDIR/etc/tppscan/config.yaml" ]; then
    log "kept /etc/tppscan/config.yaml"
else
    if [ "$real" = 1 ]; then home=$PREFIX; else home=$SRC; fi
    py="${PYTHON:-$home/.venv/bin/python}"
    [ -x "$py" ] || { echo "install.sh: no Python with tppscan at $py (run scripts/setup.sh, or set PYTHON)" >&2; exit 1; }
    mkdir -p "$DESTDIR/etc/tppscan"
    (cd "$home" && "$py" -m appliance.cli config show --defaults) > "$DESTDIR/etc/tppscan/config.yaml.new"
    mv "$DESTDIR/etc/tppscan/config.yaml.new" "$DESTDIR/etc/tppscan/config.yaml"
    chmod 0644 "$DESTDIR/etc/tppscan/config.yaml"
    log "wrote /etc/tppscan/config.yaml (defaults; edit it, then: tppscan config check)"
fi

if [ "$real" = 1 ]; then
    systemd-tmpfiles --create /etc/tmpfiles.d/tppscan.conf
    udevadm control --reload-rules && udevadm trigger --subsystem-match=tty --subsystem-match=gpio || true
    systemctl daemon-reload
    systemctl enable tppscan.service
    log "enabled tppscan.service: start it with 'systemctl start tppscan'; read logs with 'tppscan logs -f'"
fi
# the command on every user's PATH; lab users need group tppscan for status, logs and results
if [ "$real" = 1 ]; then target=$PREFIX/.venv/bin/tppscan; else target=$SRC/.venv/bin/tppscan; fi
mkdir -p "$DESTDIR/usr/local/bin"
ln -sfn "$target" "$DESTDIR/usr/local/bin/tppscan"
log "linked /usr/local/bin/tppscan; give each lab user the group: sudo usermod -aG tppscan USER (then log in again)"

