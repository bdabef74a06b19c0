#!/usr/bin/env bash
# Deletes a Cloud TPU VM (and with it everything on its disk; checkpoints in gs:// stay).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
	cat <<USAGE
Usage: $SCRIPT_NAME --name=NAME --zone=ZONE [--project=PROJECT] [--yes] [--dry-run]

Deletes the TPU VM NAME with gcloud compute tpus tpu-vm delete. Nothing is deleted without
--yes.

  --name      TPU VM name (required)
  --zone      GCE zone (required)
  --project   GCP project (default: gcloud's configured project)
  --yes       really delete (gcloud is told --quiet, so it does not ask again)
  --dry-run   print the command, run nothing
  -h, --help  this help
USAGE
}

name='' zone='' project='' yes=0
while (($#)); do
	OPT_SHIFT=1
	case $1 in
	--name | --name=*) opt_value "$@"; name=$OPT_VALUE ;;
	--zone | --zone=*) opt_value "$@"; zone=$OPT_VALUE ;;
	--project | --project=*) opt_value "$@"; project=$OPT_VALUE ;;
	--yes) yes=1 ;;
	--dry-run) DRY_RUN=1 ;;
	-h | --help) usage; exit 0 ;;
	*) unknown_arg "$1" ;;
	esac
	shift "$OPT_SHIFT"
done
require name "$name"
require zone "$zone"

cmd=(gcloud compute tpus tpu-vm delete "$name" --zone="$zone" --quiet)
if [[ -n $project ]]; then
	cmd+=(--project="$project")
fi
# Deleting is irreversible: without --yes, only say what would run.
if ((!yes)) && [[ $DRY_RUN != 1 ]]; then
	printf '%s: not deleting without --yes; it would run:\n  %s\n' "$SCRIPT_NAME" \
		"$(quote_cmd "${cmd[@]}")" >&2
	exit 2
fi
need_gcloud
run "${cmd[@]}"
