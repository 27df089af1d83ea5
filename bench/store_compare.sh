#!/usr/bin/env bash
# The dict benchmark matrix (report.py) against doveauth and lastlogin on the
# files store and on the Redis store, same host, same client, one after the
# other. Starts its own redis-server on a free loopback port and the daemons
# from this checkout's .venv; everything lives in a fresh directory and is
# stopped at the end. Also prints redis-server's own CPU per request.
#
#   bench/store_compare.sh [SECONDS_PER_CELL] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-5}
out=${2:-$(mktemp -d /tmp/storebench.XXXXXX)}
mkdir -p "$out"
source bench/lib.sh
port=$(free_port)

start_redis "$port" "$out" no

for backend in files redis; do
  d="$out/$backend"; mkdir -p "$d/mail"
  storage=files; [ "$backend" = redis ] && storage="redis://127.0.0.1:$port/0"
  cat > "$d/chatmail.yaml" <<EOF
mail_domain: chat.example.org
mailboxes_dir: $d/mail
storage: "$storage"
doveauth: {listen: "unix:$d/doveauth.socket", nocreate_file: $d/nocreate,
           max_load_1m: 1000, min_available_memory: 0, min_free_disk_space: 0}
lastlogin: {listen: "unix:$d/lastlogin.socket"}
EOF
  .venv/bin/chatmail-doveauth --config "$d/chatmail.yaml" --log-level warn 2>"$d/doveauth.log" &
  auth_pid=$!; pids+=("$auth_pid")
  .venv/bin/chatmail-lastlogin --config "$d/chatmail.yaml" --log-level warn 2>"$d/lastlogin.log" &
  ll_pid=$!; pids+=("$ll_pid")
  for _ in $(seq 100); do
    [ -S "$d/doveauth.socket" ] && [ -S "$d/lastlogin.socket" ] && break; sleep 0.1
  done
  before=$(cpu_ticks "$redis_pid")
  python3 bench/report.py --socket "$d/doveauth.socket" --pid "$auth_pid" \
      --lastlogin-socket "$d/lastlogin.socket" --lastlogin-pid "$ll_pid" \
      --duration "$duration" --json-out "$d/results.json" > "$d/report.md"
  after=$(cpu_ticks "$redis_pid")
  echo "## $backend"; cat "$d/report.md"
  if [ "$backend" = redis ]; then
    python3 - "$d/results.json" "$before" "$after" <<'EOF'
import json, os, sys
results = [r for r in json.load(open(sys.argv[1])) if r]
total = sum(r["requests"] for r in results)
seconds = (int(sys.argv[3]) - int(sys.argv[2])) / os.sysconf("SC_CLK_TCK")
print(f"\nredis-server CPU over the whole matrix (setup included): {seconds:.2f} s "
      f"for {total} measured requests = {seconds / total * 1e6:.1f} µs/request (upper bound)")
EOF
  fi
  kill "$auth_pid" "$ll_pid"
done
echo "results in $out"
