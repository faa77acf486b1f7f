#!/usr/bin/env bash
# The toy data folder of one pair: corpus -> units -> prepared folder. Each stage is skipped when
# its output is complete; timings go to the log. Usage: [PAIR=ko-en] examples/toy_es_en/prepare_data.sh [OUT]
# PAIR (default es-en): another pair into English shares es-en's target side -- its k-means
# quantiser (the same units, so the same vocoder) and its target sentencepiece model (the same
# target dictionary) -- so es-en is prepared first.
# CONTINUE_FROM=FOLDER: a model trained on FOLDER continues on this data (e.g. more sentences:
# N_TRAIN=12000 into another OUT; the same seed keeps dev and test and the first sentences):
# FOLDER's sentencepiece models, dictionaries and CMVN are kept (echostream-prep-s2st --continue-from).
# TARGET_VOICE (default slt): flite's voice for the English target speech; the units, the vocoder
# and every pair sharing them follow it (a pair sharing es-en's target side must use es-en's voice).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-data/toy}
PAIR=${PAIR:-es-en}
TARGET_VOICE=${TARGET_VOICE:-slt}
# the flite voice whose speech a units folder's quantiser was fitted on (not recorded before: slt)
voice_of() { if [ -f "$1/target_voice.txt" ]; then cat "$1/target_voice.txt"; else echo slt; fi; }
K=${K:-1000}
BIN=.venv/bin
C=$OUT/$PAIR
SHARED=${SHARED:-$OUT/es-en}  # the pair whose English target side the others share (SHARED=FOLDER: another)
UNIT_ARGS=(--num-units $K); SPM_ARGS=(); KMEANS=$C/units/kmeans.npy
if [ "$PAIR" != es-en ]; then
  # (with CONTINUE_FROM the target sentencepiece model is that folder's: SHARED=assets, which
  # holds the quantiser in units/ but no prepared/, then serves to continue a shipped pair)
  need=("$SHARED/units/kmeans.npy"); [ -n "${CONTINUE_FROM:-}" ] || need+=("$SHARED/prepared/spm_tgt.model")
  for f in "${need[@]}"; do
    [ -f "$f" ] || { echo "PAIR=$PAIR shares es-en's target side, but $f is missing: run examples/toy_es_en/prepare_data.sh $OUT first" >&2; exit 1; }
  done
  shared_voice=$(voice_of "$SHARED/units")
  [ "$shared_voice" = "$TARGET_VOICE" ] || {
    echo "PAIR=$PAIR shares the units of $SHARED, spoken by flite's $shared_voice, but TARGET_VOICE=$TARGET_VOICE" >&2; exit 1; }
  KMEANS=$SHARED/units/kmeans.npy
  UNIT_ARGS=(--kmeans "$KMEANS"); SPM_ARGS=(--tgt-spm "$SHARED/prepared/spm_tgt.model")
fi

if [ -n "${CONTINUE_FROM:-}" ]; then
  [ -f "$CONTINUE_FROM/spm_src.model" ] || { echo "CONTINUE_FROM=$CONTINUE_FROM is not a prepared data folder" >&2; exit 1; }
  SPM_ARGS=(--continue-from "$CONTINUE_FROM")
  qdir=$(dirname "$CONTINUE_FROM")/units
  qvoice=$(voice_of "$qdir")
  if [ "$PAIR" = es-en ] && [ "$qvoice" = "$TARGET_VOICE" ]; then
    # the units of the continued model: its folder's quantiser, not a new one
    KMEANS=$qdir/kmeans.npy
    [ -f "$KMEANS" ] || { echo "CONTINUE_FROM=$CONTINUE_FROM: no quantiser $KMEANS beside it" >&2; exit 1; }
    UNIT_ARGS=(--kmeans "$KMEANS")
  elif [ "$PAIR" = es-en ]; then
    echo "   (CONTINUE_FROM's quantiser was fitted on flite's $qvoice; TARGET_VOICE=$TARGET_VOICE gets its own units)"
  fi
fi

stage() { echo "== $1 ($(date +%T))"; }
TIMEFORMAT="   took %R s"

stage "1/3 corpus: $C"
# (+ test_unseen: the test sentences by voice variants, rates and pitches no other split uses)
if [ ! -f "$C/test_unseen.tsv" ] || [ ! -f "$C/stats.json" ]; then
  time $BIN/echostream-make-toy-corpus --out "$OUT" --pairs $PAIR --unseen-voices \
    --train ${N_TRAIN:-3600} --dev ${N_DEV:-200} --test ${N_TEST:-200} --seed ${SEED:-0} --target-voice "$TARGET_VOICE"
fi

stage "2/3 units: $C/units (K=$K; quantiser: ${UNIT_ARGS[*]})"
if [ ! -f "$C/units/reduced.tsv" ]; then
  time $BIN/echostream-extract-units \
    --lists "$C/train.tsv" "$C/dev.tsv" "$C/test.tsv" --out "$C/units" "${UNIT_ARGS[@]}"
fi
# the units folder carries the quantiser that made its units (a borrowed one is copied in)
[ -f "$C/units/kmeans.npy" ] || cp "$KMEANS" "$C/units/kmeans.npy"
echo "$TARGET_VOICE" > "$C/units/target_voice.txt"  # the voice whose speech the quantiser was fitted on

stage "3/3 data folder: $C/prepared"
if [ ! -f "$C/prepared/config.yaml" ]; then
  time $BIN/echostream-prep-s2st \
    --lists "$C/train.tsv" "$C/dev.tsv" "$C/test.tsv" --units-dir "$C/units" --num-units $K \
    --out "$C/prepared" --src-vocab ${SRC_VOCAB:-256} --tgt-vocab ${TGT_VOCAB:-256} "${SPM_ARGS[@]}"
fi
if [ ! -f "$C/prepared/test_unseen.tsv" ]; then
  echo "   + test_unseen (the quantiser fitted above; the folder's own sentencepiece models)"
  $BIN/echostream-extract-units --lists "$C/test_unseen.tsv" --out "$C/units_test_unseen" --kmeans "$KMEANS"
  $BIN/echostream-prep-s2st --add-to "$C/prepared" --lists "$C/test_unseen.tsv" --units-dir "$C/units_test_unseen"
fi
du -sh "$C/wav" "$C/units" "$C/prepared"
echo "train: fairseq-train $C/prepared --user-dir echostream_fairseq --task echostream_s2st --arch echostream_mini --criterion echostream_multitask --config-yaml config.yaml --multitask-config-yaml config_mtl.yaml ..."
