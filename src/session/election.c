/* election.c - leader election among the tabs of a session (protocol 4,
 * docs/ELECTION.md): this loop's scopes and their members, the store's
 * leases as the only source of terms (fencing tokens), leader heartbeats,
 * resignations, lapses, tasks, the views every member receives, signed
 * grants and the HTTP check's data. The rules themselves (score, what a
 * scope does next) are pure functions in elect.c; this file measures,
 * asks the store and tells the tabs.
 *
 * A scope has at most one store operation in flight: a change that comes
 * while one runs marks the scope to be evaluated again when it answers.
 * Whatever this loop believes, a term comes only from the store, so two
 * loops or nodes that act on stale views can only lose a compare-and-set,
 * never grant one term twice. Over Redis the nodes share their members
 * through the store's publish/subscribe ("the shared table" below), so
 * every node ranks the whole scope. */
#include <inttypes.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_log.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"
#include "eio/ts_eio.h"
#include "session/sess_int.h"
#include "session/ts_sess_elect.h"
#include "store/ts_store.h"

#define HOLDER_MAX (2 * TS_SESS_ID_MAX + 2) /* "<device>/<tab>" */
#define TASKS_MAX 32                       /* tasks per scope */
#define TASK_STALL_DEFAULT_MS 10000
#define HIST_MAX 8                          /* transitions a scope remembers */
#define SWEEP_MIN_MS 25

typedef struct el_scope el_scope_t;

typedef struct el_member el_member_t;
struct el_member {
    ts_list_t link;            /* in sc->members */
    el_scope_t *sc;
    sess_sock_t *ss;
    char holder[HOLDER_MAX];
    uint64_t joined;           /* join order: ties go to the earlier */
    ts_el_score_t score;
    uint8_t observer;
    uint64_t stalled_until;    /* loop ms: a lapsed or resigned leader is no candidate before */
    uint64_t rotated_at;       /* loop ms it was rotated out (0: never) */
    uint64_t last_hb;          /* loop ms of its last heartbeat as leader */
    uint16_t late;             /* late bits of its last TS_EL_LATE_WINDOW heartbeats */
    uint8_t lapses;            /* leases it let lapse in a row (its stall doubles each time) */
    uint32_t pub_score;        /* the score the shared table last got */
};

/* A member of another loop or node, as its loop last published it (the
 * shared table below). */
typedef struct el_remote {
    char holder[HOLDER_MAX];
    uint64_t origin;           /* the loop that holds its connection */
    uint64_t joined;           /* wall clock us of its join (ranks ties cluster-wide) */
    ts_el_score_t score;
    uint8_t flags;             /* EL_F_* */
} el_remote_t;

enum {
    EL_F_OBSERVER = 1,    /* never leads, never backup, no tasks */
    EL_F_ELIGIBLE = 2,    /* a candidate now (not an observer, not stalled) */
    EL_F_MAY_PREEMPT = 4, /* not rotated out within the last tenure */
};

typedef enum { TASK_ASSIGNED, TASK_RUNNING, TASK_DONE, TASK_FAILED } task_state_t;
static const char *const task_state_names[] = {"assigned", "running", "done", "failed"};

typedef struct el_task {
    char name[TS_SESS_MAX_NAME + 1];
    char to[HOLDER_MAX];       /* the assignee's holder, here or on another node; "": nobody */
    task_state_t state;
    uint32_t pct;
    uint64_t term;             /* the term that declared it; 0: the server */
    uint64_t stall_ms;
    uint64_t last;             /* loop ms of its assignment or last report (or of its
                                * table's arrival from the owner, below) */
    uint32_t reassigned;
} el_task_t;

typedef struct el_trans {
    uint64_t term, at;         /* at: wall ms */
    ts_el_reason_t reason;
    uint64_t leaderless_ms;    /* how long the scope had no leader before */
    char *leader;              /* holder (owned); NULL: none */
} el_trans_t;

struct el_scope {
    ts_list_t link;            /* in sess->el_list */
    ts_sess_t *sess;
    ts_sess_scope_kind_t kind;
    char user[TS_SESS_ID_MAX + 1], session[TS_SESS_ID_MAX + 1], device[TS_SESS_ID_MAX + 1];
    ts_list_t members;
    size_t n;
    /* the lease as last seen from the store */
    uint64_t term;
    char leader[HOLDER_MAX];   /* "" = nobody */
    uint64_t expires_at;       /* wall ms */
    uint64_t since;            /* wall ms the current term started (as seen here) */
    el_member_t *lm;           /* the leader, when it is a member on this loop */
    char bk[HOLDER_MAX];       /* the backup's holder ("" = none), here or elsewhere */
    el_remote_t *rm;           /* the other loops' members (shared table) */
    size_t nrm;
    uint8_t subscribed;        /* to its channel (a cluster) */
    uint64_t pub_hash;         /* of what it last published of its members */
    uint64_t leaderless_since; /* wall ms; 0 while led or with no candidate */
    uint64_t wake_at;          /* loop ms: evaluate again (time alone may change it); 0 = no */
    int busy, again;
    ts_el_gone_t gone;         /* the local leader just went: the next evaluation's input */
    uint8_t stepping;          /* the leader was asked to step down (views say step_down):
                                * its heartbeats no longer renew; its resign or its
                                * lapse hands over, with reason `stepdown` */
    ts_el_reason_t stepdown;
    uint8_t ghost;             /* the leader disconnected: its lease runs out first */
    char gone_holder[HOLDER_MAX];
    ts_el_reason_t last_reason;
    el_task_t *tasks;          /* over Redis: the owner's table (the leader's node) */
    size_t ntasks;
    uint8_t task_owner;        /* this loop owned the table at the last evaluation */
    ts_list_t reports;         /* el_report_t: reports waiting for the owner's table */
    el_trans_t hist[HIST_MAX];
    size_t nhist;              /* total recorded; the ring keeps HIST_MAX */
    size_t klen;
    char name[];               /* the lease name: "e/<user>/<session>[/<device>]" */
};

/* ---- configuration ---- */

static const ts_sess_elect_cfg_t *ecfg(const ts_sess_t *sess) { return &sess->cfg.elect; }
static uint64_t hb_ms(const ts_sess_t *sess) { return ecfg(sess)->lease_ms / 3; }

static const char *kind_name(ts_sess_scope_kind_t k) { return ts_sess_scope_kind_name(k); }

/* ---- scopes ---- */

static void scope_name(char *out, size_t cap, const sess_ident_t *id, ts_sess_scope_kind_t k) {
    const char *parts[] = {"e", id->user, id->session, id->device};
    ts_strjoin(out, cap, '/', parts, k == TS_SESS_SCOPE_DEVICE ? 4 : 3);
}

static void task_add(el_scope_t *sc, const char *name, uint64_t stall_ms, uint64_t term);
static void scope_subscribe(el_scope_t *sc);
static void scope_unsubscribe(el_scope_t *sc);

static el_scope_t *scope_get(ts_sess_t *sess, const sess_ident_t *id, ts_sess_scope_kind_t k,
                             int create) {
    char name[TS_STORE_ID_MAX + 1];
    scope_name(name, sizeof name, id, k);
    size_t len = strlen(name);
    el_scope_t *sc = ts_map_get(&sess->el_scopes, name, len);
    if (sc || !create) return sc;
    sc = ts_xcalloc(1, sizeof *sc + len + 1);
    sc->sess = sess;
    sc->kind = k;
    ts_strlcpy(sc->user, id->user, sizeof sc->user);
    ts_strlcpy(sc->session, id->session, sizeof sc->session);
    if (k == TS_SESS_SCOPE_DEVICE) ts_strlcpy(sc->device, id->device, sizeof sc->device);
    ts_list_init(&sc->members);
    ts_list_init(&sc->reports);
    sc->klen = len;
    memcpy(sc->name, name, len + 1);
    ts_map_put(&sess->el_scopes, sc->name, len, sc);
    ts_list_insert_tail(&sess->el_list, &sc->link);
    TS_MET_BUMP_(sess->el_nscopes, 1);
    /* the operator's tasks of every session scope */
    for (size_t i = 0; k == TS_SESS_SCOPE_SESSION && i < ecfg(sess)->ntasks; i++)
        task_add(sc, ecfg(sess)->tasks[i].name, ecfg(sess)->tasks[i].stall_ms, 0);
    scope_subscribe(sc);
    return sc;
}

static void reports_run(el_scope_t *sc, int final);

static void scope_free_if_idle(el_scope_t *sc) {
    if (sc->n || sc->busy) return;
    ts_sess_t *sess = sc->sess;
    reports_run(sc, 1);
    scope_unsubscribe(sc);
    free(sc->rm);
    ts_map_del(&sess->el_scopes, sc->name, sc->klen);
    ts_list_remove(&sc->link);
    TS_MET_BUMP_(sess->el_nscopes, (size_t)-1);
    for (size_t i = 0; i < HIST_MAX; i++) free(sc->hist[i].leader);
    free(sc->tasks);
    free(sc);
}

static el_member_t *member_by_holder(el_scope_t *sc, const char *holder) {
    ts_list_t *it;
    TS_LIST_FOREACH(it, &sc->members) {
        el_member_t *m = ts_list_entry(it, el_member_t, link);
        if (strcmp(m->holder, holder) == 0) return m;
    }
    return NULL;
}

/* ---- scores ---- */

static ts_sess_device_type_t type_of(const sess_sock_t *ss) {
    const char *t = json_string_value(json_object_get(ss->meta, "type"));
    if (!t) return (ts_sess_device_type_t)ss->id.device_type;
    for (int i = TS_SESS_DEV_BROWSER; i <= TS_SESS_DEV_CLI; i++)
        if (strcmp(t, ts_sess_device_type_name((ts_sess_device_type_t)i)) == 0)
            return (ts_sess_device_type_t)i;
    return TS_SESS_DEV_BROWSER;
}

static void rescore(el_member_t *m, uint64_t now) {
    const sess_sock_t *ss = m->ss;
    json_t *bat = json_object_get(ss->meta, "battery"), *net = json_object_get(ss->meta, "network");
    json_t *lv = json_object_get(bat, "level"), *ch = json_object_get(bat, "charging");
    json_t *rtt = json_object_get(net, "rtt");
    const char *vis = json_string_value(json_object_get(ss->meta, "visibility"));
    ts_el_inputs_t in = {
        .battery_level = json_is_number(lv) ? json_number_value(lv) : -1,
        .charging = json_is_boolean(ch) ? json_is_true(ch) : -1,
        .rtt_ms = ss->s ? ts_eio_sock_rtt_ms(ts_sio_socket_eio(ss->s)) : -1,
        .net_rtt_ms = json_is_number(rtt) ? (int)json_number_value(rtt) : -1,
        .effective_type = json_string_value(json_object_get(net, "effectiveType")),
        .type = type_of(ss),
        .visible = vis ? strcmp(vis, "visible") == 0 : -1,
        .uptime_ms = now - TS_MIN(now, m->ss->joined_loop),
        .late_hb = (unsigned)__builtin_popcount(m->late),
    };
    ts_el_score(&in, &ecfg(ss->sess)->weights, &m->score);
}

static int is_candidate(const el_member_t *m, uint64_t now) {
    return !m->observer && m->stalled_until <= now;
}

/* ---- the shared table: every loop's members of a scope ----
 *
 * A scope's members may be connected to several loops of this process
 * (--workers) or to several nodes over one Redis. Each loop holds its own
 * members and publishes what the ranking needs of them (score and parts,
 * join time, observer, stalled, rotated out) on the scope's channel of the
 * store's publish/subscribe, whenever that changes; it keeps what the
 * others publish as el_remote_t. So every loop ranks the same list and
 * names the same backup. Who acts is fixed, so that two loops do not race
 * for nothing: the leader's own loop transfers from its leader (resign,
 * leave, lapse, step-down: it alone sees its heartbeats), and an acquire
 * (nobody holds the lease, or its holder is gone from the table and its
 * lease ran out) is made by the loop of the member it is for. The store
 * still arbitrates: two loops acting on different tables lose a
 * compare-and-set, never grant one term twice. The loop that got a grant
 * announces it (term, holder, why) on the channel; the others adopt it.
 * A loop's liveness is its beacon on one channel for all: every lease / 4;
 * the members of a loop not heard of for a lease are dropped (kill -9).
 * The messages may be lost (Redis down): a loop that creates a scope asks
 * the others to publish theirs again. */

