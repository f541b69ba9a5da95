#!/usr/bin/env bash
# Benchmarks Ferry serving homes from an S3 bucket against a stock S3 client (rclone) talking
# straight to the same S3 service, moto's server, on loopback, and prints a table of medians
# with Ferry's ratio to the direct client (the target is >= 0.8x: an FTP hop should cost
# little next to S3 itself).
#
#   bench/s3-compare.sh                 # SIZE=1GiB up and down, 500 small files, 3 repetitions
#   QUICK=1 REPS=1 bench/s3-compare.sh  # 64 MiB, to check the setup in a minute
#
# One run starts moto's S3 server (a free loopback port, its objects spooled to tmpfs) with
# one bucket, and Ferry in release mode on --root s3://BUCKET/ferry pointed at it, then
# measures each scenario through Ferry (ferry-bench over FTP, one session, account demo whose
# home is the key prefix ferry/demo/) and directly (rclone, keys under direct/):
#
#   upload       SIZE bytes as one file, MB/s. Ferry: ferry-bench stor; Ferry sends 16 MiB
#                parts, 4 in flight. rclone: copyto from tmpfs, with the same part size
#                (--s3-upload-cutoff/--s3-chunk-size 16Mi) and concurrency (4).
#   download     that file back, MB/s. Ferry: ferry-bench retr (Ferry reads one GetObject
#                stream); rclone: copyto onto tmpfs, one stream (--multi-thread-streams 0).
#   small-files  SMALL_FILES files of 4 KiB uploaded one after the other, then downloaded,
#                in files/s (uploads plus downloads per second). Ferry: ferry-bench
#                small-files, one session; rclone: copy up, then copy down, one transfer at a
#                time (--transfers 1 --checkers 1, like one FTP session).
#
# ferry-bench times each transfer from EPSV to the 226 reply (login excluded); rclone is timed
# as a whole process, its start (~50 ms) included. Repetitions alternate Ferry and rclone
# (who goes first swaps every repetition); the table shows medians. Every transfer is checked:
#   Ferry upload     SIZE reply (ferry-bench), and the object's SHA-256 read straight from
#                    the bucket against ferry-bench's upload pattern (recomputed here);
#   Ferry download   byte count (ferry-bench), and the SHA-256 of a second download through
#                    Ferry (curl), untimed;
#   Ferry small      ferry-bench compares every file's bytes;
#   rclone upload    the object's size in the bucket; its bytes are checked by the download;
#   rclone download  SHA-256 of the downloaded file against the source;
#   rclone small     object count after the upload; count and SHA-256 of every downloaded file.
# A run that fails a check is kept in the JSON as invalid and left out of the medians.
# Beside the figures: CPU per GiB (or per file) of Ferry, of rclone, and of moto under each,
# and the number of S3 requests each side made (from moto's request log).
#
# rclone settings for moto: --s3-no-head (rclone 1.60 reads a multipart object back with
# HEAD ?versionId=null, which moto answers 400 Bad Request, failing the copy),
# --s3-no-check-bucket, --s3-disable-checksum and --ignore-checksum (no MD5 pass over the
# source before an upload, nor over the file after a download, which cut rclone's 1 GiB
# download here from ~700-850 to ~320 MB/s: Ferry computes neither, and this script checks
# the bytes itself, untimed), --retries 1 (a failure is a failure, not a silent second try).
# AWS_CA_BUNDLE is unset (rclone 1.60 fails on it even for plain http); the S3 credentials are
# fixed dummies for moto, never the caller's.
#
# Environment: SIZE (1GiB; 64MiB with QUICK; bytes or KiB/MiB/GiB), REPS (3; 1 with QUICK),
# QUICK, SMALL_FILES (500), BENCH_DIR (/dev/shm/ferry-s3-bench: tmpfs, so no disk is
# measured), FERRY_PORT (2721), FERRY_PASSIVE (26000-26999), MOTO_PORT (a free one),
# BUCKET (ferry-bench), TIMEOUT (seconds any one command may take, 600), NO_BUILD (1: use
# the binaries in target/release as they are, without cargo build).
# Results: $BENCH_DIR/s3-results.jsonl (one JSON line per run) and the table on stdout; logs
# of moto, Ferry and rclone in $BENCH_DIR.
#
# Requirements: moto's server (`pip install 'moto[server]'`: moto_server on PATH), rclone
# (apt-get install rclone), jq, curl, python3, and a Rust toolchain for the release build.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=${QUICK:-}
if [ -n "$QUICK" ]; then
  SIZE=${SIZE:-64MiB}
  REPS=${REPS:-1}
