#!/usr/bin/env bash
# Install everything espnet_distill needs into a project virtual environment.
#
#   tools/install.sh [--venv DIR] [--python PYTHON] [--no-apt]
#
# - Debian packages espeak-ng, sox and sctk (sclite) are installed with apt-get
#   when missing (needs root on a Debian/Ubuntu machine; otherwise a clear
#   message says what to install by hand).
# - A virtual environment (default tools/venv, or $ESPNET_DISTILL_VENV) gets the
#   pinned packages of tools/requirements.txt and espnet_distill in editable mode.
# - A second run is a no-op: a stamp file records the hash of the requirements
#   and of setup.py, and nothing is reinstalled while they are unchanged.
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (${BASH_SOURCE[0]##*/}:${BASH_LINENO[0]}) $*" >&2; }

tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root_dir=$(dirname "${tools_dir}")
venv=${ESPNET_DISTILL_VENV:-${tools_dir}/venv}
python=${PYTHON:-}
use_apt=true

usage() {
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
        --venv) venv=$2; shift 2 ;;
        --python) python=$2; shift 2 ;;
        --no-apt) use_apt=false; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "tools/install.sh: unknown option '$1' (valid: --venv, --python, --no-apt, --help)" >&2; exit 2 ;;
    esac
done

# ---------------------------------------------------------------- Debian packages
# command -> Debian package
declare -A apt_pkgs=([espeak-ng]=espeak-ng [sox]=sox [sctk]=sctk)  # sctk: "sctk sclite ..."
missing=()
for cmd in "${!apt_pkgs[@]}"; do
    command -v "${cmd}" > /dev/null 2>&1 || missing+=("${apt_pkgs[$cmd]}")
done
if [ ${#missing[@]} -gt 0 ]; then
    if ! ${use_apt}; then
        log "WARNING: missing system packages (--no-apt given): ${missing[*]}"
    elif [ "$(id -u)" -ne 0 ]; then
        log "ERROR: missing system packages: ${missing[*]}. Run as root: apt-get install ${missing[*]}"
        exit 1
    elif ! command -v apt-get > /dev/null 2>&1; then
        log "ERROR: missing system packages: ${missing[*]}, and this is not a Debian-like system (no apt-get)."
        log "Install espeak-ng, sox and sctk (sclite) with your package manager."
        exit 1
    else
        log "Installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
    fi
fi

# ---------------------------------------------------------------- Python 3.12
find_python() {
    local cand
    for cand in "${python}" python3.12 /root/.pyenv/versions/3.12*/bin/python3.12 \
        "${HOME}"/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12 /usr/local/bin/python3.12; do
        [ -n "${cand}" ] || continue
        if "${cand}" -c 'import sys; assert sys.version_info[:2] == (3, 12)' > /dev/null 2>&1; then
            echo "${cand}"
            return 0
        fi
    done
    return 1
}

stamp=${venv}/.espnet_distill_installed
want=$(cat "${tools_dir}/requirements.txt" "${tools_dir}/constraints.txt" "${root_dir}/setup.py" | sha256sum | cut -d' ' -f1)
if [ -f "${stamp}" ] && [ "$(cat "${stamp}")" = "${want}" ] && [ -x "${venv}/bin/python" ]; then
    log "venv ${venv} is up to date"
    exit 0
fi

if [ ! -x "${venv}/bin/python" ]; then
    if ! py=$(find_python); then
        log "ERROR: Python 3.12 not found (espnet 202611 needs Python >= 3.12)."
        log "Install it (for example 'apt-get install python3.12 python3.12-venv' or 'pyenv install 3.12')"
        log "and rerun, or point to it with: tools/install.sh --python /path/to/python3.12"
        exit 1
    fi
    log "Creating venv ${venv} with ${py}"
    "${py}" -m venv "${venv}"
fi

start=$(date +%s)
log "Installing pinned requirements into ${venv} (first time: a few minutes, several GB)"
"${venv}/bin/python" -m pip install -q --upgrade pip setuptools wheel
"${venv}/bin/python" -m pip install -q -r "${tools_dir}/requirements.txt" -c "${tools_dir}/constraints.txt"
"${venv}/bin/python" -m pip install -q --no-deps --no-build-isolation -e "${root_dir}"
"${venv}/bin/python" -c 'import torch, torchaudio, espnet, s3prl, espnet_distill' \
    || { log "ERROR: the venv was installed but its packages do not import"; exit 1; }
echo "${want}" > "${stamp}"
log "Installed in $(( $(date +%s) - start )) s; venv size $(du -sh "${venv}" | cut -f1)"
