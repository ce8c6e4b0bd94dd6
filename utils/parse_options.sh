#!/usr/bin/env bash
# Kaldi-style option parsing. Source it after declaring your options:
#
#   stage=1            # declared with a default value
#   train_set=train
#   help_message="Usage: $0 [options] <arg>"
#   . utils/parse_options.sh
#
# Then "--train-set x" or "--train_set=x" sets train_set=x. "--config FILE"
# sources FILE first (lines like train_set=x). "--help" prints $help_message
# and the options with their current values. An option that was not declared
# fails with the list of valid options. Parsing stops at the first argument
# that does not start with "--"; the rest stays in "$@".

__po_valid_options() {
    local v flags
    for v in $(compgen -v | grep -E '^[a-z][a-z0-9_]*$'); do
        flags=$(declare -p "$v" 2> /dev/null) || continue
        flags=${flags#declare -}
        flags=${flags%% *}  # "declare -x name=..." -> "x"; the value is not looked at
        case "${flags}" in
            *x*) continue ;;  # exported: environment, not an option
        esac
        case "$v" in help_message|__po_*) continue ;; esac
        echo "$v"
    done
}

__po_is_valid() {  # no "| grep -q": with pipefail its early exit reads as failure
    local v
    for v in $(__po_valid_options); do [ "$v" = "$1" ] && return 0; done
    return 1
}

__po_print_help() {
    [ -n "${help_message:-}" ] && printf '%s\n\n' "${help_message}"
    echo "Options (current value; the comment on its line in $0):"
    local v doc
    for v in $(__po_valid_options); do
        doc=$(grep -m1 -E "^${v}=" "$0" 2> /dev/null | sed -n 's/^[^#]*#[[:space:]]*//p' || true)
        printf '  --%-24s %-28s %s\n' "${v//_/-}" "${!v}" "${doc}"
    done
}

while true; do
    [ $# -eq 0 ] && break
    case "$1" in
        --help|-h)
            __po_print_help
            exit 0 ;;
        --config)
            [ $# -ge 2 ] || { echo "$0: --config needs a file" >&2; exit 1; }
            [ -f "$2" ] || { echo "$0: config file '$2' not found" >&2; exit 1; }
            # shellcheck disable=SC1090
            . "$2"
            shift 2 ;;
        --*=*)
            __po_name=${1%%=*}; __po_name=${__po_name#--}; __po_name=${__po_name//-/_}
            __po_value=${1#*=}
            if ! __po_is_valid "${__po_name}"; then
                echo "$0: invalid option ${1%%=*}" >&2
                echo "Valid options: $(__po_valid_options | sed 's/_/-/g; s/^/--/' | tr '\n' ' ')" >&2
                exit 1
            fi
            printf -v "${__po_name}" '%s' "${__po_value}"
            shift ;;
        --*)
            __po_name=${1#--}; __po_name=${__po_name//-/_}
            if ! __po_is_valid "${__po_name}"; then
                echo "$0: invalid option $1" >&2
                echo "Valid options: $(__po_valid_options | sed 's/_/-/g; s/^/--/' | tr '\n' ' ')" >&2
                exit 1
            fi
            [ $# -ge 2 ] || { echo "$0: option $1 needs a value" >&2; exit 1; }
            printf -v "${__po_name}" '%s' "$2"
            shift 2 ;;
        *) break ;;
    esac
done
unset __po_name __po_value
true
