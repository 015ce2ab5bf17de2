/* rcluster.c - one Redis server or a Redis Cluster behind one set of calls
 * (rcluster_int.h). Every command is an rcmd_t that owns a copy of its
 * arguments, so that a MOVED, ASK or TRYAGAIN can send it again; it waits
 * on `waiting` while the mode is not known, and is called back from `done`
 * (a zero-delay timer) when it fails without a reply, so no callback runs
 * inside the call. Nodes are found by host and port; the slot map points
 * at them; a node that leaves the map is closed (its commands fail with
 * TS_ESTORE) and freed when its connections have closed. */
#include "store/rcluster_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/ts_err.h"
#include "core/ts_list.h"
#include "core/ts_log.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"

#define MAX_REDIRECTS 5
#define TICK_MS 50
#define REFRESH_MIN_MS 100  /* between two CLUSTER SLOTS */
#define REFRESH_DOWN_MS 250 /* while a primary of the map is down */
#define TRYAGAIN_MS 50

typedef enum { M_DETECT, M_SINGLE, M_CLUSTER } cl_mode_t;

typedef struct node {
    ts_list_t link; /* in cl->nodes while usable */
    ts_rcl_t *cl;
    char host[TS_RCONN_HOST_MAX + 1];
    uint16_t port;
    ts_rconn_t *cmd, *sub; /* sub: made when a subscription is placed here */
    int conns;             /* open rconns (freed at 0 once closing) */
    int closing;
    int in_map;  /* a primary of the last map (or a MOVED's target since) */
    int replica; /* a replica in the last map: only ts_rcl_cmd_all's parts go there */
} node_t;

/* A subscription and the node it is placed on (NULL: not placed). */
typedef struct rsub {
    ts_list_t link;
    ts_rconn_sub_kind_t kind;
    node_t *at;
    char channel[];
} rsub_t;

/* K_ALL: a command for every node (ts_rcl_cmd_all), split into one K_CMD
 * per node once the mode is known. */
typedef enum { K_CMD, K_SUB, K_UNSUB, K_ALL } rcmd_kind_t;

/* ts_rcl_cmd_all's caller and the parts still to answer. */
typedef struct all {
    ts_rcl_part_cb cb;
    void *ud;
    unsigned left;
} all_t;

typedef struct rcmd {
    ts_list_t link; /* waiting, retry or done */
    ts_rcl_t *cl;
    rcmd_kind_t kind;
    ts_rconn_sub_kind_t sub_kind;
    ts_rcl_reply_cb cb;
    void *ud;
    int slot;        /* -1: any node */
    int redirects;
    unsigned flags;  /* TS_RCONN_WRITE: held for WAIT on the node (?replicas=N) */
    int status;      /* on `done` */
    uint64_t due;    /* waiting: the deadline; retry: when */
    node_t *asked;   /* ASK: the next attempt goes there, after ASKING */
    node_t *to;      /* a part of K_ALL: its node (never redirected) */
    int argc;
    const char **argv;
    size_t *lens;
} rcmd_t;

struct ts_rcl {
    uv_loop_t *loop;
    ts_rconn_opts_t o;
    cl_mode_t mode;
    ts_list_t nodes;
    node_t *seed;    /* one server: the server; cluster: where the first map came from */
    node_t *classic; /* cluster: the node with the classic and pattern subscriptions */
    ts_list_t subs, waiting, retry, done;
    uv_timer_t done_timer, tick;
    int timers;      /* open timers (close waits for 0) */
    int refreshing;  /* a CLUSTER SLOTS on its way */
    int seed_down;   /* M_DETECT: the seed's last attempt failed (fail fast, as rconn) */
    uint64_t last_refresh, refresh_at; /* refresh_at 0: none wanted */
    int closing, conns;
    ts_rcl_push_cb on_push;
    void *ud;
    void (*on_closed)(void *);
    void *closed_ud;
    ts_rcl_stats_t stats;
    node_t *slots[TS_RCL_SLOTS];
};

/* ---- slots ---- */

static uint16_t crc16(const char *p, size_t n) {
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)((uint8_t)p[i] << 8);
        for (int b = 0; b < 8; b++) crc = crc & 0x8000 ? (uint16_t)(crc << 1) ^ 0x1021 : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned ts_rcl_slot(const char *key, size_t len) {
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1) return crc16(open + 1, (size_t)(close - open - 1)) & 16383;
    }
    return crc16(key, len) & 16383;
}

