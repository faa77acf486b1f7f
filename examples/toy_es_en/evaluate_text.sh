#!/usr/bin/env bash
# Text-side evaluation of a toy checkpoint: offline BLEU (fairseq-generate, greedy) and
# simultaneous S2TT with SimulEval at several segment sizes (BLEU, AL, StartOffset, EndOffset,
# plain and computation-aware). Speech-side (ASR-BLEU) needs a trained vocoder in the data config.
# Usage: examples/toy_es_en/evaluate_text.sh CHECKPOINT [DATA] [CORPUS] [OUT] [SEGMENTS...]
set -euo pipefail
cd "$(dirname "$0")/../.."
CKPT=$1; DATA=${2:-data/toy/es-en/prepared}; CORPUS=${3:-data/toy/es-en}; OUT=${4:-runs/toy_eval}
shift $(( $# < 4 ? $# : 4 )) || true
SEGMENTS=${*:-160 320 640}
BIN=.venv/bin
mkdir -p "$OUT"

$BIN/fairseq-generate "$DATA" --user-dir echostream_fairseq --task echostream_s2st --config-yaml config.yaml \
  --multitask-config-yaml config_mtl.yaml --path "$CKPT" --gen-subset test --beam 1 --max-tokens 40000 \
  --results-path "$OUT/offline" > "$OUT/offline.log" 2>&1
cut -f1,5 "$CORPUS/test.tsv" | tail -n +2 > "$OUT/ref.tsv"
$BIN/python - "$OUT" <<'PY'
import sys, sacrebleu
out = sys.argv[1]
ref = dict(l.rstrip("\n").split("\t", 1) for l in open(f"{out}/ref.tsv"))
hyp = dict(l.rstrip("\n").split("\t", 1) for l in open(f"{out}/offline/test/mt.txt"))
ids = sorted(ref)
b = sacrebleu.corpus_bleu([hyp.get(i, "") for i in ids], [[ref[i] for i in ids]], lowercase=True, tokenize="13a")
print(f"offline greedy MT BLEU (lowercased, 13a, punctuation kept): {b.score:.2f}")
PY

cut -f2 "$CORPUS/test.tsv" | tail -n +2 | sed "s#^#$PWD/$CORPUS/#" > "$OUT/src.list"
cut -f5 "$CORPUS/test.tsv" | tail -n +2 > "$OUT/ref.txt"
for seg in $SEGMENTS; do
  $BIN/simuleval --user-dir echostream_fairseq --agent-class echostream_fairseq.agents.EchoStreamS2TTAgent \
    --checkpoint "$CKPT" --data-dir "$DATA" --source "$OUT/src.list" --target "$OUT/ref.txt" \
    --source-segment-size $seg --output "$OUT/s2tt_$seg" --quality-metrics BLEU --sacrebleu-tokenizer 13a \
    --latency-metrics AL LAAL StartOffset EndOffset --computation-aware > "$OUT/s2tt_$seg.log" 2>&1
  echo "S2TT ${seg} ms: $(tr '\n' ' ' < "$OUT/s2tt_$seg/scores.tsv")"
done