else
  SIZE=${SIZE:-1GiB}
  REPS=${REPS:-3}
fi
SMALL_FILES=${SMALL_FILES:-500}
SMALL_SIZE=4096
BENCH_DIR=${BENCH_DIR:-/dev/shm/ferry-s3-bench}
FERRY_PORT=${FERRY_PORT:-2721}
FERRY_PASSIVE=${FERRY_PASSIVE:-26000-26999}
MOTO_PORT=${MOTO_PORT:-}
BUCKET=${BUCKET:-ferry-bench}
TIMEOUT=${TIMEOUT:-600}
NO_BUILD=${NO_BUILD:-}
# Ferry's root is s3://$BUCKET/$FERRY_PREFIX; demo's home is the prefix $FERRY_PREFIX/demo/.
FERRY_PREFIX=ferry
FERRY_HOME_KEY=$FERRY_PREFIX/demo
DIRECT_PREFIX=direct
FTP_URL="ftp://demo:ferry-demo@127.0.0.1:$FERRY_PORT/"
# Ferry's defaults (s3_part_size 16, s3_upload_concurrency 4), which rclone is given too.
PART=16Mi
UPLOAD_CONCURRENCY=4
# The 226 reply must come back within the limit, the bucket's answer included.
IO_TIMEOUT=120

log() { echo "s3-compare: $*" >&2; }
die() { log "$*"; exit 1; }

case $SIZE in
  *GiB) SIZE_BYTES=$((${SIZE%GiB} * 1024 * 1024 * 1024)) ;;
  *MiB) SIZE_BYTES=$((${SIZE%MiB} * 1024 * 1024)) ;;
  *KiB) SIZE_BYTES=$((${SIZE%KiB} * 1024)) ;;
  *[!0-9]* | "") die "SIZE must be bytes or end in KiB, MiB or GiB, not $SIZE" ;;
  *) SIZE_BYTES=$SIZE ;;
esac
SIZE_LABEL=$(numfmt --to=iec-i --suffix=B "$SIZE_BYTES")

# --- tools -------------------------------------------------------------------------------
for tool in moto_server rclone jq curl python3 timeout sha256sum; do
  command -v "$tool" >/dev/null 2>&1 \
    || die "$tool is missing (moto_server: pip install 'moto[server]'; rclone: apt-get install rclone)"
done

if [ -z "$NO_BUILD" ]; then
  log "building Ferry (release)"
  cargo build --release --locked --bin ferry --bin ferry-bench >&2
fi
TARGET=${CARGO_TARGET_DIR:-target}
FERRY=$TARGET/release/ferry
BENCH=$TARGET/release/ferry-bench
if [ ! -x "$FERRY" ] || [ ! -x "$BENCH" ]; then die "no $FERRY or $BENCH: build them (cargo build --release)"; fi

# Dummy credentials for moto, the same for Ferry and rclone; nothing of the caller's AWS setup.
unset AWS_CA_BUNDLE AWS_SESSION_TOKEN AWS_PROFILE AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE
export AWS_ACCESS_KEY_ID=ferry-bench AWS_SECRET_ACCESS_KEY=ferry-bench AWS_REGION=us-east-1

# --- data --------------------------------------------------------------------------------
log "preparing $BENCH_DIR"
rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR/small" "$BENCH_DIR/moto-tmp"
RESULTS=$BENCH_DIR/s3-results.jsonl
: >"$RESULTS"
MOTO_LOG=$BENCH_DIR/moto.log
FERRY_LOG=$BENCH_DIR/ferry.log
RCLONE_LOG=$BENCH_DIR/rclone.log
CHECK_LOG=$BENCH_DIR/checks.log
head -c "$SIZE_BYTES" /dev/urandom >"$BENCH_DIR/big.bin"
BIG_SHA=$(sha256sum <"$BENCH_DIR/big.bin" | cut -d' ' -f1)
for ((i = 0; i < SMALL_FILES; i++)); do
  head -c "$SMALL_SIZE" /dev/urandom >"$BENCH_DIR/small/small-$i.bin"
done
(cd "$BENCH_DIR/small" && sha256sum -- *) >"$BENCH_DIR/small.sha256"

