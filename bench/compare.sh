#!/usr/bin/env bash
# Benchmarks Ferry against two peers, vsftpd and Pure-FTPd, on loopback with ferry-bench and
# prints a table of medians, with Ferry's ratio to the best peer in each scenario.
#
#   bench/compare.sh              # every scenario, 3 repetitions (needs root: apt, system users)
#   REPS=1 QUICK=1 bench/compare.sh   # small sizes, to check the setup in a few minutes
#
# The servers serve the same files (hard links on one filesystem) with the same limits, on
# loopback, logging each transfer, and without banning an address after failed logins
# (vsftpd has no such ban; the login-flood scenario needs them to fail freely). Each has one
# account for most scenarios and COLD_ACCOUNTS more (fbcold0, fbcold1...) for the cold-login
# scenario and the concurrent scenarios spread over 100 accounts. Scenarios alternate between
# the servers (the order rotates every repetition) so that load from other processes hits
# them alike. Results: $BENCH_DIR/results.jsonl (one JSON line per run) and the table on
# stdout.
#
# Pure-FTPd: Debian's package conflicts with vsftpd, so it is not installed: `apt-get
# download` and `dpkg -x` unpack it into $BENCH_DIR/pure-ftpd, and it runs from there with
# virtual users (puredb) whose password hashes are Ferry's own argon2id hashes of the same
# accounts, verified by libsodium: every server pays the same hash per cold login except
# vsftpd, which checks system users' crypt(3) hashes (yescrypt on Debian 12).
#
# Data: on the root filesystem's disk (BENCH_DIR, /var/tmp/ferry-bench), the same directory
# tree for every server. Uploads go to a new directory per run and are truncated afterwards
# rather than deleted: on an ext4 without a journal (this guest's), each new inode is checked
# against those deleted in the last 60-360 s, so deleting 500 files made the next 500 creations
# several times dearer for whichever server came next. Everything is deleted at the start of
# the next run, which then waits until such deletions are 90 s old.
#
# Environment: REPS (3), BENCH_DIR (/var/tmp/ferry-bench; /dev/shm/... to leave the disk out),
# FERRY_PORT (2621), VSFTPD_PORT (2622), PUREFTPD_PORT (2623), FLOOR_PORT (2624: the async
# floor, below), QUICK (small sizes),
# COLD_ACCOUNTS (1000; 100 with QUICK), PEERS_IDLE_10K (1 to also hold 10,000 sessions of each
# peer: 20,000 processes and minutes of password hashing), ONLY (scenario names separated by
# spaces, e.g. ONLY="retr stor": run just those), NO_BUILD (1: use the release binaries already
# built, e.g. while a test build holds cargo's lock), SETTLE_LIMIT (30: seconds to wait before
# each run for the machine to quiet down; on a machine others build on it never does).
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${REPS:-3}
BENCH_DIR=${BENCH_DIR:-/var/tmp/ferry-bench}
FERRY_PORT=${FERRY_PORT:-2621}
VSFTPD_PORT=${VSFTPD_PORT:-2622}
PUREFTPD_PORT=${PUREFTPD_PORT:-2623}
FLOOR_PORT=${FLOOR_PORT:-2624}
QUICK=${QUICK:-}
PEERS_IDLE_10K=${PEERS_IDLE_10K:-${VSFTPD_IDLE_10K:-}}
ONLY=${ONLY:-}
SETTLE_LIMIT=${SETTLE_LIMIT:-30}
# Passive ranges below the ephemeral range (32768+), so client ports never collide with them.
FERRY_PASSIVE=20000-25999
VSFTPD_PASSIVE_MIN=26000
VSFTPD_PASSIVE_MAX=31999
PUREFTPD_PASSIVE=14000:19999
BENCH_USER=ferrybench
# The cold-login accounts are COLD_PREFIX0, COLD_PREFIX1...; the system users for vsftpd too.
COLD_PREFIX=fbcold
PEERS=(vsftpd pure-ftpd)
# Generated fresh each run; both servers get the same one.
PASSWORD="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# Sessions beyond the largest scenario (10,000 idle).
MAX_SESSIONS=12000