/* ---- commands: completion ---- */

static void done_run(uv_timer_t *t) {
    ts_rcl_t *cl = t->data;
    while (!ts_list_empty(&cl->done)) {
        rcmd_t *k = ts_list_entry(cl->done.next, rcmd_t, link);
        ts_list_remove(&k->link);
        if (k->cb) k->cb(k->status, NULL, k->ud);
        free(k);
    }
}

/* Called back later with `status` and no reply. */
static void fail_later(rcmd_t *k, int status) {
    ts_rcl_t *cl = k->cl;
    k->status = status;
    ts_list_insert_tail(&cl->done, &k->link);
    if (!uv_is_active((uv_handle_t *)&cl->done_timer))
        uv_timer_start(&cl->done_timer, done_run, 0, 0);
}

static void fail_all(ts_list_t *l, int status) {
    while (!ts_list_empty(l)) {
        rcmd_t *k = ts_list_entry(l->next, rcmd_t, link);
        ts_list_remove(&k->link);
        fail_later(k, status);
    }
}

/* ---- nodes ---- */

static void on_node_state(ts_rconn_t *c, int up, const char *why, void *ud);
static void on_node_push(ts_rconn_t *c, const redisReply *r, void *ud);
static void want_refresh(ts_rcl_t *cl, uint32_t delay_ms);
static void probe(ts_rcl_t *cl, node_t *n);

static ts_rconn_opts_t node_opts(const ts_rcl_t *cl, const node_t *n) {
    ts_rconn_opts_t o = cl->o;
    memcpy(o.host, n->host, sizeof o.host);
    o.port = n->port;
    return o;
}

static node_t *node_find(ts_rcl_t *cl, const char *host, uint16_t port) {
    ts_list_t *it;
    TS_LIST_FOREACH(it, &cl->nodes) {
        node_t *n = ts_list_entry(it, node_t, link);
        if (n->port == port && strcmp(n->host, host) == 0) return n;
    }
    return NULL;
}

static node_t *node_get(ts_rcl_t *cl, const char *host, uint16_t port) {
    node_t *n = node_find(cl, host, port);
    if (n) return n;
    n = ts_xcalloc(1, sizeof *n);
    n->cl = cl;
    snprintf(n->host, sizeof n->host, "%s", host);
    n->port = port;
    ts_list_insert_tail(&cl->nodes, &n->link);
    ts_rconn_opts_t o = node_opts(cl, n);
    n->cmd = ts_rconn_new(cl->loop, &o, on_node_state, NULL, n);
    n->conns++;
    cl->conns++;
    return n;
}

static ts_rconn_t *node_sub(node_t *n) {
    if (!n->sub) {
        ts_rconn_opts_t o = node_opts(n->cl, n);
        n->sub = ts_rconn_new(n->cl->loop, &o, NULL, on_node_push, n);
        n->conns++;
        n->cl->conns++;
    }
    return n->sub;
}

static void finish_close(ts_rcl_t *cl);

static void conn_closed(void *ud) {
    node_t *n = ud;
    ts_rcl_t *cl = n->cl;
    cl->conns--;
    if (--n->conns == 0) free(n);
    if (cl->closing && cl->conns == 0) finish_close(cl);
}

/* Out of the map (or the handle closes): pending commands fail (TS_ESTORE,
 * or TS_ECLOSED when closing), freed once its connections closed. */
static void node_close(node_t *n) {
    ts_rcl_t *cl = n->cl;
    if (n->closing) return;
    n->closing = 1;
    ts_list_remove(&n->link);
    for (int s = 0; s < TS_RCL_SLOTS; s++)
        if (cl->slots[s] == n) cl->slots[s] = NULL;
    ts_list_t *it;
    TS_LIST_FOREACH(it, &cl->subs) {
        rsub_t *x = ts_list_entry(it, rsub_t, link);
        if (x->at == n) x->at = NULL;
    }
    if (cl->classic == n) cl->classic = NULL;
    if (cl->seed == n) cl->seed = NULL;
    ts_rconn_t *cmd = n->cmd, *sub = n->sub;
    if (cmd) ts_rconn_close(cmd, conn_closed, n);
    if (sub) ts_rconn_close(sub, conn_closed, n);
}

/* A node of the map whose command connection is up (the first one), or
 * any node of the map. */
