#!/bin/sh
# test_cli_session.sh TABSYNCD TABSYNC - `tabsync session` against a real
# tabsyncd with JWT auth, the way a person debugging a deployment uses it:
# mint tokens with `tabsyncd token`, watch a session in the background,
# publish from other tabs, check what the watcher printed; refusals, exit
# codes, messages, token expiry notices; `history` prints the session's
# history (protocol 3 sync, page after page); `elections` prints the
# election views (protocol 4). Starts its own server on a
# free port and stops it by pid.
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
unset TABSYNC_TOKEN

ok() { checks=$((checks + 1)); echo "ok - $1"; }
bad() { checks=$((checks + 1)); fails=$((fails + 1)); echo "FAIL - $1"; shift; for l in "$@"; do echo "    $l"; done; }

# run NAME WANT_RC CMD...: runs the CLI, keeps stdout/stderr in $out/$err
run() {
  name=$1; want=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  out=$(cat "$tmp/out"); err=$(cat "$tmp/err")
  if [ "$rc" -eq "$want" ]; then ok "$name (exit $rc)"; else bad "$name: exit $rc, want $want" "stdout: $out" "stderr: $err"; fi
  sanitizer_check "$name" "$err"
}
# a sanitizer report fails the check even when the exit code matches
sanitizer_check() {
  case "$2" in *Sanitizer*|*"runtime error:"*) bad "$1: sanitizer report" "$2";; esac
}
expect() { # expect NAME HAYSTACK NEEDLE
  case "$2" in *"$3"*) ok "$1";; *) bad "$1: missing '$3'" "got: $2";; esac
}
expect_not() { # expect_not NAME HAYSTACK NEEDLE
  case "$2" in *"$3"*) bad "$1: unexpected '$3'" "got: $2";; *) ok "$1";; esac
}
expect_re() { # expect_re NAME TEXT ERE
  if printf '%s\n' "$2" | grep -Eq -- "$3"; then ok "$1"; else bad "$1: no match for /$3/" "got: $2"; fi
}
# wait_lines FILE N: until FILE has N lines (at most 10 s)
wait_lines() {
  for i in $(seq 1 200); do [ "$(wc -l <"$1")" -ge "$2" ] && return 0; sleep 0.05; done
  return 1
}

secret=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
"$tabsyncd" --listen 127.0.0.1:0 --jwt-secret "$secret" --jwt-leeway 0 \
  --limit-handshakes-per-ip 0 --limit-conns-per-ip 0 --limit-conns-per-user 0 \
  >"$tmp/srv.out" 2>"$tmp/srv.err" &
srv_pid=$!
for i in $(seq 1 100); do grep -q listening "$tmp/srv.out" 2>/dev/null && break; sleep 0.05; done
port=$(sed -n 's|^tabsyncd listening on http://127.0.0.1:\([0-9]*\)/$|\1|p' "$tmp/srv.out")
[ -n "$port" ] || { echo "FAIL - tabsyncd did not start"; cat "$tmp/srv.err"; exit 1; }
url="http://127.0.0.1:$port/"
T="timeout -k 5 20 $tabsync"

# mint USER SESSION DEVICE FINGERPRINT [TTL]
mint() { "$tabsyncd" token --jwt-secret "$secret" --user "$1" --session "$2" --device "$3" --fingerprint "$4" --ttl "${5:-600}"; }
t_laptop=$(mint alice s1 laptop fp-laptop)
t_phone=$(mint alice s1 phone fp-phone)
t_laptop_s2=$(mint alice s2 laptop fp-laptop)
t_bob=$(mint bob s1 laptop fp-bob)
[ -n "$t_laptop" ] && [ -n "$t_bob" ] && ok "tabsyncd token mints tokens" || bad "tabsyncd token failed"

