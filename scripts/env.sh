# Shared settings of the scripts (the original tool's scripts/env.sh). Source it; tweak it for
# your own needs. Every setting is also a flag of the binary: see `inferbench <command> --help`.
#
# The original tool's lower-case variables are read by the binary itself: run_id, dry_run,
# gcs_bucket, skip_tear_down, benchmark_name_regex, regex, benchmarks, output_dir.

INFERBENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export INFERBENCH_ROOT

# Cluster settings for the kube platform (used once it is built).
export BENCHMARK_PROJECT="${BENCHMARK_PROJECT:-}"
export CLUSTER_NAME="${CLUSTER_NAME:-}"
export LOCATION="${LOCATION:-}"

# The binary: $INFERBENCH_BIN if set, else built (once) and run from this checkout.
inferbench() {
  if [[ -n "${INFERBENCH_BIN:-}" ]]; then
    "$INFERBENCH_BIN" "$@"
  else
    cargo run --quiet --release --manifest-path "$INFERBENCH_ROOT/Cargo.toml" -- "$@"
  fi
}
