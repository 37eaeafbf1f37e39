#!/usr/bin/env bash
# Creates .venv-ls/ (Label Studio in its own virtualenv; it pins Django and ~1 GB of packages)
# for the real Label Studio round-trip test (tests/test_labelstudio_roundtrip.py).
# Idempotent: a finished install leaves .venv-ls/.installed and is not repeated.
# Usage: .ci/setup-label-studio.sh [PYTHON]   (default python3; LS_VENV overrides the folder)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${1:-python3}"
VENV="${LS_VENV:-.venv-ls}"
SPEC="${LABEL_STUDIO_SPEC:-label-studio>=1.23,<1.24}"
if [ -f "$VENV/.installed" ] && [ "$(cat "$VENV/.installed")" = "$SPEC" ]; then
    exit 0
fi
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --retries 10 --upgrade pip
for attempt in 1 2 3; do  # a stalled download fails one attempt, not CI
    "$VENV/bin/python" -m pip install --quiet --retries 10 --resume-retries 10 "$SPEC" && break
    [ "$attempt" = 3 ] && exit 1
    echo "setup-label-studio: pip failed (attempt $attempt of 3); retrying in 10 s" >&2; sleep 10
done
"$VENV/bin/python" -c "import label_studio, label_studio_sdk.label_interface" # import check (label-studio --version starts Django)
echo "$SPEC" > "$VENV/.installed"
echo "setup-label-studio: $("$VENV/bin/python" -m pip show label-studio | grep -i '^version')" >&2
