# Shared by the bench/*_compare.sh scripts (sourced, not run): free loopback
# ports, a redis-server of their own, cleanup of what they started, CPU ticks.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# start_redis PORT DIR APPENDONLY(yes|no): a redis-server on loopback; sets redis_pid
start_redis() {
  redis-server --port "$1" --bind 127.0.0.1 --dir "$2" --save '' --appendonly "$3" \
      --logfile "$2/redis.log" &
  redis_pid=$!; pids+=("$redis_pid")
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
