/* apps.c - the namespace apps built into tabsyncd besides /session:
 * an echo app on "/" with --dev (what the `make run` page talks to), the test app of
 * tests/js/README.md (--test-app), and the setup the official Engine.IO /
 * Socket.IO conformance suites expect (--conformance). Each handler is a
 * few lines on the ts_sio API, which is also how /session will be built. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_mem.h"
#include "daemon/ts_dmn.h"

enum app_flags {
    APP_ECHO = 1u << 0, /* message -> message-back; message-with-ack -> ack */
    APP_AUTH = 1u << 1, /* emit `auth` with the CONNECT payload on connection */
    APP_FULL = 1u << 2, /* rooms, broadcasts, server acks, disconnects (tests) */
};

/* Arguments i.. of `a` (same attachments: placeholders keep their numbers). */
static ts_sio_args_t args_from(const ts_sio_args_t *a, size_t i, json_t **hold) {
    json_t *rest = json_array();
    for (size_t k = i; k < json_array_size(a->args); k++)
        json_array_append(rest, json_array_get(a->args, k));
    *hold = rest;
    return (ts_sio_args_t){rest, a->attach, a->nattach};
}

static void ack_values(ts_sio_socket_t *s, int64_t id, json_t *values /* takes */) {
    if (id < 0) {
        json_decref(values);
        return;
    }
    ts_sio_args_t a = {values, NULL, 0};
    ts_sio_ack(s, id, &a);
    json_decref(values);
}

static const char *arg_str(const ts_sio_args_t *a, size_t i) {
    return json_string_value(json_array_get(a->args, i));
}

static int test_authorize(ts_sio_socket_t *s, json_t *auth, ts_sio_refusal_t *refuse, void *ud) {
    const char *why = json_string_value(json_object_get(auth, "refuse"));
    if (!why) return 0;
    snprintf(refuse->message, sizeof refuse->message, "%s", why);
    refuse->data = json_pack("{s:i}", "code", 403);
    return 1;
}

static int refuse_all(ts_sio_socket_t *s, json_t *auth, ts_sio_refusal_t *refuse, void *ud) {
    snprintf(refuse->message, sizeof refuse->message, "not allowed");
    refuse->data = json_pack("{s:s,s:i}", "reason", "test", "code", 42);
    return 1;
}

static void emit_auth(ts_sio_socket_t *s, void *ud) {
    uintptr_t flags = (uintptr_t)ud;
    if (!(flags & APP_AUTH)) return;
    json_t *arr = json_array();
    json_array_append(arr, ts_sio_socket_auth(s));
    ts_sio_args_t a = {arr, NULL, 0};
    ts_sio_emit(s, "auth", &a);
    json_decref(arr);
}

static void on_server_ack(ts_sio_socket_t *s, const ts_sio_args_t *answer, int timed_out,
                          void *ud) {
    int64_t id = (int64_t)(intptr_t)ud;
    if (timed_out < 0) return; /* the socket is gone */
    ts_sio_ack(s, id, answer);
}

static void on_server_ack_timeout(ts_sio_socket_t *s, const ts_sio_args_t *answer,
                                  int timed_out, void *ud) {
    int64_t id = (int64_t)(intptr_t)ud;
    if (timed_out < 0) return;
    json_t *arr = json_array();
    json_array_append_new(arr, json_string(timed_out ? "timeout" : "answered"));
    if (answer) json_array_extend(arr, answer->args);
    ts_sio_args_t a = {arr, answer ? answer->attach : NULL, answer ? answer->nattach : 0};
    ts_sio_ack(s, id, &a);
    json_decref(arr);
}

