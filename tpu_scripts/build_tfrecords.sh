#!/usr/bin/env bash
# Builds the MLM + SOP pretraining TFRecords of one corpus into OUTPUT/<corpus>/, the layout
# launch_pretraining.sh reads (gs://BUCKET/tfrecords/<corpus>/*.tfrecord).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
	cat <<USAGE
Usage: $SCRIPT_NAME --corpus=pubmed|pmc|mimic --input=GLOB --output=DIR --spm-model=FILE
                          [--runner=DirectRunner|DataflowRunner] [--dupe-factor=40] [--dry-run]
                          [--project=PROJECT --region=REGION --temp-location=gs://...
                           --sdk-container-image=IMAGE]

Runs python -m tfrecords_builder.build_pretraining_data (sequence length 512, 20 predictions
per sequence) and writes the shards to DIR/<corpus>/.

  --corpus               pubmed, pmc or mimic (required)
  --input                input files: glob or comma list, local or gs:// (required)
  --output               parent folder of the per-corpus folders, e.g. gs://BUCKET/tfrecords
                         (required)
  --spm-model            SentencePiece model, e.g. 30k-clean.model (required)
  --runner               Beam runner (default: DirectRunner)
  --dupe-factor          passes over each document, each with other masks (default: 40)
  --project, --region, --temp-location, --sdk-container-image
                         required with --runner=DataflowRunner; the container image must have
                         this project installed
  --dry-run              print the command, run nothing
  -h, --help             this help

The interpreter is \$PYTHON, else the project's .venv/bin/python, else python3.
USAGE
}

corpus='' input='' output='' spm_model='' runner=DirectRunner dupe_factor=40
project='' region='' temp_location='' sdk_container_image=''
while (($#)); do
	OPT_SHIFT=1
	case $1 in
	--corpus | --corpus=*) opt_value "$@"; corpus=$OPT_VALUE ;;
	--input | --input=*) opt_value "$@"; input=$OPT_VALUE ;;
	--output | --output=*) opt_value "$@"; output=$OPT_VALUE ;;
	--spm-model | --spm-model=*) opt_value "$@"; spm_model=$OPT_VALUE ;;
	--runner | --runner=*) opt_value "$@"; runner=$OPT_VALUE ;;
	--dupe-factor | --dupe-factor=*) opt_value "$@"; dupe_factor=$OPT_VALUE ;;
	--project | --project=*) opt_value "$@"; project=$OPT_VALUE ;;
	--region | --region=*) opt_value "$@"; region=$OPT_VALUE ;;
	--temp-location | --temp-location=*) opt_value "$@"; temp_location=$OPT_VALUE ;;
	--sdk-container-image | --sdk-container-image=*)
		opt_value "$@"
		sdk_container_image=$OPT_VALUE
		;;
	--dry-run) DRY_RUN=1 ;;
	-h | --help) usage; exit 0 ;;
	*) unknown_arg "$1" ;;
	esac
	shift "$OPT_SHIFT"
done
require corpus "$corpus"
require input "$input"
require output "$output"
require spm-model "$spm_model"
one_of corpus "$corpus" pubmed pmc mimic
one_of runner "$runner" DirectRunner DataflowRunner
if [[ ! $dupe_factor =~ ^[1-9][0-9]*$ ]]; then
	usage_error "--dupe-factor=$dupe_factor: must be a positive integer"
fi

python=${PYTHON:-$(default_python)}
cmd=("$python" -m tfrecords_builder.build_pretraining_data
	--input_files="$input"
	--output_dir="${output%/}/$corpus"
	--spm_model_file="$spm_model"
	--max_seq_length=512
	--max_predictions_per_seq=20
	--dupe_factor="$dupe_factor"
	--runner="$runner")
if [[ $runner == DataflowRunner ]]; then
	require project "$project"
	require region "$region"
	require temp-location "$temp_location"
	# Dataflow workers import tfrecords_builder, so they need the project installed; there is no
	# setup.py to ship it, hence a custom container with it (and its dependencies) installed.
	require sdk-container-image "$sdk_container_image"
	if [[ $temp_location != gs://* ]]; then
		usage_error "--temp-location=$temp_location: must be a gs:// path"
	fi
	# Options the builder does not define go on to Beam's PipelineOptions.
	cmd+=(--project="$project" --region="$region" --temp_location="$temp_location"
		--sdk_container_image="$sdk_container_image" --save_main_session)
fi
run "${cmd[@]}"