static node_t *any_node(ts_rcl_t *cl) {
    node_t *first = NULL;
    ts_list_t *it;
    TS_LIST_FOREACH(it, &cl->nodes) {
        node_t *n = ts_list_entry(it, node_t, link);
        if (cl->mode == M_CLUSTER && !n->in_map) continue;
        if (ts_rconn_is_up(n->cmd)) return n;
        if (!first) first = n;
    }
    return first;
}

/* ---- dispatch ---- */

static void on_node_reply(ts_rconn_t *c, int status, const redisReply *r, void *ud);

static rsub_t *sub_find(ts_rcl_t *cl, ts_rconn_sub_kind_t kind, const char *ch) {
    ts_list_t *it;
    TS_LIST_FOREACH(it, &cl->subs) {
        rsub_t *x = ts_list_entry(it, rsub_t, link);
        if (x->kind == kind && strcmp(x->channel, ch) == 0) return x;
    }
    return NULL;
}

/* Where a subscription belongs now (NULL: nowhere yet). */
static node_t *sub_home(ts_rcl_t *cl, const rsub_t *x) {
    if (cl->mode == M_SINGLE) return cl->seed;
    if (x->kind == TS_RCONN_SSUBSCRIBE)
        return cl->slots[ts_rcl_slot(x->channel, strlen(x->channel))];
    if (!cl->classic || !cl->classic->in_map) cl->classic = any_node(cl);
    return cl->classic;
}

static void dispatch(ts_rcl_t *cl, rcmd_t *k);

static void dispatch_sub(ts_rcl_t *cl, rcmd_t *k) {
    const char *ch = k->argv[0];
    rsub_t *x = sub_find(cl, k->sub_kind, ch);
    if (k->kind == K_UNSUB) {
        if (!x || !x->at) {
            if (x) {
                ts_list_remove(&x->link);
                free(x);
            }
            fail_later(k, 0); /* nothing placed: done */
            return;
        }
        node_t *n = x->at;
        ts_list_remove(&x->link);
        free(x);
        if (ts_rconn_unsubscribe(node_sub(n), k->sub_kind, ch, on_node_reply, k) != 0)
            fail_later(k, 0);
        return;
    }
    if (!x) {
        size_t l = strlen(ch);
        x = ts_xcalloc(1, sizeof *x + l + 1);
        x->kind = k->sub_kind;
        memcpy(x->channel, ch, l + 1);
        ts_list_insert_tail(&cl->subs, &x->link);
    }
    node_t *n = sub_home(cl, x);
    if (!n) {
        want_refresh(cl, 0);
        fail_later(k, TS_ESTORE);
        return;
    }
    if (x->at && x->at != n) ts_rconn_unsubscribe(node_sub(x->at), x->kind, ch, NULL, NULL);
    x->at = n;
    if (ts_rconn_subscribe(node_sub(n), k->sub_kind, ch, on_node_reply, k) != 0)
        fail_later(k, TS_ESTORE);
}

static rcmd_t *rcmd_new(ts_rcl_t *cl, rcmd_kind_t kind, int argc, const char **argv,
                        const size_t *argvlen, ts_rcl_reply_cb cb, void *ud);

/* One server: the command as any other. A Cluster: one part per node of
 * the map, primaries and replicas (each knows only its own clients' pub/sub
 * state), all answering the same all_t. */
static void dispatch_all(ts_rcl_t *cl, rcmd_t *k) {
    if (cl->mode == M_SINGLE) {
        k->kind = K_CMD;
        dispatch(cl, k);
        return;
    }
    all_t *a = k->ud;
    unsigned count = 0;
    ts_list_t *it;
    TS_LIST_FOREACH(it, &cl->nodes) {
        node_t *n = ts_list_entry(it, node_t, link);
        count += n->in_map || n->replica;
    }
    if (!count) {
        want_refresh(cl, 0);
        k->kind = K_CMD;
        fail_later(k, TS_ESTORE);
        return;
    }
    a->left = count;
    TS_LIST_FOREACH(it, &cl->nodes) {
        node_t *n = ts_list_entry(it, node_t, link);
        if (!n->in_map && !n->replica) continue;
        rcmd_t *p = rcmd_new(cl, K_CMD, k->argc, k->argv, k->lens, k->cb, a);
        p->to = n;
        dispatch(cl, p);
    }
    free(k);
}

