#!/usr/bin/env bash
# Installs what tppscan needs on a fresh Debian/Ubuntu or Jetson machine; fast no-op when already done.
# System packages (AVR toolchain, simavr, clang for the fuzzer) through apt as root or via sudo;
# Python packages into ./.venv. Safe to run again: it only reinstalls when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(gcc-avr avr-libc binutils-avr simavr libsimavr-dev libsimavrparts1 avrdude
              gcc make pkg-config libelf-dev clang libclang-rt-dev python3-venv systemd)

# Wanted but not everywhere installable (Ubuntu ships chromium only as a snap): the browser tests need it.
OPTIONAL_APT_PACKAGES=(chromium)

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

install_optional_packages() {
    command -v dpkg-query >/dev/null || return 0
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
    for p in "${OPTIONAL_APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" && continue
        log "apt-get install $p (optional: headless browser tests)"
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$p" >/dev/null 2>&1 \
            || log "could not install $p: the browser tests will say so"
    done
}

is_jetson() { [ -f "${TPPSCAN_TEGRA_RELEASE:-/etc/nv_tegra_release}" ]; }

install_python_packages() {
    local py="${PYTHON:-python3}"
    local stamp=.venv/.tppscan-installed
    local want
    want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
    if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
    if is_jetson; then
        # JetPack's own OpenCV (built with GStreamer for CSI cameras) and jetson-inference/jetson-utils live in
        # the system Python: the venv sees them, and pip must not shadow cv2 with a wheel built without GStreamer.
        [ -x .venv/bin/python ] || { log "Jetson: creating .venv with system site-packages"; "$py" -m venv --system-site-packages .venv; }
        .venv/bin/python -m pip install -q --upgrade pip
        local reqs
        reqs="$(.venv/bin/python - <<'PY'
import re
try:
    import tomllib
except ImportError:  # Python 3.10 (JetPack 6): pip vendors the same parser
    from pip._vendor import tomli as tomllib
p = tomllib.load(open("pyproject.toml", "rb"))["project"]
deps = p["dependencies"] + p["optional-dependencies"]["dev"]
print("\n".join(d for d in deps if not re.match(r"opencv", d)))
PY
)"
        if .venv/bin/python -c "import cv2" 2>/dev/null; then
            log "Jetson: using the system OpenCV $(.venv/bin/python -c 'import cv2; print(cv2.__version__)')"
        else
            log "Jetson: no system OpenCV (apt-get install python3-opencv); installing the headless wheel (no GStreamer)"
            reqs="$reqs"$'\n'"opencv-python-headless>=4.8"
        fi
        printf '%s\n' "$reqs" | .venv/bin/python -m pip install -q -r /dev/stdin
        .venv/bin/python -m pip install -q --no-deps -e .
        .venv/bin/python -c "import jetson_inference" 2>/dev/null || \
            log "Jetson: jetson-inference not found: detection runs on ONNX Runtime; see the README to build it for TensorRT"
    else
        [ -x .venv/bin/python ] || { log "creating .venv with $py"; "$py" -m venv .venv; }
        log "pip install -e .[dev] into .venv"
        .venv/bin/python -m pip install -q --upgrade pip
        .venv/bin/python -m pip install -q -e '.[dev]'
    fi
    echo "$want" > "$stamp"
}

install_system_packages
install_optional_packages
install_python_packages
