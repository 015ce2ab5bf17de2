#!/bin/sh
# check_install.sh BUILD_DIR CC - installs the libtabsync component into a
# temporary prefix and builds and runs a program against it with pkg-config,
# as a user of the installed library would.
set -eu
build=$1
cc=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --component libtabsync --prefix "$tmp/prefix" >/dev/null
test -f "$tmp/prefix/include/tabsync.h"
test -x "$tmp/prefix/bin/tabsync"
pc=$(find "$tmp/prefix" -name tabsync.pc)
test -n "$pc"
export PKG_CONFIG_PATH=$(dirname "$pc")
cat > "$tmp/use.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <tabsync.h>
int main(void) {
    uv_loop_t *loop = uv_default_loop();
    ts_client_opts_t o;
    ts_client_opts_init(&o);
    o.url = "ws://127.0.0.1:9/socket.io/";
    ts_client_t *c;
    char err[200];
    if (ts_client_new(loop, &o, &c, err, sizeof err) != 0) return 1;
    ts_client_close(c, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    printf("libtabsync %s %s\n", ts_client_version(), ts_client_err_name(TS_EPROTO));
    return uv_loop_close(loop);
}
C
# shellcheck disable=SC2046
"$cc" -Wall -Wextra -Werror -o "$tmp/use" "$tmp/use.c" $(pkg-config --cflags --libs tabsync)
libdir=$(pkg-config --variable=libdir tabsync)
out=$(LD_LIBRARY_PATH="$libdir" "$tmp/use")
test "$out" = "libtabsync 0.1.0 TS_EPROTO"
# the installed CLI finds the installed library through its RPATH
"$tmp/prefix/bin/tabsync" --version | grep -q '^tabsync 0.1.0$'
echo "installed and used: $out"
