#!/usr/bin/env bash
# Sampling profiles of our dict daemons under dictload.py load, split into cost
# centres by bench/stackcats.py: doveauth passdb lookups of existing accounts,
# lastlogin updates and metadata token lookups, 10 connections each. Daemons
# from this checkout's .venv on a scratch files store; py-spy (pip install
# py-spy; root, or ptrace allowed) samples all their threads while the load runs.
#
#   PY_SPY=/path/to/py-spy bench/profile_daemons.sh [SECONDS] [OUT_DIR]
# PY_SPY_ARGS=--gil samples only the thread holding the GIL (Python CPU, no syscalls).
# STORAGE=redis://127.0.0.1:6379/0 runs the daemons on that Redis (FLUSHDB it first).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
out=${2:-$(mktemp -d /tmp/profile.XXXXXX)}
py_spy=${PY_SPY:-py-spy}
mkdir -p "$out/mail"
source bench/lib.sh

cat > "$out/chatmail.yaml" <<YAML
mail_domain: chat.example.org
mailboxes_dir: $out/mail
storage: "${STORAGE:-files}"
doveauth: {listen: "unix:$out/doveauth.socket", nocreate_file: $out/nocreate,
           max_load_1m: 1000, min_available_memory: 0, min_free_disk_space: 0}
lastlogin: {listen: "unix:$out/lastlogin.socket"}
metadata: {listen: "unix:$out/metadata.socket", notify_url: "https://127.0.0.1:9/notify"}
YAML
declare -A pid
for d in doveauth lastlogin metadata; do
  .venv/bin/chatmail-$d --config "$out/chatmail.yaml" --log-level warn 2>"$out/$d.log" &
  pid[$d]=$!; pids+=("$!")
done
for _ in $(seq 100); do
  [ -S "$out/doveauth.socket" ] && [ -S "$out/lastlogin.socket" ] && [ -S "$out/metadata.socket" ] && break
  sleep 0.1
done

load() {  # load SCENARIO DAEMON: dictload for $duration s while py-spy samples
  local scenario=$1 daemon=$2
  python3 bench/dictload.py "$scenario" --socket "$out/$daemon.socket" \
      --auth-socket "$out/doveauth.socket" --accounts-file "$out/accounts.json" \
      --concurrency 10 --duration "$duration" --pid "${pid[$daemon]}" --json \
      > "$out/$scenario.load" 2>>"$out/dictload.log" &
  local load_pid=$!
  sleep 0.5
  "$py_spy" record ${PY_SPY_ARGS:-} --pid "${pid[$daemon]}" --rate 250 --duration $((${duration%.*} - 1)) \
      --format raw --nonblocking --output "$out/$scenario.raw" >/dev/null 2>&1
  wait "$load_pid"
  local requests
  requests=$(python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1]) if l[0]=="{"][-1]; print(r["rps"], r["daemon"]["cpu_us_per_request"])' "$out/$scenario.load")
  set -- $requests
  echo "### $scenario on $daemon: $1 req/s, daemon $2 µs CPU/request (dictload)"
  python3 bench/stackcats.py --cpu-us "$2" "$out/$scenario.raw"
}

# accounts first (not profiled), and one token per account for the lookups
python3 bench/dictload.py userdb --socket "$out/doveauth.socket" --requests 1 \
    --accounts-file "$out/accounts.json" >/dev/null 2>>"$out/dictload.log"
python3 bench/dictload.py devicetoken-set --socket "$out/metadata.socket" --concurrency 10 \
    --duration 3 --accounts-file "$out/accounts.json" >/dev/null 2>>"$out/dictload.log"
load passdb-existing doveauth
load lastlogin lastlogin
load devicetoken-lookup metadata
echo "raw samples in $out"
