#!/usr/bin/env bash
# run.sh - what `make run` starts once tabsyncd is built: the server with the
# app (web/, the browser library from clients/js) on the embedded store (memory + a SQLite file) and /session on
# with a development secret kept in a file under the build folder (made once,
# readable by you only), so tokens can be minted from the shell; prints the
# commands to do so, then runs tabsyncd in the foreground.
#   BUILD (build), LISTEN (127.0.0.1:3000), DATA (.tabsync), TABSYNCD (the binary)
set -euo pipefail
BUILD=${BUILD:-build}
LISTEN=${LISTEN:-127.0.0.1:3000}
DATA=${DATA:-.tabsync}
TABSYNCD=${TABSYNCD:-$BUILD/tabsyncd}
SECRET_FILE=$BUILD/dev-secret
mkdir -p "$DATA" "$BUILD"
if [ ! -s "$SECRET_FILE" ]; then
  (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$SECRET_FILE")
fi
url="http://$LISTEN"
cli=$BUILD/tools/cli/tabsync
cat <<MSG
tabsync development server: the app on $url/ (open it in two windows),
the connection page on $url/connection.html, /session on with --dev.
  development secret:  $SECRET_FILE
  a token from the shell:
    TOKEN=\$(TABSYNC_JWT_SECRET_FILE=$SECRET_FILE $TABSYNCD token --user me --session demo --device laptop)
  or over HTTP (--dev only):
    curl '$url/api/dev/token?user=me&session=demo&device=laptop&ttl=3600'
  two tabs talking:    TABSYNC_URL=$url node examples/two-tabs.mjs
  the CLI:             $cli --help
MSG
# web/state-rules.json: how the app's document merges concurrent changes
# (a note's text by version, counters, the label set; the rest last-writer-wins).
exec "$TABSYNCD" --listen "$LISTEN" --web web --dev --store-sqlite "$DATA/tabsync.db" \
  --jwt-secret-file "$SECRET_FILE" --state-rules web/state-rules.json "$@"
