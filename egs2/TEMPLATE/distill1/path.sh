# Sourced by every script of a recipe (linked from egs2/<corpus>/distill1/): activates the project venv.
MAIN_ROOT=${MAIN_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
ESPNET_DISTILL_VENV=${ESPNET_DISTILL_VENV:-${MAIN_ROOT}/tools/venv}
if [ ! -x "${ESPNET_DISTILL_VENV}/bin/python" ]; then
    echo "path.sh: no venv at ${ESPNET_DISTILL_VENV}; run 'make setup' (or tools/install.sh) in ${MAIN_ROOT}" >&2
    return 1
fi
# shellcheck disable=SC1091
. "${ESPNET_DISTILL_VENV}/bin/activate"
export PATH=${MAIN_ROOT}/utils:${PATH}
# This checkout's package first: a venv shared with another checkout (its editable install) must
# not run that checkout's code
export PYTHONPATH=${MAIN_ROOT}${PYTHONPATH:+:${PYTHONPATH}}
export PYTHONUNBUFFERED=1 LC_ALL=C.UTF-8
# One thread per process: the launcher runs several jobs side by side on small machines.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
