/* elect.c - libtabsync's side of leader election (/session protocol 4,
 * docs/ELECTION.md): views parsed into structs, the leader's own
 * heartbeats, and the local deadline that decides ts_client_is_leader.
 * The deadline runs on uv_hrtime (monotonic, read at each question, not
 * the loop's cached time) from the moment a heartbeat was *sent*, so it
 * always ends before the server's lease, which runs from its receipt.
 * One timer (c->t_elect) sends heartbeats and reports changes of
 * leadership, so reports never come from inside a call of the API. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

#define NSCOPES 2
#define DRIFT_PPM 10000       /* rho: 1 % of the lease */
#define MARGIN_NS 50000000ull /* delta: 50 ms */
#define MS 1000000ull         /* ns per ms */

typedef struct el_scope {
    ts_client_role_t role; /* by the last view */
    int64_t view_term;
    int64_t lead_term;     /* the term this tab heartbeats for; 0: none */
    int64_t dead_term;     /* terms up to this one never lead again here */
    uint64_t deadline;     /* uv_hrtime ns: may act as leader before it; 0: may not */
    uint64_t next_hb;      /* uv_hrtime ns of the next heartbeat; 0: none due */
    uint64_t rtt;          /* ns, the last measured heartbeat round trip */
    unsigned lease_ms, hb_ms;
    int reported;          /* what on_leadership last said */
    int64_t reported_term;
    const char *why_lost;  /* static string: why leadership ended */
    const char *why_won;   /* static string: "elected" or "renewed" */
    int left;              /* a leave was sent: views of this scope still on
                            * their way (sent before the server read it) are
                            * stale and ignored until a join */
} el_scope_t;

struct ts_client__elect {
    el_scope_t sc[NSCOPES];
    int hold; /* ts_client_debug_hold_heartbeats */
    void (*on_elect)(ts_client_t *c, const ts_client_elect_view_t *v, void *user);
    void (*on_leadership)(ts_client_t *c, int scope, int64_t term, int leading,
                          const char *reason, void *user);
};

typedef struct ts_client__elect ts_client__elect_t;

static const char *const scope_names[NSCOPES] = {"session", "device"};

/* Index of a ts_client_elect_scope_t, or -1. */
static int scope_idx(int scope) {
    return scope == TS_CLIENT_ELECT_SESSION ? 0 : scope == TS_CLIENT_ELECT_DEVICE ? 1 : -1;
}

static int scope_of_name(const char *s) {
    for (int i = 0; s && i < NSCOPES; i++)
        if (strcmp(s, scope_names[i]) == 0) return i;
    return -1;
}

static ts_client_role_t role_of_name(const char *s) {
    static const char *const names[] = {"", "leader", "backup", "follower", "observer"};
    for (int i = 1; s && i < 5; i++)
        if (strcmp(s, names[i]) == 0) return (ts_client_role_t)i;
    return TS_CLIENT_ROLE_NONE;
}

static const char *str_member(json_t *o, const char *key) {
    return json_string_value(json_object_get(o, key));
}