# --- help and usage ---
run "--help" 0 $T --help
expect "--help shows session" "$out" "tabsync session URL --token T --device ID"
expect "--help lists publish" "$out" "publish TYPE [BODY]"
expect "--help lists metadata" "$out" "metadata JSON"
expect "--help lists history" "$out" "--after N"
expect "--help names TABSYNC_TOKEN" "$out" "TABSYNC_TOKEN"
expect "--help still lists connect" "$out" "emit EVENT [JSON_ARGS]"
expect "--help documents exit codes" "$out" "2 usage error"
run "session --help" 0 $T session --help
expect "session --help" "$out" "--fingerprint F"
run "session without URL" 2 $T session
expect "missing URL message" "$err" "session: missing URL"
run "session without token" 2 $T session "$url" --device laptop
expect "missing token message" "$err" "missing --token (or TABSYNC_TOKEN"
run "session without device" 2 $T session "$url" --token "$t_laptop"
expect "missing device message" "$err" "missing --device"
run "unknown session command" 2 $T session "$url" --token x --device d frob
expect "unknown command message" "$err" "expected watch, publish, metadata, history or elections"
run "bad --to" 2 $T session "$url" --token x --device d publish t --to room
expect "bad --to message" "$err" '--to "room" is not accepted (expected session, user or device)'
run "bad --prio" 2 $T session "$url" --token x --device d publish t --prio security
expect "security prio is not offered" "$err" '--prio "security" is not accepted'
run "--to outside publish" 2 $T session "$url" --token x --device d watch --to user
run "--count outside watch" 2 $T session "$url" --token x --device d publish t -c 2
run "publish without TYPE" 2 $T session "$url" --token x --device d publish
run "metadata without JSON" 2 $T session "$url" --token x --device d metadata
run "bad URL" 2 $T session ftp://x/ --token x --device d
run "too many caps" 2 $T session "$url" --token x --device d --caps "$(seq -s, 1 33)"
run "history with an argument" 2 $T session "$url" --token x --device d history now
expect "history argument message" "$err" 'history: unexpected argument "now"'
run "--after outside history" 2 $T session "$url" --token x --device d publish t --after 1
expect "--after belongs to history" "$err" "--after and --limit belong to history"
run "--limit out of range" 2 $T session "$url" --token x --device d history --limit 0
run "--after not a number" 2 $T session "$url" --token x --device d history --after x

# --- who am I ---
run "session info" 0 $T session "$url" --token "$t_laptop" --device laptop --fingerprint fp-laptop --tab tab-1
expect_re "info prints the welcome" "$out" '^\{"ts":"[0-9T:.-]+Z","event":"welcome","data":\{"user":"alice","session":"s1","device":"laptop","tab":"tab-1","proto":2,"exp":[0-9]+,"node":"[^"]+","now":[0-9]+\}\}$'
expect "info status line" "$err" "as user alice, session s1, device laptop, tab tab-1"
run "token from TABSYNC_TOKEN" 0 env TABSYNC_TOKEN="$t_laptop" $T session "$url" --device laptop --fingerprint fp-laptop -q
[ -z "$err" ] && ok "-q: stderr is empty" || bad "-q: stderr is empty" "$err"
expect_re "a random tab id" "$out" '"tab":"tab-[a-z0-9]{16}"'
run "--type and --caps accepted" 0 $T session "$url" --token "$t_laptop" --device laptop --fingerprint fp-laptop --type desktop --caps idb,sw

# --- refusals carry data.code ---
run "wrong fingerprint" 1 $T session "$url" --token "$t_laptop" --device laptop --fingerprint nope
expect "fingerprint_mismatch" "$err" '{"code":"fingerprint_mismatch"}'
expect "refusal says why" "$err" "the server refused the connection: "
run "wrong device" 1 $T session "$url" --token "$t_laptop" --device phone --fingerprint fp-laptop
expect "device_mismatch" "$err" '"code":"device_mismatch"'
run "garbage token" 1 $T session "$url" --token not-a-jwt --device laptop
expect "token_malformed" "$err" '"code":"token_malformed"'
run "unknown device type" 1 $T session "$url" --token "$t_laptop" --device laptop --fingerprint fp-laptop --type toaster
expect "auth_unknown_device_type" "$err" '"code":"auth_unknown_device_type"'
run "default fingerprint is the device id" 1 $T session "$url" --token "$t_laptop" --device laptop
expect "so a token minted with another fp is refused" "$err" "fingerprint_mismatch"

# --- watch + publish: session, user, device scopes ---
$T session "$url" --token "$t_laptop" --device laptop --fingerprint fp-laptop --tab watcher -q watch -c 3 \
  >"$tmp/watch.out" 2>"$tmp/watch.err" &