# What ferry-bench stor sends: a 1 MiB block of its xorshift pattern (seed 1), repeated and
# cut at SIZE (src/bench/scenarios.rs, pattern and send_repeated). Its SHA-256 checks the
# object Ferry stored, byte for byte.
PATTERN_SHA=$(python3 - "$SIZE_BYTES" <<'EOF'
import hashlib, sys
size, block_len, mask = int(sys.argv[1]), 1 << 20, 0xFFFFFFFF
state = (0x2545F491 ^ ((1 * 0x9E3779B9) & mask)) & mask
block = bytearray(block_len)
for i in range(block_len):
    state ^= (state << 13) & mask
    state ^= state >> 17
    state ^= (state << 5) & mask
    block[i] = state & 0xFF
digest, left = hashlib.sha256(), size
while left > 0:
    digest.update(block[: min(left, block_len)])
    left -= block_len
print(digest.hexdigest())
EOF
)

# --- servers -----------------------------------------------------------------------------
MOTO_PID=""
FERRY_PID=""
stop() { # pid: TERM, up to 10 s, then KILL
  local pid=$1 _
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  stop "$FERRY_PID"
  stop "$MOTO_PID"
  FERRY_PID=""
  MOTO_PID=""
  # The bulk data (GiBs of tmpfs); results and logs stay.
  rm -rf "$BENCH_DIR/big.bin" "$BENCH_DIR/down.bin" "$BENCH_DIR/small" "$BENCH_DIR/small-down" \
    "$BENCH_DIR/moto-tmp"
}
trap cleanup EXIT

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for_port() { # port seconds
  local _
  for _ in $(seq $(($2 * 10))); do
    listening "$1" && return 0
    sleep 0.1
  done
  die "nothing listens on port $1 after $2 s"
}

if [ -z "$MOTO_PORT" ]; then
  MOTO_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
listening "$MOTO_PORT" && die "port $MOTO_PORT (MOTO_PORT) is taken"
listening "$FERRY_PORT" && die "port $FERRY_PORT (FERRY_PORT) is taken"
ENDPOINT=http://127.0.0.1:$MOTO_PORT

log "starting moto on $ENDPOINT"
# Objects past moto's in-memory buffer spill to TMPDIR: tmpfs here, like everything else.
TMPDIR=$BENCH_DIR/moto-tmp moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$MOTO_LOG" 2>&1 &
MOTO_PID=$!
wait_for_port "$MOTO_PORT" 30
s3_put() { # path: a signed, empty PUT (moto refuses some anonymous ones with 403)
  curl -s -o /dev/null -w '%{http_code}' --max-time 30 -X PUT --data-binary '' \
    --aws-sigv4 aws:amz:us-east-1:s3 --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "$ENDPOINT/$1"
}
[ "$(s3_put "$BUCKET")" = 200 ] \
  || die "could not create bucket $BUCKET on moto"

# rclone's remote "moto", from the environment only (no config file).
export RCLONE_CONFIG=/dev/null
export RCLONE_CONFIG_MOTO_TYPE=s3 RCLONE_CONFIG_MOTO_PROVIDER=Other
export RCLONE_CONFIG_MOTO_ENDPOINT=$ENDPOINT RCLONE_CONFIG_MOTO_REGION=us-east-1
export RCLONE_CONFIG_MOTO_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
export RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
RCLONE_FLAGS=(--s3-upload-cutoff "$PART" --s3-chunk-size "$PART"
  --s3-upload-concurrency "$UPLOAD_CONCURRENCY" --s3-no-check-bucket --s3-no-head
  --s3-disable-checksum --ignore-checksum --multi-thread-streams 0 --transfers 1 --checkers 1
  --retries 1 --contimeout 10s --timeout 60s -q)
rclone_() { timeout "$TIMEOUT" rclone "${RCLONE_FLAGS[@]}" "$@"; }

log "starting Ferry on 127.0.0.1:$FERRY_PORT, root s3://$BUCKET/$FERRY_PREFIX"
"$FERRY" serve --bind "127.0.0.1:$FERRY_PORT" --root "s3://$BUCKET/$FERRY_PREFIX" \
  --s3-endpoint "$ENDPOINT" --users config/users.toml --passive-ports "$FERRY_PASSIVE" \
  --log-level warn 2>>"$FERRY_LOG" &
FERRY_PID=$!
wait_for_port "$FERRY_PORT" 30

# A directory in the bucket is a zero-byte marker key ending in "/" (what MKD writes).
put_marker() { # key-prefix
  [ "$(s3_put "$BUCKET/$1/")" = 200 ] \
    || die "could not write the marker $1/"
}
put_marker "$FERRY_HOME_KEY"
put_marker "$FERRY_HOME_KEY/up"
put_marker "$FERRY_HOME_KEY/small"