static void dispatch(ts_rcl_t *cl, rcmd_t *k) {
    if (cl->closing) {
        fail_later(k, TS_ECLOSED);
        return;
    }
    if (cl->mode == M_DETECT) {
        if (cl->seed_down) {
            fail_later(k, TS_ESTORE);
            return;
        }
        k->due = ts_now_ms() + cl->o.connect_timeout_ms;
        ts_list_insert_tail(&cl->waiting, &k->link);
        return;
    }
    if (k->kind == K_ALL) {
        dispatch_all(cl, k);
        return;
    }
    if (k->kind != K_CMD) {
        dispatch_sub(cl, k);
        return;
    }
    node_t *n = k->asked;
    int asking = n != NULL;
    k->asked = NULL;
    if (!n) n = k->to;
    if (!n) n = cl->mode == M_SINGLE ? cl->seed : k->slot >= 0 ? cl->slots[k->slot] : any_node(cl);
    if (!n) { /* a slot nobody serves (yet): the map may be old */
        want_refresh(cl, 0);
        fail_later(k, TS_ESTORE);
        return;
    }
    if (asking) { /* right before the command, on the same connection */
        static const char *argv[] = {"ASKING"};
        ts_rconn_cmd(n->cmd, 1, argv, NULL, NULL, NULL);
    }
    if (ts_rconn_cmdf(n->cmd, k->flags, k->argc, k->argv, k->lens, on_node_reply, k) != 0)
        fail_later(k, TS_ESTORE);
}

/* "MOVED 3999 127.0.0.1:6381" / "ASK ...": the slot and the node. */
static node_t *redirect_node(ts_rcl_t *cl, const char *msg, int *slot) {
    const char *sp = strchr(msg, ' ');
    if (!sp) return NULL;
    char *end;
    long s = strtol(sp + 1, &end, 10);
    if (*end != ' ' || s < 0 || s >= TS_RCL_SLOTS) return NULL;
    const char *addr = end + 1, *colon = strrchr(addr, ':');
    if (!colon) return NULL;
    long port = strtol(colon + 1, &end, 10);
    if (port <= 0 || port > 65535) return NULL;
    char host[TS_RCONN_HOST_MAX + 1];
    size_t hl = (size_t)(colon - addr);
    if (hl == 0 || hl > TS_RCONN_HOST_MAX || (hl == 1 && *addr == '?')) return NULL;
    memcpy(host, addr, hl);
    host[hl] = '\0';
    *slot = (int)s;
    return node_get(cl, host, (uint16_t)port);
}

static int starts(const char *s, const char *with) { return strncmp(s, with, strlen(with)) == 0; }

static void on_node_reply(ts_rconn_t *c, int status, const redisReply *r, void *ud) {
    rcmd_t *k = ud;
    ts_rcl_t *cl = k->cl;
    if (status) {
        if (status == TS_ECLOSED && !cl->closing) status = TS_ESTORE; /* its node left the map */
        if (cl->mode == M_CLUSTER) want_refresh(cl, REFRESH_MIN_MS);
        if (k->cb) k->cb(status, NULL, k->ud);
        free(k);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR && cl->mode == M_CLUSTER && !cl->closing && !k->to) {
        int moved = starts(r->str, "MOVED "), ask = starts(r->str, "ASK ");
        if ((moved || ask) && k->redirects < MAX_REDIRECTS) {
            int slot = -1;
            node_t *n = redirect_node(cl, r->str, &slot);
            if (n) {
                k->redirects++;
                if (k->kind == K_SUB) { /* this connection must not subscribe it again */
                    ts_rconn_unsubscribe(c, k->sub_kind, k->argv[0], NULL, NULL);
                    rsub_t *x = sub_find(cl, k->sub_kind, k->argv[0]);
                    if (x) x->at = NULL;
                }
                if (moved) {
                    cl->stats.moved++;
                    cl->slots[slot] = n;
                    n->in_map = 1;
                    n->replica = 0;
                    want_refresh(cl, 0);
                } else {
                    cl->stats.ask++;
                    if (k->kind == K_CMD) k->asked = n;
                }
                dispatch(cl, k);
                return;
            }
        }
        if (starts(r->str, "TRYAGAIN") && k->redirects < MAX_REDIRECTS && k->kind == K_CMD) {
            cl->stats.tryagain++;
            k->redirects++;
            k->due = ts_now_ms() + TRYAGAIN_MS;
            ts_list_insert_tail(&cl->retry, &k->link);
            return;
        }
        if (starts(r->str, "CLUSTERDOWN")) {
            cl->stats.clusterdown++;
            want_refresh(cl, REFRESH_DOWN_MS);
        }
    }
    if (k->cb) k->cb(0, r, k->ud);
    free(k);
}