/* A delivery class by name ("security" .. "telemetry"); DEFAULT otherwise. */
static ts_sio_class_t class_named(const char *name) {
    static const char *const names[] = {"default", "security", "control", "state",
                                        "event",   "presence", "telemetry"};
    for (size_t i = 0; name && i < TS_ARRAY_LEN(names); i++)
        if (strcmp(name, names[i]) == 0) return (ts_sio_class_t)i;
    return TS_SIO_CLASS_DEFAULT;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The events of the full test app; returns 1 if `event` was one of them. */
static int test_event(ts_sio_socket_t *s, const char *event, const ts_sio_args_t *a, int64_t id) {
    ts_sio_nsp_t *nsp = ts_sio_socket_nsp(s);
    json_t *hold = NULL;
    const char *room = arg_str(a, 0);
    if (strcmp(event, "join") == 0 && room) {
        ts_sio_join(s, room);
        ack_values(s, id, json_pack("[s]", "ok"));
    } else if (strcmp(event, "leave") == 0 && room) {
        ts_sio_leave(s, room);
        ack_values(s, id, json_pack("[s]", "ok"));
    } else if (strcmp(event, "rooms") == 0) {
        const char *names[256];
        size_t n = ts_sio_socket_rooms(s, names, TS_ARRAY_LEN(names));
        n = TS_MIN(n, TS_ARRAY_LEN(names));
        qsort(names, n, sizeof names[0], cmp_str);
        json_t *list = json_array();
        for (size_t i = 0; i < n; i++) json_array_append_new(list, json_string(names[i]));
        ack_values(s, id, json_pack("[o]", list));
    } else if ((strcmp(event, "to-room") == 0 || strcmp(event, "to-room-all") == 0) && room &&
               arg_str(a, 1)) {
        ts_sio_args_t rest = args_from(a, 2, &hold);
        ts_sio_target_t to = {.rooms = &room, .nrooms = 1,
                              .skip = strcmp(event, "to-room") == 0 ? s : NULL};
        ts_sio_broadcast(nsp, &to, arg_str(a, 1), &rest);
    } else if (strcmp(event, "broadcast") == 0 && arg_str(a, 0)) {
        ts_sio_args_t rest = args_from(a, 1, &hold);
        ts_sio_target_t to = {.skip = s};
        ts_sio_broadcast(nsp, &to, arg_str(a, 0), &rest);
    } else if (strcmp(event, "broadcast-except") == 0 && room && arg_str(a, 1) && arg_str(a, 2)) {
        const char *except = arg_str(a, 1);
        ts_sio_args_t rest = args_from(a, 3, &hold);
        ts_sio_target_t to = {.rooms = &room, .nrooms = 1, .except = &except, .nexcept = 1};
        ts_sio_broadcast(nsp, &to, arg_str(a, 2), &rest);
    } else if (strcmp(event, "emit-class") == 0 && arg_str(a, 0) && arg_str(a, 1)) {
        ts_sio_args_t rest = args_from(a, 2, &hold);
        ts_sio_emit_class(s, arg_str(a, 1), &rest, class_named(arg_str(a, 0)));
    } else if (strcmp(event, "to-room-class") == 0 && room && arg_str(a, 1) && arg_str(a, 3)) {
        json_int_t key = json_integer_value(json_array_get(a->args, 2));
        ts_sio_args_t rest = args_from(a, 4, &hold);
        ts_sio_target_t to = {.rooms = &room, .nrooms = 1, .cls = class_named(arg_str(a, 1)),
                              .coalesce = (uint32_t)key};
        ts_sio_broadcast(nsp, &to, arg_str(a, 3), &rest);
    } else if (strcmp(event, "server-ack") == 0 && arg_str(a, 0)) {
        ts_sio_args_t rest = args_from(a, 1, &hold);
        ts_sio_emit_ack(s, arg_str(a, 0), &rest, 0, on_server_ack, (void *)(intptr_t)id);
    } else if (strcmp(event, "server-ack-timeout") == 0 && arg_str(a, 1)) {
        json_int_t ms = json_integer_value(json_array_get(a->args, 0));
        if (ms <= 0 || ms > 60000) ms = 1000;
        ts_sio_emit_ack(s, arg_str(a, 1), NULL, (uint32_t)ms, on_server_ack_timeout,
                        (void *)(intptr_t)id);
    } else if (strcmp(event, "emit-binary") == 0) {
        static const uint8_t b0[] = {1, 2, 3}, b1[] = {4, 5};
        ts_buf_t *att[2] = {ts_buf_from(b0, sizeof b0), ts_buf_from(b1, sizeof b1)};
        json_t *arr = json_pack("[{s:b,s:i},{s:{s:b,s:i},s:i}]", "_placeholder", 1, "num", 0,
                                "nested", "_placeholder", 1, "num", 1, "n", 1);
        ts_sio_args_t bin = {arr, att, 2};
        ts_sio_emit(s, "binary", &bin);
        json_decref(arr);
        ts_buf_unref(att[0]);
        ts_buf_unref(att[1]);
        ack_values(s, id, json_pack("[s]", "ok"));
    } else if (strcmp(event, "recovered") == 0) {
        ack_values(s, id, json_pack("[b]", ts_sio_socket_recovered(s)));
    } else if (strcmp(event, "disconnect-me") == 0) {
        ts_sio_disconnect(s, 0);
    } else if (strcmp(event, "close-all") == 0) {
        ts_sio_disconnect(s, 1);
    } else {
        return 0;
    }
    json_decref(hold);
    return 1;
}

/* The relay verbs of the full test app on the fast path: the payload
 * arguments go out as the bytes that came in (what tsbench measures).
 * Everything else, and relays asking for an ack, take the path above. */
static int test_raw_event(ts_sio_socket_t *s, const char *event, const ts_sio_raw_arg_t *a,
                          size_t n, int64_t id, void *ud) {
    uintptr_t flags = (uintptr_t)ud;
    if (!(flags & APP_FULL) || id >= 0) return 0;
    ts_sio_nsp_t *nsp = ts_sio_socket_nsp(s);
    const char *room = n > 0 ? a[0].str : NULL;
    if ((strcmp(event, "to-room") == 0 || strcmp(event, "to-room-all") == 0) && room && n > 1 &&
        a[1].str) {
        ts_sio_target_t to = {.rooms = &room, .nrooms = 1,
                              .skip = strcmp(event, "to-room") == 0 ? s : NULL};
        ts_sio_broadcast_raw(nsp, &to, a[1].str, a + 2, n - 2);
    } else if (strcmp(event, "broadcast") == 0 && room) {
        ts_sio_target_t to = {.skip = s};
        ts_sio_broadcast_raw(nsp, &to, room, a + 1, n - 1);
    } else if (strcmp(event, "broadcast-except") == 0 && room && n > 2 && a[1].str && a[2].str) {
        const char *except = a[1].str;
        ts_sio_target_t to = {.rooms = &room, .nrooms = 1, .except = &except, .nexcept = 1};
        ts_sio_broadcast_raw(nsp, &to, a[2].str, a + 3, n - 3);
    } else {
        return 0;
    }
    return 1;
}

static void app_event(ts_sio_socket_t *s, const char *event, const ts_sio_args_t *a, int64_t id,
                      void *ud) {
    uintptr_t flags = (uintptr_t)ud;
    if (flags & APP_ECHO) {
        if (strcmp(event, "message") == 0) {
            ts_sio_emit(s, "message-back", a);
            return;
        }
        if (strcmp(event, "message-with-ack") == 0) {
            if (id >= 0) ts_sio_ack(s, id, a);
            return;
        }
    }
    if (flags & APP_FULL) test_event(s, event, a, id);
}

static int match_dyn(const char *name, void *ud) {
    if (strncmp(name, "/dyn-", 5) != 0 || !name[5]) return 0;
    for (const char *p = name + 5; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))) return 0;
    return 1;
}

