#!/bin/sh
# test_cli.sh TABSYNCD TABSYNC - the `tabsync` CLI against a real tabsyncd
# (--test-app): each command's output and exit code, as a person debugging a
# deployment would run them. Starts its own server on a free port and stops
# it by pid.
set -u
tabsyncd=$1
tabsync=$2
tmp=$(mktemp -d)
fails=0
checks=0
srv_pid=
cleanup() {
  [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

ok() { checks=$((checks + 1)); echo "ok - $1"; }
bad() { checks=$((checks + 1)); fails=$((fails + 1)); echo "FAIL - $1"; shift; for l in "$@"; do echo "    $l"; done; }

# run NAME WANT_RC CMD...: runs the CLI, keeps stdout/stderr in $out/$err
run() {
  name=$1; want=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  out=$(cat "$tmp/out"); err=$(cat "$tmp/err")
  if [ "$rc" -eq "$want" ]; then ok "$name (exit $rc)"; else bad "$name: exit $rc, want $want" "stdout: $out" "stderr: $err"; fi
}
expect() { # expect NAME HAYSTACK NEEDLE
  case "$2" in *"$3"*) ok "$1";; *) bad "$1: missing '$3'" "got: $2";; esac
}
expect_re() { # expect_re NAME TEXT ERE
  if printf '%s\n' "$2" | grep -Eq -- "$3"; then ok "$1"; else bad "$1: no match for /$3/" "got: $2"; fi
}

"$tabsyncd" --listen 127.0.0.1:0 --test-app >"$tmp/srv.out" 2>"$tmp/srv.err" &
srv_pid=$!
for i in $(seq 1 100); do grep -q listening "$tmp/srv.out" 2>/dev/null && break; sleep 0.05; done
port=$(sed -n 's|^tabsyncd listening on http://127.0.0.1:\([0-9]*\)/$|\1|p' "$tmp/srv.out")
[ -n "$port" ] || { echo "FAIL - tabsyncd did not start"; cat "$tmp/srv.err"; exit 1; }
url="http://127.0.0.1:$port/"
T="timeout -k 5 20 $tabsync"

# --- usage ---
run "--help" 0 $T --help
expect "--help lists the commands" "$out" "watch"
expect "--help lists emit" "$out" "emit EVENT [JSON_ARGS]"
expect "--help lists ping" "$out" "ping"
expect "--help documents exit codes" "$out" "2 usage error"
run "--version" 0 $T --version
expect "--version" "$out" "tabsync 0.1.0"
run "no arguments" 2 $T
expect "no arguments says what is missing" "$err" "missing command"
run "unknown command" 2 $T frobnicate
run "connect without URL" 2 $T connect
expect "missing URL message" "$err" "missing URL"
run "bad scheme" 2 $T connect ftp://127.0.0.1/
expect "bad scheme message" "$err" 'scheme "ftp" is not supported'
run "bad port" 2 $T connect ws://127.0.0.1:99999/
run "bad auth JSON" 2 $T connect "$url" --auth '{"a":'
expect "bad auth message" "$err" "auth: invalid JSON"
run "bad parser" 2 $T connect "$url" --parser xml
run "unknown option" 2 $T connect "$url" --frob
run "--ack outside emit" 2 $T connect "$url" watch --ack
run "emit without event" 2 $T connect "$url" emit
run "emit bad JSON args" 2 $T connect "$url" emit message '[1,'
expect "emit bad JSON says so" "$err" "not valid JSON"
run "bad count" 2 $T connect "$url" ping -c zero