/* ---- the slot map ---- */

static void set_mode(ts_rcl_t *cl, cl_mode_t m) {
    cl->mode = m;
    if (m == M_CLUSTER) ts_info("store", "redis %s:%u: Redis Cluster", cl->o.host, cl->o.port);
    ts_list_t w;
    ts_list_init(&w);
    while (!ts_list_empty(&cl->waiting)) { /* in the order issued */
        ts_list_t *e = cl->waiting.next;
        ts_list_remove(e);
        ts_list_insert_tail(&w, e);
    }
    while (!ts_list_empty(&w)) {
        rcmd_t *k = ts_list_entry(w.next, rcmd_t, link);
        ts_list_remove(&k->link);
        dispatch(cl, k);
    }
}

/* Every subscription on the node where it belongs now. */
static void place_subs(ts_rcl_t *cl) {
    ts_list_t *it;
    TS_LIST_FOREACH(it, &cl->subs) {
        rsub_t *x = ts_list_entry(it, rsub_t, link);
        node_t *n = sub_home(cl, x);
        if (n == x->at) continue;
        if (x->at) ts_rconn_unsubscribe(node_sub(x->at), x->kind, x->channel, NULL, NULL);
        x->at = n;
        if (n) ts_rconn_subscribe(node_sub(n), x->kind, x->channel, NULL, NULL);
    }
}

static int reply_port(const redisReply *r) {
    if (r->type == REDIS_REPLY_INTEGER) return (int)r->integer;
    if (r->type == REDIS_REPLY_STRING) return atoi(r->str);
    return -1;
}

/* A node of CLUSTER SLOTS, [host, port, id, ...] (NULL: not one). Its host
 * "" or "?" (no endpoint it could name) means "the node you asked" for a
 * primary (asked_host), and is skipped for a replica (NULL). */
static node_t *map_node(ts_rcl_t *cl, const redisReply *q, const char *asked_host) {
    if (q->type != REDIS_REPLY_ARRAY || q->elements < 2 || q->element[0]->type != REDIS_REPLY_STRING)
        return NULL;
    int port = reply_port(q->element[1]);
    const char *host = q->element[0]->str;
    if (!host[0] || strcmp(host, "?") == 0) host = asked_host;
    if (!host || port <= 0 || port > 65535 || strlen(host) > TS_RCONN_HOST_MAX) return NULL;
    return node_get(cl, host, (uint16_t)port);
}

/* CLUSTER SLOTS: [[start, end, [host, port, id, ...], replica...], ...]. */
static int apply_map(ts_rcl_t *cl, const redisReply *r, const node_t *asked) {
    if (r->type != REDIS_REPLY_ARRAY) return -1;
    ts_list_t *it;
    TS_LIST_FOREACH(it, &cl->nodes) {
        node_t *n = ts_list_entry(it, node_t, link);
        n->in_map = n->replica = 0;
    }
    memset(cl->slots, 0, sizeof cl->slots);
    char ahost[TS_RCONN_HOST_MAX + 1];
    snprintf(ahost, sizeof ahost, "%s", asked->host);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER)
            continue;
        long long a = e->element[0]->integer, b = e->element[1]->integer;
        node_t *n = a < 0 || b >= TS_RCL_SLOTS || a > b ? NULL : map_node(cl, e->element[2], ahost);
        if (!n) continue;
        n->in_map = 1;
        n->replica = 0;
        for (long long s = a; s <= b; s++) cl->slots[s] = n;
        for (size_t j = 3; j < e->elements; j++) { /* its replicas */
            node_t *m = map_node(cl, e->element[j], NULL);
            if (m && !m->in_map) m->replica = 1;
        }
    }
    /* neither primary nor replica any more (removed, or failed and
     * forgotten): closed */
    uint64_t count = 0, replicas = 0;
    for (it = cl->nodes.next; it != &cl->nodes;) {
        node_t *n = ts_list_entry(it, node_t, link);
        it = it->next;
        if (n->in_map) count++;
        else if (n->replica) replicas++;
        else node_close(n);
    }
    cl->stats.nodes = count;
    cl->stats.replicas = replicas;
    cl->stats.refreshes++;
    return 0;
}