static int64_t int_member(json_t *o, const char *key, int64_t dflt) {
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

ts_client__elect_t *ts_client__elect_new(const ts_client_session_opts_t *o) {
    ts_client__elect_t *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->on_elect = o->scb.on_elect;
    e->on_leadership = o->scb.on_leadership;
    return e;
}

void ts_client__elect_free(ts_client__elect_t *e) { free(e); }

/* ---- leadership ---- */

static int leading_now(const ts_client_t *c, const el_scope_t *s, uint64_t now) {
    return s->lead_term > 0 && c->state == TS_CLIENT_CONNECTED && s->deadline > now;
}

/* Gives up the term being led; why: a static string. */
static void drop_lead(el_scope_t *s, const char *why) {
    if (!s->lead_term) return;
    if (s->lead_term > s->dead_term) s->dead_term = s->lead_term;
    s->lead_term = 0;
    s->deadline = 0;
    s->next_hb = 0;
    s->why_lost = why;
}

static void on_tick(uv_timer_t *h);

/* Schedules el_run from the loop (for changes made inside API calls). */
static void kick(ts_client_t *c) {
    if (c->state != TS_CLIENT_CLOSING) uv_timer_start(&c->t_elect, on_tick, 0, 0);
}

static void on_hb_ack(ts_client_t *c, int status, const ts_client_event_t *reply, void *ud);

typedef struct hb_req {
    int idx;
    int64_t term;
    uint64_t t_sent; /* uv_hrtime ns */
} hb_req_t;

static void send_hb(ts_client_t *c, int idx, uint64_t now) {
    el_scope_t *s = &c->el->sc[idx];
    s->next_hb = now + (uint64_t)(s->hb_ms ? s->hb_ms : 1000) * MS;
    hb_req_t *r = malloc(sizeof *r);
    json_t *args = json_pack("[{s:s,s:I}]", "scope", scope_names[idx], "term",
                             (json_int_t)s->lead_term);
    int rc = r && args ? 0 : TS_ENOMEM;
    if (rc == 0) {
        *r = (hb_req_t){idx, s->lead_term, now};
        /* an answer after the lease is of no use */
        rc = ts_client__emit_json(c, "hb", args, on_hb_ack, r, s->lease_ms ? s->lease_ms : 3000);
    }
    json_decref(args);
    if (rc < 0) free(r); /* the deadline decides; the next beat tries again */
}

/* Reports what changed, sends the heartbeats that are due, and arms the
 * timer for the next of them or the next deadline. */
static void el_run(ts_client_t *c) {
    ts_client__elect_t *e = c->el;
    void *u = c->opts.user;
    for (int i = 0; i < NSCOPES; i++) {
        if (c->state == TS_CLIENT_CLOSING) return;
        el_scope_t *s = &e->sc[i];
        int lead = leading_now(c, s, uv_hrtime());
        if (s->reported && (!lead || s->reported_term != s->lead_term)) {
            const char *why = s->why_lost ? s->why_lost : "deadline";
            s->reported = 0;
            s->why_lost = NULL;
            if (e->on_leadership) e->on_leadership(c, i + 1, s->reported_term, 0, why, u);
            if (c->state == TS_CLIENT_CLOSING) return;
            lead = leading_now(c, s, uv_hrtime()); /* the callback may have resigned */
        }
        if (!s->reported && lead) {
            const char *why = s->why_won ? s->why_won : "elected";
            s->reported = 1;
            s->reported_term = s->lead_term;
            s->why_won = s->why_lost = NULL;
            if (e->on_leadership) e->on_leadership(c, i + 1, s->reported_term, 1, why, u);
        }
    }
    if (c->state == TS_CLIENT_CLOSING) return;
    uint64_t now = uv_hrtime(), wake = 0;
    for (int i = 0; i < NSCOPES; i++) {
        el_scope_t *s = &e->sc[i];
        if (!s->lead_term) continue;
        if (!e->hold && c->state == TS_CLIENT_CONNECTED && s->next_hb) {
            if (s->next_hb <= now) send_hb(c, i, now);
            if (!wake || s->next_hb < wake) wake = s->next_hb;
        }
        if (s->reported && s->deadline && (!wake || s->deadline < wake)) wake = s->deadline;
    }
    if (wake) {
        uint64_t ms = wake > now ? (wake - now + MS - 1) / MS : 0;
        uv_timer_start(&c->t_elect, on_tick, ms, 0);
    }
}

static void on_tick(uv_timer_t *h) { el_run(h->data); }

/* The deadline a heartbeat sent at t_sent buys: t_sent + lease (1 - rho) - delta. */
static uint64_t deadline_of(uint64_t t_sent, unsigned lease_ms) {
    uint64_t lease = (uint64_t)lease_ms * MS;
    uint64_t d = t_sent + lease - lease / 1000000 * DRIFT_PPM;
    return d > MARGIN_NS ? d - MARGIN_NS : 0;
}

/* A `stale_term` refusal in an answer: an object, or an array of them. */
static int is_stale(json_t *a) {
    if (json_is_array(a)) {
        size_t i;
        json_t *x;
        json_array_foreach(a, i, x) if (is_stale(x)) return 1;
        return 0;
    }
    const char *code = str_member(json_object_get(a, "error"), "code");
    return code && strcmp(code, "stale_term") == 0;
}

/* Asked to step down (a view's step_down, or a heartbeat refused with
 * step_down): stop acting, then resign, so that the next leader takes over
 * in one round trip instead of at the end of the lease. */
static void step_down(ts_client_t *c, int idx, const char *why) {
    el_scope_t *s = &c->el->sc[idx];
    if (!s->lead_term) return;
    json_t *arg = json_pack("{s:s,s:I}", "scope", scope_names[idx], "term", (json_int_t)s->lead_term);
    drop_lead(s, why);
    kick(c);
    if (arg) ts_client__sess_send(c, "resign", arg, NULL, NULL, NULL, NULL);
}

static int is_step_down(json_t *a) {
    const char *code = str_member(json_object_get(a, "error"), "code");
    return code && strcmp(code, "step_down") == 0;
}

static void on_hb_ack(ts_client_t *c, int status, const ts_client_event_t *reply, void *ud) {
    hb_req_t *r = ud;
    uint64_t now = uv_hrtime();
    el_scope_t *s = &c->el->sc[r->idx];
    json_t *args = NULL;
    if (status == 0 && c->state != TS_CLIENT_CLOSING && r->term == s->lead_term) {
        json_error_t je;
        args = json_loads(reply->args_json, 0, &je);
        json_t *o = json_array_get(args, 0);
        if (json_is_true(json_object_get(o, "ok")) && int_member(o, "term", 0) == r->term) {
            unsigned lease = (unsigned)int_member(o, "lease_ms", s->lease_ms);
            if (lease) s->lease_ms = lease;
            uint64_t d = deadline_of(r->t_sent, s->lease_ms);
            if (d > s->deadline) {
                /* "elected" until the first answer starts the lead; later
                 * (after a deadline passed) it is "renewed" */
                if (!s->reported && d > now && s->deadline) s->why_won = "renewed";
                s->deadline = d;
            }
            s->rtt = now - r->t_sent;
        } else if (is_stale(o)) {
            drop_lead(s, "stale_term"); /* at once: the lease of this term is gone */
        } else if (is_step_down(o)) {
            step_down(c, r->idx, "step_down");
        }
        el_run(c);
    }
    json_decref(args);
    free(r);
}

void ts_client__elect_conn_lost(ts_client_t *c) {
    int any = 0;
    for (int i = 0; i < NSCOPES; i++) {
        el_scope_t *s = &c->el->sc[i];
        if (!s->lead_term) continue;
        /* the term stays ours to confirm: a reconnection may find it held */
        s->deadline = 0;
        s->why_lost = "disconnected";
        any = 1;
    }
    if (any) kick(c);
}

/* ---- views ---- */

static void fill_member(ts_client_elect_member_t *m, json_t *o) {
    m->device = str_member(o, "device");
    m->tab = str_member(o, "tab");
    m->role = role_of_name(str_member(o, "role"));
    m->score = (int)int_member(o, "score", -1);
}

/* Calls on_elect with v filled from o. Returns 0 or TS_ENOMEM. */
static int deliver(ts_client_t *c, json_t *o, int idx, ts_client_role_t role) {
    json_t *jm = json_object_get(o, "members"), *jt = json_object_get(o, "tasks");
    size_t nm = json_array_size(jm), nt = json_array_size(jt);
    ts_client_elect_member_t *ms = calloc(nm + 2, sizeof *ms); /* + leader, backup */
    ts_client_elect_task_t *ts = calloc(nt ? nt : 1, sizeof *ts);
    json_t *wrap = json_pack("[O]", o);
    char *text = wrap ? ts_client__json_text(wrap, 0, NULL) : NULL;
    json_decref(wrap);
    if (!ms || !ts || !text) {
        free(ms);
        free(ts);
        free(text);
        return TS_ENOMEM;
    }
    size_t k = strlen(text); /* "[x]" -> "x" */
    memmove(text, text + 1, k - 2);
    text[k - 2] = '\0';
    for (size_t i = 0; i < nm; i++) fill_member(&ms[i], json_array_get(jm, i));
    for (size_t i = 0; i < nt; i++) {
        json_t *t = json_array_get(jt, i), *to = json_object_get(t, "assignee");
        ts[i] = (ts_client_elect_task_t){
            .name = str_member(t, "name"),
            .assignee_device = str_member(to, "device"),
            .assignee_tab = str_member(to, "tab"),
            .state = str_member(t, "state"),
            .pct = (int)int_member(t, "pct", 0),
            .term = int_member(t, "term", 0),
            .by = str_member(t, "by"),
        };
    }
    json_t *jl = json_object_get(o, "leader"), *jb = json_object_get(o, "backup");
    ts_client_elect_member_t *lm = &ms[nm], *bm = &ms[nm + 1];
    fill_member(lm, jl);
    fill_member(bm, jb);
    ts_client_elect_view_t v = {
        .scope = (ts_client_elect_scope_t)(idx + 1),
        .term = int_member(o, "term", 0),
        .leader = json_is_object(jl) ? lm : NULL,
        .backup = json_is_object(jb) ? bm : NULL,
        .role = role,
        .reason = str_member(o, "reason"),
        .lease_ms = (unsigned)int_member(o, "lease_ms", 0),
        .hb_ms = (unsigned)int_member(o, "hb_ms", 0),
        .since = int_member(o, "since", 0),
        .grant = str_member(o, "grant"),
        .members = ms,
        .nmembers = nm,
        .tasks = ts,
        .ntasks = nt,
        .json = text,
    };
    c->el->on_elect(c, &v, c->opts.user);
    free(ms);
    free(ts);
    free(text);
    return 0;
}

int ts_client__elect_view(ts_client_t *c, json_t *o) {
    ts_client__elect_t *e = c->el;
    int idx = scope_of_name(str_member(o, "scope"));
    if (!e || idx < 0) return 0;
    el_scope_t *s = &e->sc[idx];
    if (s->left) return 0;
    uint64_t now = uv_hrtime();
    ts_client_role_t role = role_of_name(str_member(o, "role"));
    int64_t term = int_member(o, "term", 0);
    unsigned lease = (unsigned)int_member(o, "lease_ms", 0);
    unsigned hb = (unsigned)int_member(o, "hb_ms", 0);
    if (lease) s->lease_ms = lease;
    if (hb) s->hb_ms = hb;
    s->role = role;
    s->view_term = term;
    if (role == TS_CLIENT_ROLE_LEADER && term > s->dead_term) {
        if (term != s->lead_term) {
            drop_lead(s, "new_term"); /* an older term of ours ends here */
            s->lead_term = term;
            /* Not leading yet: when the lease started is unknown here (the
             * view may have been delayed longer than a round trip), so this
             * tab leads from its first heartbeat's answer on, counted from
             * when it sent it (the model found counting back from the view
             * unsafe: docs/ELECTION-MODEL.md). */
            s->deadline = 0;
            s->why_won = "elected";
            s->next_hb = now; /* at once */
        } else if (s->deadline <= now && (!s->next_hb || s->next_hb > now)) {
            s->next_hb = now; /* confirmed again (a reconnection): renew to lead */
        }
    } else if (s->lead_term) {
        const char *why = str_member(o, "reason");
        static const char *const known[] = {"handoff", "lapse",  "left",    "preempt",
                                            "rotation", "demotion", "stale", "elected",
                                            "adopted", "leave",  "join"};
        const char *st = "view";
        for (size_t i = 0; why && i < sizeof known / sizeof *known; i++)
            if (strcmp(why, known[i]) == 0) st = known[i];
        drop_lead(s, st);
    }
    if (role == TS_CLIENT_ROLE_LEADER && term == s->lead_term &&
        json_is_true(json_object_get(o, "step_down")))
        step_down(c, idx, "step_down"); /* a static string: reports keep it */
    el_run(c);
    if (c->state == TS_CLIENT_CLOSING) return 1; /* a report closed the client */
    if (!e->on_elect) return 0;
    return deliver(c, o, idx, role) < 0 ? TS_ENOMEM : 1;
}

/* ---- the API ---- */

static int check(ts_client_t *c, int scope) {
    if (!c->el || scope_idx(scope) < 0) return TS_EINVAL;
    if (c->state == TS_CLIENT_CLOSING) return TS_ECLOSED;
    return 0;
}

TS_CLIENT_API int ts_client_is_leader(ts_client_t *c, ts_client_elect_scope_t scope,
                                      int64_t *term) {
    int idx = scope_idx(scope);
    int lead = c->el && idx >= 0 && leading_now(c, &c->el->sc[idx], uv_hrtime());
    if (term) *term = lead ? c->el->sc[idx].lead_term : 0;
    return lead;
}

TS_CLIENT_API int64_t ts_client_lead_ms_left(ts_client_t *c, ts_client_elect_scope_t scope) {
    int idx = scope_idx(scope);
    uint64_t now = uv_hrtime();
    if (!c->el || idx < 0 || !leading_now(c, &c->el->sc[idx], now)) return 0;
    return (int64_t)((c->el->sc[idx].deadline - now) / MS);
}

TS_CLIENT_API ts_client_role_t ts_client_elect_role(const ts_client_t *c,
                                                    ts_client_elect_scope_t scope) {
    int idx = scope_idx(scope);
    return c->el && idx >= 0 ? c->el->sc[idx].role : TS_CLIENT_ROLE_NONE;
}

TS_CLIENT_API int ts_client_resign(ts_client_t *c, ts_client_elect_scope_t scope,
                                   ts_client_result_cb cb, void *ud) {
    int rc = check(c, scope);
    if (rc < 0) return rc;
    el_scope_t *s = &c->el->sc[scope_idx(scope)];
    if (!s->lead_term) return TS_ESTATE;
    json_t *arg = json_pack("{s:s,s:I}", "scope", scope_names[scope_idx(scope)], "term",
                            (json_int_t)s->lead_term);
    if (!arg) return TS_ENOMEM;
    /* stop acting first: from here on this tab is not leader, whatever comes */
    drop_lead(s, "resigned");
    kick(c);
    return ts_client__sess_send(c, "resign", arg, NULL, NULL, cb, ud);
}

/* What an `elect` request changes in the auth object once accepted. */
typedef struct elect_req {
    unsigned join, leave;
    int observer, scores;
} elect_req_t;

static void on_elect_answer(ts_client_t *c, int status, json_t *answer, void *hook_ud) {
    elect_req_t *q = hook_ud;
    if (status < 0 || !json_is_true(json_object_get(answer, "ok"))) {
        /* refused or lost: the server still counts this tab in those scopes */
        for (int k = 0; c->el && k < NSCOPES; k++)
            if (q->leave & (1u << k)) c->el->sc[k].left = 0;
        return;
    }
    if (!c->auth) return;
    json_t *el = json_object_get(c->auth, "elect");
    if (!json_is_object(el)) {
        el = json_pack("{s:[],s:b,s:b}", "scopes", "observer", 0, "scores", 0);
        if (!el || json_object_set_new(c->auth, "elect", el) < 0) return;
    }
    unsigned mask = 0;
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(el, "scopes"), i, x) {
        int k = scope_of_name(json_string_value(x));
        if (k >= 0) mask |= 1u << k;
    }
    mask = (mask | q->join) & ~q->leave;
    json_t *scopes = json_array();
    for (int k = 0; scopes && k < NSCOPES; k++)
        if (mask & (1u << k)) json_array_append_new(scopes, json_string(scope_names[k]));
    if (scopes) json_object_set_new(el, "scopes", scopes);
    if (q->observer >= 0) json_object_set_new(el, "observer", json_boolean(q->observer));
    if (q->scores >= 0) json_object_set_new(el, "scores", json_boolean(q->scores));
}

