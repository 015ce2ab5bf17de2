/* election_cluster.c - leader election across the loops of a process and
 * the nodes on one Redis (election.c's "shared table"): each loop publishes
 * its members of a scope, its beacon and the grants it got on the store's
 * publish/subscribe, keeps what the others publish, and gathers the admin view. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_log.h"
#include "core/ts_mem.h"
#include "core/ts_util.h"
#include "session/sess_int.h"
#include "session/ts_sess_elect.h"
#include "store/ts_store.h"

static const ts_sess_elect_cfg_t *ecfg(const ts_sess_t *sess) { return &sess->cfg.elect; }

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

el_remote_t *ts_sess__el_remote_find(el_scope_t *sc, const char *holder) {
    for (size_t i = 0; i < sc->nrm; i++)
        if (strcmp(sc->rm[i].holder, holder) == 0) return &sc->rm[i];
    return NULL;
}

void ts_sess__el_channels(ts_sess_t *sess, const char *prefix) {
    snprintf(sess->el_beacon, sizeof sess->el_beacon, "%s%s", prefix, EL_BEACON_CHAN);
    snprintf(sess->el_scope_pfx, sizeof sess->el_scope_pfx, "%s%s", prefix, EL_CHAN_PREFIX);
    snprintf(sess->el_reply_pfx, sizeof sess->el_reply_pfx, "%s%s", prefix, EL_REPLY_PREFIX);
}

void ts_sess__el_chan_of(const el_scope_t *sc, char *out, size_t cap) {
    snprintf(out, cap, "%s%s", sc->sess->el_scope_pfx, sc->name);
}

/* Publishes msg (takes) with this loop's origin on `chan`. */
void ts_sess__el_publish(ts_sess_t *sess, const char *chan, json_t *msg) {
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

uint32_t ts_sess__el_member_flags(const el_member_t *m, uint64_t now) {
    uint64_t tenure = ecfg(m->sc->sess)->max_tenure_ms;
    return (m->observer ? EL_F_OBSERVER : 0) |
           (ts_sess__el_is_candidate(m, now) ? EL_F_ELIGIBLE : 0) |
           (!m->rotated_at || !tenure || now - m->rotated_at >= tenure ? EL_F_MAY_PREEMPT : 0);
}

/* This loop's members of sc on its channel: when what others rank by
 * changed (or `force`: asked, or the last one left); `ask` asks the
 * others for theirs. */
void ts_sess__el_share(el_scope_t *sc, int force, int ask) {
    ts_sess_t *sess = sc->sess;
    if (!sc->subscribed || sess->closed) return;
    uint64_t now = uv_now(sess->loop), h = 1469598103934665603ull;
    int moved = 0;
    ts_list_t *it;
    TS_LIST_FOREACH(it, &sc->members) {
        el_member_t *m = ts_list_entry(it, el_member_t, link);
        for (const char *p = m->holder; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
        h = (h ^ ts_sess__el_member_flags(m, now)) * 1099511628211ull;
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
                                            (int)m->score.total, parts,
                                            (int)ts_sess__el_member_flags(m, now)));
    }
    char chan[TS_STORE_ID_MAX + 1];
    ts_sess__el_chan_of(sc, chan, sizeof chan);
    ts_sess__el_publish(sess, chan, json_pack("{s:s,s:o,s:b}", "t", "s", "m", ms, "ask", ask));
    if (force) ts_sess__el_tasks_publish(sc); /* asked: the owner's table goes with its members */
}

/* The lease as this loop knows it, for the others (a grant it got, a
 * leader gone with nobody to take over, or a disconnected leader's expiry). */