if [ -n "$QUICK" ]; then
  BIG=64MiB; MEDIUM=1MiB; MANY=50; SMALL_FILES=100; LIST_ENTRIES=1000; IDLE_BIG=2000
  COLD_ACCOUNTS=${COLD_ACCOUNTS:-100}
else
  BIG=1GiB; MEDIUM=10MiB; MANY=500; SMALL_FILES=500; LIST_ENTRIES=10000; IDLE_BIG=10000
  COLD_ACCOUNTS=${COLD_ACCOUNTS:-1000}
fi
# The concurrent scenarios spread over 100 accounts use the first 100 cold ones.
if [ "$COLD_ACCOUNTS" -lt 100 ]; then
  echo "compare: COLD_ACCOUNTS must be at least 100" >&2
  exit 1
fi

log() { echo "compare: $*" >&2; }

# --- tools -------------------------------------------------------------------------------
need=()
command -v vsftpd >/dev/null 2>&1 || [ -x /usr/sbin/vsftpd ] || need+=(vsftpd)
command -v jq >/dev/null 2>&1 || need+=(jq)
export DEBIAN_FRONTEND=noninteractive
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
VSFTPD=$(command -v vsftpd || echo /usr/sbin/vsftpd)

# Pure-FTPd unpacked, not installed (its package conflicts with vsftpd's); kept between runs
# outside BENCH_DIR, which each run empties.
PUREFTPD_DIR=${PUREFTPD_DIR:-/var/cache/ferry-bench/pure-ftpd}
if [ ! -x "$PUREFTPD_DIR/usr/sbin/pure-ftpd" ]; then
  log "unpacking pure-ftpd into $PUREFTPD_DIR"
  mkdir -p "$PUREFTPD_DIR"
  (cd "$PUREFTPD_DIR" && { apt-get download pure-ftpd 2>/dev/null \
    || { apt-get update -qq && apt-get download pure-ftpd; }; } && dpkg -x pure-ftpd_*.deb .)
fi
PUREFTPD=$PUREFTPD_DIR/usr/sbin/pure-ftpd
PURE_PW=$PUREFTPD_DIR/usr/bin/pure-pw

if [ -z "${NO_BUILD:-}" ]; then
  log "building Ferry (release)"
  cargo build --release --locked --bin ferry --bin ferry-bench >&2
fi
TARGET=${CARGO_TARGET_DIR:-target}
FERRY=$TARGET/release/ferry
BENCH=$TARGET/release/ferry-bench

# 10,000 sessions need 10,000+ descriptors in the client and the server.
ulimit -n "$(ulimit -Hn)"

# --- data --------------------------------------------------------------------------------
log "preparing $BENCH_DIR"
rm -rf "$BENCH_DIR"
DELETED_AT=$(date +%s)
mkdir -p "$BENCH_DIR/ferry-root/bench" "$BENCH_DIR/vsftpd-home" "$BENCH_DIR/pure-ftpd-home" \
  /var/run/vsftpd/empty
FERRY_HOME=$BENCH_DIR/ferry-root/bench
VSFTPD_HOME=$BENCH_DIR/vsftpd-home
PUREFTPD_HOME=$BENCH_DIR/pure-ftpd-home
head -c "$(numfmt --from=iec-i "${BIG%B}")" /dev/urandom >"$FERRY_HOME/big.bin"
head -c "$(numfmt --from=iec-i "${MEDIUM%B}")" /dev/urandom >"$FERRY_HOME/medium.bin"
for home in "$FERRY_HOME" "$VSFTPD_HOME" "$PUREFTPD_HOME"; do
  mkdir -p "$home/up" "$home/small" "$home/list"
  (cd "$home/list" && seq -f "file-%05g.txt" 0 $((LIST_ENTRIES - 1)) | xargs touch)