wpid=$!
wait_lines "$tmp/watch.out" 1 && ok "watcher printed its welcome" || bad "watcher printed no welcome" "$(cat "$tmp/watch.err")"
# bob's session s1 is not alice's: nothing of his may reach the watcher
run "bob publishes to his session" 0 $T session "$url" --token "$t_bob" --device laptop --fingerprint fp-bob publish bob.secret '"x"'
run "bob publishes to his user" 0 $T session "$url" --token "$t_bob" --device laptop --fingerprint fp-bob publish bob.secret2 --to user
body=$(printf '{"items":[1,2],"note":"caf\303\251 \\"quoted\\""}')
run "publish to the session" 0 $T session "$url" --token "$t_phone" --device phone --fingerprint fp-phone --tab phone-1 \
  publish cart.update "$body" --prio state --id c-1
[ "$out" = '{"ok":true,"id":"c-1"}' ] && ok "publish prints the ack" || bad "publish ack" "$out"
run "publish to the user from another session" 0 $T session "$url" --token "$t_laptop_s2" --device laptop --fingerprint fp-laptop --tab s2-tab \
  publish profile.changed '{"name":"A"}' --to user
expect_re "a generated id is reported" "$out" '^\{"ok":true,"id":"p[a-z0-9]+-1"\}$'
run "publish to the device from another session" 0 $T session "$url" --token "$t_laptop_s2" --device laptop --fingerprint fp-laptop --tab s2-tab \
  publish dev.note 7 --to device --prio telemetry --id d-1
wait $wpid
wrc=$?
[ "$wrc" -eq 0 ] && ok "watcher exited 0 after 3 events" || bad "watcher exit $wrc" "$(cat "$tmp/watch.err")"
sanitizer_check "watcher" "$(cat "$tmp/watch.err")"
w=$(cat "$tmp/watch.out")
expect_re "welcome line first" "$(head -n 1 "$tmp/watch.out")" '"event":"welcome","data":\{"user":"alice","session":"s1","device":"laptop","tab":"watcher"'
# a session-scope envelope is in the session's history: kind, ts and seq are the server's
expect "session event with from" "$w" '"event":"event","data":{"kind":"event","v":2,"type":"cart.update","id":"c-1","prio":"state","to":"session","body":{"items":[1,2],"note":"café \"quoted\""},"from":{"user":"alice","device":"phone","tab":"phone-1"},"ts":'
expect_re "history seq on the event" "$w" '"from":\{"user":"alice","device":"phone","tab":"phone-1"\},"ts":[0-9]+,"seq":[0-9]+\}'
expect "user event from another session" "$w" '"type":"profile.changed"'
expect_re "user scope, from s2-tab" "$w" '"type":"profile.changed","id":"p[a-z0-9]+-1","prio":"event","to":"user","body":\{"name":"A"\},"from":\{"user":"alice","device":"laptop","tab":"s2-tab"\}'
expect "device event" "$w" '"type":"dev.note","id":"d-1","prio":"telemetry","to":"device","body":7,"from":{"user":"alice","device":"laptop","tab":"s2-tab"}'
expect_not "nothing from bob" "$w" "bob.secret"
[ "$(wc -l <"$tmp/watch.out")" -eq 4 ] && ok "welcome + 3 events" || bad "watch line count" "$w"

# a publisher does not receive its own envelope: watch and publish from the
# same tab id would be two tabs, so check with the session scope and -c 1
$T session "$url" --token "$t_phone" --device phone --fingerprint fp-phone --tab p2 -q watch -c 1 \
  >"$tmp/w2.out" 2>"$tmp/w2.err" &
wpid=$!
wait_lines "$tmp/w2.out" 1
run "laptop publishes" 0 $T session "$url" --token "$t_laptop" --device laptop --fingerprint fp-laptop --tab l2 publish ping.1
wait $wpid
expect "phone got the laptop's publish" "$(cat "$tmp/w2.out")" '"type":"ping.1"'

# --- history: alice/s1 logged c-1 (seq 1) and ping.1 (seq 2); the user and
# device scope envelopes and bob's session are not in it ---
run "history" 0 $T session "$url" --token "$t_phone" --device phone --fingerprint fp-phone -q history
[ "$(printf '%s\n' "$out" | wc -l)" -eq 2 ] && ok "history: two entries" || bad "history: two entries" "$out"
expect_re "history: c-1 is seq 1" "$(printf '%s\n' "$out" | head -n 1)" \
  '^\{"kind":"event","v":2,"type":"cart.update","id":"c-1","prio":"state","to":"session",.*,"ts":[0-9]+,"seq":1\}$'
expect_re "history: ping.1 is seq 2" "$(printf '%s\n' "$out" | tail -n 1)" \
  '^\{"kind":"event",.*"type":"ping.1",.*"from":\{"user":"alice","device":"laptop","tab":"l2"\},"ts":[0-9]+,"seq":2\}$'