# --- measuring ---------------------------------------------------------------------------
moto_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f\n", ($14 + $15) / hz }' "/proc/$MOTO_PID/stat"; }
moto_requests() { grep -c '" [1-5][0-9][0-9] ' "$MOTO_LOG" || true; }
load() { cut -d' ' -f1 /proc/loadavg; }

# Waits (at most 10 s) until at most two tasks are runnable, so that a run does not start
# in the middle of someone else's burst. On a shared machine this may not happen: then it
# goes on, and alternating the clients spreads the load over both.
settle() {
  local _
  for _ in $(seq 100); do
    [ "$(awk '/^procs_running/ {print $2}' /proc/stat)" -le 2 ] && return 0
    sleep 0.1
  done
  log "machine busy ($(awk '/^procs_running/ {print $2}' /proc/stat) runnable tasks, load $(load))"
}

# Runs a command within TIMEOUT; sets WALL and CPU (its user + system seconds) and returns
# its status. Its output goes to the rclone log.
measure() {
  local status=0 times TIMEFORMAT='%3R %3U %3S'
  times=$({ time timeout "$TIMEOUT" "$@" >>"$RCLONE_LOG" 2>&1; } 2>&1) || status=$?
  times=$(tail -n1 <<<"$times")
  WALL=$(cut -d' ' -f1 <<<"$times")
  CPU=$(awk '{ print $2 + $3 }' <<<"$times")
  return "$status"
}

record() { # JSON object: appended with the run's context
  jq -c --arg load "$(load)" --argjson rep "$REP" --argjson moto_cpu "$MOTO_CPU" \
    --argjson moto_requests "$MOTO_REQUESTS" \
    '. + {rep: $rep, moto_cpu_s: $moto_cpu, moto_requests: $moto_requests, load: ($load | tonumber)}' \
    >>"$RESULTS"
}

# Starts a run's accounting of moto's CPU and requests; done_ ends it.
begin() { MOTO_CPU0=$(moto_cpu); MOTO_REQ0=$(moto_requests); }
done_() {
  MOTO_CPU=$(awk -v a="$MOTO_CPU0" -v b="$(moto_cpu)" 'BEGIN { printf "%.3f", b - a }')
  MOTO_REQUESTS=$(($(moto_requests) - MOTO_REQ0))
}

fail_json() { # name message: an invalid direct run
  jq -nc --arg name "$1" --arg error "$2" --arg unit "$3" \
    '{scenario: $name, name: $name, label: "rclone", client: "direct", valid: false, figure: null,
      unit: $unit, higher_is_better: true, errors: 1, first_error: $error}'
}