TS_CLIENT_API int ts_client_elect(ts_client_t *c, unsigned join, unsigned leave, int observer,
                                  int scores, ts_client_result_cb cb, void *ud) {
    const unsigned all = TS_CLIENT_ELECT_SESSION | TS_CLIENT_ELECT_DEVICE;
    if (!c->el || (join & ~all) || (leave & ~all) || (join & leave) || observer < -1 ||
        observer > 1 || scores < -1 || scores > 1)
        return TS_EINVAL;
    if (c->state == TS_CLIENT_CLOSING) return TS_ECLOSED;
    if (int_member(c->auth, "proto", 0) < 4) return TS_ESTATE;
    json_t *arg = json_object(), *j = json_array(), *l = json_array();
    elect_req_t *q = malloc(sizeof *q);
    int bad = !arg || !j || !l || !q;
    for (int k = 0; !bad && k < NSCOPES; k++) {
        if (join & (1u << k)) bad |= json_array_append_new(j, json_string(scope_names[k])) < 0;
        if (leave & (1u << k)) bad |= json_array_append_new(l, json_string(scope_names[k])) < 0;
    }
    if (!bad && join) bad = json_object_set(arg, "join", j) < 0;
    if (!bad && leave) bad = json_object_set(arg, "leave", l) < 0;
    if (!bad && observer >= 0) bad = json_object_set_new(arg, "observer", json_boolean(observer));
    if (!bad && scores >= 0) bad = json_object_set_new(arg, "scores", json_boolean(scores));
    json_decref(j);
    json_decref(l);
    if (bad) {
        json_decref(arg);
        free(q);
        return TS_ENOMEM;
    }
    /* a scope's flag is 1 << its index: masks are index bits */
    *q = (elect_req_t){join, leave, observer, scores};
    int left = 0;
    for (int k = 0; k < NSCOPES; k++)
        if (q->leave & (1u << k)) {
            if (c->el->sc[k].lead_term) left = 1;
            drop_lead(&c->el->sc[k], "left");
            c->el->sc[k].role = TS_CLIENT_ROLE_NONE;
            c->el->sc[k].left = 1;
        } else if (q->join & (1u << k)) {
            c->el->sc[k].left = 0;
        }
    if (left) kick(c);
    return ts_client__sess_send(c, "elect", arg, on_elect_answer, q, cb, ud);
}

