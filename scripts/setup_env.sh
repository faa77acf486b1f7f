#!/usr/bin/env bash
# Build .venv from nothing on a fresh Debian machine (idempotent). Called by `make setup`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

# Debian packages: speech synthesis and audio tools for the data kit and tests, and the
# FreeDict German-English dictionary whose example sentences make the de-en set, and Chromium +
# chromedriver for the web-page tests.
DEB_PKGS="espeak-ng flite sox libsndfile1 dict-freedict-deu-eng chromium chromium-driver haproxy"
missing=""
for p in $DEB_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  echo "[setup] apt-get install$missing"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $PY"
  "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/pip --disable-pip-version-check"
$PIP install -q pip==24.0
# torch first: fairseq-fixed compiles against it and must not pull a second torch into an
# isolated build environment.
$PIP install -q -c constraints.txt torch==2.9.1 torchaudio==2.9.1
$PIP install -q -c constraints.txt numpy Cython setuptools wheel
if ! "$VENV/bin/python" -c "import fairseq" >/dev/null 2>&1; then
  echo "[setup] building fairseq-fixed (compiles its extensions, a few minutes)"
  $PIP install -q -c constraints.txt --no-build-isolation fairseq-fixed==0.12.3.1
fi
$PIP install -q -c constraints.txt -r requirements.txt -r requirements-asr-bleu.txt
$PIP install -q -c constraints.txt --no-build-isolation --no-deps -e .
"$VENV/bin/python" -c "import echostream_fairseq, fairseq, simuleval, torchaudio; print('[setup] ok: fairseq', fairseq.__version__, 'torchaudio', torchaudio.__version__)"
