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
#
# The cluster-* cases start a redis-server of their own on a free port (nothing saved) and
# NODES chat-server nodes pointed at it; chat-bench gets every node's --addr and --server-pid
# (its receivers spread over the nodes, its senders on the first; CPU and memory summed).
# They are skipped, with a note, when redis-server is not installed.
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
# SERVER ARGS `reference` runs `chat-bench reference-server` instead of chat-server. With FILL
# set (chat-bench arguments), that run first goes against the same server, unmeasured.
case_() {
    local name=$1 server_args=$2
    shift 2
    [[ $name =~ $pattern ]] || return 0
    for run in $(seq "$runs"); do
        local port pid line load
        port=$(free_port)
        rm -rf "$data/db" && mkdir -p "$data/db"
        if [[ $server_args == reference ]]; then
            "$bench_bin" reference-server --port "$port" --max-secs 600 >"$data/server.log" 2>&1 &
        else
            # shellcheck disable=SC2086 # server_args is a word list
            "$server_bin" --host 127.0.0.1 --port "$port" --log warn $server_args \
                >"$data/server.log" 2>&1 &
        fi
        pid=$!
        for _ in $(seq 200); do
            (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
            sleep 0.05
        done
        if [[ -n ${FILL:-} ]]; then
            echo "== $name run $run: filling the store ($FILL)" >&2
            # shellcheck disable=SC2086 # FILL is a word list
            "$bench_bin" $FILL --addr "127.0.0.1:$port" --json --no-progress >/dev/null
        fi
        echo "== $name run $run (server: $server_args)" >&2
        line=$("$bench_bin" "$@" --addr "127.0.0.1:$port" --server-pid "$pid" --json \
            --no-progress | tail -n 1) || line='null'
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        load=$(cut -d ' ' -f 1 /proc/loadavg)
        echo "{\"case\":\"$name\",\"run\":$run,\"load\":$load,\"server_args\":\"$server_args\",\"report\":$line}"
    done
}

# cluster_case NAME NODES "SERVER ARGS" WORKLOAD BENCH ARGS...
cluster_case() {
    local name=$1 nodes=$2 server_args=$3
    shift 3
    [[ $name =~ $pattern ]] || return 0
    if ! command -v redis-server >/dev/null; then
        echo "== $name skipped: redis-server is not installed" >&2
        return 0
    fi
    for run in $(seq "$runs"); do
        local redis_port redis_pid line load pids=() addrs=() port pid
        redis_port=$(free_port)
        rm -rf "$data/redis" && mkdir -p "$data/redis"
        redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
            --dir "$data/redis" >"$data/redis.log" 2>&1 &
        redis_pid=$!
        for _ in $(seq 200); do
            [[ $(redis-cli -p "$redis_port" ping 2>/dev/null) == PONG ]] && break
            sleep 0.05
        done
        for node in $(seq "$nodes"); do
            port=$(free_port)
            # shellcheck disable=SC2086 # server_args is a word list
            "$server_bin" --host 127.0.0.1 --port "$port" --log warn $server_args \
                --redis "redis://127.0.0.1:$redis_port" --node-id "n$node" \
                >"$data/server-n$node.log" 2>&1 &
            pid=$!
            for _ in $(seq 200); do
                (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
                sleep 0.05
            done
            pids+=("$pid")
            addrs+=(--addr "127.0.0.1:$port" --server-pid "$pid")
        done
        echo "== $name run $run ($nodes nodes: $server_args --redis)" >&2
        line=$("$bench_bin" "$@" "${addrs[@]}" --json --no-progress | tail -n 1) || line='null'
        kill "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
        kill "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
        load=$(cut -d ' ' -f 1 /proc/loadavg)
        echo "{\"case\":\"$name\",\"run\":$run,\"load\":$load,\"server_args\":\"$server_args --redis ($nodes nodes)\",\"report\":$line}"
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

# The same fan-out with more messages: the group cases above are 5–30 ticks (10 ms) of server
# CPU, too few to tell apart changes of a tenth.
for proto in native seed; do
    case_ "group-200x2-long-$proto" "$mem" group --proto "$proto" -n 200 -m 2 -k 8000 -s 64 \
        --max-secs 120
    case_ "group-1000x1-long-$proto" "$mem" group --proto "$proto" -n 1000 -m 1 -k 1000 -s 64 \
        --max-secs 120
done

# A long history: 300,000 messages in the lobby (three seed pages sending 100,000 each) before
# the run. New users logging in (each told how many lobby messages they have not read), and the
# paced fan-out while one user searches all the while for two letters that no message holds
# (as a rare two-character Chinese word would be): each search reads the whole history.
fill="group --proto seed -n 1 -m 3 -k 100000 -s 64 --max-secs 300"
FILL=$fill case_ "history-idle-500-native" "$disk" idle --proto native -c 500 --hold-secs 1 \
    --max-secs 120
FILL=$fill case_ "history-paced-search-native" "$disk" group --proto native -n 200 -m 2 -k 200 \
    -s 64 --rate 20 --search zq --max-secs 120

# The yardstick: a minimal forwarder of the seed endpoints with no chat features at all.
case_ "reference-group-200x2-seed" reference group --proto seed --no-control -n 200 -m 2 -k 2000 \
    -s 64 --max-secs 120
case_ "reference-group-1000x1-seed" reference group --proto seed --no-control -n 1000 -m 1 \
    -k 200 -s 64 --max-secs 120
case_ "reference-group-200x2-long-seed" reference group --proto seed --no-control -n 200 -m 2 \
    -k 8000 -s 64 --max-secs 120
case_ "reference-group-1000x1-long-seed" reference group --proto seed --no-control -n 1000 -m 1 \
    -k 1000 -s 64 --max-secs 120
case_ "reference-group-paced-seed" reference group --proto seed --no-control -n 200 -m 2 -k 200 \
    -s 64 --rate 20 --max-secs 120
case_ "reference-direct-seed" reference direct --proto seed --no-control -p 100 -k 1000 -s 64 \
    --max-secs 120

# One node alone, one node with Redis, and two nodes with the receivers spread over them (every
# message crosses from the senders' node to the other one through Redis).
for proto in native seed; do
    cluster_case "cluster1-group-200x2-$proto" 1 "$mem" group --proto "$proto" -n 200 -m 2 \
        -k 2000 -s 64 --max-secs 120
    cluster_case "cluster2-group-200x2-$proto" 2 "$mem" group --proto "$proto" -n 200 -m 2 \
        -k 2000 -s 64 --max-secs 120
    cluster_case "cluster2-group-paced-$proto" 2 "$mem" group --proto "$proto" -n 200 -m 2 \
        -k 200 -s 64 --rate 20 --max-secs 120
done
