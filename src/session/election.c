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
 * through the store's publish/subscribe ("the shared table",
 * election_cluster.c), so every node ranks the whole scope. */
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

#define STORE_RETRY_MS 100 /* a lease call the store failed is made again after this */

#define TASKS_MAX 32                       /* tasks per scope */
#define TASK_STALL_DEFAULT_MS 10000
#define SWEEP_MIN_MS 25

static const char *const task_state_names[] = {"assigned", "running", "done", "failed"};

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
    ts_sess__el_scope_subscribe(sc);
    return sc;
}

static void reports_run(el_scope_t *sc, int final);

static void scope_free_if_idle(el_scope_t *sc) {
    if (sc->n || sc->busy) return;
    ts_sess_t *sess = sc->sess;
    reports_run(sc, 1);
    ts_sess__el_scope_unsubscribe(sc);
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
    const char *t = json_string_value(json_object_get(sess_meta(ss), "type"));
    if (!t) return (ts_sess_device_type_t)ss->id.device_type;
    for (int i = TS_SESS_DEV_BROWSER; i <= TS_SESS_DEV_CLI; i++)
        if (strcmp(t, ts_sess_device_type_name((ts_sess_device_type_t)i)) == 0)
            return (ts_sess_device_type_t)i;
    return TS_SESS_DEV_BROWSER;
}

