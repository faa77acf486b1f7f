#!/usr/bin/env bash
# The whole toy es->en recipe, stage by stage; every stage resumes or is skipped when done:
#   1 data (corpus -> units -> data folder)   2 vocoder   3 model (fairseq-train)
#   4 export to assets/                        5 offline evaluation (fairseq-generate)
#   6 vocoder resynthesis check                7 SimulEval at several segment sizes
#   8 report: assets/results.json, a markdown table and a latency-quality plot
# Usage: examples/toy_es_en/run.sh [FIRST_STAGE [LAST_STAGE]]
# Knobs (environment): DATA_ROOT RUNS ASSETS VOC_STEPS MAX_UPDATE SEGMENTS SPEECH_SEGMENTS
set -euo pipefail
cd "$(dirname "$0")/../.."
FIRST=${1:-1}; LAST=${2:-8}
DATA_ROOT=${DATA_ROOT:-data/toy}; C=$DATA_ROOT/es-en; D=$C/prepared
RUNS=${RUNS:-runs}; VOC=$RUNS/toy_vocoder; CKPT=$RUNS/toy_mini; EVAL=$RUNS/toy_eval
ASSETS=${ASSETS:-assets}
VOC_STEPS=${VOC_STEPS:-1500}
MAX_UPDATE=${MAX_UPDATE:-1800}
SEGMENTS=${SEGMENTS:-160 320 640}
SPEECH_SEGMENTS=${SPEECH_SEGMENTS:-$SEGMENTS}  # S2ST + ASR-BLEU (about 12 min per segment size here)
BIN=$PWD/.venv/bin
K=100
stage() { [ "$1" -ge "$FIRST" ] && [ "$1" -le "$LAST" ]; }
say() { echo "== $* ($(date +%T))"; }
# logged LOG CMD...: run CMD with its output appended to LOG; on failure show the end of LOG
logged() { local log=$1; shift; local t0=$SECONDS
  if ! "$@" >> "$log" 2>&1; then echo "failed: $* (last lines of $log):" >&2; tail -n 25 "$log" >&2; exit 1; fi
  echo "   took $((SECONDS - t0)) s (log $log)"; }
mkdir -p "$RUNS" "$EVAL"

VOC_CMD=("$BIN/echostream-train-vocoder" --lists "$C/train.tsv" --valid-list "$C/dev.tsv" --units-dir "$C/units"
  --num-units $K --save-dir "$VOC" --max-steps "$VOC_STEPS" --save-interval 250 --log-interval 50 --threads 1 --no-progress-bar)
TRAIN_CMD=("$BIN/fairseq-train" "$D" --user-dir echostream_fairseq --task echostream_s2st --arch echostream_mini
  --criterion echostream_multitask --config-yaml config.yaml --multitask-config-yaml config_mtl.yaml
  --optimizer adam --lr 2e-3 --lr-scheduler inverse_sqrt --warmup-updates 300 --clip-norm 5 --label-smoothing 0.1
  --max-tokens 20000 --max-update "$MAX_UPDATE" --unit-upsample 16 --save-dir "$CKPT" --save-interval-updates 200
  --keep-interval-updates 2 --train-subset train --valid-subset dev --num-workers 0 --seed 1)

if stage 1; then
  say "1/8 data"; examples/toy_es_en/prepare_data.sh "$DATA_ROOT"
fi
if stage 2; then
  say "2/8 vocoder: $VOC_STEPS steps -> $VOC (log $VOC/train.log)"
  mkdir -p "$VOC"; logged "$VOC/train.log" "${VOC_CMD[@]}"
fi
if stage 3; then
  say "3/8 model: fairseq-train echostream_mini, $MAX_UPDATE updates -> $CKPT (log $CKPT/train.log)"
  mkdir -p "$CKPT"; logged "$CKPT/train.log" "${TRAIN_CMD[@]}"
