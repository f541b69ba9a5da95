#!/usr/bin/env bash
# Benchmarks Ferry against vsftpd on loopback with ferry-bench and prints a table of medians.
#
#   bench/compare.sh              # every scenario, 3 repetitions (needs root: apt, a system user)
#   REPS=1 QUICK=1 bench/compare.sh   # small sizes, to check the setup in a minute
#
# Both servers serve the same files (hard links on one filesystem) to one account each, with
# the same limits, on loopback, logging each transfer, and without banning an address after
# failed logins (vsftpd has no such ban; the login-flood scenario needs them to fail freely).
# Scenarios alternate between the servers (the order flips every repetition) so that load
# from other processes hits both alike. Results: $BENCH_DIR/results.jsonl (one JSON line per
# run) and the table on stdout.
#
# Environment: REPS (3), BENCH_DIR (/dev/shm/ferry-bench: tmpfs, so the disk is not measured),
# FERRY_PORT (2621), VSFTPD_PORT (2622), QUICK (small sizes), VSFTPD_IDLE_10K (1 to also hold
# 10,000 vsftpd sessions: 20,000 processes and minutes of password hashing), ONLY (scenario
# names separated by spaces, e.g. ONLY="retr stor": run just those).
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${REPS:-3}
BENCH_DIR=${BENCH_DIR:-/dev/shm/ferry-bench}
FERRY_PORT=${FERRY_PORT:-2621}
VSFTPD_PORT=${VSFTPD_PORT:-2622}
QUICK=${QUICK:-}
VSFTPD_IDLE_10K=${VSFTPD_IDLE_10K:-}
ONLY=${ONLY:-}
# Passive ranges below the ephemeral range (32768+), so client ports never collide with them.
FERRY_PASSIVE=20000-25999
VSFTPD_PASSIVE_MIN=26000
VSFTPD_PASSIVE_MAX=31999
BENCH_USER=ferrybench
# Generated fresh each run; both servers get the same one.
PASSWORD="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# Sessions beyond the largest scenario (10,000 idle).
MAX_SESSIONS=12000

if [ -n "$QUICK" ]; then
  BIG=64MiB; MEDIUM=1MiB; MANY=50; SMALL_FILES=100; LIST_ENTRIES=1000; IDLE_BIG=2000
else
  BIG=1GiB; MEDIUM=10MiB; MANY=500; SMALL_FILES=500; LIST_ENTRIES=10000; IDLE_BIG=10000
fi

log() { echo "compare: $*" >&2; }

# --- tools -------------------------------------------------------------------------------
need=()
command -v vsftpd >/dev/null 2>&1 || [ -x /usr/sbin/vsftpd ] || need+=(vsftpd)
command -v jq >/dev/null 2>&1 || need+=(jq)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
VSFTPD=$(command -v vsftpd || echo /usr/sbin/vsftpd)

log "building Ferry (release)"
cargo build --release --locked --bin ferry --bin ferry-bench >&2
TARGET=${CARGO_TARGET_DIR:-target}
FERRY=$TARGET/release/ferry
BENCH=$TARGET/release/ferry-bench

# 10,000 sessions need 10,000+ descriptors in the client and the server.
ulimit -n "$(ulimit -Hn)"

# --- data --------------------------------------------------------------------------------
log "preparing $BENCH_DIR"
rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR/ferry-root/bench" "$BENCH_DIR/vsftpd-home" /var/run/vsftpd/empty
FERRY_HOME=$BENCH_DIR/ferry-root/bench
VSFTPD_HOME=$BENCH_DIR/vsftpd-home
head -c "$(numfmt --from=iec-i "${BIG%B}")" /dev/urandom >"$FERRY_HOME/big.bin"
head -c "$(numfmt --from=iec-i "${MEDIUM%B}")" /dev/urandom >"$FERRY_HOME/medium.bin"
for home in "$FERRY_HOME" "$VSFTPD_HOME"; do
  mkdir -p "$home/up" "$home/small" "$home/list"
  (cd "$home/list" && seq -f "file-%05g.txt" 0 $((LIST_ENTRIES - 1)) | xargs touch)
done
# Hard links: the same bytes (and page cache) for both servers.
ln "$FERRY_HOME/big.bin" "$VSFTPD_HOME/big.bin"
ln "$FERRY_HOME/medium.bin" "$VSFTPD_HOME/medium.bin"

# vsftpd logs in system users: a dedicated one, homed in the data directory.
if ! id "$BENCH_USER" >/dev/null 2>&1; then
  useradd --system --shell /bin/sh --no-create-home --home-dir "$VSFTPD_HOME" "$BENCH_USER"
fi
usermod --home "$VSFTPD_HOME" "$BENCH_USER"
echo "$BENCH_USER:$PASSWORD" | chpasswd
chown -R "$BENCH_USER" "$VSFTPD_HOME"

