#!/usr/bin/env bash
# scripts/bench.sh - `make bench`: tabsyncd side by side with the npm socket.io
# server on the same machine, in one run. Builds tabsyncd (Release) and
# tsbench, installs what the bench needs (gnuplot, the npm packages), runs
# every scenario against both servers alternately (BENCH_RUNS times each,
# medians reported), then writes docs/BENCHMARKS.md and docs/bench-latency.png.
#
#   make bench                  full run (about 10-15 minutes on 2 cores)
#   BENCH_QUICK=1 make bench    every scenario briefly, one run (about 2 minutes)
#   BENCH_RUNS=5 / BENCH_OUT=/tmp/b.md / BENCH_ONLY="fanout idle"   knobs
#   BENCH_ONLY="m-fanout m-sessions"   the many-nodes rows alone (needs redis-server)
#   BENCH_SERVER_ARGS="--workers 2"   extra flags for every tabsyncd started
#                                     (not for Node, which has no such flags)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BENCH_BUILD:-$ROOT/build-bench-release}
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then RUNS=${BENCH_RUNS:-1}; else RUNS=${BENCH_RUNS:-3}; fi
OUT_MD=${BENCH_OUT:-$ROOT/docs/BENCHMARKS.md}
OUT_PNG=${BENCH_PNG:-$(dirname "$OUT_MD")/bench-latency.png}
ONLY=${BENCH_ONLY:-"s-sessions s-rate s-fanout s-connect s-slow m-fanout m-sessions fanout sessions sweep loops idle idle-session connect connect-session slow replay election"}
read -r -a SERVER_ARGS <<<"${BENCH_SERVER_ARGS:-}"
# The /session scenarios' HS256 secret: fresh for each `make bench`, 64 hex
# characters (the server takes the string's bytes as the key).
JWT_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
JOBS=$(nproc)

say() { printf 'bench: %s\n' "$*" >&2; }