done
# Hard links: the same bytes (and page cache) for every server.
for home in "$VSFTPD_HOME" "$PUREFTPD_HOME"; do
  ln "$FERRY_HOME/big.bin" "$home/big.bin"
  ln "$FERRY_HOME/medium.bin" "$home/medium.bin"
done

# vsftpd logs in system users: a dedicated one, homed in the data directory.
if ! id "$BENCH_USER" >/dev/null 2>&1; then
  useradd --system --shell /bin/sh --no-create-home --home-dir "$VSFTPD_HOME" "$BENCH_USER"
fi
usermod --home "$VSFTPD_HOME" "$BENCH_USER"
echo "$BENCH_USER:$PASSWORD" | chpasswd
chown -R "$BENCH_USER" "$VSFTPD_HOME" "$PUREFTPD_HOME"

echo "$PASSWORD" | "$FERRY" user add "$BENCH_USER" --home bench \
  --users "$BENCH_DIR/ferry-users.toml" --password-stdin >/dev/null

# The cold accounts, all homed in the bench data. Ferry: one argon2id hash each (its own
# salt, ~50 ms of CPU), made by `ferry user add` in one shard per core, the shards then
# joined (a users file is a list of [users.NAME] tables).
log "making $COLD_ACCOUNTS accounts on every server (Ferry hashes each password: ~1 minute)"
COLD_SHARDS=$(nproc)
make_ferry_shard() { # shard
  local i
  for ((i = $1; i < COLD_ACCOUNTS; i += COLD_SHARDS)); do
    echo "$PASSWORD" | "$FERRY" user add "$COLD_PREFIX$i" --home bench \
      --users "$BENCH_DIR/ferry-cold-$1.toml" --password-stdin >/dev/null
  done
}
shard_pids=()
for ((shard = 0; shard < COLD_SHARDS; shard++)); do
  make_ferry_shard "$shard" &
  shard_pids+=($!)
done
for pid in "${shard_pids[@]}"; do wait "$pid"; done
cat "$BENCH_DIR"/ferry-cold-*.toml >>"$BENCH_DIR/ferry-users.toml"
rm -f "$BENCH_DIR"/ferry-cold-*.toml