#define EL_CHAN_PREFIX "tabsync-el#"
#define EL_BEACON_CHAN "tabsync-el"
#define EL_REPLY_PREFIX "tabsync-el-r#"
#define EL_ADMIN_WAIT_MS 100 /* an admin query waits this long for the other loops */
#define EL_SCORE_STEP 10 /* a score moving less than this is not published */

static void evaluate(el_scope_t *sc, const char *why);
static int adopt(el_scope_t *sc, const ts_store_lease_t *l, ts_el_reason_t reason, int remote);
static void send_views(el_scope_t *sc, const char *reason, el_member_t *only);
static void tasks_publish(el_scope_t *sc);
static int tasks_owned(const el_scope_t *sc);
static int tasks_check(el_scope_t *sc);
static void tasks_changed(el_scope_t *sc, int views);
static void task_reassign(el_scope_t *sc, el_task_t *t, const char *avoid);
static void tasks_take(el_scope_t *sc, json_t *o);
static void tasks_report_take(el_scope_t *sc, json_t *o);

/* Whether other nodes may hold members: a store other than the memory
 * one (Redis). The memory store publishes nothing: one loop keeps its
 * numbers, and several loops (--workers) still rank their own tabs each
 * (docs/ELECTION.md "Limits"; TODO(#12): the memory store's loops through
 * the same table, the task table included). */
static int cluster_on(ts_sess_t *sess) {
    return strcmp(ts_store_backend(sess->store), "memory") != 0;
}

static int origin_alive(ts_sess_t *sess, uint64_t origin, uint64_t now) {
    for (size_t i = 0; i < sess->el_norigins; i++)
        if (sess->el_origins[i].id == origin)
            return now - sess->el_origins[i].seen < ecfg(sess)->lease_ms;
    return 0;
}

static void origin_seen(ts_sess_t *sess, uint64_t origin, uint64_t now) {
    size_t oldest = 0;
    for (size_t i = 0; i < sess->el_norigins; i++) {
        if (sess->el_origins[i].id == origin) {
            sess->el_origins[i].seen = now;
            return;
        }
        if (sess->el_origins[i].seen < sess->el_origins[oldest].seen) oldest = i;
    }
    size_t at = sess->el_norigins < TS_ARRAY_LEN(sess->el_origins) ? sess->el_norigins++ : oldest;
    sess->el_origins[at].id = origin;
    sess->el_origins[at].seen = now;
}

static el_remote_t *remote_find(el_scope_t *sc, const char *holder) {
    for (size_t i = 0; i < sc->nrm; i++)
        if (strcmp(sc->rm[i].holder, holder) == 0) return &sc->rm[i];
    return NULL;
}

void ts_sess__el_channels(ts_sess_t *sess, const char *prefix) {
    snprintf(sess->el_beacon, sizeof sess->el_beacon, "%s%s", prefix, EL_BEACON_CHAN);
    snprintf(sess->el_scope_pfx, sizeof sess->el_scope_pfx, "%s%s", prefix, EL_CHAN_PREFIX);
    snprintf(sess->el_reply_pfx, sizeof sess->el_reply_pfx, "%s%s", prefix, EL_REPLY_PREFIX);
}

static void chan_of(const el_scope_t *sc, char *out, size_t cap) {
    snprintf(out, cap, "%s%s", sc->sess->el_scope_pfx, sc->name);
}

/* Publishes msg (takes) with this loop's origin on `chan`. */
static void el_publish(ts_sess_t *sess, const char *chan, json_t *msg) {
    char o[17];
    snprintf(o, sizeof o, "%016" PRIx64, sess->el_origin);
    json_object_set_new(msg, "o", json_string(o));
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (!text) return;
    ts_buf_t *b = ts_buf_from(text, strlen(text));
    free(text);
    int rc = ts_store_publish(sess->store, TS_STORE_CHAN, ts_slice_str(chan), b, NULL, NULL);
    if (rc) ts_debug("election", "publish on %s refused: %s", chan, ts_strerror(rc));
    ts_buf_unref(b);
}

static uint32_t member_flags(const el_member_t *m, uint64_t now) {
    uint64_t tenure = ecfg(m->sc->sess)->max_tenure_ms;
    return (m->observer ? EL_F_OBSERVER : 0) | (is_candidate(m, now) ? EL_F_ELIGIBLE : 0) |
           (!m->rotated_at || !tenure || now - m->rotated_at >= tenure ? EL_F_MAY_PREEMPT : 0);
}

/* This loop's members of sc on its channel: when what others rank by
 * changed (or `force`: asked, or the last one left); `ask` asks the
 * others for theirs. */