fi
GEN=$(ls "$VOC"/g_* 2>/dev/null | sort | tail -1 || true)
if stage 4; then
  say "4/8 export -> $ASSETS (model $CKPT/checkpoint_best.pt, vocoder $GEN)"
  [ -n "$GEN" ] || { echo "no vocoder checkpoint in $VOC: run stage 2" >&2; exit 1; }
  "$BIN/echostream-export-assets" --checkpoint "$CKPT/checkpoint_best.pt" --data-dir "$D" --vocoder "$GEN" \
    --kmeans "$C/units/kmeans.npy" --examples-list "$C/test.tsv" --num-examples 5 --out "$ASSETS" \
    --built-by "examples/toy_es_en/prepare_data.sh $DATA_ROOT" --built-by "${VOC_CMD[*]#$PWD/}" --built-by "${TRAIN_CMD[*]#$PWD/}"
fi
M=$(realpath -m "$ASSETS/model")
if stage 5; then
  say "5/8 offline: fairseq-generate (greedy) with the shipped model on the test set"
  # the data folder's manifests with the shipped model's config (it names the vocoder)
  rm -f "$EVAL/offline.log"
  logged "$EVAL/offline.log" "$BIN/fairseq-generate" "$D" --user-dir echostream_fairseq --task echostream_s2st \
    --config-yaml "$M/config.yaml" --multitask-config-yaml config_mtl.yaml --path "$M/checkpoint.pt" \
    --gen-subset test --beam 1 --max-tokens 40000 --results-path "$EVAL/offline"
  "$BIN/echostream-score" offline --generate-dir "$EVAL/offline/test" --list "$C/test.tsv" --out "$EVAL/offline.json"
fi
if stage 6; then
  say "6/8 vocoder resynthesis of ground-truth test units vs the original target speech"
  VG=$(ls "$M"/vocoder/g_* | tail -1)
  "$BIN/echostream-score" resynth --vocoder "$VG" --vocoder-config "$M/vocoder/config.json" --list "$C/test.tsv" \
    --units "$C/units/reduced.tsv" --wav-dir "$EVAL/resynth" --out "$EVAL/resynth.json"
fi
if stage 7; then
  cut -f2 "$C/test.tsv" | tail -n +2 | sed "s#^#$(realpath "$C")/#" > "$EVAL/src.list"
  cut -f5 "$C/test.tsv" | tail -n +2 > "$EVAL/ref.txt"
  for seg in $SEGMENTS; do
    say "7/8 simuleval ${seg} ms: S2TT (text) and S2ST (speech, ASR-BLEU)"
    common=(--user-dir echostream_fairseq --checkpoint "$M/checkpoint.pt" --data-dir "$M" --source "$EVAL/src.list"
      --target "$EVAL/ref.txt" --source-segment-size "$seg" --computation-aware)
    [ -f "$EVAL/s2tt_$seg/scores.tsv" ] || logged "$EVAL/s2tt_$seg.log" "$BIN/simuleval" "${common[@]}" \
      --agent-class echostream_fairseq.agents.EchoStreamS2TTAgent --output "$EVAL/s2tt_$seg" --quality-metrics BLEU \
      --sacrebleu-tokenizer 13a --latency-metrics AL LAAL StartOffset EndOffset
    [[ " $SPEECH_SEGMENTS " == *" $seg "* ]] && [ ! -f "$EVAL/s2st_$seg/scores.tsv" ] && logged "$EVAL/s2st_$seg.log" "$BIN/simuleval" "${common[@]}" \
      --agent-class echostream_fairseq.agents.EchoStreamS2STAgent --output "$EVAL/s2st_$seg" \
      --quality-metrics ASR_BLEU_LOCAL ASR_BLEU_LOCAL_RM_SIL \
      --latency-metrics AL LAAL StartOffset EndOffset ATD NumChunks SpeechDiscontinuitySum
  done
fi
if stage 8; then
  say "8/8 report"
  "$BIN/echostream-score" report --eval-dir "$EVAL" --list "$C/test.tsv" --segments $SEGMENTS \
    --out "$ASSETS/results.json" --command "examples/toy_es_en/run.sh (stages 5-8; SEGMENTS='$SEGMENTS')"
  cp "$EVAL/results.md" "$EVAL/latency_quality.png" examples/toy_es_en/
fi