# ---- what the bench needs ----------------------------------------------------
need_apt=()
command -v gnuplot >/dev/null 2>&1 || need_apt+=(gnuplot-nox)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
case " $ONLY " in *" m-"*) command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server) ;; esac
if [ ${#need_apt[@]} -gt 0 ]; then
    say "installing ${need_apt[*]}"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get install -y --no-install-recommends "${need_apt[@]}" >/dev/null ||
        { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends "${need_apt[@]}" >/dev/null; }
fi
if [ ! -d "$ROOT/node_modules/socket.io" ] || [ ! -d "$ROOT/node_modules/bufferutil" ]; then
    say "installing npm packages"
    (cd "$ROOT" && npm install --no-audit --no-fund >/dev/null)
fi

say "building tabsyncd and tsbench (RelWithDebInfo: -O2 -g, NDEBUG) in $BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTS_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j"$JOBS" --target tabsyncd tsbench hsfloor >/dev/null
# the commit the binaries were built from (others may commit during the run)
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$ROOT" status --porcelain -- src bench 2>/dev/null | head -c1)
TABSYNCD=$BUILD/tabsyncd
TSBENCH=$BUILD/bench/tsbench
HSFLOOR=$BUILD/bench/hsfloor
PEER=$ROOT/bench/peer/node-server.mjs

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RES=$BUILD/bench-results/$STAMP
mkdir -p "$RES"
JSONL=$RES/results.jsonl
: >"$JSONL"

# ---- servers -------------------------------------------------------------------
SRV_PID=""
SRV_PORT=""
# Extra flags of the scenario being run (set around a `both` call).
EXTRA_TS=()
EXTRA_NODE=()
# The /session scenarios' tabsyncd configurations (server kinds):
#   ts-off     --history off: envelopes relayed, not logged
#   ts-sqlite  the history on (the default) in an SQLite file with the default
#              durability (group:2: one fsync per 2 ms window), fresh per run,
#              on the build directory's disk (not tmpfs)
#   ts-mem     the history on in the memory store (no file, no fsync)
#   floor      not a server: bench/hsfloor answers a handshake with canned
#              packets (s-connect only: the kernel's floor under a handshake)
SQLITE_DIR=$RES/sqlite
SQLITE_FILE=""
is_tabsyncd() { case $1 in tabsyncd | tabsyncd2 | ts-*) return 0 ;; esac; return 1; }
# The multi-node kinds (issue #12): two server processes over one Redis,
# started fresh for each run (redis-server on a free loopback port, no
# persistence: `appendonly no`, `save ""`):
#   ts-redis2      two tabsyncd nodes, --store redis://... (history on, in
#                  Redis streams; cross-node fan-out in the
#                  @socket.io/redis-adapter format, classic)
#   ts-redis2-off  the same with --history off
#   node-redis2    two node-server processes, @socket.io/redis-adapter classic
REDIS_PID=""
REDIS_PORT=""
REDIS_DIR=""
is_multi() { case $1 in *-redis2*) return 0 ;; esac; return 1; }
start_redis() {
    REDIS_DIR=$RES/redis-$$-$RANDOM
    mkdir -p "$REDIS_DIR"
    REDIS_PORT=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });')
    printf '%s\n' "port $REDIS_PORT" "bind 127.0.0.1" "dir $REDIS_DIR" 'save ""' "appendonly no" \
        "daemonize no" "loglevel warning" 'logfile ""' >"$REDIS_DIR/redis.conf"
    redis-server "$REDIS_DIR/redis.conf" >>"$RES/redis.log" 2>&1 &
    REDIS_PID=$!
    for _ in $(seq 100); do
        [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && return 0
        sleep 0.05
    done
    say "redis-server did not start (see $RES/redis.log)"
    return 1
}
stop_redis() {
    [ -n "$REDIS_PID" ] || return 0
    kill -TERM "$REDIS_PID" 2>/dev/null || true
    for _ in $(seq 30); do
        kill -0 "$REDIS_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=""
    rm -rf "$REDIS_DIR"
}
# start_server tabsyncd|tabsyncd2|ts-off|ts-sqlite|ts-mem|node RECOVERY_MS
start_server() {
    local kind=$1 recovery=$2 log=$RES/server-$1.log
    local args=(--listen 127.0.0.1:0 --test-app --recovery-window "$recovery")
    if is_tabsyncd "$kind"; then
        args+=(${SERVER_ARGS[@]+"${SERVER_ARGS[@]}"} ${EXTRA_TS[@]+"${EXTRA_TS[@]}"})
        # tabsyncd2: the same binary with two event loops (--workers 2)
        [ "$kind" = tabsyncd2 ] && args+=(--workers 2)
        [ "$kind" = ts-off ] && args+=(--history off)
        [ "$kind" = ts-redis2-off ] && args+=(--history off)
        is_multi "$kind" && args+=(--store "redis://127.0.0.1:$REDIS_PORT")
        if [ "$kind" = ts-sqlite ]; then
            mkdir -p "$SQLITE_DIR"
            SQLITE_FILE=$SQLITE_DIR/run-$$-$RANDOM.db
            args+=(--store-sqlite "$SQLITE_FILE")
        fi
    else
        args+=(${EXTRA_NODE[@]+"${EXTRA_NODE[@]}"})
        is_multi "$kind" && args+=(--redis "redis://127.0.0.1:$REDIS_PORT")
    fi
    local fifo=$RES/ready.$$
    rm -f "$fifo"
    mkfifo "$fifo"
    if is_tabsyncd "$kind"; then
        "$TABSYNCD" "${args[@]}" >"$fifo" 2>>"$log" &
    elif [ "$kind" = floor ]; then
        "$HSFLOOR" >"$fifo" 2>>"$log" & # canned answers: no flags apply
    else
        node "$PEER" "${args[@]}" >"$fifo" 2>>"$log" &
    fi
    SRV_PID=$!
    local line=""
    if ! read -r -t 15 line <"$fifo"; then
        say "$kind did not start (see $log)"
        kill "$SRV_PID" 2>/dev/null || true
        rm -f "$fifo"
        return 1
    fi
    rm -f "$fifo"
    SRV_PORT=$(printf '%s' "$line" | sed -n 's|.*127\.0\.0\.1:\([0-9]*\)/.*|\1|p')
    [ -n "$SRV_PORT" ] || { say "$kind: unexpected ready line: $line"; return 1; }
}

