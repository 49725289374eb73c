#!/usr/bin/env bash
# Runs the benchmarks of BENCHMARKS.md: each case RUNS times (default 3), each run against a
# fresh release chat-server on a free loopback port, stopped by its PID afterwards. Prints one
# JSON line per run: {"case", "run", "load" (1-minute load average after the run),
# "server_args", "report": <chat-bench's JSON line>}.
#
#   bash bench/run.sh [CASE_PATTERN] > results.jsonl
#   python3 bench/summarize.py results.jsonl      # medians, as a Markdown table
#
# CASE_PATTERN (a bash regular expression) picks cases by name, e.g. 'group|direct'.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
runs=${RUNS:-3}
pattern=${1:-.}

# SERVER_BIN and BENCH_BIN, when both set, name prebuilt binaries instead.
if [[ -z ${SERVER_BIN:-} || -z ${BENCH_BIN:-} ]]; then
    cargo build --quiet --release -p server -p bench --manifest-path "$root/Cargo.toml" >&2
fi
server_bin=${SERVER_BIN:-$target/release/chat-server}
bench_bin=${BENCH_BIN:-$target/release/chat-bench}
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT

# Idle runs hold one descriptor per connection in each process.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# case NAME "SERVER ARGS" WORKLOAD BENCH ARGS...
case_() {
    local name=$1 server_args=$2
    shift 2
    [[ $name =~ $pattern ]] || return 0
    for run in $(seq "$runs"); do
        local port pid line load
        port=$(free_port)
        rm -rf "$data/db" && mkdir -p "$data/db"
        # shellcheck disable=SC2086 # server_args is a word list
        "$server_bin" --host 127.0.0.1 --port "$port" --log warn $server_args \
            >"$data/server.log" 2>&1 &
        pid=$!
        for _ in $(seq 200); do
            (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
            sleep 0.05
        done
        echo "== $name run $run (server: $server_args)" >&2
        line=$("$bench_bin" "$@" --addr "127.0.0.1:$port" --server-pid "$pid" --json \
            --no-progress | tail -n 1) || line='null'
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        load=$(cut -d ' ' -f 1 /proc/loadavg)
        echo "{\"case\":\"$name\",\"run\":$run,\"load\":$load,\"server_args\":\"$server_args\",\"report\":$line}"
    done
}

# The per-connection rate limit (20 frames/s, burst 50, by default) is off: the senders here
# are load, not people, and an unpaced one would get rate_limited errors after 50 messages.
mem="--ephemeral --rate-limit 0"
disk="--data-dir $data/db --rate-limit 0"
for proto in native seed; do
    case_ "group-200x2-$proto" "$mem" group --proto "$proto" -n 200 -m 2 -k 2000 -s 64 --max-secs 120
    case_ "group-1000x1-$proto" "$mem" group --proto "$proto" -n 1000 -m 1 -k 200 -s 64 --max-secs 120
    case_ "group-paced-$proto" "$mem" group --proto "$proto" -n 200 -m 2 -k 200 -s 64 --rate 20 --max-secs 120
    case_ "direct-$proto" "$mem" direct --proto "$proto" -p 100 -k 1000 -s 64 --max-secs 120
    case_ "stall-$proto" "$mem" stall --proto "$proto" -r 20 -k 2000 -s 16000 --max-secs 120
    case_ "store-group-200x2-$proto" "$disk" group --proto "$proto" -n 200 -m 2 -k 2000 -s 64 --max-secs 120
    case_ "store-direct-$proto" "$disk" direct --proto "$proto" -p 100 -k 1000 -s 64 --max-secs 120
    case_ "idle-5000-$proto" "$mem" idle --proto "$proto" -c 5000 --hold-secs 10 --max-secs 240
    case_ "idle-19000-$proto" "$mem --max-connections 19500" idle --proto "$proto" -c 19000 \
        --hold-secs 10 --max-secs 240
done
