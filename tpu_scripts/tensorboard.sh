#!/usr/bin/env bash
# Serves TensorBoard on the pretraining summaries in the bucket (all variants, or one).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
	cat <<USAGE
Usage: $SCRIPT_NAME --bucket=gs://BUCKET [--variant=VARIANT] [--port=6006] [--dry-run]

Runs tensorboard --logdir=gs://BUCKET/bioalbert[/VARIANT], where launch_pretraining.sh writes.

  --bucket    gs://BUCKET (required)
  --variant   one variant, e.g. base_pubmed (default: all, side by side)
  --port      port to serve on (default: 6006)
  --dry-run   print the command, run nothing
  -h, --help  this help
USAGE
}

bucket='' variant='' port=6006
while (($#)); do
	OPT_SHIFT=1
	case $1 in
	--bucket | --bucket=*) opt_value "$@"; bucket=$OPT_VALUE ;;
	--variant | --variant=*) opt_value "$@"; variant=$OPT_VALUE ;;
	--port | --port=*) opt_value "$@"; port=$OPT_VALUE ;;
	--dry-run) DRY_RUN=1 ;;
	-h | --help) usage; exit 0 ;;
	*) unknown_arg "$1" ;;
	esac
	shift "$OPT_SHIFT"
done
require bucket "$bucket"
require port "$port"
if [[ ! $port =~ ^[0-9]+$ ]]; then
	usage_error "--port=$port: must be a number"
fi

logdir=${bucket%/}/bioalbert
if [[ -n $variant ]]; then
	logdir+=/$variant
fi
run tensorboard --logdir="$logdir" --port="$port"