void ts_dmn_apps_register(ts_dmn_t *d) {
    ts_sio_nsp_handler_t h = {.on_connection = emit_auth, .on_event = app_event};
    if (d->cfg.conformance) {
        ts_sio_nsp_add(d->sio, "/", &h, (void *)(uintptr_t)(APP_ECHO | APP_AUTH));
        ts_sio_nsp_add(d->sio, "/custom", &h, (void *)(uintptr_t)APP_AUTH);
        return;
    }
    if (d->cfg.test_app) {
        void *full = (void *)(uintptr_t)(APP_ECHO | APP_AUTH | APP_FULL);
        h.authorize = test_authorize;
        h.on_raw_event = test_raw_event;
        ts_sio_nsp_add(d->sio, "/", &h, full);
        ts_sio_nsp_add(d->sio, "/custom", &h, full);
        ts_sio_nsp_pattern(d->sio, match_dyn, &h, full);
        ts_sio_nsp_handler_t refuse = {.authorize = refuse_all};
        ts_sio_nsp_add(d->sio, "/refuse", &refuse, NULL);
        return;
    }
    /* The echo on "/" serves the demo page (make run passes --dev). It is
     * not there otherwise: a production server exposes only /session. */
    if (d->cfg.dev) ts_sio_nsp_add(d->sio, "/", &h, (void *)(uintptr_t)APP_ECHO);
}

/* --conformance: a bare Engine.IO server at /engine.io/ that echoes every
 * message, text as text and binary as binary. */
static void echo_message(ts_eio_sock_t *s, const uint8_t *data, size_t len, int binary, void *ud) {
    ts_buf_t *b;
    if (binary) {
        b = ts_buf_from(data, len);
    } else {
        b = ts_buf_new(len + 1);
        b->data[0] = '4';
        memcpy(b->data + 1, data, len);
    }
    ts_eio_send(s, b, binary);
    ts_buf_unref(b);
}

static const ts_eio_handler_t echo_handler = {NULL, echo_message, NULL, 0};

const ts_eio_handler_t *ts_dmn_echo_eio_handler(void) { return &echo_handler; }
