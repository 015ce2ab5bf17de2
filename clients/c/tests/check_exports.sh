#!/bin/sh
# check_exports.sh LIB - fails if libtabsync.so exports a symbol that does not
# start with ts_client_ (the linker's own markers aside), or misses the API.
set -eu
lib=$1
syms=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v -E '^(_init|_fini|_edata|_end|__bss_start)$' || true)
bad=$(printf '%s\n' "$syms" | grep -v '^ts_client_' || true)
if [ -n "$bad" ]; then
  echo "libtabsync exports symbols outside ts_client_*:" >&2
  printf '%s\n' "$bad" >&2
  exit 1
fi
for f in ts_client_new ts_client_connect ts_client_close ts_client_emit ts_client_emit_ack \
         ts_client_emit_binary ts_client_ack ts_client_id ts_client_recovered ts_client_strerror; do
  printf '%s\n' "$syms" | grep -qx "$f" || { echo "missing export: $f" >&2; exit 1; }
done
echo "$(printf '%s\n' "$syms" | wc -l) symbols, all ts_client_*"
