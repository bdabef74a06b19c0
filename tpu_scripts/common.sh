# shellcheck shell=bash
# Helpers shared by the tpu_scripts/*.sh scripts; sourced, not run.
#
# Each script defines a `usage` function (its --help text) before parsing its arguments.

# The project root: the folder above tpu_scripts/.
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPT_NAME=$(basename "$0")
# DRY_RUN=1 (or --dry-run) prints the commands instead of running them.
DRY_RUN=${DRY_RUN:-0}
# Set by opt_value: the option's value and how many words it took (--opt=value: 1, --opt value: 2).
# They are read by the sourcing scripts, which shellcheck does not see from here.
# shellcheck disable=SC2034
OPT_VALUE=''
# shellcheck disable=SC2034
OPT_SHIFT=1

# Bad command line: message and usage hint on stderr, exit 2.
usage_error() {
	printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2
	printf 'Run %s --help for usage.\n' "$SCRIPT_NAME" >&2
	exit 2
}

unknown_arg() {
	usage_error "unknown argument: $1"
}

# opt_value "$@" while "$1" is --opt=value or --opt value: sets OPT_VALUE and OPT_SHIFT.
# shellcheck disable=SC2034
opt_value() {
	case $1 in
	--*=*)
		OPT_VALUE=${1#*=}
		OPT_SHIFT=1
		;;
	*)
		# A following option is not a value: "--name --zone=z" means --name was left empty.
		if [[ $# -lt 2 || $2 == --* ]]; then
			usage_error "$1 needs a value"
		fi
		OPT_VALUE=$2
		OPT_SHIFT=2
		;;
	esac
}

# require NAME VALUE: a required option (--NAME) that was not given, or given empty, is an error.
require() {
	if [[ -z $2 ]]; then
		usage_error "missing required argument --$1"
	fi
}

# one_of NAME VALUE CHOICE...: VALUE of --NAME must be one of the choices.
one_of() {
	local name=$1 value=$2 choice
	shift 2
	for choice in "$@"; do
		if [[ $value == "$choice" ]]; then
			return 0
		fi
	done
	usage_error "--$name=$value: must be one of: $*"
}

# The command as one shell-quoted line, so that it can be pasted into a shell as is.
quote_cmd() {
	local out
	out=$(printf '%q ' "$@")
	printf '%s' "${out% }"
}

# run CMD ARGS...: runs the command, or with DRY_RUN=1 prints it ("+ cmd args") and runs nothing.
run() {
	if [[ $DRY_RUN == 1 ]]; then
		printf '+ %s\n' "$(quote_cmd "$@")"
	else
		"$@"
	fi
}

# The interpreter for local runs: the project's virtualenv when there is one.
default_python() {
	if [[ -x $REPO_ROOT/.venv/bin/python ]]; then
		printf '%s\n' "$REPO_ROOT/.venv/bin/python"
	else
		printf '%s\n' python3
	fi
}

# gcloud is only needed when something is really run.
need_gcloud() {
	if [[ $DRY_RUN != 1 ]] && ! command -v gcloud >/dev/null 2>&1; then
		printf '%s: error: gcloud not found (install the Google Cloud CLI, or use --dry-run)\n' \
			"$SCRIPT_NAME" >&2
		exit 1
	fi
}