# --- connect ---
run "connect" 0 $T connect "$url"
expect_re "connect prints id and engine settings" "$out" '^\{"id":"[A-Za-z0-9_-]{20}","recovery":true,"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000\}$'
expect "connect status line" "$err" "connected to $url as"
run "connect -q is quiet" 0 $T connect "$url" -q
[ -z "$err" ] && ok "quiet stderr is empty" || bad "quiet stderr is empty" "$err"
run "connect ws:// with explicit path" 0 $T connect "ws://127.0.0.1:$port/socket.io/"
run "connection refused" 1 $T connect "http://127.0.0.1:1/" -t 2000
expect "refused message" "$err" "connection refused"
run "wrong path" 1 $T connect "http://127.0.0.1:$port/not-socket-io/" -t 2000
expect "wrong path message" "$err" "expected 101"
run "refused namespace" 1 $T connect "$url" -n /refuse
expect "refusal message and data" "$err" 'not allowed {"reason":"test","code":42}'
run "refused by middleware" 1 $T connect "$url" --auth '{"refuse":"go away"}'
expect "middleware message" "$err" 'go away {"code":403}'

# --- watch ---
run "watch -c 1" 0 $T connect "$url" --auth '{"user":"u1"}' watch -c 1
expect_re "watch prints a JSON line with a timestamp" "$out" '^\{"ts":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{12}Z","event":"auth","args":\[\{"user":"u1"\},"[^"]+"\]\}$'
run "watch on /custom" 0 $T connect "$url" -n /custom watch --count 1
expect "watch on a namespace" "$out" '"event":"auth"'

# watch receives what another client sends to its room: join needs an ack
# from the watcher's own socket, so use broadcast, which reaches every socket
# of the namespace but the sender
$T connect "$url" -q watch -c 2 >"$tmp/watch.out" 2>"$tmp/watch.err" &
wpid=$!
sleep 0.5
run "emit broadcast" 0 $T connect "$url" emit broadcast '["news",{"n":1},"x"]'
wait $wpid
wrc=$?
[ "$wrc" -eq 0 ] && ok "watcher exited 0 after 2 events" || bad "watcher exit $wrc" "$(cat "$tmp/watch.err")"
expect_re "watcher saw the broadcast" "$(cat "$tmp/watch.out")" '"event":"news","args":\[\{"n":1\},"x","[^"]+"\]'

# SIGINT ends watch cleanly
$T connect "$url" -q watch >"$tmp/w2.out" 2>"$tmp/w2.err" &
wpid=$!
sleep 0.5
kill -INT $wpid
wait $wpid
wrc=$?
[ "$wrc" -eq 0 ] && ok "watch exits 0 on SIGINT" || bad "watch exit on SIGINT: $wrc" "$(cat "$tmp/w2.err")"

# --- emit ---
run "emit --wait" 0 $T connect "$url" emit message '["hi",1.5,{"x":null}]' --wait message-back
expect_re "emit --wait prints the answer" "$out" '"event":"message-back","args":\["hi",1.5,\{"x":null\},"[^"]+"\]'
run "emit a single value" 0 $T connect "$url" emit message '"solo"' --wait message-back
expect "single value is one argument" "$out" '"args":["solo",'
run "emit --ack" 0 $T connect "$url" emit message-with-ack '[1,"two",[3]]' --ack
[ "$out" = '[1,"two",[3]]' ] && ok "emit --ack prints exactly the ack" || bad "emit --ack output" "$out"
run "emit --ack with binary event" 0 $T connect "$url" emit emit-binary --ack --wait binary
expect "binary attachments as base64" "$out" '"bin":["AQID","BAU="]'
run "emit --ack timeout" 1 $T connect "$url" emit message '"x"' --ack -t 300
expect "ack timeout message" "$err" "timed out"
run "emit --wait timeout" 1 $T connect "$url" emit message '"x"' --wait never-comes -t 300
expect "wait timeout message" "$err" "no never-comes within 300 ms"
run "emit reserved name" 2 $T connect "$url" emit disconnect
run "server disconnect" 1 $T connect "$url" emit disconnect-me --wait never-comes
expect "server disconnect reason" "$err" "io server disconnect"

# --- ping ---
run "ping" 0 $T connect "$url" ping -c 3 -i 10
expect_re "ping samples" "$out" '^seq=1 rtt=[0-9]+\.[0-9]{3} ms$'
expect_re "ping summary" "$out" '^3 samples, 0 lost: rtt min/avg/max = [0-9.]+/[0-9.]+/[0-9.]+ ms$'
run "ping an event without ack" 1 $T connect "$url" ping -c 2 -i 10 --event message -t 200
expect "lost samples" "$out" "2 samples, 2 lost"