# Pure-FTPd: virtual users (puredb) mapped to the bench system user, with Ferry's hashes of
# the same passwords (libsodium verifies any argon2id string). pure-pw's own hashes cost
# ~1 s of CPU each (argon2id, 8 MiB, 255 passes): 1,000 of them would take a quarter hour,
# and would measure a setting rather than a server.
bench_uid=$(id -u "$BENCH_USER")
bench_gid=$(id -g "$BENCH_USER")
awk -F' = ' -v uid="$bench_uid" -v gid="$bench_gid" -v home="$PUREFTPD_HOME" '
  /^\[users\./ { name = $0; sub(/^\[users\./, "", name); sub(/\]$/, "", name) }
  $1 == "password" { hash = $2; gsub(/"/, "", hash)
                     print name ":" hash ":" uid ":" gid "::" home "/./::::::::::::" }
' "$BENCH_DIR/ferry-users.toml" >"$BENCH_DIR/pure-ftpd.passwd"
if [ "$(wc -l <"$BENCH_DIR/pure-ftpd.passwd")" -ne $((COLD_ACCOUNTS + 1)) ]; then
  log "could not read the hashes back from $BENCH_DIR/ferry-users.toml"
  exit 1
fi
"$PURE_PW" mkdb "$BENCH_DIR/pure-ftpd.pdb" -f "$BENCH_DIR/pure-ftpd.passwd"

# vsftpd: system users, made in one batch by newusers and removed when the script exits.
bench_group=$(id -gn "$BENCH_USER")
remove_cold_users() {
  local i
  for ((i = 0; i < COLD_ACCOUNTS; i++)); do
    if id "$COLD_PREFIX$i" >/dev/null 2>&1; then userdel "$COLD_PREFIX$i" 2>/dev/null || true; fi
  done
}
remove_cold_users
trap remove_cold_users EXIT
for ((i = 0; i < COLD_ACCOUNTS; i++)); do
  echo "$COLD_PREFIX$i:$PASSWORD::$bench_group:ferry-bench:$VSFTPD_HOME:/bin/sh"
done | newusers
# Each cold account uploads as itself in the scenarios spread over accounts.
chmod 0777 "$VSFTPD_HOME/up"

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
PUREFTPD_PID=""
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
# Pure-FTPd in the foreground, virtual users only (-l puredb), no anonymous (-E), everyone
# chrooted (-A), Ferry's session limits (-c, -C) and idle timeout (-I counts minutes: 10 is
# the others' 600 s), no reverse DNS (-H), transfers logged
# (-O clf:...) and no syslog (-f none), as the others log to files.
start_pureftpd() {
  "$BENCH" reap -- "$PUREFTPD" -S "127.0.0.1,$PUREFTPD_PORT" -p "$PUREFTPD_PASSIVE" \
    -l "puredb:$BENCH_DIR/pure-ftpd.pdb" -E -A -H -u 1 \
    -c "$MAX_SESSIONS" -C "$MAX_SESSIONS" -I 10 \
    -O "clf:$BENCH_DIR/pure-ftpd-transfers.log" -f none 2>>"$BENCH_DIR/pure-ftpd.err" &
  PUREFTPD_PID=$!
}
stop_servers() {
  local pid
  for pid in $FERRY_PID $VSFTPD_PID $PUREFTPD_PID; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  FERRY_PID=""
  VSFTPD_PID=""
  PUREFTPD_PID=""
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
  start_pureftpd
  wait_for_port "$FERRY_PORT"
  wait_for_port "$VSFTPD_PORT"
  wait_for_port "$PUREFTPD_PORT"
}
trap 'stop_servers; remove_cold_users' EXIT

# --- scenarios ---------------------------------------------------------------------------
# name|arguments. idle-* scenarios restart the servers first so that memory is measured from
# a clean start; logins-cold, retr-during-cold-logins and *-100-accounts too, so that Ferry
# has verified none of those accounts' logins before (it remembers successes for 10 minutes),
# and they log in as the cold accounts. @W is the run's own upload directory.
SCENARIOS=(
  "retr|retr --path big.bin --size $BIG"
  "stor|stor --path @W/up/big.bin --size $BIG"
  "retr-many|retr-many --sessions $MANY --path medium.bin --size $MEDIUM"
  "retr-many-100-accounts|retr-many --sessions $MANY --accounts 100 --path medium.bin --size $MEDIUM"
  "stor-many|stor-many --sessions $MANY --dir @W/up --size $MEDIUM"
  "stor-many-100-accounts|stor-many --sessions $MANY --accounts 100 --dir @W/up --size $MEDIUM"
  "small-files|small-files --files $SMALL_FILES --size 4KiB --dir @W/small"
  "list|list --path list --entries $LIST_ENTRIES --repeat 5"
  "login|login --workers 32 --seconds 10 --count 5000"
  "logins-cold|logins-cold --accounts $COLD_ACCOUNTS --workers 32"
  "retr-during-login-flood|retr --path big.bin --size $BIG"
  "retr-during-cold-logins|retr --path big.bin --size $BIG"
  "idle-1000|idle --sessions 1000"
  "idle-$IDLE_BIG|idle --sessions $IDLE_BIG"
)
RESULTS=$BENCH_DIR/results.jsonl
: >"$RESULTS"

run_one() { # server scenario-name arguments...
  local server=$1 name=$2
  shift 2
  local port pid user=$BENCH_USER
  case $server in
    ferry) port=$FERRY_PORT pid=$FERRY_PID ;;
    vsftpd) port=$VSFTPD_PORT pid=$VSFTPD_PID ;;
    pure-ftpd) port=$PUREFTPD_PORT pid=$PUREFTPD_PID ;;
  esac
  case $name in logins-cold | *-accounts) user=$COLD_PREFIX ;; esac
  local url="ftp://$user:$PASSWORD@127.0.0.1:$port/"
  # A new upload directory per run (see "Data" above), writable by every account.
  RUN=$((RUN + 1))
  local work=w$RUN home
  case $server in
    ferry) home=$FERRY_HOME ;;
    vsftpd) home=$VSFTPD_HOME ;;
    pure-ftpd) home=$PUREFTPD_HOME ;;
  esac
  mkdir -p "$home/$work/up" "$home/$work/small"
  chown -R "$BENCH_USER" "$home/$work"
  chmod 0777 "$home/$work/up" "$home/$work/small"
  local run_arguments=() argument
  for argument in "$@"; do run_arguments+=("${argument//@W/$work}"); done
  # The file a download reads comes from the page cache for every server: on a machine whose
  # cache others fill (builds), part of it may have been evicted since the last run.
  case $name in
    retr-many*) cat "$FERRY_HOME/medium.bin" >/dev/null ;;
    retr*) cat "$FERRY_HOME/big.bin" >/dev/null ;;
  esac
  if [ "$server" != ferry ] && [ "$name" = idle-10000 ] && [ -z "$PEERS_IDLE_10K" ]; then
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
  # Logins as each cold account once (every one pays its password hash; the servers were just
  # restarted) while this download runs: their rate is a result of its own.
  if [ "$name" = retr-during-cold-logins ]; then
    "$BENCH" --url "ftp://$COLD_PREFIX:$PASSWORD@127.0.0.1:$port/" --server-pid "$pid" \
      --label "$server" logins-cold --accounts "$COLD_ACCOUNTS" --workers 32 \
      | jq -c --arg load "$(cut -d' ' -f1 /proc/loadavg)" \
        '. + {name: "logins-cold-during-retr", load: ($load | tonumber)}' >>"$RESULTS" &
    flood=$!
    sleep 2
  fi
  "$BENCH" --url "$url" --server-pid "$pid" --label "$server" "${run_arguments[@]}" \
    | jq -c --arg name "$name" --arg load "$(cut -d' ' -f1 /proc/loadavg)" \
      '. + {name: $name, load: ($load | tonumber)}' >>"$RESULTS" || true
  if [ -n "$flood" ]; then wait "$flood" || true; fi
  # Uploads are emptied, not deleted (see "Data" above): 500 × 10 MiB per run would fill the
  # disk.
  find "$home/$work" -type f -exec truncate -s 0 {} +
}

