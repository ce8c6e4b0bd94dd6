#!/usr/bin/env bash
# Download a .tar.gz/.tgz archive (resuming a partial download) and unpack it.
#
#   utils/download_and_untar.sh [--strip-components N] URL ARCHIVE_DIR DEST_DIR
#
# The archive is kept as ARCHIVE_DIR/<name> (utils/download.sh: a second call does not download
# it again; a download in progress continues where it stopped). The archive is unpacked into a staging folder inside DEST_DIR and each of its top-level entries
# (after stripping N leading path components) is then moved into DEST_DIR, so an interrupted
# unpack never leaves a half-filled folder under its final name. An entry already in DEST_DIR
# is left alone. URL may be http(s):// or file://. Exit status 3: the download failed.
set -euo pipefail

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" >&2
}

strip=0
if [ "${1:-}" = --strip-components ]; then
    strip=$2
    shift 2
fi
if [ $# -ne 3 ]; then
    echo "Usage: $0 [--strip-components N] URL ARCHIVE_DIR DEST_DIR" >&2
    exit 2
fi
url=$1 archive_dir=$2 dest=$3
name=${url##*/}
archive=${archive_dir}/${name}
mkdir -p "${archive_dir}" "${dest}"

utils_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"${utils_dir}/download.sh" "${url}" "${archive_dir}"  # exit status 3 when it fails

staging=${dest}/.unpacking.${name}
rm -rf "${staging}"
mkdir -p "${staging}"
log "Unpacking ${archive} into ${dest}"
tar --extract --gzip --file "${archive}" --directory "${staging}" --strip-components "${strip}"
for entry in "${staging}"/* "${staging}"/.[!.]*; do
    [ -e "${entry}" ] || continue
    if [ -e "${dest}/${entry##*/}" ]; then
        log "${dest}/${entry##*/} already exists: kept as it is"
    else
        mv "${entry}" "${dest}/"
    fi
done
rm -rf "${staging}"
log "Done: ${archive} unpacked into ${dest}"