static void share(el_scope_t *sc, int force, int ask) {
    ts_sess_t *sess = sc->sess;
    if (!sc->subscribed || sess->closed) return;
    uint64_t now = uv_now(sess->loop), h = 1469598103934665603ull;
    int moved = 0;
    ts_list_t *it;
    TS_LIST_FOREACH(it, &sc->members) {
        el_member_t *m = ts_list_entry(it, el_member_t, link);
        for (const char *p = m->holder; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
        h = (h ^ member_flags(m, now)) * 1099511628211ull;
        uint32_t d = m->score.total > m->pub_score ? m->score.total - m->pub_score
                                                   : m->pub_score - m->score.total;
        if (d >= EL_SCORE_STEP) moved = 1;
    }
    if (!force && !moved && h == sc->pub_hash) return;
    sc->pub_hash = h;
    json_t *ms = json_array();
    TS_LIST_FOREACH(it, &sc->members) {
        el_member_t *m = ts_list_entry(it, el_member_t, link);
        m->pub_score = m->score.total;
        json_t *parts = json_array();
        for (int p = 0; p < TS_EL_PARTS_; p++) json_array_append_new(parts, json_integer(m->score.part[p]));
        json_array_append_new(ms, json_pack("[s,I,i,o,i]", m->holder, (json_int_t)m->joined,
                                            (int)m->score.total, parts, (int)member_flags(m, now)));
    }
    char chan[TS_STORE_ID_MAX + 1];
    chan_of(sc, chan, sizeof chan);
    el_publish(sess, chan, json_pack("{s:s,s:o,s:b}", "t", "s", "m", ms, "ask", ask));
    if (force) tasks_publish(sc); /* asked: the owner's table goes with its members */
}

/* The lease as this loop knows it, for the others (a grant it got, a
 * leader gone with nobody to take over, or a disconnected leader's expiry). */
static void share_lease(el_scope_t *sc, ts_el_reason_t reason, uint64_t leaderless_ms) {
    if (!sc->subscribed || sc->sess->closed) return;
    char chan[TS_STORE_ID_MAX + 1];
    chan_of(sc, chan, sizeof chan);
    el_publish(sc->sess, chan,
               json_pack("{s:s,s:I,s:s,s:I,s:I,s:i,s:I}", "t", "l", "term", (json_int_t)sc->term,
                         "h", sc->leader, "exp", (json_int_t)sc->expires_at, "since",
                         (json_int_t)sc->since, "r", (int)reason, "lz",
                         (json_int_t)leaderless_ms));
}

/* A member list of another loop: replaces what that loop had published.
 * Returns 1 if a score or a flag changed. */
static int take_members(el_scope_t *sc, uint64_t origin, json_t *ms) {
    uint64_t old = 0, neu = 0;
    for (size_t i = 0; i < sc->nrm; i++)
        if (sc->rm[i].origin == origin) old += sc->rm[i].score.total * 31u + sc->rm[i].flags;
    size_t before = 0, w = 0;
    for (size_t i = 0; i < sc->nrm; i++) {
        if (sc->rm[i].origin == origin) {
            before++;
            continue;
        }
        sc->rm[w++] = sc->rm[i];
    }
    sc->nrm = w;
    size_t i, added = 0;
    json_t *x;
    json_array_foreach(ms, i, x) {
        const char *holder = json_string_value(json_array_get(x, 0));
        json_t *parts = json_array_get(x, 3);
        if (!holder || strlen(holder) >= HOLDER_MAX || !json_is_array(parts)) continue;
        sc->rm = ts_xrealloc(sc->rm, (sc->nrm + 1) * sizeof *sc->rm);
        el_remote_t *r = &sc->rm[sc->nrm++];
        memset(r, 0, sizeof *r);
        ts_strlcpy(r->holder, holder, sizeof r->holder);
        r->origin = origin;
        r->joined = (uint64_t)json_integer_value(json_array_get(x, 1));
        r->score.total = (uint32_t)json_integer_value(json_array_get(x, 2));
        for (int p = 0; p < TS_EL_PARTS_; p++)
            r->score.part[p] = (uint16_t)json_integer_value(json_array_get(parts, (size_t)p));
        r->flags = (uint8_t)json_integer_value(json_array_get(x, 4));
        neu += r->score.total * 31u + r->flags;
        added++;
    }
    return before != added || old != neu;
}

/* Drops the members of loops not heard of for a lease; returns how many. */
static size_t drop_dead(el_scope_t *sc, uint64_t now) {
    size_t w = 0, n = sc->nrm;
    for (size_t i = 0; i < n; i++)
        if (origin_alive(sc->sess, sc->rm[i].origin, now)) sc->rm[w++] = sc->rm[i];
    sc->nrm = w;
    return n - w;
}

static void admin_answer(el_scope_t *sc, json_t *q);
static void admin_take(ts_sess_t *sess, json_t *r);
static void admin_sweep(ts_sess_t *sess, int all);

static void on_el_msg(ts_slice_t channel, ts_buf_t *msg, void *ud) {
    ts_sess_t *sess = ud;
    if (sess->closed) return;
    json_t *o = json_loadb((const char *)msg->data, msg->len, 0, NULL);
    const char *os = json_string_value(json_object_get(o, "o"));
    const char *t = json_string_value(json_object_get(o, "t"));
    uint64_t origin = os ? strtoull(os, NULL, 16) : 0;
    if (!o || !t || !origin || origin == sess->el_origin) {
        json_decref(o);
        return;
    }
    uint64_t now = uv_now(sess->loop);
    origin_seen(sess, origin, now);
    if (strcmp(t, "r") == 0) { /* an answer to this loop's admin query */
        admin_take(sess, o);
        json_decref(o);
        return;
    }
    size_t plen = strlen(sess->el_scope_pfx);
    el_scope_t *sc = channel.len > plen && memcmp(channel.p, sess->el_scope_pfx, plen) == 0
                         ? ts_map_get(&sess->el_scopes, (const char *)channel.p + plen,
                                      channel.len - plen)
                         : NULL;
    if (!sc || !sc->n) {
        json_decref(o);
        return;
    }
    if (strcmp(t, "s") == 0 && json_is_array(json_object_get(o, "m"))) {
        size_t n0 = sc->nrm;
        int scored = take_members(sc, origin, json_object_get(o, "m"));
        if (json_is_true(json_object_get(o, "ask"))) share(sc, 1, 0);
        /* members came or went: everyone's view; scores only: the views of
         * the tabs that asked for scores (and everyone's if the backup moved) */
        evaluate(sc, sc->nrm > n0 ? "join" : sc->nrm < n0 ? "leave" : NULL);
        if (scored && sc->nrm == n0 && !sc->busy) {
            ts_list_t *it;
            TS_LIST_FOREACH(it, &sc->members) {
                el_member_t *m = ts_list_entry(it, el_member_t, link);
                if (m->ss->id.elect_scores) send_views(sc, "score", m);
            }
        }
    } else if (strcmp(t, "q") == 0) {
        admin_answer(sc, o);
    } else if (strcmp(t, "t") == 0) {
        tasks_take(sc, o);
    } else if (strcmp(t, "tr") == 0) {
        tasks_report_take(sc, o);
    } else if (strcmp(t, "l") == 0) {
        const char *h = json_string_value(json_object_get(o, "h"));
        json_int_t term = json_integer_value(json_object_get(o, "term"));
        json_int_t r = json_integer_value(json_object_get(o, "r"));
        if (h && term > 0 && (uint64_t)term >= sc->term && strlen(h) < HOLDER_MAX) {
            ts_store_lease_t l = {ts_slice(sc->name, sc->klen), ts_slice_str(h), (uint64_t)term,
                                  (uint64_t)json_integer_value(json_object_get(o, "exp"))};
            ts_el_reason_t why = r >= 0 && r < TS_EL_R_COUNT_ ? (ts_el_reason_t)r : TS_EL_R_ADOPTED;
            if ((uint64_t)term == sc->term && strcmp(h, sc->leader) == 0) {
                if (l.expires_at > sc->expires_at) sc->expires_at = l.expires_at;
            } else if (adopt(sc, &l, why, 1)) {
                if (!h[0]) sc->gone = TS_EL_GONE_NONE;
                evaluate(sc, ts_el_reason_name(why));
            }
        }
    }
    json_decref(o);
}

typedef struct el_sub {
    ts_sess_t *sess;
    size_t len;
    char name[];
} el_sub_t;

static void on_subscribed(int status, void *ud) {
    el_sub_t *r = ud;
    ts_sess_t *sess = r->sess;
    el_scope_t *sc = ts_map_get(&sess->el_scopes, r->name, r->len);
    if (status) ts_warn("election", "cannot subscribe to the channel of %s: %s", r->name, ts_strerror(status));
    else if (sc && sc->subscribed) share(sc, 1, 1); /* and the others, theirs */
    free(r);
    ts_sess__op_end(sess);
}

static void on_unsubscribed(int status, void *ud) {
    (void)status;
    ts_sess__op_end(ud);
}

static void reply_chan(ts_sess_t *sess, uint64_t origin, char *out, size_t cap) {
    snprintf(out, cap, "%s%016" PRIx64, sess->el_reply_pfx, origin);
}

/* The beacon channel and this loop's reply channel (admin answers). */
static void beacon_subscribe(ts_sess_t *sess) {
    if (sess->el_sub) return;
    while (!sess->el_origin) ts_random_bytes(&sess->el_origin, sizeof sess->el_origin);
    char chan[128];
    reply_chan(sess, sess->el_origin, chan, sizeof chan);
    if (ts_store_subscribe(sess->store, TS_STORE_CHAN, ts_slice_str(sess->el_beacon), on_el_msg,
                           sess, on_unsubscribed, sess) == 0) {
        sess->el_sub = 1;
        sess->pending_ops++;
    }
    if (ts_store_subscribe(sess->store, TS_STORE_CHAN, ts_slice_str(chan), on_el_msg, sess,
                           on_unsubscribed, sess) == 0)
        sess->pending_ops++;
}

static void scope_subscribe(el_scope_t *sc) {
    ts_sess_t *sess = sc->sess;
    if (sess->closed || !cluster_on(sess)) return;
    beacon_subscribe(sess);
    char chan[TS_STORE_ID_MAX + 1];
    chan_of(sc, chan, sizeof chan);
    el_sub_t *r = ts_xcalloc(1, sizeof *r + sc->klen + 1);
    r->sess = sess;
    r->len = sc->klen;
    memcpy(r->name, sc->name, sc->klen + 1);
    if (ts_store_subscribe(sess->store, TS_STORE_CHAN, ts_slice_str(chan), on_el_msg, sess,
                           on_subscribed, r) != 0) {
        free(r);
        return;
    }
    sess->pending_ops++;
    sc->subscribed = 1;
}

/* Its last member here went (or shutdown): the others drop ours. */
static void scope_unsubscribe(el_scope_t *sc) {
    if (!sc->subscribed) return;
    ts_sess_t *sess = sc->sess;
    share(sc, 1, 0);
    sc->subscribed = 0;
    if (sess->closed) return;
    char chan[TS_STORE_ID_MAX + 1];
    chan_of(sc, chan, sizeof chan);
    if (ts_store_unsubscribe(sess->store, TS_STORE_CHAN, ts_slice_str(chan), on_el_msg, sess,
                             on_unsubscribed, sess) == 0)
        sess->pending_ops++;
}

/* ---- views ---- */

static json_t *who(const el_member_t *m, const char *holder) {
    if (m)
        return json_pack("{s:s,s:s,s:i}", "device", m->ss->id.device, "tab", m->ss->id.tab,
                         "score", (int)m->score.total);
    if (!holder || !holder[0]) return json_null();
    const char *slash = strchr(holder, '/'); /* "<device>/<tab>": ids have no '/' */
    return json_pack("{s:s%,s:s}", "device", holder, (size_t)(slash ? slash - holder : 0), "tab",
                     slash ? slash + 1 : holder);
}

static const char *role_of(const el_scope_t *sc, const el_member_t *m) {
    if (m == sc->lm) return "leader";
    if (m->observer) return "observer";
    return strcmp(m->holder, sc->bk) == 0 ? "backup" : "follower";
}

static const char *role_of_remote(const el_scope_t *sc, const el_remote_t *r) {
    if (sc->leader[0] && strcmp(r->holder, sc->leader) == 0) return "leader";
    if (r->flags & EL_F_OBSERVER) return "observer";
    return strcmp(r->holder, sc->bk) == 0 ? "backup" : "follower";
}

/* A remote member that a local one does not shadow (a tab that moved here
 * is listed by its new loop until its old one publishes again). */
static int remote_shown(el_scope_t *sc, const el_remote_t *r) {
    return !member_by_holder(sc, r->holder);
}

/* {device, tab, score} of whichever member `holder` is, here or elsewhere. */
static json_t *who_h(el_scope_t *sc, const char *holder) {
    if (!holder[0]) return json_null();
    el_member_t *m = member_by_holder(sc, holder);
    if (m) return who(m, NULL);
    json_t *w = who(NULL, holder);
    el_remote_t *r = remote_find(sc, holder);
    if (r) json_object_set_new(w, "score", json_integer(r->score.total));
    return w;
}

static json_t *member_json(const char *holder, const char *role, const ts_el_score_t *score,
                           int scores) {
    json_t *o = who(NULL, holder);
    json_object_set_new(o, "role", json_string(role));
    if (scores) {
        json_object_set_new(o, "score", json_integer(score->total));
        json_t *parts = json_object();
        for (int p = 0; p < TS_EL_PARTS_; p++)
            json_object_set_new(parts, ts_el_part_name((ts_el_part_t)p),
                                json_real(score->part[p] / 1000.0));
        json_object_set_new(o, "parts", parts);
    }
    return o;
}

static json_t *task_table(const el_scope_t *sc) {
    json_t *a = json_array();
    for (size_t i = 0; i < sc->ntasks; i++) {
        const el_task_t *t = &sc->tasks[i];
        json_array_append_new(
            a, json_pack("{s:s,s:o,s:s,s:i,s:I,s:s}", "name", t->name, "assignee",
                         who(NULL, t->to),
                         "state", task_state_names[t->state], "pct", (int)t->pct, "term",
                         (json_int_t)t->term, "by", t->term ? "leader" : "server"));
    }
    return a;
}

static json_t *member_list(el_scope_t *sc, int scores) {
    json_t *a = json_array();
    ts_list_t *it;
    TS_LIST_FOREACH(it, &sc->members) {
        el_member_t *m = ts_list_entry(it, el_member_t, link);
        json_array_append_new(a, member_json(m->holder, role_of(sc, m), &m->score, scores));
    }
    for (size_t i = 0; i < sc->nrm; i++)
        if (remote_shown(sc, &sc->rm[i]))
            json_array_append_new(a, member_json(sc->rm[i].holder, role_of_remote(sc, &sc->rm[i]),
                                                 &sc->rm[i].score, scores));
    return a;
}

/* Returns new: the HS256 grant of the current term, or NULL without a key. */
static char *grant_sign(const el_scope_t *sc) {
    const ts_sess_elect_cfg_t *c = ecfg(sc->sess);
    if (!c->grant_secret_len || !sc->leader[0]) return NULL;
    jwt_t *j = NULL;
    if (jwt_new(&j) != 0) return NULL;
    uint64_t now = ts_wall_ms();
    int rc = jwt_add_grant(j, "iss", "tabsyncd") || jwt_add_grant(j, "typ", "leader") ||
             jwt_add_grant(j, "sub", sc->leader) || jwt_add_grant(j, "user", sc->user) ||
             jwt_add_grant(j, "session", sc->session) ||
             jwt_add_grant(j, "scope", kind_name(sc->kind)) ||
             (sc->kind == TS_SESS_SCOPE_DEVICE && jwt_add_grant(j, "device", sc->device)) ||
             jwt_add_grant_int(j, "term", (long)sc->term) ||
             jwt_add_grant_int(j, "iat", (long)(now / 1000)) ||
             jwt_add_grant_int(j, "exp", (long)((sc->expires_at + 999) / 1000)) ||
             jwt_add_grant_int(j, "exp_ms", (long)sc->expires_at) ||
             jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)c->grant_secret,
                         (int)c->grant_secret_len);
    char *tok = rc ? NULL : jwt_encode_str(j);
    jwt_free(j);
    return tok;
}

static json_t *view_base(el_scope_t *sc, const char *reason) {
    ts_sess_t *sess = sc->sess;
    return json_pack("{s:s,s:I,s:o,s:o,s:s,s:i,s:i,s:I,s:o}", "scope", kind_name(sc->kind),
                     "term", (json_int_t)sc->term, "leader", who_h(sc, sc->leader), "backup",
                     who_h(sc, sc->bk), "reason", reason,
                     "lease_ms", (int)ecfg(sess)->lease_ms, "hb_ms", (int)hb_ms(sess), "since",
                     (json_int_t)sc->since, "tasks", task_table(sc));
}

/* The view's step_down member: the leader is asked to resign. */
static void mark_stepdown(const el_scope_t *sc, json_t *v) {
    if (sc->stepping && sc->lm) json_object_set_new(v, "step_down", json_true());
}

static void emit_view(el_member_t *m, json_t *base, json_t *members_plain, json_t *members_scored,
                      const char *grant) {
    json_t *v = json_copy(base);
    el_scope_t *sc = m->sc;
    json_object_set_new(v, "role", json_string(role_of(sc, m)));
    json_object_set(v, "members", m->ss->id.elect_scores ? members_scored : members_plain);
    if (m == sc->lm && grant) json_object_set_new(v, "grant", json_string(grant));
    json_t *arr = json_pack("[o]", v);
    ts_sio_args_t a = {arr, NULL, 0};
    ts_sio_emit_class(m->ss->s, "elect", &a, TS_SIO_CLASS_CONTROL);
    json_decref(arr);
}

/* Every member's view (only = one member, e.g. a tab that just joined). */
static void send_views(el_scope_t *sc, const char *reason, el_member_t *only) {
    if (!sc->n) return;
    json_t *base = view_base(sc, reason);
    mark_stepdown(sc, base);
    json_t *plain = member_list(sc, 0), *scored = NULL;
    char *grant = sc->lm && (!only || only == sc->lm) ? grant_sign(sc) : NULL;
    ts_list_t *it;
    TS_LIST_FOREACH(it, &sc->members) {
        el_member_t *m = ts_list_entry(it, el_member_t, link);
        if (only && m != only) continue;
        if (m->ss->id.elect_scores && !scored) scored = member_list(sc, 1);
        emit_view(m, base, plain, scored, grant);
    }
    free(grant);
    json_decref(base);
    json_decref(plain);
    json_decref(scored);
}

/* ---- the session log and transitions ---- */

static void on_logged(int status, ts_slice_t body, void *ud) {
    (void)body;
    (void)ud;
    if (status) ts_warn("election", "an election was not recorded in the session log: %d", status);
}

/* remote: another loop made the grant (and counts and logs it); this one
 * keeps the transition for its admin view. */
