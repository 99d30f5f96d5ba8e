#!/usr/bin/env bash
# Run every catalog file under catalog/ (or those whose path matches regex=...) in one run:
#   ./scripts/run_all_benchmarks.bash
#   regex='.*h100.*' dry_run='true' ./scripts/run_all_benchmarks.bash
# Extra arguments go to `inferbench run`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$INFERBENCH_ROOT"
inferbench run "$@"