static void rescore(el_member_t *m, uint64_t now) {
    const sess_sock_t *ss = m->ss;
    json_t *bat = json_object_get(sess_meta(ss), "battery"), *net = json_object_get(sess_meta(ss), "network");
    json_t *lv = json_object_get(bat, "level"), *ch = json_object_get(bat, "charging");
    json_t *rtt = json_object_get(net, "rtt");
    const char *vis = json_string_value(json_object_get(sess_meta(ss), "visibility"));
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

int ts_sess__el_is_candidate(const el_member_t *m, uint64_t now) {
    return !m->observer && m->stalled_until <= now;
}

static int tasks_owned(const el_scope_t *sc);
static int tasks_check(el_scope_t *sc);
static void tasks_changed(el_scope_t *sc, int views);
static void task_reassign(el_scope_t *sc, el_task_t *t, const char *avoid);

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
    el_remote_t *r = ts_sess__el_remote_find(sc, holder);
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
void ts_sess__el_send_views(el_scope_t *sc, const char *reason, el_member_t *only) {
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
int ts_sess__el_adopt(el_scope_t *sc, const ts_store_lease_t *l, ts_el_reason_t reason,
                      int remote) {
    uint64_t wall = ts_wall_ms(), now = uv_now(sc->sess->loop);
    if (l->term < sc->term) return 0;
    char holder[HOLDER_MAX] = "";
    ts_slice_cstr(holder, sizeof holder, l->holder);
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

static void on_lease_op(int status, const ts_store_lease_t *l, void *ud) {
    el_op_t *op = ud;
    el_scope_t *sc = op->sc;
    ts_sess_t *sess = sc->sess;
    sc->busy = 0;
    const char *reason = ts_el_reason_name(op->reason);
    if (status == 0 && l) {
        ts_sess__el_adopt(sc, l, op->reason, 0);
        ts_sess__el_share_lease(sc, op->reason, 0);
        if (!sc->lm && sc->leader[0] && !ts_sess__el_remote_find(sc, sc->leader)) {
            /* the tab it went to left while the store granted it: it goes on */
            sc->gone = TS_EL_GONE_LEFT;
            ts_strlcpy(sc->gone_holder, sc->leader, sizeof sc->gone_holder);
            sc->leaderless_since = ts_wall_ms();
        } else {
            sc->gone = TS_EL_GONE_NONE;
        }
    } else if ((status == TS_EHELD || status == TS_ESTALE) && l) {
        /* another loop or node came first: its grant is the truth */
        ts_sess__el_adopt(sc, l, TS_EL_R_ADOPTED, 0);
        reason = "adopted";
    } else if (status == 0 && op->act == TS_EL_ACT_RELEASE) {
        sc->leader[0] = '\0';
        sc->lm = NULL;
        sc->expires_at = 0;
        if (!sc->leaderless_since) sc->leaderless_since = ts_wall_ms();
    } else if (status) {
        /* the store failed: try again shortly (the breaker shows it) */
        ts_debug("election", "%s: store answered %d; again in 100 ms", sc->name, status);
        sc->retry_at = uv_now(sess->loop) + STORE_RETRY_MS;
    }
    if (!(status == 0 && l)) sc->gone = TS_EL_GONE_NONE;
    free(op);
    sc->again = 0;
    /* once more with the new leader: its backup, its tenure's deadline, and
     * whatever changed while the op ran; then one view each */
    ts_sess__el_evaluate(sc, reason);
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
        ts_sess__el_share_lease(sc, reason, 0);
        return rc;
    }
    if (rc) {
        free(op);
        sc->retry_at = uv_now(sess->loop) + STORE_RETRY_MS;
        sc->wake_at = sc->retry_at;
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
    el_remote_t *r = ts_sess__el_remote_find(sc, sc->leader);
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
        uint32_t f = ts_sess__el_member_flags(m, now);
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
            ts_sess__el_send_views(sc, ts_el_reason_name(d.reason), NULL);
        } else if (why || backup_moved) {
            ts_sess__el_send_views(sc, why ? why : "backup", NULL);
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
            ts_sess__el_share_lease(sc, TS_EL_R_LAPSE, 0);
            ts_sess__el_send_views(sc, "lapse", NULL);
        } else if (!held && sc->leader[0]) { /* led elsewhere, lapsed, nobody here can lead */
            sc->leader[0] = '\0';
            if (!sc->leaderless_since) sc->leaderless_since = wall;
            ts_sess__el_send_views(sc, "lapse", NULL);
        } else if (why || backup_moved) {
            ts_sess__el_send_views(sc, why ? why : "backup", NULL);
        }
        return;
    }
    if (!held && !sc->leaderless_since)
        sc->leaderless_since = sc->leader[0] ? TS_MIN(wall, sc->expires_at) : wall;
    if (d.act != TS_EL_ACT_RELEASE && now < sc->retry_at) {
        /* the store failed a lease call a moment ago: asked again by the
         * sweep, not at once. A store that is down fails a call on its next
         * turn, whose answer re-evaluated at once and asked again: a loop
         * that never let libuv run its timers, so the store never
         * reconnected (js nodes, elections through a Redis restart). */
        if (!sc->wake_at || sc->retry_at < sc->wake_at) sc->wake_at = sc->retry_at;
        if (why) ts_sess__el_send_views(sc, why, NULL);
        return;
    }
    int rc = issue(sc, d.act, d.reason, to);
    if (d.act == TS_EL_ACT_RELEASE)
        ts_sess__el_send_views(sc, ts_el_reason_name(d.reason), NULL);
    else if (rc && why) /* the store refused the call: retried by the sweep */
        ts_sess__el_send_views(sc, why, NULL);
}

/* Decides and acts (evaluate_), then tells the other loops what changed
 * of this loop's members. */
void ts_sess__el_evaluate(el_scope_t *sc, const char *why) {
    if (sc->sess->closed) return;
    /* the task table: a loop that just came to own it (its tab leads now)
     * counts stalls from now and tells the others; the owner reassigns
     * what the change of members calls for */
    int owned = tasks_owned(sc), took = owned && !sc->task_owner;
    sc->task_owner = (uint8_t)owned;
    for (size_t i = 0; took && i < sc->ntasks; i++) sc->tasks[i].last = uv_now(sc->sess->loop);
    int changed = tasks_check(sc);
    if (changed || took) ts_sess__el_tasks_publish(sc);
    evaluate_(sc, why ? why : changed ? "task" : NULL);
    ts_sess__el_share(sc, 0, 0);
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
        ts_sess__el_share_lease(sc, TS_EL_R_LEFT, 0); /* its expiry, as renewed here */
    } else if (sc->lm == m) {
        sc->lm = NULL;
        sc->gone = TS_EL_GONE_LEFT;
        ts_strlcpy(sc->gone_holder, m->holder, sizeof sc->gone_holder);
        sc->leaderless_since = ts_wall_ms();
    }
    free(m);
    ts_sess__el_evaluate(sc, "leave");
    scope_free_if_idle(sc);
}

