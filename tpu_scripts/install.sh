#!/usr/bin/env bash
# Copies this project to a TPU VM and installs it there in a virtualenv.
#
# On a TPU VM, TensorFlow's TPU support (libtpu, as shipped for TensorFlow's TPU builds) must
# match the installed tensorflow version (setup.cfg pins tensorflow==2.21.0); this combination
# was not verified here. The project needs Python 3.11 (setup.cfg python_requires): the VM image
# must provide it (--python names the interpreter that creates the virtualenv).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
	cat <<USAGE
Usage: $SCRIPT_NAME --name=NAME --zone=ZONE [--repo-dir=~/bioalbert-tf] [--project=PROJECT]
                  [--python=python3.11] [--dry-run]

Copies the project (without .git, .venv, .cache, output) to the TPU VM NAME, then creates
REPO_DIR/.venv there and runs pip install -e '.[beam,tpu]' in it. Rerunning updates the copy and
reuses the virtualenv.

  --name      TPU VM name (required)
  --zone      GCE zone (required)
  --repo-dir  project folder on the VM; ~/ is the remote home (default: ~/bioalbert-tf)
  --project   GCP project (default: gcloud's configured project)
  --python    interpreter on the VM that creates the virtualenv (default: python3.11)
  --dry-run   print the commands, run nothing
  -h, --help  this help
USAGE
}

# shellcheck disable=SC2088  # the tilde is meant for the remote side, see remote_dir below
name='' zone='' repo_dir='~/bioalbert-tf' project='' python=python3.11
while (($#)); do
	OPT_SHIFT=1
	case $1 in
	--name | --name=*) opt_value "$@"; name=$OPT_VALUE ;;
	--zone | --zone=*) opt_value "$@"; zone=$OPT_VALUE ;;
	--repo-dir | --repo-dir=*) opt_value "$@"; repo_dir=$OPT_VALUE ;;
	--project | --project=*) opt_value "$@"; project=$OPT_VALUE ;;
	--python | --python=*) opt_value "$@"; python=$OPT_VALUE ;;
	--dry-run) DRY_RUN=1 ;;
	-h | --help) usage; exit 0 ;;
	*) unknown_arg "$1" ;;
	esac
	shift "$OPT_SHIFT"
done
require name "$name"
require zone "$zone"
require repo-dir "$repo_dir"
require python "$python"
need_gcloud

# The remote shell expands a leading ~ only when it is unquoted, so quote just the rest.
# shellcheck disable=SC2088
case $repo_dir in
"~") remote_dir='~' ;;
"~/"*) remote_dir="~/$(printf '%q' "${repo_dir#\~/}")" ;;
*) remote_dir=$(printf '%q' "$repo_dir") ;;
esac

gcloud_opts=(--zone="$zone")
if [[ -n $project ]]; then
	gcloud_opts+=(--project="$project")
fi

# One archive instead of a recursive copy of the folder: the local .venv (another machine's
# interpreter), caches and outputs stay behind, and a rerun overwrites files in place rather
# than nesting a second copy inside REPO_DIR.
archive=$(mktemp "${TMPDIR:-/tmp}/bioalbert-tf-src.XXXXXX")
trap 'rm -f "$archive"' EXIT
remote_archive=bioalbert-tf-src.tar.gz # in the remote home
run tar -C "$REPO_ROOT" --exclude=.git --exclude=.venv --exclude=.cache --exclude=output \
	--exclude=__pycache__ --exclude='*.egg-info' --exclude=.pytest_cache --exclude=.ruff_cache \
	-czf "$archive" .
run gcloud compute tpus tpu-vm scp "$archive" "$name:$remote_archive" "${gcloud_opts[@]}"

remote_cmd="mkdir -p $remote_dir && tar -xzf ~/$remote_archive -C $remote_dir"
remote_cmd+=" && rm -f ~/$remote_archive && cd $remote_dir"
remote_cmd+=" && { test -x .venv/bin/python || $(printf '%q' "$python") -m venv .venv; }"
remote_cmd+=" && .venv/bin/python -m pip install --upgrade pip"
remote_cmd+=" && .venv/bin/python -m pip install -e '.[beam,tpu]'"
run gcloud compute tpus tpu-vm ssh "$name" "${gcloud_opts[@]}" --command="$remote_cmd"
