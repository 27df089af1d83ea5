#!/usr/bin/env bash
# filtermail's outgoing filter with the send rate limit on the files store
# (in memory) and on the Redis store (one Lua script per MAIL FROM), same host,
# same client (smtpload.py), one after the other. Starts its own redis-server
# (AOF, appendfsync everysec: production's persistence) on a free loopback port
# and the daemon from this checkout's .venv; stops everything at the end.
#
#   cost of the check: a limit too high to refuse (600000/min, burst 100000),
#     encrypted 10K (accepted) and plaintext 10K (refused 523), 1 and 10 conns;
#   the limit biting: 60/min, burst 10, only 10 senders: most MAIL FROM get 450;
#   the bare store call: check_send_rate in a loop, one thread.
#
#   bench/ratelimit_compare.sh [SECONDS_PER_RUN] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
out=${2:-$(mktemp -d /tmp/ratebench.XXXXXX)}
mkdir -p "$out"
source bench/lib.sh
port=$(free_port); listen=$(free_port); sink=$(free_port)

start_redis "$port" "$out" yes

config() {  # NAME STORAGE PER_MINUTE BURST
  mkdir -p "$out/$1/mail"
  cat > "$out/$1/chatmail.yaml" <<YAML
mail_domain: chat.example.org
mailboxes_dir: $out/$1/mail
storage: "$2"
filtermail:
  outgoing: {listen: "tcp:$listen:interface=127.0.0.1", reinject: "tcp:127.0.0.1:$sink"}
  dkim: {sign: null}
  max_user_send_per_minute: $3
  max_user_send_burst_size: $4
YAML
}

run() {  # NAME SMTPLOAD-ARGS... (one daemon per NAME)
  local name=$1; shift
  .venv/bin/chatmail-filtermail --config "$out/$name/chatmail.yaml" --log-level warn \
      outgoing 2>"$out/$name/filtermail.log" &
  local pid=$!; pids+=("$pid")
  sleep 3
  while [ $# -gt 0 ]; do
    echo "== $name $1"
    # shellcheck disable=SC2086
    (cd bench && python3 smtpload.py --filter "127.0.0.1:$listen" --sink-port "$sink" \
        --pid "$pid" --duration "$duration" $1 2>>"$out/smtpload.err")
    shift
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

redis="redis://127.0.0.1:$port/0"
config files files 600000 100000
config redis "$redis" 600000 100000
config files-biting files 60 10
config redis-biting "$redis" 60 10
cells=("--size 10K --concurrency 1" "--scenario plaintext --size 10K --concurrency 1"
       "--size 10K --concurrency 10" "--scenario plaintext --size 10K --concurrency 10")
for backend in files redis; do run "$backend" "${cells[@]}"; done
for backend in files-biting redis-biting; do
  run "$backend" "--size 10K --concurrency 1 --senders 10" "--size 10K --concurrency 10 --senders 10"
done
for backend in files redis; do
  .venv/bin/python - "$out/$backend/chatmail.yaml" <<'PY'
import sys, time
from chatmail_services.core.config import load_config
from chatmail_services.core.store import open_store
store, n = open_store(load_config(sys.argv[1])).send_rate, 20000
wall, cpu = time.perf_counter(), time.process_time()
for i in range(n):
    store.check_send_rate(f"u{i % 1000:06d}@chat.example.org", time.time(), 600000, 100000)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(f"== {store.__class__.__name__}.check_send_rate: {n / wall:.0f}/s, "
      f"{wall / n * 1e6:.0f} us wall, {cpu / n * 1e6:.0f} us CPU per call")
PY
done