static void record(el_scope_t *sc, ts_el_reason_t reason, uint64_t leaderless_ms, int remote) {
    ts_sess_t *sess = sc->sess;
    el_trans_t *t = &sc->hist[sc->nhist++ % HIST_MAX];
    free(t->leader);
    *t = (el_trans_t){sc->term, ts_wall_ms(), reason, leaderless_ms,
                      sc->leader[0] ? ts_xstrdup(sc->leader) : NULL};
    SESS_COUNT(sess->el_reasons[remote ? TS_EL_R_ADOPTED : reason]);
    /* a grant this loop only learned of is logged by whoever made it (this
     * loop may learn it twice: a scope is forgotten when its last member
     * here goes) */
    if (!sess->history || remote || reason == TS_EL_R_ADOPTED) return;
    /* elections are part of the session's history (prio control, from the server) */
    char id[TS_SESS_MAX_NAME + 1];
    snprintf(id, sizeof id, "elect-%s-%" PRIu64, sc->kind == TS_SESS_SCOPE_SESSION ? "s" : "d",
             sc->term);
    json_t *body = json_pack("{s:s,s:I,s:o,s:s,s:I}", "scope", kind_name(sc->kind), "term",
                             (json_int_t)sc->term, "leader", who(NULL, sc->leader), "reason",
                             ts_el_reason_name(reason), "leaderless_ms", (json_int_t)leaderless_ms);
    if (sc->kind == TS_SESS_SCOPE_DEVICE) json_object_set_new(body, "device", json_string(sc->device));
    json_t *env = json_pack("{s:i,s:s,s:s,s:s,s:s,s:o}", "v", 3, "type", "tabsync.elect", "id", id,
                            "prio", "control", "to", "session", "body", body);
    ts_sess_api_target_t tg = {sc->user, sc->session, "tabsyncd"};
    ts_sess_api_publish(sess, &tg, env, on_logged, NULL);
    json_decref(env);
}

/* Takes what the store says the lease is now (remote: what another loop
 * announced it got). Returns whether the term or the holder changed. A term
 * older than the one known is news no more (an announcement overtaken by
 * this loop's own call). */
static int adopt(el_scope_t *sc, const ts_store_lease_t *l, ts_el_reason_t reason, int remote) {
    uint64_t wall = ts_wall_ms(), now = uv_now(sc->sess->loop);
    if (l->term < sc->term) return 0;
    char holder[HOLDER_MAX] = "";
    ts_strlcpy(holder, (const char *)l->holder.p, TS_MIN(sizeof holder, l->holder.len + 1));
    int changed = l->term != sc->term || strcmp(holder, sc->leader) != 0;
    /* a term is granted once: the same term seen again (this loop had
     * forgotten its holder, e.g. after the lease lapsed unseen) is no new
     * election to count or log */
    int granted = l->term != sc->term;
    sc->expires_at = l->expires_at;
    if (!changed) return 0;
    sc->term = l->term;
    sc->stepping = 0;
    sc->ghost = 0;
    ts_strlcpy(sc->leader, holder, sizeof sc->leader);
    sc->lm = holder[0] ? member_by_holder(sc, holder) : NULL;
    sc->since = wall;
    sc->last_reason = reason;
    if (sc->lm) {
        sc->lm->last_hb = now;
        sc->lm->late = 0;
    }
    uint64_t gap = 0;
    if (holder[0] && sc->leaderless_since) {
        gap = wall - TS_MIN(wall, sc->leaderless_since);
        SESS_COUNT_N(sc->sess->counters[SC_EL_LEADERLESS_MS], gap);
        sc->leaderless_since = 0;
    } else if (!holder[0] && !sc->leaderless_since) {
        sc->leaderless_since = wall;
    }
    if (holder[0] && granted) record(sc, reason, gap, remote);
    return 1;
}

/* ---- evaluation: what the scope does next ---- */

typedef struct el_op {
    el_scope_t *sc;
    ts_el_act_t act;
    ts_el_reason_t reason;
} el_op_t;

/* Decides and acts; without a store op to wait for, sends every member's
 * view when `why` is set (or, why NULL, when the backup changed). */
static void evaluate(el_scope_t *sc, const char *why);

static void on_lease_op(int status, const ts_store_lease_t *l, void *ud) {
    el_op_t *op = ud;
    el_scope_t *sc = op->sc;
    ts_sess_t *sess = sc->sess;
    sc->busy = 0;
    const char *reason = ts_el_reason_name(op->reason);
    if (status == 0 && l) {
        adopt(sc, l, op->reason, 0);
        share_lease(sc, op->reason, 0);
        if (!sc->lm && sc->leader[0] && !remote_find(sc, sc->leader)) {
            /* the tab it went to left while the store granted it: it goes on */
            sc->gone = TS_EL_GONE_LEFT;
            ts_strlcpy(sc->gone_holder, sc->leader, sizeof sc->gone_holder);
            sc->leaderless_since = ts_wall_ms();
        } else {
            sc->gone = TS_EL_GONE_NONE;
        }
    } else if ((status == TS_EHELD || status == TS_ESTALE) && l) {
        /* another loop or node came first: its grant is the truth */
        adopt(sc, l, TS_EL_R_ADOPTED, 0);
        reason = "adopted";
    } else if (status == 0 && op->act == TS_EL_ACT_RELEASE) {
        sc->leader[0] = '\0';
        sc->lm = NULL;
        sc->expires_at = 0;
        if (!sc->leaderless_since) sc->leaderless_since = ts_wall_ms();
    } else if (status) {
        /* the store failed: try again shortly (the breaker shows it) */
        ts_debug("election", "%s: store answered %d; again in 100 ms", sc->name, status);
        sc->wake_at = uv_now(sess->loop) + 100;
    }
    if (!(status == 0 && l)) sc->gone = TS_EL_GONE_NONE;
    free(op);
    sc->again = 0;
    /* once more with the new leader: its backup, its tenure's deadline, and
     * whatever changed while the op ran; then one view each */
    evaluate(sc, reason);
    scope_free_if_idle(sc);
    ts_sess__op_end(sess);
}

static int issue(el_scope_t *sc, ts_el_act_t act, ts_el_reason_t reason, const char *to) {
    ts_sess_t *sess = sc->sess;
    el_op_t *op = ts_xcalloc(1, sizeof *op);
    *op = (el_op_t){sc, act, reason};
    uint64_t ttl = ecfg(sess)->lease_ms;
    ts_slice_t name = ts_slice(sc->name, sc->klen);
    int rc;
    if (act == TS_EL_ACT_ACQUIRE)
        rc = ts_store_lease_acquire(sess->store, name, ts_slice_str(to), ttl, on_lease_op, op);
    else if (act == TS_EL_ACT_TRANSFER)
        rc = ts_store_lease_transfer(sess->store, name, sc->term, ts_slice_str(to), ttl,
                                     on_lease_op, op);
    else
        rc = ts_store_lease_release(sess->store, name, ts_slice_str(sc->gone_holder), sc->term,
                                    (ts_store_done_cb)NULL, NULL);
    if (act == TS_EL_ACT_RELEASE) {
        /* the release needs no answer: the lease is nobody's either way
         * (released now, or lapsing within lease_ms) */
        free(op);
        sc->leader[0] = '\0';
        sc->lm = NULL;
        sc->gone = TS_EL_GONE_NONE;
        if (!sc->leaderless_since) sc->leaderless_since = ts_wall_ms();
        share_lease(sc, reason, 0);
        return rc;
    }
    if (rc) {
        free(op);
        sc->wake_at = uv_now(sess->loop) + 100;
        return rc;
    }
    sc->busy = 1;
    sess->pending_ops++;
    return 0;
}

/* The leader's place in the shared table: 1 if it is another loop's
 * member as that loop last published it. */
static int leader_remote(el_scope_t *sc) {
    if (sc->lm || !sc->leader[0]) return 0;
    el_remote_t *r = remote_find(sc, sc->leader);
    return r && remote_shown(sc, r);
}

static void evaluate_(el_scope_t *sc, const char *why) {
    ts_sess_t *sess = sc->sess;
    if (sc->busy) {
        sc->again = 1;
        return;
    }
    uint64_t now = uv_now(sess->loop), wall = ts_wall_ms();
    size_t cap = sc->n + sc->nrm;
    /* ms[i]: the local member of c[i]; NULL for another loop's */
    el_member_t *stack_m[16], **ms = cap <= 16 ? stack_m : ts_xcalloc(cap, sizeof *ms);
    ts_el_cand_t stack_c[16], *c = cap <= 16 ? stack_c : ts_xcalloc(cap, sizeof *c);
    size_t n = 0;
    int leader = -1, lremote = 0;
    ts_list_t *it;
    TS_LIST_FOREACH(it, &sc->members) {
        el_member_t *m = ts_list_entry(it, el_member_t, link);
        rescore(m, now);
        if (m == sc->lm) leader = (int)n;
        uint32_t f = member_flags(m, now);
        c[n] = (ts_el_cand_t){m->score.total, m->joined, m->holder, (uint8_t)!!(f & EL_F_ELIGIBLE),
                              (uint8_t)!!(f & EL_F_MAY_PREEMPT)};
        ms[n++] = m;
    }
    for (size_t i = 0; i < sc->nrm; i++) {
        el_remote_t *r = &sc->rm[i];
        if (!remote_shown(sc, r)) continue;
        if (!sc->lm && sc->leader[0] && strcmp(r->holder, sc->leader) == 0) {
            leader = (int)n;
            lremote = 1;
        }
        c[n] = (ts_el_cand_t){r->score.total, r->joined, r->holder,
                              (uint8_t)!!(r->flags & EL_F_ELIGIBLE),
                              (uint8_t)!!(r->flags & EL_F_MAY_PREEMPT)};
        ms[n++] = NULL;
    }
    /* led from another loop: held while that loop lists its leader (it sees
     * the heartbeats and announces a lapse); a leader gone from the table
     * (left, or its node died) holds until the expiry last seen */
    int held = sc->leader[0] && (sc->lm || lremote || wall < sc->expires_at);
    ts_el_situation_t s = {c, n, leader, held, sc->gone,
                           sc->lm ? wall - TS_MIN(wall, sc->since) : 0,
                           sc->lm ? (unsigned)__builtin_popcount(sc->lm->late) : 0, lremote};
    ts_el_params_t p = {ecfg(sess)->margin, ecfg(sess)->demote_below, ecfg(sess)->min_tenure_ms,
                        ecfg(sess)->max_tenure_ms};
    ts_el_decision_t d;
    ts_el_decide(&s, &p, &d);
    /* a handover the leader's own word or lapse started says why it began */
    if (sc->stepping && (d.reason == TS_EL_R_HANDOFF || d.reason == TS_EL_R_LAPSE))
        d.reason = sc->stepdown;
    /* a leader that went (a disconnect here, or gone from the shared table)
     * is succeeded when its lease ran out */
    if ((sc->ghost || sc->leader[0]) && d.act == TS_EL_ACT_ACQUIRE) d.reason = TS_EL_R_LEFT;
    char old_backup[HOLDER_MAX];
    ts_strlcpy(old_backup, sc->bk, sizeof old_backup);
    ts_strlcpy(sc->bk, d.backup >= 0 ? c[d.backup].holder : "", sizeof sc->bk);
    int backup_moved = strcmp(old_backup, sc->bk) != 0;
    sc->wake_at = d.recheck_ms ? now + d.recheck_ms : 0;
    /* a stalled member (lapsed or resigned) becomes a candidate again by
     * time alone: look again then */
    TS_LIST_FOREACH(it, &sc->members) {
        el_member_t *m = ts_list_entry(it, el_member_t, link);
        if (m->stalled_until > now && (!sc->wake_at || m->stalled_until < sc->wake_at))
            sc->wake_at = m->stalled_until;
    }
    char to[HOLDER_MAX] = "";
    if (d.to >= 0) ts_strlcpy(to, c[d.to].holder, sizeof to);
    /* an acquire is made by the loop of the member it is for */
    if (d.act == TS_EL_ACT_ACQUIRE && !ms[d.to]) d.act = TS_EL_ACT_NONE;
    if (ms != stack_m) free(ms), free(c);
    if (d.act == TS_EL_ACT_TRANSFER && sc->lm && sc->gone == TS_EL_GONE_NONE) {
        /* preemption, rotation, demotion: the leader may be acting on its
         * lease, so it is asked to step down rather than overtaken: its
         * heartbeats stop renewing, and its resign (one round trip) or the
         * lease's end hands over. Transferring the held lease at once would
         * let two tabs act as leaders until the old one heard of it (the
         * model's P3, docs/ELECTION-MODEL.md). */
        if (!sc->stepping) {
            sc->stepping = 1;
            sc->stepdown = d.reason;
            if (d.reason == TS_EL_R_ROTATION) sc->lm->rotated_at = now;
            send_views(sc, ts_el_reason_name(d.reason), NULL);
        } else if (why || backup_moved) {
            send_views(sc, why ? why : "backup", NULL);
        }
        return;
    }
    if (sc->stepping && sc->lm && d.act == TS_EL_ACT_NONE) {
        sc->stepping = 0; /* no longer called for (the better candidate left) */
        why = why ? why : "backup";
    }
    if (d.act == TS_EL_ACT_NONE) {
        if (sc->gone == TS_EL_GONE_LAPSED) { /* nobody to take over the lapsed lease */
            sc->gone = TS_EL_GONE_NONE;
            sc->leader[0] = '\0';
            sc->lm = NULL;
            if (!sc->leaderless_since) sc->leaderless_since = wall;
            share_lease(sc, TS_EL_R_LAPSE, 0);
            send_views(sc, "lapse", NULL);
        } else if (!held && sc->leader[0]) { /* led elsewhere, lapsed, nobody here can lead */
            sc->leader[0] = '\0';
            if (!sc->leaderless_since) sc->leaderless_since = wall;
            send_views(sc, "lapse", NULL);
        } else if (why || backup_moved) {
            send_views(sc, why ? why : "backup", NULL);
        }
        return;
    }
    if (!held && !sc->leaderless_since)
        sc->leaderless_since = sc->leader[0] ? TS_MIN(wall, sc->expires_at) : wall;
    int rc = issue(sc, d.act, d.reason, to);
    if (d.act == TS_EL_ACT_RELEASE)
        send_views(sc, ts_el_reason_name(d.reason), NULL);
    else if (rc && why) /* the store refused the call: retried by the sweep */
        send_views(sc, why, NULL);
}