static void on_slots(ts_rconn_t *c, int status, const redisReply *r, void *ud) {
    node_t *n = ud; /* the node asked (alive: its connection is calling) */
    ts_rcl_t *cl = n->cl;
    (void)c;
    cl->refreshing = 0;
    if (cl->closing) return;
    if (status) {
        if (cl->mode == M_CLUSTER) want_refresh(cl, REFRESH_DOWN_MS);
        return; /* M_DETECT: asked again when the seed is up */
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (cl->mode == M_DETECT && strstr(r->str, "cluster support disabled")) {
            if (cl->o.cluster > 0)
                ts_warn("store", "redis %s:%u: ?cluster=1, but the server is not a cluster member",
                        cl->o.host, cl->o.port);
            set_mode(cl, M_SINGLE);
            uv_timer_stop(&cl->tick);
            return;
        }
        ts_warn("store", "redis %s:%u: CLUSTER SLOTS: %s", n->host, n->port, r->str);
        want_refresh(cl, REFRESH_DOWN_MS);
        return;
    }
    if (apply_map(cl, r, n) != 0) return;
    if (cl->mode == M_DETECT) set_mode(cl, M_CLUSTER);
    place_subs(cl);
}

static void probe(ts_rcl_t *cl, node_t *n) {
    if (cl->refreshing || !n) return;
    static const char *argv[] = {"CLUSTER", "SLOTS"};
    cl->refreshing = 1;
    cl->last_refresh = ts_now_ms();
    cl->refresh_at = 0;
    if (ts_rconn_cmd(n->cmd, 2, argv, NULL, on_slots, n) != 0) cl->refreshing = 0;
}

/* A CLUSTER SLOTS in delay_ms at the latest (and never closer than
 * REFRESH_MIN_MS to the last one); the tick sends it. */
static void want_refresh(ts_rcl_t *cl, uint32_t delay_ms) {
    if (cl->mode != M_CLUSTER || cl->closing) return;
    uint64_t at = ts_now_ms() + delay_ms;
    if (at < cl->last_refresh + REFRESH_MIN_MS) at = cl->last_refresh + REFRESH_MIN_MS;
    if (!cl->refresh_at || at < cl->refresh_at) cl->refresh_at = at;
}

static void on_tick(uv_timer_t *t) {
    ts_rcl_t *cl = t->data;
    uint64_t now = ts_now_ms();
    while (!ts_list_empty(&cl->waiting)) { /* in issue order: deadlines ascend */
        rcmd_t *k = ts_list_entry(cl->waiting.next, rcmd_t, link);
        if (k->due > now) break;
        ts_list_remove(&k->link);
        fail_later(k, TS_ESTORE);
    }
    while (!ts_list_empty(&cl->retry)) {
        rcmd_t *k = ts_list_entry(cl->retry.next, rcmd_t, link);
        if (k->due > now) break;
        ts_list_remove(&k->link);
        dispatch(cl, k);
    }
    if (cl->mode == M_DETECT) {
        if (cl->seed && ts_rconn_is_up(cl->seed->cmd)) probe(cl, cl->seed);
        return;
    }
    if (cl->mode != M_CLUSTER) return;
    ts_list_t *it;
    TS_LIST_FOREACH(it, &cl->nodes) { /* a primary down: a failover may be under way */
        node_t *n = ts_list_entry(it, node_t, link);
        if (n->in_map && !ts_rconn_is_up(n->cmd)) {
            want_refresh(cl, REFRESH_DOWN_MS);
            break;
        }
    }
    if (cl->refresh_at && now >= cl->refresh_at && !cl->refreshing) {
        node_t *n = NULL;
        TS_LIST_FOREACH(it, &cl->nodes) {
            node_t *m = ts_list_entry(it, node_t, link);
            if (ts_rconn_is_up(m->cmd) && m->in_map) {
                n = m;
                break;
            }
        }
        if (!n) n = any_node(cl);
        if (!n) n = cl->seed = node_get(cl, cl->o.host, cl->o.port); /* start again */
        probe(cl, n);
    }
}

static void on_node_state(ts_rconn_t *c, int up, const char *why, void *ud) {
    node_t *n = ud;
    ts_rcl_t *cl = n->cl;
    (void)c;
    (void)why;
    if (cl->mode == M_DETECT && n == cl->seed) {
        cl->seed_down = !up;
        if (up) probe(cl, n);
        else fail_all(&cl->waiting, TS_ESTORE); /* nobody to ask: no waiting */
    }
    if (!up && cl->mode == M_CLUSTER && n->in_map) want_refresh(cl, REFRESH_MIN_MS);
}

