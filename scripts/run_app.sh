#!/usr/bin/env bash
# Set everything up on a fresh machine and start the app on http://127.0.0.1:7860
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -r requirements.txt -e .
exec python3 app.py "$@"