echo "$PASSWORD" | "$FERRY" user add "$BENCH_USER" --home bench \
  --users "$BENCH_DIR/ferry-users.toml" --password-stdin >/dev/null

# vsftpd as Debian ships it (local users, logging of transfers), with Ferry's limits.
cat >"$BENCH_DIR/vsftpd.conf" <<EOF
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$VSFTPD_PORT
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
chroot_local_user=YES
allow_writeable_chroot=YES
pasv_enable=YES
pasv_min_port=$VSFTPD_PASSIVE_MIN
pasv_max_port=$VSFTPD_PASSIVE_MAX
max_clients=$MAX_SESSIONS
max_per_ip=$MAX_SESSIONS
idle_session_timeout=600
xferlog_enable=YES
vsftpd_log_file=$BENCH_DIR/vsftpd.log
dirmessage_enable=NO
secure_chroot_dir=/var/run/vsftpd/empty
pam_service_name=vsftpd
EOF

# --- servers -----------------------------------------------------------------------------
FERRY_PID=""
VSFTPD_PID=""
# Each server runs under `ferry-bench reap`, which adopts what the server orphans (vsftpd's
# session processes), so that all of a server's CPU time is counted under the reaper's id.
start_ferry() {
  "$BENCH" reap -- "$FERRY" serve --bind "127.0.0.1:$FERRY_PORT" --root "$BENCH_DIR/ferry-root" \
    --users "$BENCH_DIR/ferry-users.toml" --passive-ports "$FERRY_PASSIVE" \
    --max-sessions "$MAX_SESSIONS" --max-sessions-per-ip "$MAX_SESSIONS" \
    --idle-timeout 600 --failed-login-max-attempts 0 \
    --log-level info 2>>"$BENCH_DIR/ferry.log" &
  FERRY_PID=$!
}
start_vsftpd() {
  "$BENCH" reap -- "$VSFTPD" "$BENCH_DIR/vsftpd.conf" 2>>"$BENCH_DIR/vsftpd.err" &
  VSFTPD_PID=$!
}
stop_servers() {
  local pid
  for pid in $FERRY_PID $VSFTPD_PID; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  FERRY_PID=""
  VSFTPD_PID=""
  return 0
}
wait_for_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  log "nothing listens on port $1"
  return 1
}
restart_servers() {
  stop_servers
  start_ferry
  start_vsftpd
  wait_for_port "$FERRY_PORT"
  wait_for_port "$VSFTPD_PORT"
}
trap stop_servers EXIT

# --- scenarios ---------------------------------------------------------------------------
# name|arguments; "fresh" scenarios restart both servers first so that memory is measured
# from a clean start.
SCENARIOS=(
  "retr|retr --path big.bin --size $BIG"
  "stor|stor --path up/big.bin --size $BIG"
  "retr-many|retr-many --sessions $MANY --path medium.bin --size $MEDIUM"
  "stor-many|stor-many --sessions $MANY --dir up --size $MEDIUM"
  "small-files|small-files --files $SMALL_FILES --size 4KiB --dir small"
  "list|list --path list --entries $LIST_ENTRIES --repeat 5"
  "login|login --workers 32 --seconds 10 --count 5000"
  "retr-during-login-flood|retr --path big.bin --size $BIG"
  "idle-1000|idle --sessions 1000"
  "idle-$IDLE_BIG|idle --sessions $IDLE_BIG"
)
RESULTS=$BENCH_DIR/results.jsonl
: >"$RESULTS"

