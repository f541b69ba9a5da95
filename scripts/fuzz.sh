#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a bounded time: scripts/fuzz.sh [SECONDS_PER_TARGET]
# (default 60). Not part of `cargo test`. A crash stops the script and leaves the input in
# fuzz/artifacts/TARGET/; replay it with `cargo fuzz run TARGET FILE`.
#
# cargo-fuzz needs nightly features (-Z flags, sanitizer coverage). On a stable toolchain
# RUSTC_BOOTSTRAP=1 unlocks them, and stable ships the AddressSanitizer runtime, so the
# default `FUZZ_SANITIZER=address` works; `FUZZ_SANITIZER=none` builds faster and runs more
# inputs per second (the code fuzzed here is safe Rust).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
sanitizer=${FUZZ_SANITIZER:-address}
targets=(users_file config_file user_path)

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
# Separate from the main build, and per sanitizer: each uses other compiler flags.
target_dir="${CARGO_TARGET_DIR:-$PWD/target}/fuzz-$sanitizer"

# Seeds: the shipped files, and a few hostile paths.
seeds_for() {
  case "$1" in
    users_file | config_file) echo config ;;
    user_path) echo fuzz/seeds/user_path ;;
  esac
}

for target in "${targets[@]}"; do
  corpus="fuzz/corpus/$target"
  mkdir -p "$corpus"
  echo "== $target: ${seconds}s, sanitizer $sanitizer"
  (cd fuzz && cargo fuzz run --sanitizer "$sanitizer" --target-dir "$target_dir" "$target" \
      "../$corpus" "../$(seeds_for "$target")" -- \
      -max_total_time="$seconds" -max_len=8192 -timeout=10 -print_final_stats=1)
done