static void on_node_push(ts_rconn_t *c, const redisReply *r, void *ud) {
    node_t *n = ud;
    ts_rcl_t *cl = n->cl;
    (void)c;
    /* The server dropped a shard channel (its slot moved): place it again
     * once the map says where. */
    if (r->elements == 3 && r->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(r->element[0]->str, "sunsubscribe") == 0) {
        if (r->element[1]->type == REDIS_REPLY_STRING) {
            rsub_t *x = sub_find(cl, TS_RCONN_SSUBSCRIBE, r->element[1]->str);
            if (x && x->at == n) x->at = NULL;
        }
        want_refresh(cl, 0);
        return;
    }
    if (cl->on_push && !cl->closing) cl->on_push(r, cl->ud);
}

/* ---- the calls ---- */

ts_rcl_t *ts_rcl_new(uv_loop_t *loop, const ts_rconn_opts_t *o, ts_rcl_push_cb on_push, void *ud) {
    ts_rcl_t *cl = ts_xcalloc(1, sizeof *cl);
    cl->loop = loop;
    cl->o = *o;
    if (!cl->o.connect_timeout_ms) cl->o.connect_timeout_ms = 2000;
    if (!cl->o.port) cl->o.port = 6379;
    cl->on_push = on_push;
    cl->ud = ud;
    ts_list_init(&cl->nodes);
    ts_list_init(&cl->subs);
    ts_list_init(&cl->waiting);
    ts_list_init(&cl->retry);
    ts_list_init(&cl->done);
    uv_timer_init(loop, &cl->done_timer);
    uv_timer_init(loop, &cl->tick);
    cl->done_timer.data = cl->tick.data = cl;
    cl->timers = 2;
    cl->mode = o->cluster < 0 ? M_SINGLE : M_DETECT;
    cl->seed = node_get(cl, cl->o.host, cl->o.port);
    if (cl->mode == M_DETECT) {
        probe(cl, cl->seed); /* waits for the connection */
        uv_timer_start(&cl->tick, on_tick, TICK_MS, TICK_MS);
        uv_unref((uv_handle_t *)&cl->tick); /* keeps no loop alive by itself */
    }
    return cl;
}

static rcmd_t *rcmd_new(ts_rcl_t *cl, rcmd_kind_t kind, int argc, const char **argv,
                        const size_t *argvlen, ts_rcl_reply_cb cb, void *ud) {
    size_t bytes = 0;
    for (int i = 0; i < argc; i++) bytes += (argvlen ? argvlen[i] : strlen(argv[i])) + 1;
    size_t head = sizeof(rcmd_t) + (size_t)argc * (sizeof(char *) + sizeof(size_t));
    rcmd_t *k = ts_xmalloc(head + bytes);
    memset(k, 0, sizeof *k);
    k->cl = cl;
    k->kind = kind;
    k->cb = cb;
    k->ud = ud;
    k->slot = -1;
    k->argc = argc;
    k->argv = (const char **)(k + 1);
    k->lens = (size_t *)(k->argv + argc);
    char *p = (char *)(k->lens + argc);
    for (int i = 0; i < argc; i++) {
        size_t l = argvlen ? argvlen[i] : strlen(argv[i]);
        memcpy(p, argv[i], l);
        p[l] = '\0';
        k->argv[i] = p;
        k->lens[i] = l;
        p += l + 1;
    }
    return k;
}

int ts_rcl_cmdf(ts_rcl_t *cl, const char *key, size_t keylen, unsigned flags, int argc,
                const char **argv, const size_t *argvlen, ts_rcl_reply_cb cb, void *ud) {
    if (cl->closing) return TS_ECLOSED;
    if (argc < 1) return TS_EINVAL;
    rcmd_t *k = rcmd_new(cl, K_CMD, argc, argv, argvlen, cb, ud);
    k->flags = flags;
    if (key) k->slot = (int)ts_rcl_slot(key, keylen);
    dispatch(cl, k);
    return 0;
}

int ts_rcl_cmd(ts_rcl_t *cl, const char *key, size_t keylen, int argc, const char **argv,
               const size_t *argvlen, ts_rcl_reply_cb cb, void *ud) {
    return ts_rcl_cmdf(cl, key, keylen, 0, argc, argv, argvlen, cb, ud);
}