/* Decides and acts (evaluate_), then tells the other loops what changed
 * of this loop's members. */
static void evaluate(el_scope_t *sc, const char *why) {
    if (sc->sess->closed) return;
    /* the task table: a loop that just came to own it (its tab leads now)
     * counts stalls from now and tells the others; the owner reassigns
     * what the change of members calls for */
    int owned = tasks_owned(sc), took = owned && !sc->task_owner;
    sc->task_owner = (uint8_t)owned;
    for (size_t i = 0; took && i < sc->ntasks; i++) sc->tasks[i].last = uv_now(sc->sess->loop);
    int changed = tasks_check(sc);
    if (changed || took) tasks_publish(sc);
    evaluate_(sc, why ? why : changed ? "task" : NULL);
    share(sc, 0, 0);
}

/* ---- members ---- */

static el_member_t *join(sess_sock_t *ss, ts_sess_scope_kind_t k) {
    if (ss->el[k]) return ss->el[k];
    ts_sess_t *sess = ss->sess;
    el_scope_t *sc = scope_get(sess, &ss->id, k, 1);
    el_member_t *m = ts_xcalloc(1, sizeof *m);
    m->sc = sc;
    m->ss = ss;
    const char *h[] = {ss->id.device, ss->id.tab};
    ts_strjoin(m->holder, sizeof m->holder, '/', h, 2);
    /* join order across loops and nodes: the wall clock in microseconds,
     * kept increasing on this loop (ties then go to the smaller holder) */
    uint64_t us = (uint64_t)ts_wall_ms() * 1000;
    sess->el_joins = us > sess->el_joins ? us : sess->el_joins + 1;
    m->joined = sess->el_joins;
    m->observer = ss->id.elect_observer;
    ts_list_insert_tail(&sc->members, &m->link);
    sc->n++;
    ss->el[k] = m;
    /* a reconnecting leader finds its lease (same holder): it leads again */
    if (sc->leader[0] && !sc->lm && strcmp(sc->leader, m->holder) == 0) sc->lm = m;
    return m;
}

/* How a member goes. */
typedef enum el_leave {
    EL_LEAVE_SAID = 0, /* `elect` leave: a tab that leads has stopped (as for resign) */
    EL_LEAVE_DISCONNECT, /* its connection went: it may not know, and act on */
} el_leave_t;

/* Removes m from its scope. A leader that said it leaves hands over at
 * once; one whose connection went may still be acting on its lease (a cut
 * it has not noticed), so the lease runs out first (ELECTION.md). */
static void leave(el_member_t *m, el_leave_t how) {
    el_scope_t *sc = m->sc;
    sess_sock_t *ss = m->ss;
    for (int k = 0; k < TS_SESS_SCOPE_KINDS_; k++)
        if (ss->el[k] == m) ss->el[k] = NULL;
    ts_list_remove(&m->link);
    sc->n--;
    if (strcmp(sc->bk, m->holder) == 0) sc->bk[0] = '\0';
    /* its tasks: the owner of the table reassigns them (tasks_check), here
     * while this loop still owns it (a leaving leader's loop does) */
    if (tasks_check(sc)) tasks_changed(sc, 0);
    if (sc->lm == m && how == EL_LEAVE_DISCONNECT) {
        sc->lm = NULL; /* sc->leader stays: held until its expiry, then taken */
        sc->ghost = 1;
        sc->stepping = 0;
        share_lease(sc, TS_EL_R_LEFT, 0); /* its expiry, as renewed here */
    } else if (sc->lm == m) {
        sc->lm = NULL;
        sc->gone = TS_EL_GONE_LEFT;
        ts_strlcpy(sc->gone_holder, m->holder, sizeof sc->gone_holder);
        sc->leaderless_since = ts_wall_ms();
    }
    free(m);
    evaluate(sc, "leave");
    scope_free_if_idle(sc);
}

void ts_sess__el_connected(sess_sock_t *ss) {
    if (ss->id.proto < TS_SESS_PROTO_ELECT || !ss->id.elect_scopes) return;
    for (int k = 0; k < TS_SESS_SCOPE_KINDS_; k++)
        if (ss->id.elect_scopes & (1u << k)) {
            el_member_t *m = join(ss, (ts_sess_scope_kind_t)k);
            evaluate(m->sc, "join");
        }
}

void ts_sess__el_gone(sess_sock_t *ss) {
    for (int k = 0; k < TS_SESS_SCOPE_KINDS_; k++)
        if (ss->el[k]) leave(ss->el[k], EL_LEAVE_DISCONNECT);
}

void ts_sess__el_rescore(sess_sock_t *ss) {
    for (int k = 0; k < TS_SESS_SCOPE_KINDS_; k++) {
        el_member_t *m = ss->el[k];
        if (!m) continue;
        uint32_t before = m->score.total;
        evaluate(m->sc, NULL);
        /* tabs that asked for scores see them move */
        if (!m->sc->busy && m->score.total != before) {
            ts_list_t *it;
            TS_LIST_FOREACH(it, &m->sc->members) {
                el_member_t *o = ts_list_entry(it, el_member_t, link);
                if (o->ss->id.elect_scores) send_views(m->sc, "score", o);
            }
        }
    }
}

static void on_lapse(uv_timer_t *t) { ts_sess__el_sweep(t->data); }

/* Lapses, rotations, demotions by time, stalled tasks. Runs every lease/10
 * and, so that a lapse is seen when it happens rather than up to a sweep
 * later, at the earliest expiry among this loop's leaders (a renewal only
 * moves an expiry later: the timer then finds nothing and is armed again). */
void ts_sess__el_sweep(ts_sess_t *sess) {
    uint64_t now = uv_now(sess->loop), wall = ts_wall_ms(), next = 0;
    /* this loop is alive, for the others' tables (the shared table) */
    if (sess->el_sub && !sess->closed && now - sess->el_beacon_at >= ecfg(sess)->lease_ms / 4) {
        sess->el_beacon_at = now;
        el_publish(sess, sess->el_beacon, json_pack("{s:s}", "t", "a"));
    }
    admin_sweep(sess, 0);
    ts_list_t *it, *tmp;
    TS_LIST_FOREACH_SAFE(it, tmp, &sess->el_list) {
        el_scope_t *sc = ts_list_entry(it, el_scope_t, link);
        if (sc->busy) continue;
        if (sc->nrm && drop_dead(sc, now)) evaluate(sc, "leave"); /* a loop or node went */
        if (sc->busy) continue;
        if (!ts_list_empty(&sc->reports)) reports_run(sc, 0);
        for (size_t i = 0; tasks_owned(sc) && i < sc->ntasks; i++) {
            el_task_t *t = &sc->tasks[i];
            if (t->to[0] && t->state < TASK_DONE && now - t->last >= t->stall_ms) {
                char stalled[HOLDER_MAX];
                ts_strlcpy(stalled, t->to, sizeof stalled);
                t->to[0] = '\0';
                task_reassign(sc, t, stalled);
                tasks_changed(sc, 1);
            }
        }
        int due = sc->wake_at && now >= sc->wake_at;
        if (sc->lm && wall >= sc->expires_at) {
            /* no heartbeat for a whole lease: the store may give it to anyone now */
            SESS_COUNT(sess->counters[SC_EL_LAPSES]);
            /* a tab that lapses again and again (a process that died while
             * its connection stays up until the ping timeout) would win
             * again each time: its stall doubles with each lapse in a row,
             * from two leases, until it heartbeats again */
            el_member_t *lm = sc->lm;
            lm->stalled_until = now + (2ull << TS_MIN(lm->lapses, 6)) * ecfg(sess)->lease_ms;
            if (lm->lapses < UINT8_MAX) lm->lapses++;
            sc->lm = NULL;
            sc->gone = TS_EL_GONE_LAPSED;
            ts_strlcpy(sc->gone_holder, sc->leader, sizeof sc->gone_holder);
            sc->leaderless_since = sc->expires_at;
            due = 1;
        } else if (!sc->lm && sc->n && !leader_remote(sc) &&
                   (!sc->leader[0] || wall >= sc->expires_at)) {
            due = 1; /* led elsewhere and not renewed as far as we saw, or nobody: ask */
        }
        if (due) {
            sc->wake_at = 0;
            evaluate(sc, NULL);
        }
        /* a local leader's expiry, or a disconnected one's (its successor waits for it) */
        if ((sc->lm || (sc->leader[0] && sc->n)) && sc->expires_at > wall &&
            (!next || sc->expires_at < next))
            next = sc->expires_at;
    }
    if (sess->closed) return;
    if (next)
        uv_timer_start(&sess->el_lapse, on_lapse, next > wall ? next - wall + 1 : 1, 0);
    else
        uv_timer_stop(&sess->el_lapse);
}

/* ---- tasks ----
 *
 * One table per scope, owned by the loop that holds its leader (every loop,
 * alone or on the memory store): the owner assigns, reassigns (a leaver, a
 * stall) and applies reports. Over Redis it publishes the table on the
 * scope's channel whenever it changes and when another loop asks for the
 * members ("t"); the others show it and forward their tabs' reports to it
 * ("tr"). Assignees are holders, so a task may go to a tab on any node. */

static int tasks_owned(const el_scope_t *sc) { return !sc->subscribed || sc->lm; }

/* Whether `holder` is a member of sc, here or in the shared table; *obs: an observer. */
static int member_present(el_scope_t *sc, const char *holder, int *obs) {
    el_member_t *m = member_by_holder(sc, holder);
    if (m) {
        *obs = m->observer;
        return 1;
    }
    el_remote_t *r = remote_find(sc, holder);
    if (!r) return 0;
    *obs = !!(r->flags & EL_F_OBSERVER);
    return 1;
}

static uint32_t task_count(const el_scope_t *sc, const char *holder) {
    uint32_t n = 0;
    for (size_t i = 0; i < sc->ntasks; i++) n += strcmp(sc->tasks[i].to, holder) == 0;
    return n;
}

/* The best taker other than `avoid`: the best-scored candidate other than
 * the leader, fewest tasks first; the leader when nobody else; `avoid`
 * itself when it is alone. "" if nobody. */
static void task_pick(el_scope_t *sc, const char *avoid, char *out) {
    uint32_t bn = 0, bs = 0;
    out[0] = '\0';
    ts_list_t *it;
    TS_LIST_FOREACH(it, &sc->members) {
        el_member_t *m = ts_list_entry(it, el_member_t, link);
        if (m->observer || m == sc->lm || (avoid && strcmp(m->holder, avoid) == 0)) continue;
        uint32_t n = task_count(sc, m->holder);
        if (!out[0] || n < bn || (n == bn && m->score.total > bs)) {
            ts_strlcpy(out, m->holder, HOLDER_MAX);
            bn = n;
            bs = m->score.total;
        }
    }
    for (size_t i = 0; i < sc->nrm; i++) {
        const el_remote_t *r = &sc->rm[i];
        if (!remote_shown(sc, r) || (r->flags & EL_F_OBSERVER) || strcmp(r->holder, sc->leader) == 0 ||
            (avoid && strcmp(r->holder, avoid) == 0))
            continue;
        uint32_t n = task_count(sc, r->holder);
        if (!out[0] || n < bn || (n == bn && r->score.total > bs)) {
            ts_strlcpy(out, r->holder, HOLDER_MAX);
            bn = n;
            bs = r->score.total;
        }
    }
    if (out[0]) return;
    if (sc->lm && (!avoid || strcmp(sc->lm->holder, avoid) != 0)) {
        ts_strlcpy(out, sc->lm->holder, HOLDER_MAX);
        return;
    }
    int obs;
    if (avoid && member_present(sc, avoid, &obs) && !obs) /* alone: the same tab gets another chance */
        ts_strlcpy(out, avoid, HOLDER_MAX);
}