void ts_sess__el_connected(sess_sock_t *ss) {
    if (ss->id.proto < TS_SESS_PROTO_ELECT || !ss->id.elect_scopes) return;
    for (int k = 0; k < TS_SESS_SCOPE_KINDS_; k++)
        if (ss->id.elect_scopes & (1u << k)) {
            el_member_t *m = join(ss, (ts_sess_scope_kind_t)k);
            ts_sess__el_evaluate(m->sc, "join");
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
        ts_sess__el_evaluate(m->sc, NULL);
        /* tabs that asked for scores see them move */
        if (!m->sc->busy && m->score.total != before) {
            ts_list_t *it;
            TS_LIST_FOREACH(it, &m->sc->members) {
                el_member_t *o = ts_list_entry(it, el_member_t, link);
                if (o->ss->id.elect_scores) ts_sess__el_send_views(m->sc, "score", o);
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
        ts_sess__el_publish(sess, sess->el_beacon, json_pack("{s:s}", "t", "a"));
    }
    ts_sess__el_admin_sweep(sess, 0);
    ts_list_t *it, *tmp;
    TS_LIST_FOREACH_SAFE(it, tmp, &sess->el_list) {
        el_scope_t *sc = ts_list_entry(it, el_scope_t, link);
        if (sc->busy) continue;
        if (sc->nrm && ts_sess__el_drop_dead(sc, now))
            ts_sess__el_evaluate(sc, "leave"); /* a loop or node went */
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
            ts_sess__el_evaluate(sc, NULL);
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
    el_remote_t *r = ts_sess__el_remote_find(sc, holder);
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
void ts_sess__el_tasks_publish(el_scope_t *sc) {
    if (!sc->subscribed || !sc->lm || sc->sess->closed) return;
    json_t *a = json_array();
    for (size_t i = 0; i < sc->ntasks; i++) {
        const el_task_t *t = &sc->tasks[i];
        json_array_append_new(a, json_pack("[s,s,i,i,I,I,i]", t->name, t->to, (int)t->state,
                                           (int)t->pct, (json_int_t)t->term,
                                           (json_int_t)t->stall_ms, (int)t->reassigned));
    }
    char chan[TS_STORE_ID_MAX + 1];
    ts_sess__el_chan_of(sc, chan, sizeof chan);
    ts_sess__el_publish(sc->sess, chan,
                        json_pack("{s:s,s:I,s:o}", "t", "t", "term", (json_int_t)sc->term, "k", a));
}

/* The table changed here: the others first (a tab told of its task by
 * this loop's view may report at once through another node), then every
 * member's view here (views = 0: the caller sends them). */
static void tasks_changed(el_scope_t *sc, int views) {
    ts_sess__el_tasks_publish(sc);
    if (views) ts_sess__el_send_views(sc, "task", NULL);
}

/* The owner's table, from the channel: replaces this loop's copy. */
void ts_sess__el_tasks_take(el_scope_t *sc, json_t *o) {
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
    if (!json_equal(before, after)) ts_sess__el_send_views(sc, "task", NULL);
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
void ts_sess__el_tasks_report_take(el_scope_t *sc, json_t *o) {
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
        ts_sess__el_chan_of(sc, chan, sizeof chan);
        json_t *fwd = json_pack("{s:s,s:s,s:s,s:i}", "t", "tr", "n", r->name, "h", m->holder, "op",
                                (int)r->op);
        if (r->pct >= 0) json_object_set_new(fwd, "pct", json_integer(r->pct));
        ts_sess__el_publish(sc->sess, chan, fwd);
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
        ts_sess__el_evaluate(m->sc, "join");
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
        if (__builtin_popcount(m->late) >= 2)
            ts_sess__el_evaluate(sc, NULL); /* heartbeats slowed: demotion */
    } else if (m) {
        el_scope_t *sc = m->sc;
        SESS_COUNT(sess->counters[SC_EL_STALE]);
        /* news only if this loop had not seen that grant yet (its own
         * transfer that overtook this heartbeat has been taken already) */
        int adopted = status == TS_ESTALE && l && l->term >= sc->term && !sc->busy &&
                      ts_sess__el_adopt(sc, l, TS_EL_R_ADOPTED, 0);
        ts_sess__reply(ss->s, r->ack_id,
                       stale_reply(sc, "the lease of this term is gone; stop acting as leader"));
        if (adopted)
            ts_sess__el_evaluate(sc, "adopted"); /* everyone learns the store's leader */
        else
            ts_sess__el_send_views(sc, "stale", m);
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
        ts_sess__el_send_views(sc, "stale", m);
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
    ts_sess__el_evaluate(sc, NULL);
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
        ts_slice_cstr(holder, sizeof holder, l->holder);
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

json_t *ts_sess__el_local_scopes(ts_sess_t *sess, const char *user, const char *session) {
    json_t *scopes = json_array();
    ts_list_t *it;
    TS_LIST_FOREACH(it, &sess->el_list) {
        el_scope_t *sc = ts_list_entry(it, el_scope_t, link);
        if (strcmp(sc->user, user) == 0 && strcmp(sc->session, session) == 0)
            json_array_append_new(scopes, scope_admin(sc));
    }
    return scopes;
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
        ts_sess__el_scope_unsubscribe(sc);
        scope_free_if_idle(sc);
    }
    ts_sess__el_admin_sweep(sess, 1);
    ts_sess__el_beacon_unsubscribe(sess);
}

void ts_sess__el_deinit(ts_sess_t *sess) {
    ts_sess__el_drop_all(sess); /* nothing is in flight any more */
    ts_map_deinit(&sess->el_scopes);
}