void ts_sess__el_share_lease(el_scope_t *sc, ts_el_reason_t reason, uint64_t leaderless_ms) {
    if (!sc->subscribed || sc->sess->closed) return;
    char chan[TS_STORE_ID_MAX + 1];
    ts_sess__el_chan_of(sc, chan, sizeof chan);
    ts_sess__el_publish(sc->sess, chan,
                        json_pack("{s:s,s:I,s:s,s:I,s:I,s:i,s:I}", "t", "l", "term",
                                  (json_int_t)sc->term, "h", sc->leader, "exp",
                                  (json_int_t)sc->expires_at, "since", (json_int_t)sc->since,
                                  "r", (int)reason, "lz", (json_int_t)leaderless_ms));
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
size_t ts_sess__el_drop_dead(el_scope_t *sc, uint64_t now) {
    size_t w = 0, n = sc->nrm;
    for (size_t i = 0; i < n; i++)
        if (origin_alive(sc->sess, sc->rm[i].origin, now)) sc->rm[w++] = sc->rm[i];
    sc->nrm = w;
    return n - w;
}

static void admin_answer(el_scope_t *sc, json_t *q);
static void admin_take(ts_sess_t *sess, json_t *r);

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
        if (json_is_true(json_object_get(o, "ask"))) ts_sess__el_share(sc, 1, 0);
        /* members came or went: everyone's view; scores only: the views of
         * the tabs that asked for scores (and everyone's if the backup moved) */
        ts_sess__el_evaluate(sc, sc->nrm > n0 ? "join" : sc->nrm < n0 ? "leave" : NULL);
        if (scored && sc->nrm == n0 && !sc->busy) {
            ts_list_t *it;
            TS_LIST_FOREACH(it, &sc->members) {
                el_member_t *m = ts_list_entry(it, el_member_t, link);
                if (m->ss->id.elect_scores) ts_sess__el_send_views(sc, "score", m);
            }
        }
    } else if (strcmp(t, "q") == 0) {
        admin_answer(sc, o);
    } else if (strcmp(t, "t") == 0) {
        ts_sess__el_tasks_take(sc, o);
    } else if (strcmp(t, "tr") == 0) {
        ts_sess__el_tasks_report_take(sc, o);
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
            } else if (ts_sess__el_adopt(sc, &l, why, 1)) {
                if (!h[0]) sc->gone = TS_EL_GONE_NONE;
                ts_sess__el_evaluate(sc, ts_el_reason_name(why));
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
    else if (sc && sc->subscribed) ts_sess__el_share(sc, 1, 1); /* and the others, theirs */
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

/* (before the loop closes: the unsubscriptions end with their callbacks) */
void ts_sess__el_beacon_unsubscribe(ts_sess_t *sess) {
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

void ts_sess__el_scope_subscribe(el_scope_t *sc) {
    ts_sess_t *sess = sc->sess;
    if (sess->closed || !cluster_on(sess)) return;
    beacon_subscribe(sess);
    char chan[TS_STORE_ID_MAX + 1];
    ts_sess__el_chan_of(sc, chan, sizeof chan);
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
void ts_sess__el_scope_unsubscribe(el_scope_t *sc) {
    if (!sc->subscribed) return;
    ts_sess_t *sess = sc->sess;
    ts_sess__el_share(sc, 1, 0);
    sc->subscribed = 0;
    if (sess->closed) return;
    char chan[TS_STORE_ID_MAX + 1];
    ts_sess__el_chan_of(sc, chan, sizeof chan);
    if (ts_store_unsubscribe(sess->store, TS_STORE_CHAN, ts_slice_str(chan), on_el_msg, sess,
                             on_unsubscribed, sess) == 0)
        sess->pending_ops++;
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

static void admin_answer(el_scope_t *sc, json_t *q) {
    const char *os = json_string_value(json_object_get(q, "o"));
    uint64_t origin = os ? strtoull(os, NULL, 16) : 0;
    if (!origin) return;
    char chan[128];
    reply_chan(sc->sess, origin, chan, sizeof chan);
    ts_sess__el_publish(sc->sess, chan,
                        json_pack("{s:s,s:O,s:o}", "t", "r", "id", json_object_get(q, "id"),
                                  "scopes",
                                  ts_sess__el_local_scopes(sc->sess, sc->user, sc->session)));
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
void ts_sess__el_admin_sweep(ts_sess_t *sess, int all) {
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
        q->scopes = ts_sess__el_local_scopes(sess, user, session);
        ts_strlcpy(q->user, user, sizeof q->user);
        ts_strlcpy(q->session, session, sizeof q->session);
        ts_list_insert_tail(&sess->el_queries, &q->link);
        sess->pending_ops++;
        char chan[TS_STORE_ID_MAX + 96];
        const char *parts[] = {"e", user, session};
        char name[TS_STORE_ID_MAX + 1];
        ts_strjoin(name, sizeof name, '/', parts, 3);
        snprintf(chan, sizeof chan, "%s%s", sess->el_scope_pfx, name);
        ts_sess__el_publish(sess, chan, json_pack("{s:s,s:I}", "t", "q", "id", (json_int_t)q->id));
        return 0;
    }
    json_t *o = json_pack("{s:s,s:s,s:o}", "user", user, "session", session, "scopes",
                          ts_sess__el_local_scopes(sess, user, session));
    char *text = json_dumps(o, JSON_COMPACT);
    cb(0, ts_slice_str(text), ud);
    free(text);
    json_decref(o);
    return 0;
}