direct_run() { # scenario
  local name=$1 got errors=()
  case $name in
    upload)
      rclone_ deletefile "moto:$BUCKET/$DIRECT_PREFIX/big.bin" >>"$RCLONE_LOG" 2>&1 || true
      begin
      if ! measure rclone "${RCLONE_FLAGS[@]}" copyto "$BENCH_DIR/big.bin" "moto:$BUCKET/$DIRECT_PREFIX/big.bin"; then
        done_; fail_json upload "rclone copyto up failed (see $RCLONE_LOG)" MB/s | record; return
      fi
      done_
      got=$(rclone_ lsjson --no-modtime --no-mimetype "moto:$BUCKET/$DIRECT_PREFIX/big.bin" | jq '.[0].Size // -1') || true
      [ "$got" = "$SIZE_BYTES" ] || errors+=("object holds $got bytes, not $SIZE_BYTES")
      ;;
    download)
      rm -f "$BENCH_DIR/down.bin"
      begin
      if ! measure rclone "${RCLONE_FLAGS[@]}" copyto "moto:$BUCKET/$DIRECT_PREFIX/big.bin" "$BENCH_DIR/down.bin"; then
        done_; fail_json download "rclone copyto down failed (see $RCLONE_LOG)" MB/s | record; return
      fi
      done_
      got=$(sha256sum <"$BENCH_DIR/down.bin" | cut -d' ' -f1)
      [ "$got" = "$BIG_SHA" ] || errors+=("downloaded SHA-256 $got, uploaded $BIG_SHA")
      rm -f "$BENCH_DIR/down.bin"
      ;;
    small-files)
      local up_wall up_cpu count
      rm -rf "$BENCH_DIR/small-down"
      begin
      if ! measure rclone "${RCLONE_FLAGS[@]}" copy --no-check-dest "$BENCH_DIR/small" "moto:$BUCKET/$DIRECT_PREFIX/small"; then
        done_; fail_json small-files "rclone copy up failed (see $RCLONE_LOG)" files/s | record; return
      fi
      up_wall=$WALL up_cpu=$CPU
      if ! measure rclone "${RCLONE_FLAGS[@]}" copy "moto:$BUCKET/$DIRECT_PREFIX/small" "$BENCH_DIR/small-down"; then
        done_; fail_json small-files "rclone copy down failed (see $RCLONE_LOG)" files/s | record; return
      fi
      done_
      WALL=$(awk -v a="$up_wall" -v b="$WALL" 'BEGIN { print a + b }')
      CPU=$(awk -v a="$up_cpu" -v b="$CPU" 'BEGIN { print a + b }')
      count=$(rclone_ lsjson --no-modtime --no-mimetype "moto:$BUCKET/$DIRECT_PREFIX/small" | jq 'map(select(.IsDir | not)) | length') || true
      [ "$count" = "$SMALL_FILES" ] || errors+=("$count objects after the upload, not $SMALL_FILES")
      count=$(find "$BENCH_DIR/small-down" -type f | wc -l)
      [ "$count" = "$SMALL_FILES" ] || errors+=("$count files downloaded, not $SMALL_FILES")
      (cd "$BENCH_DIR/small-down" && sha256sum --quiet -c "$BENCH_DIR/small.sha256") >>"$CHECK_LOG" 2>&1 \
        || errors+=("downloaded files differ (see $CHECK_LOG)")
      # Gone before the next run: moto's listings scan every key in the bucket.
      rclone_ purge "moto:$BUCKET/$DIRECT_PREFIX/small" >>"$RCLONE_LOG" 2>&1 || true
      ;;
  esac
  local unit=MB/s bytes=$SIZE_BYTES operations=1
  if [ "$name" = small-files ]; then unit=files/s bytes=$((2 * SMALL_FILES * SMALL_SIZE)) operations=$((2 * SMALL_FILES)); fi
  jq -nc --arg name "$name" --arg unit "$unit" --argjson wall "$WALL" --argjson cpu "$CPU" \
    --argjson bytes "$bytes" --argjson operations "$operations" \
    --arg error "${errors[0]:-}" --argjson errors "${#errors[@]}" '
    ($errors == 0) as $valid
    | {scenario: $name, name: $name, label: "rclone", client: "direct", valid: $valid,
       figure: (if $valid | not then null
                elif $unit == "MB/s" then ($bytes / 1e6 / $wall * 1000 | round) / 1000
                else ($operations / $wall * 1000 | round) / 1000 end),
       unit: $unit, higher_is_better: true, seconds: $wall, bytes: $bytes,
       expected_bytes: $bytes, operations: $operations, errors: $errors, client_cpu_s: $cpu}
    + (if $valid then {} else {first_error: $error} end)' | record
}