# Waits (at most SETTLE_LIMIT s) until the previous run's traces are gone: vsftpd and Pure-FTPd back
# to their one listening process (their session processes take a second or two to exit
# after hundreds of sessions) and at most two runnable tasks on the machine. Without this,
# the scenario after retr-many or stor-many ran beside 500 exiting session processes,
# whichever server it measured.
settle() {
  local _
  for _ in $(seq $((SETTLE_LIMIT * 10))); do
    if [ "$(pgrep -c -x vsftpd || true)" -le 1 ] && [ "$(pgrep -c -x pure-ftpd || true)" -le 1 ] \
      && [ "$(awk '/^procs_running/ {print $2}' /proc/stat)" -le 2 ]; then
      return 0
    fi
    sleep 0.1
  done
  log "machine still busy after $SETTLE_LIMIT s: $(awk '/^procs_running/ {print $2}' /proc/stat) runnable, $(pgrep -c -x vsftpd || true) vsftpd and $(pgrep -c -x pure-ftpd || true) pure-ftpd processes"
}

# small-files also runs against `ferry-bench floor`: the least an async server on Ferry's
# runtime does per small file (one task per session, no checks, no logging, files written in
# place), on the same disk. It is not a peer: it shows what tokio and the kernel cost alone.
run_floor() {
  RUN=$((RUN + 1))
  local home=$BENCH_DIR/floor-home work=w$RUN pid
  mkdir -p "$home/$work/small"
  "$BENCH" floor --bind "127.0.0.1:$FLOOR_PORT" --root "$home" 2>>"$BENCH_DIR/floor.err" &
  pid=$!
  wait_for_port "$FLOOR_PORT"
  "$BENCH" --url "ftp://floor:floor@127.0.0.1:$FLOOR_PORT/" --server-pid "$pid" --label floor \
    small-files --files "$SMALL_FILES" --size 4KiB --dir "$work/small" \
    | jq -c --arg load "$(cut -d' ' -f1 /proc/loadavg)" \
      '. + {name: "small-files", load: ($load | tonumber)}' >>"$RESULTS" || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  find "$home/$work" -type f -exec truncate -s 0 {} +
}

