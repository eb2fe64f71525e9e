#!/usr/bin/env bash
# Installs what tppscan needs on a fresh Debian/Ubuntu or Jetson machine; fast no-op when already done.
# System packages (AVR toolchain, simavr, clang for the fuzzer) through apt as root or via sudo;
# Python packages into ./.venv. Safe to run again: it only reinstalls when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(gcc-avr avr-libc binutils-avr simavr libsimavr-dev libsimavrparts1 avrdude
              gcc make pkg-config libelf-dev clang libclang-rt-dev python3-venv chromium)

log() { printf '[setup] %s\n' "$*" >&2; }

apt_missing() {
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

install_system_packages() {
    command -v dpkg-query >/dev/null || { log "not a Debian-family system: install ${APT_PACKAGES[*]} yourself"; return; }
    local missing=()
    mapfile -t missing < <(apt_missing | sed '/^$/d')
    if [ "${#missing[@]}" -eq 0 ]; then return 0; fi
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"
        else log "need root or passwordless sudo to apt-get install: ${missing[*]}"; exit 1; fi
    fi
    log "apt-get install ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_python_packages() {
    local py="${PYTHON:-python3}"
    local stamp=.venv/.tppscan-installed
    local want
    want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
    if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
    [ -x .venv/bin/python ] || { log "creating .venv with $py"; "$py" -m venv .venv; }
    log "pip install -e .[dev] into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    echo "$want" > "$stamp"
}

install_system_packages
install_python_packages
