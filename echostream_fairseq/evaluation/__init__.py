"""Evaluation helpers: offline ASR-BLEU for speech output (optional extra `asr-bleu`)."""