static const char *const task_ops[] = {"progress", "done", "fail"};

TS_CLIENT_API int ts_client_task_report(ts_client_t *c, ts_client_elect_scope_t scope,
                                        const char *name, ts_client_task_op_t op, int pct,
                                        const char *note_json, ts_client_result_cb cb, void *ud) {
    int rc = check(c, scope);
    if (rc < 0) return rc;
    if (!name || !*name || (unsigned)op > TS_CLIENT_TASK_FAIL || pct < -1 || pct > 100)
        return TS_EINVAL;
    json_t *note = NULL;
    if (note_json && op != TS_CLIENT_TASK_PROGRESS) {
        json_error_t je;
        if (!(note = json_loads(note_json, JSON_DECODE_ANY, &je))) return TS_EINVAL;
    }
    json_t *arg = json_pack("{s:s,s:s,s:s}", "op", task_ops[op], "scope",
                            scope_names[scope_idx(scope)], "name", name);
    if (!arg) { /* name not UTF-8, or out of memory */
        json_decref(note);
        return TS_EINVAL;
    }
    int bad = 0;
    if (op == TS_CLIENT_TASK_PROGRESS && pct >= 0)
        bad = json_object_set_new(arg, "pct", json_integer(pct)) < 0;
    if (note) bad |= json_object_set_new(arg, op == TS_CLIENT_TASK_DONE ? "result" : "reason",
                                         note) < 0;
    if (bad) {
        json_decref(arg);
        return TS_ENOMEM;
    }
    return ts_client__sess_send(c, "task", arg, NULL, NULL, cb, ud);
}

