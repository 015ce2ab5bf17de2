#!/usr/bin/env bash
# spin.sh - model-checks the leader election (src/session/election.pml) with
# Spin: the safety and liveness checks must pass, and every mutant (a
# deliberate bug, or a rule of docs/ELECTION.md as written that the model
# found unsafe) must be caught by the property it breaks, so the checks are
# known to be able to fail. docs/ELECTION-MODEL.md explains each run.
#
# Usage: tests/model/spin.sh [-k]    (-k keeps the work directory)
# Env:   SPIN_JOBS (parallel pans, default 2), CC (default gcc), SPIN_MODEL.
# Exits non-zero if spin or the compiler is missing, a check finds an error
# (assertion violation, acceptance cycle, invalid end state), a search is
# incomplete, or a mutant is not caught as expected.
set -euo pipefail

HERE=${0%/*}
[ "$HERE" = "$0" ] && HERE=.
ROOT=$(cd "$HERE/../.." && pwd)
MODEL=${SPIN_MODEL:-$ROOT/src/session/election.pml}   # SPIN_MODEL: check another copy
JOBS=${SPIN_JOBS:-2}
CC=${CC:-gcc}
KEEP=0
[ "${1:-}" = "-k" ] && KEEP=1

if ! command -v spin >/dev/null 2>&1; then
    echo "FAIL model/election: spin is not installed (Debian: apt-get install spin;" \
         "scripts/deps.sh installs it)" >&2
    exit 1
fi
if ! command -v "$CC" >/dev/null 2>&1; then
    echo "FAIL model/election: no C compiler '$CC' to build Spin's verifier" >&2
    exit 1
fi
[ -f "$MODEL" ] || { echo "FAIL model/election: $MODEL not found" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tabsync-spin.XXXXXX")
if [ "$KEEP" = 1 ]; then
    echo "work directory: $WORK"
else
    trap 'rm -rf "$WORK"' EXIT
fi

# One run per line: name | expect | spin -D flags | cc flags | pan flags.
# expect: "pass", or the property the run must violate (P1, P2, P3, P4).
# Passing runs are exhaustive (-O2); mutants stop at their first error, so
# they are compiled for speed of compilation (-O0).
SAFE_CC="-O2 -DSAFETY -DMEMLIM=2048"
LIVE_CC="-O2 -DNOFAIR -DMEMLIM=2048"
MUT_CC="-O0 -DSAFETY -DMEMLIM=1024"
RUNS=$(cat <<EOF
safety        |pass|                                    |$SAFE_CC|-m200000 -w24
safety-k3     |pass|-DK=3 -DDELTA=1                     |$SAFE_CC|-m200000 -w24
live-2tabs    |pass|-DLIVE -DN=2                        |$LIVE_CC|-a -m200000 -w24
live-3tabs    |pass|-DLIVE -DMAX_SCORE=0 -DMAX_DISC=0   |$LIVE_CC|-a -m200000 -w24
mut-xfer-nocas      |P3|-DMUT_XFER_NOCAS      |$MUT_CC|-m200000 -w22
mut-regrant         |P1|-DMUT_REGRANT         |$MUT_CC|-m200000 -w22
mut-no-rho          |P3|-DMUT_NO_RHO          |$MUT_CC|-m200000 -w22
mut-wide            |P3|-DMUT_WIDE            |$MUT_CC|-m200000 -w22
mut-ack-receipt     |P3|-DMUT_ACK_RECEIPT     |$MUT_CC|-m200000 -w22
mut-hb-cached       |P3|-DMUT_HB_CACHED       |$MUT_CC|-m200000 -w22
mut-resign-viewterm |P3|-DMUT_RESIGN_VIEWTERM |$MUT_CC|-m200000 -w22
mut-fence-noexp     |P2|-DMUT_FENCE_NOEXP     |$MUT_CC|-m200000 -w22
mut-rogue           |P2|-DMUT_ROGUE           |$MUT_CC|-m200000 -w22
spec-preempt-held   |P3|-DSPEC_PREEMPT_HELD   |$MUT_CC|-m200000 -w22
spec-leave-held     |P3|-DSPEC_LEAVE_HELD     |$MUT_CC|-m200000 -w22
spec-view-rtt       |P3|-DSPEC_VIEW_RTT       |$MUT_CC|-m200000 -w22
mut-no-sweep        |P4|-DLIVE -DN=2 -DMUT_NO_SWEEP|-O0 -DNOFAIR -DMEMLIM=1024|-a -m200000 -w22
EOF
)

trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; echo "${s%"${s##*[![:space:]]}"}"; }

# Which property an error report breaks, from pan's first error line.
classify() {
    local line
    line=$(grep -m1 -E '^pan:[0-9]+:' "$1" || true)
    case "$line" in
        *"acceptance cycle"*) echo P4 ;;
        *"t_win[gk]==0"* | *"g_granted[gk]==i"*) echo P3 ;;
        *"g_granted[st_term]==255"*) echo P1 ;;
        *"st_holder==i"* | *"g_granted[gk]==255"*) echo P2 ;;
        *"st_term<"*) echo "bound(MAX_TERM too small)" ;;
        "") echo none ;;
        *) echo "other: ${line#pan:*: }" ;;
    esac
}

# Runs one check in its own directory; writes "<status>|<line>" to result.
run_one() {
    local name=$1 expect=$2 defs=$3 ccf=$4 panf=$5
    local d=$WORK/$name
    mkdir -p "$d"
    cp "$MODEL" "$d/election.pml"
    cd "$d"
    # shellcheck disable=SC2086  # flags are word lists on purpose
    if ! spin $defs -a election.pml >spin.out 2>&1; then
        echo "FAIL|$name: spin -a failed: $(head -3 spin.out | tr '\n' ' ')" >result
        return
    fi
    # shellcheck disable=SC2086
    if ! $CC -w $ccf -o pan pan.c >cc.out 2>&1; then
        echo "FAIL|$name: $CC failed: $(head -3 cc.out | tr '\n' ' ')" >result
        return
    fi
    local t0 t1 rc=0
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086
    ./pan $panf >pan.out 2>&1 || rc=$?
    t1=$(date +%s.%N)
    local secs states errors got mem
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    states=$(awk '/states, stored/ { print $1; exit }' pan.out)
    mem=$(awk '/total actual memory usage/ { printf "%.0f", $1; exit }' pan.out)
    errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' pan.out | head -1)
    got=$(classify pan.out)
    local info="$name: ${states:-?} states, ${secs} s, ${mem:-?} MB"
    if [ "$expect" = pass ]; then
        if [ "$errors" = 0 ] && [ "$rc" = 0 ] && ! grep -qE 'max search depth too small|out of memory|Search not completed' pan.out; then
            echo "ok|$info, no errors" >result
        else
            echo "FAIL|$info, errors ${errors:-?} ($got), pan exit $rc; see below" >result
            {
                echo "---- $name: pan output ----"
                grep -vE '^Depth=' pan.out | head -40
                if [ -f election.pml.trail ]; then
                    echo "---- $name: counterexample, last steps (spin $defs -t -p -g -l election.pml) ----"
                    # shellcheck disable=SC2086
                    spin $defs -t -p -g -l election.pml 2>&1 | grep -E '^ *[0-9]+:' | tail -60
                fi
            } >detail
        fi
    else
        if [ "${errors:-0}" != 0 ] && [ "$got" = "$expect" ]; then
            echo "ok|$info, caught: breaks $got as expected" >result
        else
            echo "FAIL|$info, expected a $expect violation, got errors ${errors:-?} ($got)" >result
            { echo "---- $name: pan output ----"; grep -vE '^Depth=' pan.out | head -40; } >detail
        fi
    fi
}

echo "model/election: spin $(spin -V | sed -n 's/Spin Version \([^ ]*\).*/\1/p'), $(basename "$MODEL"), $JOBS jobs"
start=$(date +%s.%N)
names=()
while IFS='|' read -r name expect defs ccf panf; do
    name=$(trim "$name"); expect=$(trim "$expect"); defs=$(trim "$defs")
    names+=("$name")
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
    ( run_one "$name" "$expect" "$defs" "$ccf" "$panf" ) &
done <<<"$RUNS"
wait

fail=0
for name in "${names[@]}"; do
    r=$WORK/$name/result
    if [ ! -f "$r" ]; then
        printf 'FAIL  %s: no result\n' "$name"
        fail=1
        continue
    fi
    status=$(cut -d'|' -f1 "$r")
    printf '%-5s %s\n' "$status" "$(cut -d'|' -f2- "$r")"
    [ "$status" = ok ] || fail=1
done
for name in "${names[@]}"; do
    [ -f "$WORK/$name/detail" ] && cat "$WORK/$name/detail"
done
total=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
if [ "$fail" = 0 ]; then
    echo "model/election: all ${#names[@]} runs as expected in ${total} s"
else
    echo "model/election: FAILED (${total} s)"
fi
exit "$fail"
