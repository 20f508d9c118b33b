#!/usr/bin/env bash
# Fuzzes each cargo-fuzz target of fuzz/ for a bounded time and fails on any crash (a panic,
# a timeout, running out of memory), leaving the input in fuzz/artifacts/<target>/.
#
#   bash .ci/fuzz.sh                  # every target, 60 s each
#   ES_FUZZ_SECONDS=600 bash .ci/fuzz.sh stored_record
#
# - installs cargo-fuzz when missing (`cargo install cargo-fuzz --locked`);
# - the toolchain is stable (rust-toolchain.toml): `--sanitizer none`, since AddressSanitizer
#   needs nightly's -Zsanitizer. The targets are safe Rust, so what we hunt is panics, which
#   libFuzzer catches with coverage instrumentation alone (stable -C flags);
# - fuzz/ is a crate of its own (its own [workspace]), locked to the workspace's versions;
# - the corpus starts from the committed seeds (fuzz/seeds/<target>/) and grows in
#   fuzz/corpus/<target>/ (git-ignored, kept between local runs); the dictionary is
#   fuzz/dicts/<target>.dict.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "fuzz.sh: $*" >&2; }

seconds=${ES_FUZZ_SECONDS:-60}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=(command_json stored_record); fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
log "$(cargo fuzz --version)"

# The workspace's versions of every shared dependency: fuzz/ starts from the workspace's lock
# file (its own is git-ignored) and cargo adds the fuzzing crates.
cp Cargo.lock fuzz/Cargo.lock

# One build for every target (coverage-instrumented, release with debug assertions).
cargo fuzz build --sanitizer none --fuzz-dir fuzz

for target in "${targets[@]}"; do
  corpus=fuzz/corpus/$target
  mkdir -p "$corpus"
  if [ -d "fuzz/seeds/$target" ]; then cp -n "fuzz/seeds/$target"/* "$corpus"/ 2>/dev/null || true; fi
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
  if [ -f "fuzz/dicts/$target.dict" ]; then args+=(-dict="$PWD/fuzz/dicts/$target.dict"); fi
  log "$target: ${seconds}s"
  if ! cargo fuzz run --sanitizer none --fuzz-dir fuzz "$target" "$corpus" -- "${args[@]}"; then
    log "$target crashed; the input is in fuzz/artifacts/$target/:"
    ls -l "fuzz/artifacts/$target/" >&2 || true
    exit 1
  fi
done
