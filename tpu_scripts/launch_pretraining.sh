#!/usr/bin/env bash
# Starts BioALBERT pretraining of one variant (configs/pretraining/<variant>.flags) on a TPU:
# on the TPU VM itself, or from another machine over ssh with --remote.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

FLAGS_DIR=configs/pretraining

valid_variants() {
	local f names=()
	for f in "$REPO_ROOT/$FLAGS_DIR"/*.flags; do
		if [[ -e $f ]]; then
			f=${f##*/}
			names+=("${f%.flags}")
		fi
	done
	printf '%s' "${names[*]}"
}

usage() {
	cat <<USAGE
Usage: $SCRIPT_NAME --variant=VARIANT --tpu=NAME --zone=ZONE --bucket=gs://BUCKET
                             [--init-checkpoint=gs://...] [--project=PROJECT] [--remote]
                             [--repo-dir=~/bioalbert-tf] [--dry-run]

Runs python -m bioalbert_tf.run_pretraining --flagfile=$FLAGS_DIR/VARIANT.flags --tpu=local
on the TPU VM NAME (its own TPU: no Cloud TPU API lookup, no credentials needed), reading gs://BUCKET/tfrecords/<corpus>/*.tfrecord for the variant's corpora and writing
checkpoints and summaries to gs://BUCKET/bioalbert/VARIANT. Rerunning resumes from the newest
checkpoint there.

  --variant          a flagfile name in $FLAGS_DIR/ (required), one of:
                     $(valid_variants)
  --tpu              TPU VM name (required; --remote connects to it)
  --zone             GCE zone of the TPU VM (required)
  --bucket           gs://BUCKET holding tfrecords/ and, after the run, bioalbert/ (required)
  --init-checkpoint  checkpoint to start from (e.g. Google's ALBERT), prefix or folder
  --project          GCP project of the TPU VM (for --remote's ssh)
  --remote           start it in the background on the TPU VM over gcloud ssh (log in
                     REPO_DIR/pretrain.log); without it, run here (i.e. on the TPU VM)
  --repo-dir         project folder on the VM, as given to install.sh (default: ~/bioalbert-tf)
  --dry-run          print the command, run nothing
  -h, --help         this help

Locally, the interpreter is \$PYTHON, else the project's .venv/bin/python, else python3.
USAGE
}

# shellcheck disable=SC2088  # the tilde is meant for the remote side, see remote_dir below
variant='' tpu='' zone='' bucket='' init_checkpoint='' project='' remote=0 repo_dir='~/bioalbert-tf'
while (($#)); do
	OPT_SHIFT=1
	case $1 in
	--variant | --variant=*) opt_value "$@"; variant=$OPT_VALUE ;;
	--tpu | --tpu=*) opt_value "$@"; tpu=$OPT_VALUE ;;
	--zone | --zone=*) opt_value "$@"; zone=$OPT_VALUE ;;
	--bucket | --bucket=*) opt_value "$@"; bucket=$OPT_VALUE ;;
	--init-checkpoint | --init-checkpoint=*) opt_value "$@"; init_checkpoint=$OPT_VALUE ;;
	--project | --project=*) opt_value "$@"; project=$OPT_VALUE ;;
	--repo-dir | --repo-dir=*) opt_value "$@"; repo_dir=$OPT_VALUE ;;
	--remote) remote=1 ;;
	--dry-run) DRY_RUN=1 ;;
	-h | --help) usage; exit 0 ;;
	*) unknown_arg "$1" ;;
	esac
	shift "$OPT_SHIFT"
done
require variant "$variant"
require tpu "$tpu"
require zone "$zone"
require bucket "$bucket"
require repo-dir "$repo_dir"

flagfile=$FLAGS_DIR/$variant.flags
# The name must be a plain file name too: "../x" would otherwise reach other flagfiles.
if [[ $variant == */* || ! -f $REPO_ROOT/$flagfile ]]; then
	usage_error "unknown variant '$variant'; valid variants: $(valid_variants)"
fi
if [[ $bucket != gs://* ]]; then
	usage_error "--bucket=$bucket: must be gs://BUCKET"
fi
bucket=${bucket%/}

# The variant's corpora: the part after the size, e.g. large_pubmed_pmc -> pubmed pmc.
IFS=_ read -r -a corpora <<<"${variant#*_}"
input_file=''
for corpus in "${corpora[@]}"; do
	input_file+="${input_file:+,}$bucket/tfrecords/$corpus/*.tfrecord"
done

train_args=(-m bioalbert_tf.run_pretraining
	--flagfile="$flagfile"
	--tpu=local
	--input_file="$input_file"
	--output_dir="$bucket/bioalbert/$variant")
if [[ -n $init_checkpoint ]]; then
	train_args+=(--init_checkpoint="$init_checkpoint")
fi

if ((remote)); then
	need_gcloud
	# The remote shell expands a leading ~ only when it is unquoted, so quote just the rest.
	# shellcheck disable=SC2088
	case $repo_dir in
	"~") remote_dir='~' ;;
	"~/"*) remote_dir="~/$(printf '%q' "${repo_dir#\~/}")" ;;
	*) remote_dir=$(printf '%q' "$repo_dir") ;;
	esac
	# nohup and no stdin, so that the run outlives the ssh session and ssh returns at once.
	remote_cmd="cd $remote_dir && nohup $(quote_cmd .venv/bin/python "${train_args[@]}")"
	remote_cmd+=" > pretrain.log 2>&1 < /dev/null &"
	ssh_cmd=(gcloud compute tpus tpu-vm ssh "$tpu" --zone="$zone")
	if [[ -n $project ]]; then
		ssh_cmd+=(--project="$project")
	fi
	run "${ssh_cmd[@]}" --command="$remote_cmd"
else
	# The flagfile (and the albert config it names) are paths relative to the project root.
	run cd "$REPO_ROOT"
	run "${PYTHON:-$(default_python)}" "${train_args[@]}"
fi
