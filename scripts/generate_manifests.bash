#!/usr/bin/env bash
# Render manifests only (no deployment): the seed's usage, unchanged.
#   benchmarks=benchmarks ./scripts/generate_manifests.bash
#   run_id='existing-run-id' benchmarks=benchmarks ./scripts/generate_manifests.bash
# Extra arguments go to `inferbench generate`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$INFERBENCH_ROOT"
inferbench generate "$@"
