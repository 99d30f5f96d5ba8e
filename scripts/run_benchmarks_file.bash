#!/usr/bin/env bash
# Run the benchmarks of one catalog file: the seed's usage, unchanged.
#   benchmarks=benchmarks ./scripts/run_benchmarks_file.bash
#   gcs_bucket='my-bucket' benchmarks=benchmarks benchmark_name_regex='.*h100.*' ./scripts/run_benchmarks_file.bash
#   run_id='existing-run-id' benchmarks=benchmarks ./scripts/run_benchmarks_file.bash
#   dry_run='true' benchmarks=benchmarks ./scripts/run_benchmarks_file.bash
# Extra arguments go to `inferbench run`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$INFERBENCH_ROOT"
if [[ -z "${benchmarks:-}" && -z "${INFERBENCH_BENCHMARKS:-}" ]]; then
  echo "run_benchmarks_file.bash: set benchmarks=NAME (a file catalog/NAME.pbtxt)" >&2
  exit 2
fi
inferbench run "$@"
