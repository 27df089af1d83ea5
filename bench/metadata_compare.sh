#!/usr/bin/env bash
# chatmail-metadata on the files store and on the Redis store, same host, same
# client, one after the other: dictload.py's devicetoken-set, devicetoken-lookup
# and messagenew at 1 and 10 connections. Starts its own redis-server and HTTPS
# notification sink (scripts/notify_sink.py) on free loopback ports and doveauth
# + metadata from this checkout's .venv; everything lives in a fresh directory
# and is stopped at the end. Also prints redis-server's own CPU per request.
#
#   bench/metadata_compare.sh [SECONDS_PER_CELL] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-5}
out=${2:-$(mktemp -d /tmp/mdbench.XXXXXX)}
mkdir -p "$out"
source bench/lib.sh
port=$(free_port); sink_port=$(free_port)

start_redis "$port" "$out" no
.venv/bin/python scripts/notify_sink.py --port "$sink_port" --dir "$out/sink" \
    --log "$out/notifications.log" >/dev/null &
pids+=("$!")
for _ in $(seq 100); do [ -f "$out/sink/ca.pem" ] && break; sleep 0.1; done


for backend in files redis; do
  d="$out/$backend"; mkdir -p "$d/mail"
  storage=files; [ "$backend" = redis ] && storage="redis://127.0.0.1:$port/0"
  cat > "$d/chatmail.yaml" <<YAML
mail_domain: chat.example.org
mailboxes_dir: $d/mail
storage: "$storage"
doveauth: {listen: "unix:$d/doveauth.socket", nocreate_file: $d/nocreate,
           max_load_1m: 1000, min_available_memory: 0, min_free_disk_space: 0}
metadata: {listen: "unix:$d/metadata.socket", notify_url: "https://localhost:$sink_port/notify",
           notify_ca_file: "$out/sink/ca.pem"}
YAML
  .venv/bin/chatmail-doveauth --config "$d/chatmail.yaml" --log-level warn 2>"$d/doveauth.log" &
  auth_pid=$!; pids+=("$auth_pid")
  .venv/bin/chatmail-metadata --config "$d/chatmail.yaml" --log-level warn 2>"$d/metadata.log" &
  md_pid=$!; pids+=("$md_pid")
  for _ in $(seq 100); do
    [ -S "$d/doveauth.socket" ] && [ -S "$d/metadata.socket" ] && break; sleep 0.1
  done
  echo "## $backend"
  before=$(cpu_ticks "$redis_pid")
  for scenario in devicetoken-set devicetoken-lookup messagenew; do
    for conns in 1 10; do
      python3 bench/dictload.py "$scenario" --socket "$d/metadata.socket" \
          --auth-socket "$d/doveauth.socket" --accounts-file "$d/accounts.json" \
          --pid "$md_pid" --concurrency "$conns" --duration "$duration" --json \
          2>>"$d/dictload.log" | tee -a "$d/results.txt" | grep -v '^{'
    done
  done
  after=$(cpu_ticks "$redis_pid")
  if [ "$backend" = redis ]; then
    python3 - "$d/results.txt" "$before" "$after" <<'PY'
import json, os, sys
results = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
total = sum(r["requests"] for r in results)
seconds = (int(sys.argv[3]) - int(sys.argv[2])) / os.sysconf("SC_CLK_TCK")
print(f"\nredis-server CPU over all cells (setup and notifier included): {seconds:.2f} s "
      f"for {total} measured requests = {seconds / total * 1e6:.1f} µs/request (upper bound)")
PY
  fi
  sleep 2  # let the notifier drain what messagenew queued
  kill "$auth_pid" "$md_pid"
done
echo "notifications POSTed to the sink: $(wc -l < "$out/notifications.log")"
echo "results in $out"