ferry_run() { # scenario
  local name=$1 args line got error=""
  case $name in
    upload)
      rclone_ deletefile "moto:$BUCKET/$FERRY_HOME_KEY/up/big.bin" >>"$RCLONE_LOG" 2>&1 || true
      args=(stor --path up/big.bin --size "$SIZE_BYTES") ;;
    download) args=(retr --path up/big.bin --size "$SIZE_BYTES") ;;
    small-files)
      args=(small-files --files "$SMALL_FILES" --size "$SMALL_SIZE" --dir small) ;;
  esac
  begin
  line=$(timeout $((TIMEOUT + 30)) "$BENCH" --url "$FTP_URL" --server-pid "$FERRY_PID" --label ferry \
    --io-timeout "$IO_TIMEOUT" --time-limit "$TIMEOUT" "${args[@]}") || true
  done_
  [ -n "$line" ] || line=$(jq -nc --arg name "$name" '{valid: false, figure: null, errors: 1,
    first_error: "ferry-bench printed nothing (timed out or crashed)"}')
  # The checks ferry-bench does not do: the bytes themselves.
  if [ "$(jq .valid <<<"$line")" = true ]; then
    case $name in
      upload)
        got=$(rclone_ cat "moto:$BUCKET/$FERRY_HOME_KEY/up/big.bin" 2>>"$CHECK_LOG" | sha256sum | cut -d' ' -f1) || true
        [ "$got" = "$PATTERN_SHA" ] || error="object's SHA-256 $got, ferry-bench sent $PATTERN_SHA" ;;
      download)
        got=$(timeout "$TIMEOUT" curl -sS "${FTP_URL}up/big.bin" 2>>"$CHECK_LOG" | sha256sum | cut -d' ' -f1) || true
        [ "$got" = "$PATTERN_SHA" ] || error="SHA-256 through Ferry $got, ferry-bench sent $PATTERN_SHA" ;;
    esac
  fi
  if [ "$name" = small-files ]; then
    # Gone before the next run (moto's listings scan every key); the directory stays.
    rclone_ delete "moto:$BUCKET/$FERRY_HOME_KEY/small" >>"$RCLONE_LOG" 2>&1 || true
    put_marker "$FERRY_HOME_KEY/small"
  fi
  jq -c --arg name "$name" --arg error "$error" '
    . + {name: $name, label: "ferry", client: "ferry"}
    + (if $error == "" then {} else {valid: false, figure: null, errors: ((.errors // 0) + 1),
                                     first_error: $error} end)' <<<"$line" | record
}

log "$SIZE_LABEL file, $SMALL_FILES small files, $REPS repetition(s); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for REP in $(seq "$REPS"); do
  if [ $((REP % 2)) = 1 ]; then order=(ferry direct); else order=(direct ferry); fi
  for name in upload download small-files; do
    for client in "${order[@]}"; do
      settle
      log "$name, $client, repetition $REP"
      "${client}_run" "$name"
      jq -r 'select(.valid | not) | "s3-compare: INVALID \(.name) \(.label) rep \(.rep): \(.first_error)"' \
        <(tail -n1 "$RESULTS") >&2
    done
  done
done
log "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
if grep -q . "$FERRY_LOG"; then
  log "Ferry logged $(grep -c . "$FERRY_LOG") warning/error line(s): $FERRY_LOG"
fi

# --- table -------------------------------------------------------------------------------
jq -s -r --arg reps "$REPS" --arg size "$SIZE_LABEL" --arg files "$SMALL_FILES" '
  def median: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
  def fmt(digits): if . == null then "n/a" else (. * pow(10; digits) | round) / pow(10; digits) | tostring end;
  def valid_median(f): map(select(.valid) | f) | median;
  # CPU seconds per GiB moved, or milliseconds per file.
  def per_unit(cpu): if .unit == "MB/s" then cpu / (.bytes / 1073741824) else cpu * 1000 / .operations end;
  def title: {upload: "upload \($size)", download: "download \($size)",
               "small-files": "\($files) small files (4 KiB) up, then down"}[.];
  (map(.load) | median) as $load
  | "| scenario | unit | direct S3 client (rclone) | Ferry on S3 | Ferry / direct (target >= 0.8x) | CPU: rclone + moto | CPU: Ferry + moto | S3 requests: direct / Ferry | invalid runs |",
    "|---|---|---|---|---|---|---|---|---|",
    (["upload", "download", "small-files"][] as $name
      | map(select(.name == $name)) as $runs
      | ($runs | map(select(.client == "direct"))) as $d
      | ($runs | map(select(.client == "ferry"))) as $f
      | ($d | valid_median(.figure)) as $dm
      | ($f | valid_median(.figure)) as $fm
      | ($runs[0].unit // "") as $unit
      | (if $unit == "MB/s" then " s/GiB" else " ms/file" end) as $cpu_unit
      | "| \($name | title) | \($unit) | \($dm | fmt(1)) | \($fm | fmt(1)) | \(
          if $dm == null or $fm == null or $dm == 0 then "n/a" else ($fm / $dm | fmt(2)) + "x" end) | \(
          ($d | valid_median(per_unit(.client_cpu_s)) | fmt(2))) + \(
          ($d | valid_median(per_unit(.moto_cpu_s)) | fmt(2)))\($cpu_unit) | \(
          ($f | valid_median(per_unit(.server_cpu_s)) | fmt(2))) + \(
          ($f | valid_median(per_unit(.moto_cpu_s)) | fmt(2)))\($cpu_unit) | \(
          $d | valid_median(.moto_requests) | fmt(0)) / \($f | valid_median(.moto_requests) | fmt(0)) | \(
          $runs | map(select(.valid | not)) | length) |"),
    "",
    "medians of \($reps) repetition(s), alternating Ferry and rclone against one moto server on loopback; median 1-minute load average during the runs: \($load | fmt(2)); ratio > 1 means Ferry is faster than the direct client"
' "$RESULTS"
log "raw results: $RESULTS"