RUN=0
# Inodes deleted in the last minute or so make every creation dearer (see "Data" above).
while [ $(($(date +%s) - DELETED_AT)) -lt 90 ]; do sleep 1; done
log "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for rep in $(seq "$REPS"); do
  # The order rotates: each server goes first, in the middle and last.
  servers=(ferry "${PEERS[@]}")
  shift_by=$(((rep - 1) % ${#servers[@]}))
  order=("${servers[@]:shift_by}" "${servers[@]:0:shift_by}")
  settle
  log "raw loopback, repetition $rep"
  "$BENCH" --label raw raw --size "$BIG" \
    | jq -c --arg load "$(cut -d' ' -f1 /proc/loadavg)" \
      '. + {name: "raw", load: ($load | tonumber)}' >>"$RESULTS" || true
  for entry in "${SCENARIOS[@]}"; do
    name=${entry%%|*}
    arguments=${entry#*|}
    if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then continue; fi
    case $name in
      idle-* | logins-cold | retr-during-cold-logins | *-accounts) restart_servers ;;
      *) [ -n "$FERRY_PID" ] || restart_servers ;;
    esac
    for server in "${order[@]}"; do
      settle
      log "$name on $server, repetition $rep"
      # shellcheck disable=SC2086 # the arguments are words on purpose
      run_one "$server" "$name" $arguments
    done
    if [ "$name" = small-files ]; then
      settle
      log "small-files on the async floor, repetition $rep"
      run_floor
    fi
  done
done
log "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- table -------------------------------------------------------------------------------
jq -s -r --arg reps "$REPS" '
  def median: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
  def fmt(digits): if . == null then "n/a" else (. * pow(10; digits) | round) / pow(10; digits) | tostring end;
  def servers: ["vsftpd", "pure-ftpd", "ferry"];
  def peers: ["vsftpd", "pure-ftpd"];
  # small-files also yields its uploads and downloads apart, each a row of its own.
  map(if .name == "small-files" then
        ., (.phases // [])[] as $p | {name: "small-files-\($p.name)", label: .label, valid, unit,
          higher_is_better, load, figure: $p.files_per_s, server_cpu_us_per_file: $p.server_cpu_us_per_file,
          client_cpu_us_per_file: $p.client_cpu_us_per_file}
      else . end)
  | (map(select(.name == "raw" and .valid)) | map(.figure) | median) as $raw
  | (map(.load) | median) as $load
  | group_by(.name) | map(select(.[0].name != "raw")) as $groups
  # Each server'"'"'s median download in scenario `during` as a share of its download alone.
  | def kept(during): servers | map(. as $server
      | ([$groups[] | select(.[0].name == during)[] | select(.label == $server and .valid) | .figure] | median) as $with
      | ([$groups[] | select(.[0].name == "retr")[] | select(.label == $server and .valid) | .figure] | median) as $alone
      | "\($server) \(if $with == null or $alone == null then "n/a" else ($with / $alone * 100 | round | tostring) + "%" end)")
      | join(", ");
  "| scenario | unit | vsftpd | Pure-FTPd | Ferry | Ferry vs the best peer | server CPU (vsftpd / Pure-FTPd / Ferry) | invalid runs |",
    "|---|---|---|---|---|---|---|---|",
    ($groups[] as $g
      | ($g[0].higher_is_better) as $higher
      | (servers | map(. as $s | {key: $s, value: ($g | map(select(.label == $s and .valid) | .figure) | median)}) | from_entries) as $m
      | ([peers[] | $m[.] | select(. != null and . != 0)]
         | if length == 0 then null elif $higher then max else min end) as $best
      | (if $best == null or $m.ferry == null or $m.ferry == 0 then null
         elif $higher then $m.ferry / $best else $best / $m.ferry end) as $ratio
      | (if $g[0].unit == "MB/s" then {field: "server_cpu_s_per_gib", unit: "s/GiB", digits: 2}
         elif ($g[0].name | test("^login")) then {field: "server_cpu_ms_per_login", unit: "ms/login", digits: 1}
         elif ($g[0].name | test("^small-files-")) then {field: "server_cpu_us_per_file", unit: "µs/file", digits: 0}
         else null end) as $cpu
      | (if $cpu == null then ""
         else (servers | map(. as $s | $g | map(select(.label == $s) | .[$cpu.field] // empty) | median | fmt($cpu.digits)) | join(" / ")) + " \($cpu.unit)" end) as $cpus
      | "| \($g[0].name) | \($g[0].unit) | \($m.vsftpd | fmt(1)) | \($m["pure-ftpd"] | fmt(1)) | \($m.ferry | fmt(1)) | \(if $ratio == null then "n/a" else ($ratio | fmt(2)) + "x" end) | \($cpus) | \($g | map(select(.valid | not)) | length) |"),
    "",
    "raw loopback TCP (ceiling): \($raw | fmt(1)) MB/s; Ferry RETR/STOR as % of it: \(
      [$groups[] | select(.[0].name == "retr" or .[0].name == "stor")
       | "\(.[0].name) \((map(select(.label == "ferry" and .valid) | .figure) | median) as $m | if $m == null or $raw == null then "n/a" else ($m / $raw * 100 | round | tostring) + "%" end)"]
      | join(", "))",
    ([$groups[] | select(.[0].name | test("^small-files-"))
      | (map(select(.label == "floor" and .valid) | .figure) | median) as $floor
      | (map(select(.label == "ferry" and .valid) | .figure) | median) as $ferry
      | (map(select(.label == "floor") | .server_cpu_us_per_file // empty) | median) as $cpu
      | select($floor != null)
      | . as $g
      | ((servers + ["floor"]) | map(. as $s | $g | map(select(.label == $s) | .client_cpu_us_per_file // empty) | median | fmt(0)) | join(" / ")) as $client
      | "async floor (ferry-bench floor), \($g[0].name): \($floor | fmt(1)) files/s, \($cpu | fmt(0)) µs/file of server CPU; Ferry at \(if $ferry == null then "n/a" else ($ferry / $floor * 100 | round | tostring) + "%" end) of it; load generator CPU against vsftpd / Pure-FTPd / Ferry / the floor: \($client) µs/file"]
      | .[]),
    "download during a flood of failed logins, as % of the same server'"'"'s download alone: \(kept("retr-during-login-flood"))",
    "download while every cold account logs in once, as % of the same server'"'"'s download alone: \(kept("retr-during-cold-logins"))",
    "medians of \($reps) repetitions; median 1-minute load average during the runs: \($load | fmt(2)); ratio > 1 means Ferry is better than the best peer (faster, or less memory)"
' "$RESULTS"
