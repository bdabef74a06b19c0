#!/usr/bin/env bash
# Creates a Cloud TPU VM for BioALBERT pretraining.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
	cat <<USAGE
Usage: $SCRIPT_NAME --name=NAME --zone=ZONE [--accelerator-type=v3-8] [--version=tpu-vm-base]
                    [--project=PROJECT] [--dry-run]

Creates the TPU VM NAME with gcloud compute tpus tpu-vm create.

  --name              TPU VM name (required)
  --zone              GCE zone, e.g. europe-west4-a (required)
  --accelerator-type  TPU type (default: v3-8)
  --version           TPU VM software version / image (default: tpu-vm-base)
  --project           GCP project (default: gcloud's configured project)
  --dry-run           print the command, run nothing
  -h, --help          this help
USAGE
}

name='' zone='' accelerator_type=v3-8 version=tpu-vm-base project=''
while (($#)); do
	OPT_SHIFT=1
	case $1 in
	--name | --name=*) opt_value "$@"; name=$OPT_VALUE ;;
	--zone | --zone=*) opt_value "$@"; zone=$OPT_VALUE ;;
	--accelerator-type | --accelerator-type=*) opt_value "$@"; accelerator_type=$OPT_VALUE ;;
	--version | --version=*) opt_value "$@"; version=$OPT_VALUE ;;
	--project | --project=*) opt_value "$@"; project=$OPT_VALUE ;;
	--dry-run) DRY_RUN=1 ;;
	-h | --help) usage; exit 0 ;;
	*) unknown_arg "$1" ;;
	esac
	shift "$OPT_SHIFT"
done
require name "$name"
require zone "$zone"
require accelerator-type "$accelerator_type"
require version "$version"
need_gcloud

cmd=(gcloud compute tpus tpu-vm create "$name" --zone="$zone"
	--accelerator-type="$accelerator_type" --version="$version")
if [[ -n $project ]]; then
	cmd+=(--project="$project")
fi
run "${cmd[@]}"