/* Each part answers here; the caller hears how many are still to come. */
static void on_part(int status, const redisReply *r, void *ud) {
    all_t *a = ud;
    unsigned left = --a->left;
    ts_rcl_part_cb cb = a->cb;
    void *cud = a->ud;
    if (!left) free(a);
    cb(status, r, left, cud);
}

int ts_rcl_cmd_all(ts_rcl_t *cl, int argc, const char **argv, const size_t *argvlen,
                   ts_rcl_part_cb cb, void *ud) {
    if (cl->closing) return TS_ECLOSED;
    if (argc < 1) return TS_EINVAL;
    all_t *a = ts_xcalloc(1, sizeof *a);
    a->cb = cb;
    a->ud = ud;
    a->left = 1; /* until split */
    dispatch(cl, rcmd_new(cl, K_ALL, argc, argv, argvlen, on_part, a));
    return 0;
}

static int sub_cmd(ts_rcl_t *cl, rcmd_kind_t kind, ts_rconn_sub_kind_t sk, const char *channel,
                   ts_rcl_reply_cb cb, void *ud) {
    if (cl->closing) return TS_ECLOSED;
    if ((unsigned)sk > TS_RCONN_PSUBSCRIBE) return TS_EINVAL;
    rcmd_t *k = rcmd_new(cl, kind, 1, &channel, NULL, cb, ud);
    k->sub_kind = sk;
    if (sk == TS_RCONN_SSUBSCRIBE) k->slot = (int)ts_rcl_slot(channel, strlen(channel));
    dispatch(cl, k);
    return 0;
}

int ts_rcl_subscribe(ts_rcl_t *cl, ts_rconn_sub_kind_t kind, const char *channel,
                     ts_rcl_reply_cb cb, void *ud) {
    return sub_cmd(cl, K_SUB, kind, channel, cb, ud);
}

int ts_rcl_unsubscribe(ts_rcl_t *cl, ts_rconn_sub_kind_t kind, const char *channel,
                       ts_rcl_reply_cb cb, void *ud) {
    return sub_cmd(cl, K_UNSUB, kind, channel, cb, ud);
}

int ts_rcl_is_up(const ts_rcl_t *cl) {
    if (cl->mode == M_DETECT || cl->closing) return 0;
    if (cl->mode == M_SINGLE) return cl->seed && ts_rconn_is_up(cl->seed->cmd);
    ts_list_t *it;
    TS_LIST_FOREACH(it, &cl->nodes) {
        node_t *n = ts_list_entry(it, node_t, link);
        if (n->in_map && ts_rconn_is_up(n->cmd)) return 1;
    }
    return 0;
}

int ts_rcl_is_cluster(const ts_rcl_t *cl) {
    return cl->mode == M_DETECT ? -1 : cl->mode == M_CLUSTER;
}

static void timer_closed(uv_handle_t *h) {
    ts_rcl_t *cl = h->data;
    if (--cl->timers > 0) return;
    void (*cb)(void *) = cl->on_closed;
    void *ud = cl->closed_ud;
    while (!ts_list_empty(&cl->subs)) {
        rsub_t *x = ts_list_entry(cl->subs.next, rsub_t, link);
        ts_list_remove(&x->link);
        free(x);
    }
    free(cl);
    if (cb) cb(ud);
}

static void close_timers(uv_timer_t *t) {
    ts_rcl_t *cl = t->data;
    done_run(t); /* the last callbacks first */
    uv_close((uv_handle_t *)&cl->done_timer, timer_closed);
    uv_close((uv_handle_t *)&cl->tick, timer_closed);
}

/* Every connection closed (their commands called back): the timers go. */
static void finish_close(ts_rcl_t *cl) {
    uv_timer_stop(&cl->tick);
    uv_timer_start(&cl->done_timer, close_timers, 0, 0);
}

void ts_rcl_close(ts_rcl_t *cl, void (*on_closed)(void *ud), void *ud) {
    if (cl->closing) return;
    cl->closing = 1;
    cl->on_closed = on_closed;
    cl->closed_ud = ud;
    fail_all(&cl->waiting, TS_ECLOSED);
    fail_all(&cl->retry, TS_ECLOSED);
    uv_timer_stop(&cl->tick);
    while (!ts_list_empty(&cl->nodes)) node_close(ts_list_entry(cl->nodes.next, node_t, link));
    if (cl->conns == 0) finish_close(cl);
}

ts_rcl_stats_t ts_rcl_stats(const ts_rcl_t *cl) { return cl->stats; }