TS_CLIENT_API int ts_client_task_declare(ts_client_t *c, ts_client_elect_scope_t scope,
                                         const char *name, int declare, const char *to_device,
                                         const char *to_tab, unsigned stall_ms,
                                         ts_client_result_cb cb, void *ud) {
    int rc = check(c, scope);
    if (rc < 0) return rc;
    if (!name || !*name || (!to_device != !to_tab)) return TS_EINVAL;
    int64_t term;
    if (!ts_client_is_leader(c, scope, &term)) return TS_ESTATE;
    json_t *arg = json_pack("{s:s,s:s,s:s,s:I}", "op", declare ? "declare" : "cancel", "scope",
                            scope_names[scope_idx(scope)], "name", name, "term", (json_int_t)term);
    if (!arg) return TS_EINVAL;
    int bad = 0;
    if (declare && to_device) {
        json_t *to = json_pack("{s:s,s:s}", "device", to_device, "tab", to_tab);
        if (!to) {
            json_decref(arg);
            return TS_EINVAL;
        }
        bad = json_object_set_new(arg, "to", to) < 0;
    }
    if (declare && stall_ms)
        bad |= json_object_set_new(arg, "stall_ms", json_integer(stall_ms)) < 0;
    if (bad) {
        json_decref(arg);
        return TS_ENOMEM;
    }
    return ts_client__sess_send(c, "task", arg, NULL, NULL, cb, ud);
}