run_one() { # server scenario-name arguments...
  local server=$1 name=$2
  shift 2
  local url pid
  if [ "$server" = ferry ]; then
    url="ftp://$BENCH_USER:$PASSWORD@127.0.0.1:$FERRY_PORT/"
    pid=$FERRY_PID
  else
    url="ftp://$BENCH_USER:$PASSWORD@127.0.0.1:$VSFTPD_PORT/"
    pid=$VSFTPD_PID
  fi
  if [ "$server" = vsftpd ] && [ "$name" = idle-10000 ] && [ -z "$VSFTPD_IDLE_10K" ]; then
    return 0
  fi
  # A flood of logins with a wrong password (every one costs a full password hash) runs
  # while this download does: hashing must not take the CPU from transfers.
  local flood=""
  if [ "$name" = retr-during-login-flood ]; then
    "$BENCH" --url "${url/:$PASSWORD@/:wrong-password@}" --label flood \
      login --workers 32 --seconds 12 --count 100000 >/dev/null &
    flood=$!
    sleep 2
  fi
  # shellcheck disable=SC2086 # the arguments are words on purpose
  "$BENCH" --url "$url" --server-pid "$pid" --label "$server" $* \
    | jq -c --arg name "$name" --arg load "$(cut -d' ' -f1 /proc/loadavg)" \
      '. + {name: $name, load: ($load | tonumber)}' >>"$RESULTS" || true
  if [ -n "$flood" ]; then wait "$flood" || true; fi
  # Uploads are not kept: 500 × 10 MiB per run would fill the tmpfs.
  rm -f "$FERRY_HOME"/up/* "$VSFTPD_HOME"/up/* "$FERRY_HOME"/small/* "$VSFTPD_HOME"/small/*
}

# Waits (at most 30 s) until the previous run's traces are gone: vsftpd back to its one
# listening process (its session processes take a second or two to exit after hundreds of
# sessions) and at most two runnable tasks on the machine. Without this, the scenario after
# retr-many or stor-many ran beside 500 exiting vsftpd processes, whichever server it measured.
settle() {
  local _
  for _ in $(seq 300); do
    if [ "$(pgrep -c -x vsftpd || true)" -le 1 ] \
      && [ "$(awk '/^procs_running/ {print $2}' /proc/stat)" -le 2 ]; then
      return 0
    fi
    sleep 0.1
  done
  log "machine still busy after 30 s: $(awk '/^procs_running/ {print $2}' /proc/stat) runnable, $(pgrep -c -x vsftpd || true) vsftpd processes"
}

log "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for rep in $(seq "$REPS"); do
  if [ $((rep % 2)) -eq 1 ]; then order=(ferry vsftpd); else order=(vsftpd ferry); fi
  settle
  log "raw loopback, repetition $rep"
  "$BENCH" --label raw raw --size "$BIG" \
    | jq -c --arg load "$(cut -d' ' -f1 /proc/loadavg)" \
      '. + {name: "raw", load: ($load | tonumber)}' >>"$RESULTS" || true
  for entry in "${SCENARIOS[@]}"; do
    name=${entry%%|*}
    arguments=${entry#*|}
    if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then continue; fi
    case $name in idle-*) restart_servers ;; *) [ -n "$FERRY_PID" ] || restart_servers ;; esac
    for server in "${order[@]}"; do
      settle
      log "$name on $server, repetition $rep"
      run_one "$server" "$name" $arguments
    done
  done
done
log "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- table -------------------------------------------------------------------------------
jq -s -r --arg reps "$REPS" '
  def median: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
  def fmt(digits): if . == null then "n/a" else (. * pow(10; digits) | round) / pow(10; digits) | tostring end;
  (map(select(.name == "raw" and .valid)) | map(.figure) | median) as $raw
  | (map(.load) | median) as $load
  | group_by(.name) | map(select(.[0].name != "raw")) as $groups
  | "| scenario | unit | vsftpd | Ferry | Ferry vs vsftpd | server CPU s/GiB vsftpd / Ferry | invalid runs |",
    "|---|---|---|---|---|---|---|",
    ($groups[] as $g
      | ($g | map(select(.label == "vsftpd"))) as $v
      | ($g | map(select(.label == "ferry"))) as $f
      | ($v | map(select(.valid) | .figure) | median) as $vm
      | ($f | map(select(.valid) | .figure) | median) as $fm
      | ($v | map(.server_cpu_s_per_gib // empty) | median) as $vc
      | ($f | map(.server_cpu_s_per_gib // empty) | median) as $fc
      | (if $vm == null or $fm == null or $vm == 0 or $fm == 0 then null
         elif $g[0].higher_is_better then $fm / $vm else $vm / $fm end) as $ratio
      | "| \($g[0].name) | \($g[0].unit) | \($vm | fmt(1)) | \($fm | fmt(1)) | \(if $ratio == null then "n/a" else ($ratio | fmt(2)) + "x" end) | \(if ($g[0].unit == "MB/s") then "\($vc | fmt(2)) / \($fc | fmt(2))" else "" end) | \($g | map(select(.valid | not)) | length) |"),
    "",
    "raw loopback TCP (ceiling): \($raw | fmt(1)) MB/s; Ferry RETR/STOR as % of it: \(
      [$groups[] | select(.[0].name == "retr" or .[0].name == "stor")
       | "\(.[0].name) \((map(select(.label == "ferry" and .valid) | .figure) | median) as $m | if $m == null or $raw == null then "n/a" else ($m / $raw * 100 | round | tostring) + "%" end)"]
      | join(", "))",
    "download during a flood of failed logins, as % of the same server'"'"'s download alone: \(
      ["vsftpd", "ferry"] | map(. as $server
        | ([$groups[] | select(.[0].name == "retr-during-login-flood")[] | select(.label == $server and .valid) | .figure] | median) as $flood
        | ([$groups[] | select(.[0].name == "retr")[] | select(.label == $server and .valid) | .figure] | median) as $alone
        | "\($server) \(if $flood == null or $alone == null then "n/a" else ($flood / $alone * 100 | round | tostring) + "%" end)")
      | join(", "))",
    "medians of \($reps) repetitions; median 1-minute load average during the runs: \($load | fmt(2)); ratio > 1 means Ferry is better (faster, or less memory)"
' "$RESULTS"