static void task_reassign(el_scope_t *sc, el_task_t *t, const char *avoid) {
    if (t->to[0] || t->state != TASK_ASSIGNED || t->last) {
        t->reassigned++;
        SESS_COUNT(sc->sess->counters[SC_EL_TASKS_REASSIGNED]);
    }
    task_pick(sc, avoid, t->to);
    t->state = TASK_ASSIGNED;
    t->pct = 0;
    t->last = uv_now(sc->sess->loop);
}

/* The owner's duty after the members changed: the tasks of a tab that is
 * gone are reassigned, tasks nobody could take go to whoever can now.
 * Returns whether the table changed. */
static int tasks_check(el_scope_t *sc) {
    if (!tasks_owned(sc)) return 0;
    int changed = 0, obs;
    for (size_t i = 0; i < sc->ntasks; i++) {
        el_task_t *t = &sc->tasks[i];
        if (t->to[0] && !member_present(sc, t->to, &obs)) {
            char gone[HOLDER_MAX];
            ts_strlcpy(gone, t->to, sizeof gone);
            t->to[0] = '\0';
            if (t->state < TASK_DONE) task_reassign(sc, t, gone);
            changed = 1;
        } else if (!t->to[0] && t->state < TASK_DONE) {
            char to[HOLDER_MAX];
            task_pick(sc, NULL, to);
            if (!to[0]) continue;
            task_reassign(sc, t, NULL);
            changed = 1;
        }
    }
    return changed;
}

/* The owner's table on the scope's channel (nothing if this loop does not own it). */
static void tasks_publish(el_scope_t *sc) {
    if (!sc->subscribed || !sc->lm || sc->sess->closed) return;
    json_t *a = json_array();
    for (size_t i = 0; i < sc->ntasks; i++) {
        const el_task_t *t = &sc->tasks[i];
        json_array_append_new(a, json_pack("[s,s,i,i,I,I,i]", t->name, t->to, (int)t->state,
                                           (int)t->pct, (json_int_t)t->term,
                                           (json_int_t)t->stall_ms, (int)t->reassigned));
    }
    char chan[TS_STORE_ID_MAX + 1];
    chan_of(sc, chan, sizeof chan);
    el_publish(sc->sess, chan,
               json_pack("{s:s,s:I,s:o}", "t", "t", "term", (json_int_t)sc->term, "k", a));
}

/* The table changed here: the others first (a tab told of its task by
 * this loop's view may report at once through another node), then every
 * member's view here (views = 0: the caller sends them). */
static void tasks_changed(el_scope_t *sc, int views) {
    tasks_publish(sc);
    if (views) send_views(sc, "task", NULL);
}

/* The owner's table, from the channel: replaces this loop's copy. */
static void tasks_take(el_scope_t *sc, json_t *o) {
    json_t *k = json_object_get(o, "k");
    json_int_t term = json_integer_value(json_object_get(o, "term"));
    if (tasks_owned(sc) || !json_is_array(k) || term < 0 || (uint64_t)term < sc->term) return;
    json_t *before = task_table(sc);
    uint64_t now = uv_now(sc->sess->loop);
    size_t n = 0, i;
    json_t *x;
    el_task_t *tasks = ts_xcalloc(TS_MAX(json_array_size(k), 1), sizeof *tasks);
    json_array_foreach(k, i, x) {
        const char *name = json_string_value(json_array_get(x, 0));
        const char *to = json_string_value(json_array_get(x, 1));
        json_int_t st = json_integer_value(json_array_get(x, 2));
        if (!name || !to || strlen(name) >= sizeof tasks->name || strlen(to) >= HOLDER_MAX ||
            st < TASK_ASSIGNED || st > TASK_FAILED || n == TASKS_MAX)
            continue;
        el_task_t *t = &tasks[n++];
        ts_strlcpy(t->name, name, sizeof t->name);
        ts_strlcpy(t->to, to, sizeof t->to);
        t->state = (task_state_t)st;
        t->pct = (uint32_t)TS_MIN(100, TS_MAX(0, json_integer_value(json_array_get(x, 3))));
        t->term = (uint64_t)json_integer_value(json_array_get(x, 4));
        t->stall_ms = (uint64_t)json_integer_value(json_array_get(x, 5));
        if (!t->stall_ms) t->stall_ms = TASK_STALL_DEFAULT_MS;
        t->reassigned = (uint32_t)json_integer_value(json_array_get(x, 6));
        t->last = now; /* if this loop comes to own it, the stall counts from here */
    }
    free(sc->tasks);
    sc->tasks = tasks;
    sc->ntasks = n;
    json_t *after = task_table(sc);
    if (!json_equal(before, after)) send_views(sc, "task", NULL);
    json_decref(before);
    json_decref(after);
    reports_run(sc, 0);
}

/* An assignee's report (progress, done, fail) on the task t. */
static void task_apply(el_task_t *t, ts_el_task_op_t op, int pct, uint64_t now) {
    t->state = op == TS_EL_TASK_PROGRESS ? TASK_RUNNING : op == TS_EL_TASK_DONE ? TASK_DONE
                                                                             : TASK_FAILED;
    if (op == TS_EL_TASK_DONE) t->pct = 100;
    else if (pct >= 0) t->pct = (uint32_t)pct;
    t->last = now;
}

static el_task_t *task_find(el_scope_t *sc, const char *name);

/* A report another loop forwarded to the owner: applied if the tab named
 * is still the assignee (the table may have moved on meanwhile). */
static void tasks_report_take(el_scope_t *sc, json_t *o) {
    const char *name = json_string_value(json_object_get(o, "n"));
    const char *h = json_string_value(json_object_get(o, "h"));
    json_int_t op = json_integer_value(json_object_get(o, "op"));
    if (!tasks_owned(sc) || !name || !h ||
        (op != TS_EL_TASK_PROGRESS && op != TS_EL_TASK_DONE && op != TS_EL_TASK_FAIL))
        return;
    el_task_t *t = task_find(sc, name);
    if (!t || strcmp(t->to, h) != 0) return;
    json_int_t pct = json_integer_value(json_object_get(o, "pct"));
    task_apply(t, (ts_el_task_op_t)op, json_is_integer(json_object_get(o, "pct")) ? (int)TS_MIN(100, TS_MAX(-1, pct)) : -1,
               uv_now(sc->sess->loop));
    tasks_changed(sc, 1);
}

static el_task_t *task_find(el_scope_t *sc, const char *name) {
    for (size_t i = 0; i < sc->ntasks; i++)
        if (strcmp(sc->tasks[i].name, name) == 0) return &sc->tasks[i];
    return NULL;
}

static void task_add(el_scope_t *sc, const char *name, uint64_t stall_ms, uint64_t term) {
    el_task_t *t = task_find(sc, name);
    if (!t) {
        if (sc->ntasks == TASKS_MAX) return;
        sc->tasks = ts_xrealloc(sc->tasks, (sc->ntasks + 1) * sizeof *sc->tasks);
        t = &sc->tasks[sc->ntasks++];
        memset(t, 0, sizeof *t);
        ts_strlcpy(t->name, name, sizeof t->name);
    }
    t->to[0] = '\0';
    t->term = term;
    t->stall_ms = stall_ms ? stall_ms : TASK_STALL_DEFAULT_MS;
    t->last = 0;
    t->reassigned = 0;
    t->state = TASK_ASSIGNED;
    if (tasks_owned(sc)) task_reassign(sc, t, NULL);
    t->reassigned = 0;
}

/* A report on another loop than the owner's: forwarded if this loop's
 * copy of the table names the tab. A tab may hear of its task from another
 * node's view before this loop has the table that says so: a report this
 * copy refuses waits for the next table, or EL_REPORT_WAIT_MS, before it
 * is refused. */
#define EL_REPORT_WAIT_MS 250

typedef struct el_report {
    ts_list_t link;            /* in sc->reports */
    sess_sock_t *ss;           /* held */
    int64_t ack_id;
    ts_el_task_op_t op;
    int pct;
    uint64_t deadline;         /* loop ms */
    char name[TS_SESS_MAX_NAME + 1];
} el_report_t;

/* Answers r if it can be (or `final`), and frees it: returns 1; else 0. */
static int report_try(el_scope_t *sc, el_report_t *r, int final) {
    sess_sock_t *ss = r->ss;
    el_member_t *m = ss->gone ? NULL : ss->el[sc->kind];
    if (m && m->sc != sc) m = NULL;
    el_task_t *t = m ? task_find(sc, r->name) : NULL;
    int mine = t && strcmp(t->to, m->holder) == 0;
    if (!mine && !final && m && uv_now(sc->sess->loop) < r->deadline) return 0;
    if (mine && tasks_owned(sc)) { /* this loop came to own the table meanwhile */
        task_apply(t, r->op, r->pct, uv_now(sc->sess->loop));
        tasks_changed(sc, 1);
    } else if (mine) {
        /* the owner applies it and publishes the table: every view, this
         * tab's too, shows it from there */
        char chan[TS_STORE_ID_MAX + 1];
        chan_of(sc, chan, sizeof chan);
        json_t *fwd = json_pack("{s:s,s:s,s:s,s:i}", "t", "tr", "n", r->name, "h", m->holder, "op",
                                (int)r->op);
        if (r->pct >= 0) json_object_set_new(fwd, "pct", json_integer(r->pct));
        el_publish(sc->sess, chan, fwd);
    }
    if (!ss->gone)
        ts_sess__reply(ss->s, r->ack_id,
                       mine ? json_pack("{s:b}", "ok", 1)
                            : ts_sess__error("not_assignee", "this tab is not assigned that task", 0));
    ts_list_remove(&r->link);
    ts_sess__sock_release(ss);
    free(r);
    return 1;
}

static void reports_run(el_scope_t *sc, int final) {
    ts_list_t *it, *tmp;
    TS_LIST_FOREACH_SAFE(it, tmp, &sc->reports)
        report_try(sc, ts_list_entry(it, el_report_t, link), final);
}

static void report_queue(el_scope_t *sc, sess_sock_t *ss, int64_t ack_id, const ts_el_req_t *req) {
    el_report_t *r = ts_xcalloc(1, sizeof *r);
    *r = (el_report_t){.ss = ss, .ack_id = ack_id, .op = req->op, .pct = req->pct,
                       .deadline = uv_now(sc->sess->loop) + EL_REPORT_WAIT_MS};
    ts_strlcpy(r->name, req->name, sizeof r->name);
    ts_sess__sock_hold(ss);
    ts_list_insert_tail(&sc->reports, &r->link);
    report_try(sc, r, 0);
}

/* ---- client events ---- */

static json_t *stale_reply(const el_scope_t *sc, const char *msg) {
    json_t *r = ts_sess__error("stale_term", msg, 0);
    json_object_set_new(r, "term", json_integer((json_int_t)sc->term));
    json_object_set_new(r, "leader", who(sc->lm, sc->leader));
    return r;
}

/* Parses the argument of a request of `kind`; NULL with the refusal
 * answered. For every kind but ELECT, also the member of ss in its scope. */
static el_member_t *request(sess_sock_t *ss, const ts_sio_args_t *a, int64_t ack_id,
                            ts_el_req_kind_t kind, ts_el_req_t *req, int *ok) {
    const char *code;
    char why[160];
    *ok = 0;
    if (ts_el_req_parse(json_array_get(a->args, 0), kind, req, &code, why, sizeof why)) {
        ts_sess__reply(ss->s, ack_id, ts_sess__error(code, why, 0));
        return NULL;
    }
    *ok = 1;
    if (kind == TS_EL_REQ_ELECT) return NULL;
    if (!ss->el[req->scope]) {
        *ok = 0;
        ts_sess__reply(ss->s, ack_id,
                       ts_sess__error("not_member", "this tab has not joined that election", 0));
        return NULL;
    }
    return ss->el[req->scope];
}