/* ---- fenced state changes ---- */

/* Adds lead to the change(s) of `v` (a change object or an array of them).
 * Returns 0, TS_EINVAL or TS_ENOMEM. */
static int attach(json_t *v, int idx, int64_t term) {
    if (json_is_array(v)) {
        if (!json_array_size(v)) return TS_EINVAL;
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) {
            if (!json_is_object(x)) return TS_EINVAL;
            int rc = attach(x, idx, term);
            if (rc < 0) return rc;
        }
        return 0;
    }
    if (!json_is_object(v)) return TS_EINVAL;
    json_t *lead = json_pack("{s:s,s:I}", "scope", scope_names[idx], "term", (json_int_t)term);
    return lead && json_object_set_new(v, "lead", lead) == 0 ? 0 : TS_ENOMEM;
}

/* Parses change_json and attaches lead. Returns new, or NULL with *rc. */
static json_t *fenced(const char *change_json, int scope, int64_t term, int *rc) {
    int idx = scope_idx(scope);
    *rc = TS_EINVAL;
    if (!change_json || idx < 0 || term < 1) return NULL;
    json_error_t je;
    json_t *v = json_loads(change_json, 0, &je);
    if (!v) return NULL;
    if ((*rc = attach(v, idx, term)) < 0) {
        json_decref(v);
        return NULL;
    }
    return v;
}