# --- msgpack ---
"$tabsyncd" --listen 127.0.0.1:0 --test-app --parser msgpack >"$tmp/mp.out" 2>"$tmp/mp.err" &
mp_pid=$!
for i in $(seq 1 100); do grep -q listening "$tmp/mp.out" 2>/dev/null && break; sleep 0.05; done
mport=$(sed -n 's|^tabsyncd listening on http://127.0.0.1:\([0-9]*\)/$|\1|p' "$tmp/mp.out")
run "msgpack emit --ack" 0 $T connect "http://127.0.0.1:$mport/" -p msgpack emit message-with-ack '[{"a":[1,2]}]' --ack
[ "$out" = '[{"a":[1,2]}]' ] && ok "msgpack ack" || bad "msgpack ack output" "$out"
run "msgpack watch" 0 $T connect "http://127.0.0.1:$mport/" --parser msgpack watch -c 1
expect "msgpack auth event" "$out" '"event":"auth"'
kill -TERM $mp_pid; wait $mp_pid; mrc=$?
[ "$mrc" -eq 0 ] && ok "msgpack server exited cleanly" || bad "msgpack server exit $mrc" "$(cat "$tmp/mp.err")"

# --- TLS (wss://): a self-signed certificate for 127.0.0.1 made here ---
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$tmp/tls.key" -out "$tmp/tls.crt" -days 2 -subj /CN=tabsync-test \
  -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1
"$tabsyncd" --listen 127.0.0.1:0 --test-app --tls-cert "$tmp/tls.crt" --tls-key "$tmp/tls.key" \
  >"$tmp/tls.out" 2>"$tmp/tls.err" &
tls_pid=$!
for i in $(seq 1 100); do grep -q listening "$tmp/tls.out" 2>/dev/null && break; sleep 0.05; done
tport=$(sed -n 's|^tabsyncd listening on https://127.0.0.1:\([0-9]*\)/$|\1|p' "$tmp/tls.out")
run "wss:// with --cacert" 0 $T connect "wss://127.0.0.1:$tport/" --cacert "$tmp/tls.crt"
expect_re "wss:// connect prints the id" "$out" '^\{"id":"[A-Za-z0-9_-]{20}"'
run "https:// emit --ack over TLS" 0 $T connect "https://127.0.0.1:$tport/" --cacert "$tmp/tls.crt" \
  emit message-with-ack '["over tls"]' --ack
[ "$out" = '["over tls"]' ] && ok "ack over TLS" || bad "ack over TLS output" "$out"
run "wss:// without trusting the certificate" 1 $T connect "wss://127.0.0.1:$tport/" -t 3000
expect "untrusted certificate says why" "$err" "certificate verify failed (self-signed certificate)"
run "wss:// --insecure" 0 $T connect "wss://127.0.0.1:$tport/" -k -q
run "--cacert that cannot be read" 2 $T connect "wss://127.0.0.1:$tport/" --cacert "$tmp/none.pem"
expect "unreadable --cacert names the flag and the file" "$err" "--cacert: cannot load trusted certificates from $tmp/none.pem"
run "wss:// to a plain server" 1 $T connect "wss://127.0.0.1:$port/" --cacert "$tmp/tls.crt" -t 3000
expect "plain server: handshake failure" "$err" "TLS with 127.0.0.1:$port: handshake failed"
kill -TERM $tls_pid; wait $tls_pid; trc=$?
[ "$trc" -eq 0 ] && ok "TLS server exited cleanly" || bad "TLS server exit $trc" "$(cat "$tmp/tls.err")"

kill -TERM "$srv_pid"; wait "$srv_pid"; src=$?; srv_pid=
[ "$src" -eq 0 ] && ok "server exited cleanly" || bad "server exit $src" "$(cat "$tmp/srv.err")"

echo "$checks checks, $fails failed"
[ "$fails" -eq 0 ]