stop_server() {
    [ -n "$SRV_PID" ] || return 0
    kill -TERM "$SRV_PID" 2>/dev/null || true
    for _ in $(seq 30); do
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SRV_PID" 2>/dev/null || true
    wait "$SRV_PID" 2>/dev/null || true
    SRV_PID=""
    if [ -n "$SQLITE_FILE" ]; then
        rm -f "$SQLITE_FILE" "$SQLITE_FILE-wal" "$SQLITE_FILE-shm"
        SQLITE_FILE=""
    fi
}
# the second node of a multi-node run
SRV2_PID=""
SRV2_PORT=""
stop_all() {
    stop_server
    if [ -n "$SRV2_PID" ]; then
        SRV_PID=$SRV2_PID
        SRV2_PID=""
        stop_server
    fi
    stop_redis
}
trap stop_all EXIT

COMMANDS=$RES/commands.txt
: >"$COMMANDS"

# run KEY SERVER RECOVERY tsbench-args...: one fresh server, one tsbench run,
# one JSON line (tagged with key, server and run number) in results.jsonl.
run() {
    local key=$1 kind=$2 recovery=$3
    shift 3
    local two=()
    if is_multi "$kind"; then
        # Redis, then the second node (kept in SRV2_*), then the first
        if ! start_redis || ! start_server "$kind" "$recovery"; then
            stop_all
            printf '{"key":"%s","server":"%s","run":%d,"ok":false,"error":"server did not start"}\n' \
                "$key" "$kind" "$RUN" >>"$JSONL"
            return
        fi
        SRV2_PID=$SRV_PID
        SRV2_PORT=$SRV_PORT
        SRV_PID=""
        two=(--port2 "$SRV2_PORT" --server-pid2 "$SRV2_PID" --redis-pid "$REDIS_PID")
    fi
    if ! start_server "$kind" "$recovery"; then
        stop_all
        printf '{"key":"%s","server":"%s","run":%d,"ok":false,"error":"server did not start"}\n' \
            "$key" "$kind" "$RUN" >>"$JSONL"
        return
    fi
    local out rc=0
    out=$("$TSBENCH" "$@" --port "$SRV_PORT" --server-pid "$SRV_PID" ${two[@]+"${two[@]}"} \
        --json --label "$key" 2>>"$RES/tsbench.log") || rc=$?
    stop_all
    if [ -z "$out" ]; then
        out=$(printf '{"ok":false,"error":"tsbench exit %d without a result"}' "$rc")
    fi
    printf '%s\n' "$out" | node -e '
        let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
          const r = JSON.parse(s.trim().split("\n").pop());
          Object.assign(r, { key: process.argv[1], server: process.argv[2], run: +process.argv[3] });
          process.stdout.write(JSON.stringify(r) + "\n");
        });' "$key" "$kind" "$RUN" >>"$JSONL"
    local last
    last=$(tail -n 1 "$JSONL" | node -e '
        let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
          const r = JSON.parse(s);
          const v = r.scenario === "idle" ? `${Math.round(r.bytes_per_conn)} B/conn`
            : r.scenario === "replay" ? `${(r.elapsed * 1000).toFixed(0)} ms catch-up`
            : r.scenario === "connect" ? `${Math.round(r.per_s)}/s p99 handshake ${r.handshake_us.p99} us`
            : r.scenario === "slow" ? `${Math.round(r.per_s)}/s to fast receivers, server RSS peak ${Math.round(r.rss_peak_kb / 1024)} MiB (+${Math.round((r.rss_peak_kb - r.rss_pub0_kb) / 1024)}), ${r.cut}/${r.slow} slow cut off${r.capped ? ", stopped at the RSS cap" : ""}`
            : `${Math.round(r.per_s)}/s p99 ${r.lat_us ? r.lat_us.p99 : "-"} us`;
          process.stdout.write(`${r.ok ? "ok" : "FAILED"} ${v}${r.error ? " (" + r.error + ")" : ""}`);
        });')
    say "run $RUN $key $kind: $last"
    if [ "$RUN" = 1 ] && { [ "$kind" = tabsyncd ] || [ "$kind" = ts-off ] || [ "$kind" = ts-redis2 ]; }; then
        local shown="$*"
        shown=${shown//$JWT_SECRET/SECRET}
        local ports="--port PORT --server-pid PID"
        is_multi "$kind" && ports="$ports --port2 PORT2 --server-pid2 PID2 --redis-pid REDIS_PID"
        printf '%s\n' "tsbench $shown $ports --json   # $key ($kind)" >>"$COMMANDS"
        if [ ${#SERVER_ARGS[@]} -gt 0 ] || [ ${#EXTRA_TS[@]} -gt 0 ]; then
            shown="${SERVER_ARGS[*]} ${EXTRA_TS[*]}"
            printf '%s\n' "    # tabsyncd extra flags: ${shown//$JWT_SECRET/SECRET}" >>"$COMMANDS"
        fi
        if [ ${#EXTRA_NODE[@]} -gt 0 ]; then
            shown="${EXTRA_NODE[*]}"
            printf '%s\n' "    # node-server extra flags: ${shown//$JWT_SECRET/SECRET}" >>"$COMMANDS"
        fi
    fi
}

# both KEY RECOVERY tsbench-args...: tabsyncd then Node, same arguments.
both() {
    local key=$1 recovery=$2
    shift 2
    run "$key" tabsyncd "$recovery" "$@"
    run "$key" node "$recovery" "$@"
}

want() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }

# session KEY SERVERS tsbench-args...: a /session scenario against each of
# SERVERS (ts-off ts-sqlite ts-mem node), same arguments, in that order.
# tabsyncd's limits keep their production defaults (100 events/s and 1 MiB/s
# per socket, 1,000 events/s per user, 100 connections per user) except the
# per-address handshake limit (50/s: the generator opens thousands of tabs
# from a few loopback addresses) and what S_EXTRA_TS adds.
S_EXTRA_TS=()
S_HS=100000
session() {
    local key=$1 kinds=$2
    shift 2
    EXTRA_TS=(--jwt-secret "$JWT_SECRET" --limit-handshakes-per-ip "$S_HS" ${S_EXTRA_TS[@]+"${S_EXTRA_TS[@]}"})
    EXTRA_NODE=(--jwt-secret "$JWT_SECRET")
    for k in $kinds; do run "$key" "$k" 0 "$@" --session --jwt-secret "$JWT_SECRET" --proto 4; done
    EXTRA_TS=()
    EXTRA_NODE=()
    S_EXTRA_TS=()
    S_HS=100000
}

if [ "$QUICK" = 1 ]; then
    S_SES=(--rooms 1000 --members 4 --duration 1 --window 1)
    S_RATE=(--rooms 1000 --members 4 --duration 1 --rate 4000)
    S_FAN=(--conns 2000 --duration 1 --window 4)
    M_FAN=(--conns 1000 --duration 1 --window 16)
    M_SES=(--rooms 1000 --members 4 --duration 1 --window 1)
    S_CONN=(--conns 4000 --conc 64 --duration 10 --sources 32 --users 1000 --devices 2)
    S_SLOW=(--conns 200 --slow 20 --size 16384 --duration 6 --rss-cap 1536)
    FAN=(--conns 1000 --duration 1)
    SES=(--rooms 100 --members 4 --duration 1 --window 8)
    RATES="1000 4000"
    SWEEP=(--rooms 100 --members 4 --duration 1)
    IDLE=(--conns 2000 --settle 1000)
    CONN=(--conns 2000 --conc 64 --duration 10)
    CONNS=(--conns 4000 --conc 64 --duration 10 --sources 32 --users 1000 --devices 2)
    SLOW=(--conns 200 --slow 20 --size 16384 --duration 6 --rss-cap 1536)
    REPLAY=(--conns 500 --burst 20)
else
    S_SES=(--rooms 1000 --members 4 --duration 5 --window 1)
    S_RATE=(--rooms 1000 --members 4 --duration 5 --rate 4000)
    S_FAN=(--conns 10000 --duration 5 --window 4)
    M_FAN=(--conns 1000 --duration 5 --window 16)
    M_SES=(--rooms 1000 --members 4 --duration 5 --window 1)
    S_CONN=(--conns 40000 --conc 64 --duration 30 --sources 32 --users 10000 --devices 2)
    S_SLOW=(--conns 200 --slow 20 --size 16384 --duration 15 --rss-cap 1536)
    FAN=(--conns 10000 --duration 5)
    SES=(--rooms 1000 --members 4 --duration 5 --window 8)
    RATES="1000 2000 4000 8000 16000 32000"
    SWEEP=(--rooms 1000 --members 4 --duration 3)
    IDLE=(--conns 19000 --settle 2000)
    CONN=(--conns 20000 --conc 64 --duration 15)
    CONNS=(--conns 40000 --conc 64 --duration 30 --sources 32 --users 10000 --devices 2)
    SLOW=(--conns 200 --slow 20 --size 16384 --duration 15 --rss-cap 1536)
    # 1,000 clients per source address: tabsyncd keeps at most 1,000 saved
    # sessions per client address (--recovery-max-per-address)
    REPLAY=(--conns 5000 --burst 100 --per-src 1000)
fi

uptime_before=$(cut -d' ' -f1-3 /proc/loadavg)
t_start=$(date +%s)
for RUN in $(seq "$RUNS"); do
    # ---- /session, the product path (issue #13): protocol 4 tabs, an HS256
    # token each, envelopes with acks; history off, on (SQLite, default
    # durability) and on (memory store), against the Node peer's relay
    want s-sessions && session s-sessions "ts-off ts-sqlite ts-mem node" sessions "${S_SES[@]}"
    want s-rate && session s-sessions@4000 "ts-off ts-sqlite node" sessions "${S_RATE[@]}"
    if want s-fanout; then
        # one session of 10,001 tabs: its user's connection limit (100) raised
        S_EXTRA_TS=(--limit-conns-per-user 20000)
        session s-fanout "ts-off ts-sqlite node" fanout "${S_FAN[@]}"
    fi
    if want s-connect; then
        # the per-address limit as for connect-session (32 addresses share it)
        S_HS=2000
        # floor: bench/hsfloor, the same packets and system calls with no
        # protocol work: what the TCP connection alone costs the server
        session s-connect "ts-off ts-sqlite node floor" connect "${S_CONN[@]}"
    fi
    if want s-slow; then
        # one publisher of 16 KiB envelopes to 200 tabs of its session: the
        # per-socket byte and event limits (1 MiB/s, 100/s) would pace it below
        # what the readers take, so they are off for this one
        S_EXTRA_TS=(--limit-conns-per-user 20000 --limit-bytes-per-socket 0 --limit-events-per-socket 0)
        session s-slow "ts-off ts-sqlite node" slow "${S_SLOW[@]}"
    fi
    # ---- many nodes over one Redis (issue #12): one process against two
    # over a fresh redis-server, tabsyncd and Node (@socket.io/redis-adapter,
    # classic) alternately; tsbench sends every other connection to the
    # second node (--port2): the fan-out's publisher is on the first node and
    # its receivers alternate, each session's four tabs are two on each node
    if want m-fanout; then
        # the test app's namespace / (no token); --jwt-secret opens the store
        # (and brings the per-address handshake limit, raised as for /session)
        EXTRA_TS=(--jwt-secret "$JWT_SECRET" --limit-handshakes-per-ip 100000)
        for k in tabsyncd ts-redis2 node node-redis2; do run m-fanout "$k" 0 fanout "${M_FAN[@]}"; done
        EXTRA_TS=()
    fi
    want m-sessions && session m-sessions "ts-mem ts-redis2 ts-off ts-redis2-off node node-redis2" \
        sessions "${M_SES[@]}"
    want fanout && both fanout 0 fanout "${FAN[@]}" --window 16
    want sessions && both sessions 0 sessions "${SES[@]}"
    if want loops; then
        # tabsyncd with two event loops on the same scenarios (the load
        # generator shares the machine's cores: see docs/ARCHITECTURE.md)
        run fanout tabsyncd2 0 fanout "${FAN[@]}" --window 16
        run sessions tabsyncd2 0 sessions "${SES[@]}"
        run sessions@4000 tabsyncd2 0 sessions "${SWEEP[@]}" --rate 4000
    fi
    if want sweep; then
        for r in $RATES; do both "sessions@$r" 0 sessions "${SWEEP[@]}" --rate "$r"; done
    fi
    want idle && both idle 0 idle "${IDLE[@]}"
    if want idle-session; then
        # idle authenticated /session tabs (a token, a device and a tab each,
        # registered): protocol 2 on both servers (the Node peer speaks 1-2),
        # and tabsyncd's tabs of protocol 4 (the history and elections loaded)
        EXTRA_TS=(--jwt-secret "$JWT_SECRET" --limit-handshakes-per-ip 100000 --limit-conns-per-ip 100000)
        EXTRA_NODE=(--jwt-secret "$JWT_SECRET")
        both idle-session 0 idle --session --jwt-secret "$JWT_SECRET" --proto 2 "${IDLE[@]}"
        run idle-session@4 tabsyncd 0 idle --session --jwt-secret "$JWT_SECRET" --proto 4 "${IDLE[@]}"
        EXTRA_TS=()
        EXTRA_NODE=()
    fi
    want connect && both connect 0 connect "${CONN[@]}"
    if want connect-session; then
        # /session with the token check on both servers. tabsyncd's per-address
        # handshake limit is raised from 50/s to 2,000/s (32 source addresses
        # share 20,000/s); its other limits stay at their defaults.
        EXTRA_TS=(--jwt-secret "$JWT_SECRET" --limit-handshakes-per-ip 2000)
        EXTRA_NODE=(--jwt-secret "$JWT_SECRET")
        both connect-session 0 connect --session --jwt-secret "$JWT_SECRET" "${CONNS[@]}"
        EXTRA_TS=()
        EXTRA_NODE=()
    fi
    # tabsyncd cuts a receiver more than --max-send-queue (default 16 MiB)
    # behind for 1 s; Node buffers for it without limit (stopped at --rss-cap)
    want slow && both slow 0 slow "${SLOW[@]}"
    want replay && both replay 60000 replay "${REPLAY[@]}"
    if want election && [ "$RUN" = 1 ]; then
        # leader elections (issue #10, docs/ELECTION.md): failover, handoff and
        # the restart storm against tabsyncd alone, once (each part is a
        # distribution over many sessions already): bench/election.mjs, ~2 min
        say "run 1 election: bench/election.mjs (failover, handoff, restart storm)"
        EL_ARGS=(--bin "$TABSYNCD" --run 1)
        [ "$QUICK" = 1 ] && EL_ARGS+=(--quick)
        node "$ROOT/bench/election.mjs" "${EL_ARGS[@]}" >>"$JSONL" 2>>"$RES/election.log" ||
            say "election: a check failed (see $RES/election.log)"
        grep '^election: ' "$RES/election.log" | sed 's/^/bench: /' >&2 || true
    fi
done
t_end=$(date +%s)
uptime_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the report ------------------------------------------------------------------
node -e '
  const fs = require("fs");
  const [file, ...kv] = process.argv.slice(1);
  const o = {};
  for (let i = 0; i < kv.length; i += 2) o[kv[i]] = kv[i + 1];
  fs.writeFileSync(file, JSON.stringify(o, null, 1));' "$RES/meta.json" \
    commit "$commit${dirty:+ (with uncommitted changes in src/ or bench/)}" \
    date "$(date -u '+%Y-%m-%d %H:%M UTC')" \
    nproc "$(nproc)" \
    cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" \
    kernel "$(uname -sr)" \
    mem "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)" \
    nofile "$(ulimit -Hn)" \
    load_before "$uptime_before" load_after "$uptime_after" \
    seconds "$((t_end - t_start))" runs "$RUNS" quick "$QUICK" \
    node "$(node --version)" \
    peer "$(grep -m1 'node-server:' "$RES/server-node.log" 2>/dev/null | sed 's/^node-server: //')" \
    gcc "$(gcc -dumpfullversion 2>/dev/null || echo unknown)" \
    server_args "${BENCH_SERVER_ARGS:-}" \
    build "${BUILD#"$ROOT"/}" \
    commands "$(cat "$COMMANDS")"

node "$ROOT/bench/report.mjs" --results "$JSONL" --meta "$RES/meta.json" \
    --out "$OUT_MD" --plot-data "$RES/latency.dat" --png "$(basename "$OUT_PNG")"
if [ -s "$RES/latency.dat" ] && command -v gnuplot >/dev/null 2>&1; then
    gnuplot -e "datafile='$RES/latency.dat'; outfile='$OUT_PNG'" "$ROOT/bench/latency.gp"
    say "wrote $OUT_PNG"
fi
say "wrote $OUT_MD (raw results in $RES)"
sed -n '/^## \/session/,/^### /p' "$OUT_MD" | sed '$d'
sed -n '/^## Many nodes/,/^### /p' "$OUT_MD" | sed '$d'
sed -n '/^## Summary/,/^## fanout/p' "$OUT_MD" | sed '$d'
