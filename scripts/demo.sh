#!/usr/bin/env bash
# Set up and run the main job on the bundled sample audit log (no services needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/exfil-detector demo "$@"
