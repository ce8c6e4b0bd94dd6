#!/usr/bin/env bash
# Download a gzip file (a .tar.gz archive, a .txt.gz text), resuming a partial download.
#
#   utils/download.sh URL DIR
#
# The file is kept as DIR/<name> (a second call does not download it again); a download in
# progress is DIR/<name>.partial and continues where it stopped; a file that is not complete gzip
# is removed. URL may be http(s):// or file://. Exit status 3: the download failed.
set -euo pipefail

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" >&2
}

if [ $# -ne 2 ]; then
    echo "Usage: $0 URL DIR" >&2
    exit 2
fi
url=$1 dir=$2
out=${dir}/${url##*/}
mkdir -p "${dir}"
[ ! -f "${out}" ] || exit 0
log "Downloading ${url} to ${out}"
if ! curl --fail --location --silent --show-error --retry 3 --connect-timeout 20 \
        --continue-at - --output "${out}.partial" "${url}"; then
    log "Error: downloading ${url} failed (${out}.partial keeps what arrived; a rerun continues it)"
    exit 3
fi
if ! gzip --test "${out}.partial" 2> /dev/null; then
    rm -f "${out}.partial"
    log "Error: ${url} is not a complete gzip file; the partial file was removed, rerun to download it again"
    exit 3
fi
mv "${out}.partial" "${out}"