expect "history: the body as published" "$out" '"body":{"items":[1,2],"note":"café \"quoted\""}'
expect_not "history: user scope is ephemeral" "$out" "profile.changed"
expect_not "history: nothing of bob" "$out" "bob.secret"
full=$out
run "history --limit 1 follows more" 0 $T session "$url" --token "$t_phone" --device phone --fingerprint fp-phone history --limit 1
[ "$out" = "$full" ] && ok "history: pages of 1 print the same" || bad "history --limit 1" "$out" "want: $full"
expect "history status line" "$err" "history: 2 entries, up to seq 2"
run "history --after 1" 0 $T session "$url" --token "$t_phone" --device phone --fingerprint fp-phone -q history --after 1
expect_re "history --after 1: ping.1 only" "$out" '^\{"kind":"event",.*"type":"ping.1",.*"seq":2\}$'
run "history --after 2" 0 $T session "$url" --token "$t_phone" --device phone --fingerprint fp-phone -q history --after 2
[ -z "$out" ] && ok "history --after 2: nothing new" || bad "history --after 2" "$out"
# ahead of the history: the answer starts from a snapshot, printed first
run "history --after 99" 0 $T session "$url" --token "$t_phone" --device phone --fingerprint fp-phone -q history --after 99
expect_re "history: the snapshot of a reset" "$out" \
  '^\{"kind":"snapshot","reason":"ahead","epoch":"[0-9a-f]{16}","seq":2,"ver":0,"state":\{\}\}$'
run "history of bob's s1" 0 $T session "$url" --token "$t_bob" --device laptop --fingerprint fp-bob -q history
expect "bob's history has his envelope" "$out" '"type":"bob.secret"'
expect_not "and nothing of alice" "$out" "cart.update"

# --- refused publishes and metadata ---
run "publish a bad type" 1 $T session "$url" --token "$t_phone" --device phone --fingerprint fp-phone publish 'bad type!'
expect "ack printed on refusal" "$out" '{"ok":false,"error":{"code":"bad_envelope","message":"envelope: type must be'
expect "refusal on stderr with code" "$err" "publish refused: bad_envelope: envelope: type"
run "publish a bad id" 1 $T session "$url" --token "$t_phone" --device phone --fingerprint fp-phone publish ok.type --id 'has space'
expect "bad id code" "$err" "bad_envelope"
run "publish bad JSON body" 2 $T session "$url" --token "$t_phone" --device phone --fingerprint fp-phone publish t '{"a":'
expect "bad body message" "$err" "BODY is not valid JSON"
run "metadata" 0 $T session "$url" --token "$t_phone" --device phone --fingerprint fp-phone \
  metadata '{"network":{"effectiveType":"4g","rtt":40},"battery":{"level":0.8,"charging":false},"visibility":"visible"}'
[ "$out" = '{"ok":true}' ] && ok "metadata ack" || bad "metadata ack" "$out"
run "metadata refused" 1 $T session "$url" --token "$t_phone" --device phone --fingerprint fp-phone metadata '{"battery":3}'
expect "bad_metadata" "$err" "metadata refused: bad_metadata: battery must be an object"
run "metadata not an object" 2 $T session "$url" --token "$t_phone" --device phone --fingerprint fp-phone metadata '[1]'

# --- elections (protocol 4): a candidate in the background leads; an
# observer prints the first view of each scope ---
run "elections with an argument" 2 $T session "$url" --token x --device d elections now
expect "elections argument message" "$err" 'elections: unexpected argument "now"'
run "--scope not a scope" 2 $T session "$url" --token x --device d elections --scope user
expect "--scope message" "$err" '--scope "user" is not accepted (expected session, device or session,device)'
run "--follow outside elections" 2 $T session "$url" --token x --device d watch --follow
expect "--follow belongs to elections" "$err" "--scope, --follow and --candidate belong to elections"
t_e1=$(mint erin s1 laptop fp-e1)
t_e2=$(mint erin s1 phone fp-e2)
$T session "$url" --token "$t_e1" --device laptop --fingerprint fp-e1 --tab lead-1 -q elections \
  --candidate --follow >"$tmp/cand.out" 2>"$tmp/cand.err" &