TS_CLIENT_API int ts_client_lead_attach(const char *change_json, ts_client_elect_scope_t scope,
                                        int64_t term, char **out) {
    *out = NULL;
    int rc;
    json_t *v = fenced(change_json, scope, term, &rc);
    if (!v) return rc;
    json_t *wrap = json_pack("[o]", v);
    char *text = wrap ? ts_client__json_text(wrap, 0, NULL) : NULL;
    json_decref(wrap);
    if (!text) return TS_ENOMEM;
    size_t k = strlen(text); /* "[x]" -> "x" */
    memmove(text, text + 1, k - 2);
    text[k - 2] = '\0';
    *out = text;
    return 0;
}

typedef struct state_req {
    ts_client_ack_cb cb;
    void *ud;
    int idx;
    int64_t term;
} state_req_t;

static void on_state_ack(ts_client_t *c, int status, const ts_client_event_t *reply, void *ud) {
    state_req_t *q = ud;
    if (status == 0 && c->state != TS_CLIENT_CLOSING) {
        el_scope_t *s = &c->el->sc[q->idx];
        json_error_t je;
        json_t *args = json_loads(reply->args_json, 0, &je);
        if (s->lead_term == q->term && is_stale(json_array_get(args, 0))) {
            drop_lead(s, "stale_term");
            el_run(c);
        }
        json_decref(args);
    }
    q->cb(c, status, reply, q->ud);
    free(q);
}

TS_CLIENT_API int ts_client_state_lead(ts_client_t *c, ts_client_elect_scope_t scope,
                                       const char *change_json, ts_client_ack_cb cb, void *ud,
                                       unsigned timeout_ms) {
    int rc = check(c, scope);
    if (rc < 0) return rc;
    if (!cb) return TS_EINVAL;
    int64_t term;
    if (!ts_client_is_leader(c, scope, &term)) return TS_ESTATE;
    json_t *v = fenced(change_json, scope, term, &rc);
    if (!v) return rc;
    json_t *args = json_pack("[o]", v);
    state_req_t *q = malloc(sizeof *q);
    if (!args || !q) {
        json_decref(args);
        free(q);
        return TS_ENOMEM;
    }
    *q = (state_req_t){cb, ud, scope_idx(scope), term};
    rc = ts_client__emit_json(c, "state", args, on_state_ack, q, timeout_ms);
    json_decref(args);
    if (rc < 0) free(q);
    return rc;
}

TS_CLIENT_API int ts_client_debug_hold_heartbeats(ts_client_t *c, int hold) {
    if (!c->el) return TS_EINVAL;
    c->el->hold = hold != 0;
    if (!hold)
        for (int i = 0; i < NSCOPES; i++)
            if (c->el->sc[i].lead_term) c->el->sc[i].next_hb = uv_hrtime();
    kick(c);
    return 0;
}