/* Whether m leads its scope with `term`; if not, answers stale_term. */
static int leads(el_member_t *m, uint64_t term, int64_t ack_id, const char *msg) {
    el_scope_t *sc = m->sc;
    if (sc->lm == m && sc->term == term) return 1;
    SESS_COUNT(m->ss->sess->counters[SC_EL_STALE]);
    ts_sess__reply(m->ss->s, ack_id, stale_reply(sc, msg));
    return 0;
}

void ts_sess__el_on_elect(sess_sock_t *ss, const ts_sio_args_t *a, int64_t ack_id) {
    ts_el_req_t req;
    int ok;
    request(ss, a, ack_id, TS_EL_REQ_ELECT, &req, &ok);
    if (!ok) return;
    if (req.scores >= 0) ss->id.elect_scores = (uint8_t)req.scores;
    if (req.observer >= 0) {
        ss->id.elect_observer = (uint8_t)req.observer;
        for (int k = 0; k < TS_SESS_SCOPE_KINDS_; k++)
            if (ss->el[k]) ss->el[k]->observer = ss->id.elect_observer;
    }
    for (int k = 0; k < TS_SESS_SCOPE_KINDS_; k++)
        if ((req.leave & (1u << k)) && ss->el[k]) leave(ss->el[k], EL_LEAVE_SAID);
    ss->id.elect_scopes = (ss->id.elect_scopes & ~req.leave) | req.join;
    json_t *views = json_array();
    for (int k = 0; k < TS_SESS_SCOPE_KINDS_; k++) {
        el_member_t *m = ss->el[k];
        if (!m && (req.join & (1u << k))) m = join(ss, (ts_sess_scope_kind_t)k);
        if (!m) continue;
        evaluate(m->sc, "join");
        json_array_append_new(views, json_pack("{s:s,s:I,s:s}", "scope", kind_name(m->sc->kind),
                                               "term", (json_int_t)m->sc->term, "role",
                                               role_of(m->sc, m)));
    }
    ts_sess__reply(ss->s, ack_id, json_pack("{s:b,s:o}", "ok", 1, "scopes", views));
}

typedef struct hb_req {
    sess_sock_t *ss;
    int64_t ack_id;
    ts_sess_scope_kind_t kind;
    uint64_t term;
} hb_req_t;

static void on_renew(int status, const ts_store_lease_t *l, void *ud) {
    hb_req_t *r = ud;
    sess_sock_t *ss = r->ss;
    ts_sess_t *sess = ss->sess;
    el_member_t *m = ss->gone ? NULL : ss->el[r->kind];
    if (m && status == 0 && l) {
        el_scope_t *sc = m->sc;
        if (sc->term == r->term) sc->expires_at = l->expires_at;
        json_t *res = json_pack("{s:b,s:I,s:i,s:I}", "ok", 1, "term", (json_int_t)r->term,
                                "lease_ms", (int)ecfg(sess)->lease_ms, "expires_at",
                                (json_int_t)l->expires_at);
        char *grant = sc->lm == m ? grant_sign(sc) : NULL;
        if (grant) json_object_set_new(res, "grant", json_string(grant));
        free(grant);
        ts_sess__reply(ss->s, r->ack_id, res);
        if (__builtin_popcount(m->late) >= 2) evaluate(sc, NULL); /* heartbeats slowed: demotion */
    } else if (m) {
        el_scope_t *sc = m->sc;
        SESS_COUNT(sess->counters[SC_EL_STALE]);
        /* news only if this loop had not seen that grant yet (its own
         * transfer that overtook this heartbeat has been taken already) */
        int adopted = status == TS_ESTALE && l && l->term >= sc->term && !sc->busy &&
                      adopt(sc, l, TS_EL_R_ADOPTED, 0);
        ts_sess__reply(ss->s, r->ack_id,
                       stale_reply(sc, "the lease of this term is gone; stop acting as leader"));
        if (adopted)
            evaluate(sc, "adopted"); /* everyone learns the store's leader */
        else
            send_views(sc, "stale", m);
    }
    ts_sess__sock_release(ss);
    free(r);
    ts_sess__op_end(sess);
}

void ts_sess__el_on_hb(sess_sock_t *ss, const ts_sio_args_t *a, int64_t ack_id) {
    ts_el_req_t req;
    int ok;
    el_member_t *m = request(ss, a, ack_id, TS_EL_REQ_HB, &req, &ok);
    if (!m) return;
    el_scope_t *sc = m->sc;
    ts_sess_t *sess = ss->sess;
    uint64_t now = uv_now(sess->loop), term = req.term;
    m->stalled_until = 0; /* it is alive */
    m->lapses = 0;
    if (!leads(m, term, ack_id, "this tab does not lead with that term; step down")) {
        send_views(sc, "stale", m);
        return;
    }
    if (sc->stepping) {
        /* asked to step down: no more renewals; resign, or the lease ends */
        json_t *r = stale_reply(sc, "step down: resign, another tab is to lead; the lease is not "
                                    "renewed");
        json_object_set_new(json_object_get(r, "error"), "code", json_string("step_down"));
        ts_sess__reply(ss->s, ack_id, r);
        return;
    }
    int late = m->last_hb && now - m->last_hb > hb_ms(sess) * 3 / 2;
    m->late = (uint16_t)(((m->late << 1) | late) & ((1u << TS_EL_LATE_WINDOW) - 1));
    m->last_hb = now;
    hb_req_t *r = ts_xcalloc(1, sizeof *r);
    *r = (hb_req_t){ss, ack_id, sc->kind, term};
    ts_sess__sock_hold(ss);
    sess->pending_ops++;
    int rc = ts_store_lease_renew(sess->store, ts_slice(sc->name, sc->klen),
                                  ts_slice_str(m->holder), term, ecfg(sess)->lease_ms, on_renew, r);
    if (rc) {
        sess->pending_ops--;
        ts_sess__sock_release(ss);
        free(r);
        ts_sess__reply(ss->s, ack_id, ts_sess__error("store_unavailable", "retry", 100));
    }
}

void ts_sess__el_on_resign(sess_sock_t *ss, const ts_sio_args_t *a, int64_t ack_id) {
    ts_el_req_t req;
    int ok;
    el_member_t *m = request(ss, a, ack_id, TS_EL_REQ_RESIGN, &req, &ok);
    if (!m || !leads(m, req.term, ack_id, "this tab does not lead with that term")) return;
    el_scope_t *sc = m->sc;
    /* not a candidate for a while: the backup takes the next term */
    m->stalled_until = uv_now(ss->sess->loop) + ecfg(ss->sess)->lease_ms;
    sc->lm = NULL;
    sc->gone = TS_EL_GONE_RESIGNED;
    ts_strlcpy(sc->gone_holder, m->holder, sizeof sc->gone_holder);
    sc->leaderless_since = ts_wall_ms();
    ts_sess__reply(ss->s, ack_id, json_pack("{s:b,s:I}", "ok", 1, "term", (json_int_t)req.term));
    evaluate(sc, NULL);
}

void ts_sess__el_on_task(sess_sock_t *ss, const ts_sio_args_t *a, int64_t ack_id) {
    ts_el_req_t req;
    int ok;
    el_member_t *m = request(ss, a, ack_id, TS_EL_REQ_TASK, &req, &ok);
    if (!m) return;
    el_scope_t *sc = m->sc;
    uint64_t now = uv_now(ss->sess->loop);
    el_task_t *t = task_find(sc, req.name);
    switch (req.op) {
    case TS_EL_TASK_DECLARE:
    case TS_EL_TASK_CANCEL:
        /* the leader's loop owns the table: declarations are made there */
        if (!leads(m, req.term, ack_id, "only the leader of the current term declares or "
                                        "cancels tasks"))
            return;
        if (req.op == TS_EL_TASK_CANCEL) {
            if (t) *t = sc->tasks[--sc->ntasks];
            break;
        }
        if (!t && sc->ntasks == TASKS_MAX) {
            ts_sess__reply(ss->s, ack_id, ts_sess__error("bad_task", "at most 32 tasks per scope", 0));
            return;
        }
        task_add(sc, req.name, req.stall_ms, req.term);
        t = task_find(sc, req.name);
        if (req.to_device[0]) { /* a member the leader prefers, if it may take tasks */
            char h[HOLDER_MAX];
            snprintf(h, sizeof h, "%s/%s", req.to_device, req.to_tab);
            int obs;
            if (member_present(sc, h, &obs) && !obs) ts_strlcpy(t->to, h, sizeof t->to);
        }
        break;
    case TS_EL_TASK_PROGRESS:
    case TS_EL_TASK_DONE:
    case TS_EL_TASK_FAIL:
        if (!tasks_owned(sc)) {
            report_queue(sc, ss, ack_id, &req);
            return;
        }
        if (!t || strcmp(t->to, m->holder) != 0) {
            ts_sess__reply(ss->s, ack_id,
                           ts_sess__error("not_assignee", "this tab is not assigned that task", 0));
            return;
        }
        task_apply(t, req.op, req.pct, now);
        break;
    }
    ts_sess__reply(ss->s, ack_id, json_pack("{s:b}", "ok", 1));
    tasks_changed(sc, 1);
}

/* ---- fencing of state changes ---- */

int ts_sess__el_fence(sess_sock_t *ss, json_t *lead, char *name, size_t cap, uint64_t *term,
                      char *why, size_t whylen) {
    ts_el_req_t req;
    const char *code;
    int rc = ts_el_req_parse(lead, TS_EL_REQ_LEAD, &req, &code, why, whylen);
    if (rc) return rc;
    if (ss->id.proto < TS_SESS_PROTO_ELECT)
        return ts_errf(why, whylen, TS_EPROTO, "lead needs protocol %d", TS_SESS_PROTO_ELECT);
    scope_name(name, cap, &ss->id, req.scope);
    *term = req.term;
    return 0;
}

/* ---- the data API: the HTTP check and the admin view ---- */

typedef struct check_req {
    ts_sess_t *sess;
    ts_sess_api_cb cb;
    void *ud;
    ts_sess_scope_kind_t kind;
} check_req_t;

static void on_check(int status, const ts_store_lease_t *l, void *ud) {
    check_req_t *r = ud;
    if (status == 0 && l) {
        char holder[HOLDER_MAX] = "";
        ts_strlcpy(holder, (const char *)l->holder.p, TS_MIN(sizeof holder, l->holder.len + 1));
        json_t *o = json_pack("{s:s,s:I,s:o,s:I}", "scope", kind_name(r->kind), "term",
                              (json_int_t)l->term, "leader", who(NULL, holder), "expires_at",
                              (json_int_t)(holder[0] ? l->expires_at : 0));
        char *text = json_dumps(o, JSON_COMPACT);
        r->cb(0, ts_slice_str(text), r->ud);
        free(text);
        json_decref(o);
    } else {
        r->cb(status ? status : TS_ESTORE, ts_slice("", 0), r->ud);
    }
    ts_sess_t *sess = r->sess;
    free(r);
    ts_sess__op_end(sess);
}

int ts_sess_api_election(ts_sess_t *sess, const char *user, const char *session, const char *scope,
                         const char *device, ts_sess_api_cb cb, void *ud) {
    if (sess->closed) return TS_ECLOSED;
    int k = scope ? ts_sess_scope_kind_parse(scope, strlen(scope)) : -1;
    if (k < 0 || !ts_sess__api_id_ok(user) || !ts_sess__api_id_ok(session) ||
        (k == TS_SESS_SCOPE_DEVICE && !ts_sess__api_id_ok(device)))
        return TS_EINVAL;
    sess_ident_t id = {.user = user, .session = session, .device = device ? device : "", .tab = ""};
    char name[TS_STORE_ID_MAX + 1];
    scope_name(name, sizeof name, &id, (ts_sess_scope_kind_t)k);
    check_req_t *r = ts_xcalloc(1, sizeof *r);
    *r = (check_req_t){sess, cb, ud, (ts_sess_scope_kind_t)k};
    int rc = ts_store_lease_get(sess->store, ts_slice_str(name), on_check, r);
    if (rc) {
        free(r);
        return rc;
    }
    sess->pending_ops++;
    return 0;
}