cpid=$!
wait_lines "$tmp/cand.out" 2
expect_re "the candidate leads the session scope" "$(cat "$tmp/cand.out")" \
  '"data":\{"scope":"session","term":[1-9][0-9]*,"leader":\{"device":"laptop","tab":"lead-1","score":[0-9]+\},"backup":null,"reason":"elected",.*"role":"leader"'
run "elections --scope session" 0 $T session "$url" --token "$t_e2" --device phone --fingerprint fp-e2 --tab obs-1 elections --scope session
expect "elections: one line" "$(printf '%s\n' "$out" | wc -l | tr -d ' ')" "1"
expect_re "the view: scope, term, leader" "$out" \
  '^\{"ts":"[0-9T:.-]+Z","event":"elect","data":\{"scope":"session","term":[1-9][0-9]*,"leader":\{"device":"laptop","tab":"lead-1","score":[0-9]+\},"backup":null,'
expect "the observer's role" "$out" '"role":"observer"'
expect_re "members with roles and scores" "$out" \
  '"members":\[\{"device":"laptop","tab":"lead-1","role":"leader","score":[0-9]+,"parts":\{"battery":[0-9.]+,"connection":[0-9.]+,"device":[0-9.]+,"visibility":[0-9.]+,"uptime":[0-9.]+\}\},\{"device":"phone","tab":"obs-1","role":"observer"'
expect "the task table" "$out" '"tasks":[]'
run "elections: both scopes" 0 $T session "$url" --token "$t_e2" --device phone --fingerprint fp-e2 -q elections
expect "elections: two lines" "$(printf '%s\n' "$out" | wc -l | tr -d ' ')" "2"
expect "the device scope of the phone: nobody leads" "$out" '"data":{"scope":"device","term":0,"leader":null,"backup":null'
expect "and the session scope" "$out" '"scope":"session","term":'
sleep 1.5 # a heartbeat or two: the candidate still leads the same term
run "elections after heartbeats" 0 $T session "$url" --token "$t_e2" --device phone --fingerprint fp-e2 -q elections --scope session
expect "the same leader" "$out" '"leader":{"device":"laptop","tab":"lead-1"'
kill -INT $cpid
wait $cpid
crc=$?
[ "$crc" -eq 0 ] && ok "elections --follow exits 0 on SIGINT" || bad "elections --follow exit on SIGINT: $crc" "$(cat "$tmp/cand.err")"
expect_not "the candidate never lost its term" "$(cat "$tmp/cand.out")" '"reason":"lapse"'
sanitizer_check "elections --candidate" "$(cat "$tmp/cand.err")"
run "elections refused" 1 $T session "$url" --token "$t_e2" --device phone --fingerprint wrong elections
expect "elections refusal code" "$err" '"code":"fingerprint_mismatch"'

# --- SIGINT ends watch cleanly ---
$T session "$url" --token "$t_phone" --device phone --fingerprint fp-phone -q watch >"$tmp/w3.out" 2>"$tmp/w3.err" &
wpid=$!
wait_lines "$tmp/w3.out" 1
kill -INT $wpid
wait $wpid
wrc=$?
[ "$wrc" -eq 0 ] && ok "watch exits 0 on SIGINT" || bad "watch exit on SIGINT: $wrc" "$(cat "$tmp/w3.err")"
sanitizer_check "watch on SIGINT" "$(cat "$tmp/w3.err")"

# --- token expiry (leeway 0): watch prints both security notices, then the
# server disconnects ---
t_short=$(mint carol s1 c1 fp-c 2)
run "watch until the token expires" 1 $T session "$url" --token "$t_short" --device c1 --fingerprint fp-c watch
expect_re "token_expiring notice" "$out" '"event":"security","data":\{"code":"token_expiring","exp":[0-9]+,"message":"[^"]+"\}'
expect_re "token_expired notice" "$out" '"event":"security","data":\{"code":"token_expired","exp":[0-9]+,"message":"[^"]+"\}'
expect "then the server disconnects" "$err" "disconnected (io server disconnect)"
run "the expired token is refused" 1 $T session "$url" --token "$t_short" --device c1 --fingerprint fp-c
expect "token_expired code" "$err" '"code":"token_expired"'

kill -TERM "$srv_pid"; wait "$srv_pid"; src=$?; srv_pid=
[ "$src" -eq 0 ] && ok "server exited cleanly" || bad "server exit $src" "$(cat "$tmp/srv.err")"
sanitizer_check "server" "$(cat "$tmp/srv.err")"

echo "$checks checks, $fails failed"
[ "$fails" -eq 0 ]