static json_t *scope_admin(el_scope_t *sc) {
    json_t *hist = json_array();
    size_t first = sc->nhist > HIST_MAX ? sc->nhist - HIST_MAX : 0;
    for (size_t i = first; i < sc->nhist; i++) {
        const el_trans_t *t = &sc->hist[i % HIST_MAX];
        json_array_append_new(hist, json_pack("{s:I,s:o,s:s,s:I,s:I}", "term", (json_int_t)t->term,
                                              "leader", who(NULL, t->leader), "reason",
                                              ts_el_reason_name(t->reason), "at",
                                              (json_int_t)t->at, "leaderless_ms",
                                              (json_int_t)t->leaderless_ms));
    }
    json_t *o = json_pack("{s:s,s:I,s:o,s:o,s:I,s:o,s:o,s:o}", "scope", kind_name(sc->kind), "term",
                          (json_int_t)sc->term, "leader", who_h(sc, sc->leader), "backup",
                          who_h(sc, sc->bk), "expires_at",
                          (json_int_t)sc->expires_at, "members", member_list(sc, 1), "tasks",
                          task_table(sc), "transitions", hist);
    if (sc->kind == TS_SESS_SCOPE_DEVICE) json_object_set_new(o, "device", json_string(sc->device));
    return o;
}

/* The admin view in a cluster: this loop asks the loops that hold the
 * session's scope (on its channel) for theirs, waits EL_ADMIN_WAIT_MS (the
 * sweep finishes it), and merges: per scope, the answer with the highest
 * term, and the transitions of all, each term with the reason its granting
 * loop gave (the others only "adopted" it). A loop holding only device
 * scopes of the session is not asked. */
typedef struct el_query {
    ts_list_t link;            /* in sess->el_queries */
    uint64_t id, deadline;     /* deadline: loop ms */
    ts_sess_api_cb cb;
    void *ud;
    json_t *scopes;            /* every answer's scopes, this loop's first */
    char user[TS_SESS_ID_MAX + 1], session[TS_SESS_ID_MAX + 1];
} el_query_t;

static json_t *local_scopes(ts_sess_t *sess, const char *user, const char *session) {
    json_t *scopes = json_array();
    ts_list_t *it;
    TS_LIST_FOREACH(it, &sess->el_list) {
        el_scope_t *sc = ts_list_entry(it, el_scope_t, link);
        if (strcmp(sc->user, user) == 0 && strcmp(sc->session, session) == 0)
            json_array_append_new(scopes, scope_admin(sc));
    }
    return scopes;
}

static void admin_answer(el_scope_t *sc, json_t *q) {
    const char *os = json_string_value(json_object_get(q, "o"));
    uint64_t origin = os ? strtoull(os, NULL, 16) : 0;
    if (!origin) return;
    char chan[128];
    reply_chan(sc->sess, origin, chan, sizeof chan);
    el_publish(sc->sess, chan,
               json_pack("{s:s,s:O,s:o}", "t", "r", "id", json_object_get(q, "id"), "scopes",
                         local_scopes(sc->sess, sc->user, sc->session)));
}

static void admin_take(ts_sess_t *sess, json_t *r) {
    uint64_t id = (uint64_t)json_integer_value(json_object_get(r, "id"));
    json_t *scopes = json_object_get(r, "scopes");
    ts_list_t *it;
    TS_LIST_FOREACH(it, &sess->el_queries) {
        el_query_t *q = ts_list_entry(it, el_query_t, link);
        if (q->id == id && json_is_array(scopes)) json_array_extend(q->scopes, scopes);
    }
}

static int by_term(const void *a, const void *b) {
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "term"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "term"));
    return x < y ? -1 : x > y;
}

/* Returns new: one object per scope of `all` (borrowed). */
static json_t *admin_merge(json_t *all) {
    json_t *groups = json_object(), *order = json_array();
    size_t i;
    json_t *x;
    json_array_foreach(all, i, x) {
        char key[TS_SESS_ID_MAX + 16];
        snprintf(key, sizeof key, "%s/%s", json_string_value(json_object_get(x, "scope")),
                 json_string_value(json_object_get(x, "device")) ? json_string_value(json_object_get(x, "device")) : "");
        json_t *g = json_object_get(groups, key);
        if (!g) {
            g = json_array();
            json_object_set_new(groups, key, g);
            json_array_append_new(order, json_string(key));
        }
        json_array_append(g, x);
    }
    json_t *out = json_array(), *k;
    json_array_foreach(order, i, k) {
        json_t *g = json_object_get(groups, json_string_value(k)), *base = NULL, *y;
        size_t j;
        json_array_foreach(g, j, y) {
            json_int_t t = json_integer_value(json_object_get(y, "term"));
            if (!base || t > json_integer_value(json_object_get(base, "term"))) base = y;
        }
        /* transitions: one per term, the granting loop's reason first */
        json_t *trans[8 * TS_SIO_MAX_LOOPS + 8];
        size_t nt = 0;
        json_array_foreach(g, j, y) {
            size_t a;
            json_t *t;
            json_array_foreach(json_object_get(y, "transitions"), a, t) {
                json_int_t term = json_integer_value(json_object_get(t, "term"));
                size_t m = 0;
                while (m < nt && json_integer_value(json_object_get(trans[m], "term")) != term) m++;
                int adopted = strcmp(json_string_value(json_object_get(t, "reason")) ?: "", "adopted") == 0;
                if (m < nt) {
                    if (!adopted && strcmp(json_string_value(json_object_get(trans[m], "reason")) ?: "", "adopted") == 0)
                        trans[m] = t;
                } else if (nt < TS_ARRAY_LEN(trans)) {
                    trans[nt++] = t;
                }
            }
        }
        qsort(trans, nt, sizeof *trans, by_term);
        json_t *o = json_deep_copy(base), *ta = json_array();
        for (size_t m = nt > HIST_MAX ? nt - HIST_MAX : 0; m < nt; m++) json_array_append(ta, trans[m]);
        json_object_set_new(o, "transitions", ta);
        json_array_append_new(out, o);
    }
    json_decref(groups);
    json_decref(order);
    return out;
}

static void admin_finish(ts_sess_t *sess, el_query_t *q) {
    ts_list_remove(&q->link);
    json_t *scopes = admin_merge(q->scopes);
    json_t *o = json_pack("{s:s,s:s,s:o}", "user", q->user, "session", q->session, "scopes", scopes);
    char *text = json_dumps(o, JSON_COMPACT);
    q->cb(0, ts_slice_str(text), q->ud);
    free(text);
    json_decref(o);
    json_decref(q->scopes);
    free(q);
    ts_sess__op_end(sess);
}

/* Finishes the queries whose wait is over (all: shutdown). */
static void admin_sweep(ts_sess_t *sess, int all) {
    uint64_t now = uv_now(sess->loop);
    ts_list_t *it, *tmp;
    TS_LIST_FOREACH_SAFE(it, tmp, &sess->el_queries) {
        el_query_t *q = ts_list_entry(it, el_query_t, link);
        if (all || now >= q->deadline) admin_finish(sess, q);
    }
}

int ts_sess_api_elections(ts_sess_t *sess, const char *user, const char *session,
                          ts_sess_api_cb cb, void *ud) {
    if (sess->closed) return TS_ECLOSED;
    if (!ts_sess__api_id_ok(user) || !ts_sess__api_id_ok(session)) return TS_EINVAL;
    if (cluster_on(sess)) {
        beacon_subscribe(sess);
        el_query_t *q = ts_xcalloc(1, sizeof *q);
        q->id = ++sess->el_qid;
        q->deadline = uv_now(sess->loop) + EL_ADMIN_WAIT_MS;
        q->cb = cb;
        q->ud = ud;
        q->scopes = local_scopes(sess, user, session);
        ts_strlcpy(q->user, user, sizeof q->user);
        ts_strlcpy(q->session, session, sizeof q->session);
        ts_list_insert_tail(&sess->el_queries, &q->link);
        sess->pending_ops++;
        char chan[TS_STORE_ID_MAX + 96];
        const char *parts[] = {"e", user, session};
        char name[TS_STORE_ID_MAX + 1];
        ts_strjoin(name, sizeof name, '/', parts, 3);
        snprintf(chan, sizeof chan, "%s%s", sess->el_scope_pfx, name);
        el_publish(sess, chan, json_pack("{s:s,s:I}", "t", "q", "id", (json_int_t)q->id));
        return 0;
    }
    json_t *o = json_pack("{s:s,s:s,s:o}", "user", user, "session", session, "scopes",
                          local_scopes(sess, user, session));
    char *text = json_dumps(o, JSON_COMPACT);
    cb(0, ts_slice_str(text), ud);
    free(text);
    json_decref(o);
    return 0;
}

/* ---- lifecycle ---- */

static void on_tick(uv_timer_t *t) { ts_sess__el_sweep(t->data); }

void ts_sess__el_init(ts_sess_t *sess) {
    ts_sess_elect_cfg_t *c = &sess->cfg.elect;
    if (!c->lease_ms) { /* not configured: every default */
        ts_sess_elect_cfg_t d = TS_SESS_ELECT_CFG_DEFAULT;
        d.grant_secret = c->grant_secret;
        d.grant_secret_len = c->grant_secret_len;
        d.tasks = c->tasks;
        d.ntasks = c->ntasks;
        *c = d;
    }
    uint32_t sum = 0;
    for (int i = 0; i < TS_EL_PARTS_; i++) sum += c->weights.w[i];
    if (!sum) c->weights = ts_el_default_weights;
    sess->el_scopes = (ts_map_t)TS_MAP_INIT;
    ts_list_init(&sess->el_list);
    ts_list_init(&sess->el_queries);
    uv_timer_init(sess->loop, &sess->el_tick);
    sess->el_tick.data = sess;
    uint64_t every = TS_MAX((uint64_t)SWEEP_MIN_MS, c->lease_ms / 10);
    uv_timer_start(&sess->el_tick, on_tick, every, every);
    uv_unref((uv_handle_t *)&sess->el_tick);
    uv_timer_init(sess->loop, &sess->el_lapse);
    sess->el_lapse.data = sess;
    uv_unref((uv_handle_t *)&sess->el_lapse);
}

/* (before the loop closes: the unsubscriptions end with their callbacks) */
static void beacon_unsubscribe(ts_sess_t *sess) {
    if (!sess->el_sub || sess->closed) return;
    sess->el_sub = 0;
    char chan[128];
    reply_chan(sess, sess->el_origin, chan, sizeof chan);
    if (ts_store_unsubscribe(sess->store, TS_STORE_CHAN, ts_slice_str(sess->el_beacon), on_el_msg,
                             sess, on_unsubscribed, sess) == 0)
        sess->pending_ops++;
    if (ts_store_unsubscribe(sess->store, TS_STORE_CHAN, ts_slice_str(chan), on_el_msg, sess,
                             on_unsubscribed, sess) == 0)
        sess->pending_ops++;
}

/* Shutting down: every member goes without an election (the leases lapse
 * by themselves); a scope waiting for the store goes with its answer. */
void ts_sess__el_drop_all(ts_sess_t *sess) {
    ts_list_t *it, *tmp;
    TS_LIST_FOREACH_SAFE(it, tmp, &sess->el_list) {
        el_scope_t *sc = ts_list_entry(it, el_scope_t, link);
        while (!ts_list_empty(&sc->members)) {
            el_member_t *m = ts_list_entry(sc->members.next, el_member_t, link);
            ts_list_remove(&m->link);
            for (int k = 0; k < TS_SESS_SCOPE_KINDS_; k++)
                if (m->ss->el[k] == m) m->ss->el[k] = NULL;
            free(m);
        }
        sc->n = 0;
        sc->lm = NULL;
        sc->bk[0] = '\0';
        scope_unsubscribe(sc);
        scope_free_if_idle(sc);
    }
    admin_sweep(sess, 1);
    beacon_unsubscribe(sess);
}

void ts_sess__el_deinit(ts_sess_t *sess) {
    ts_sess__el_drop_all(sess); /* nothing is in flight any more */
    ts_map_deinit(&sess->el_scopes);
}
