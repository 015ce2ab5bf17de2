/* ts_sess_elect.h - the rules of leader election without any I/O: the
 * capability score of a tab and what a scope should do next (acquire,
 * transfer, release, nothing). election.c feeds them what it measured and
 * carries out the answer against the store; tests/session/test_elect.c
 * checks them row by row. docs/ELECTION.md "Server-side rules" is the
 * prose of the same rules. */
#ifndef TS_SESS_ELECT_H
#define TS_SESS_ELECT_H
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "session/ts_sess_connect.h"  /* ts_sess_device_type_t, ts_sess_scope_kind_t */
#include "session/ts_sess_envelope.h" /* TS_SESS_MAX_NAME */

/* ---- the capability score ---- */

typedef enum ts_el_part {
    TS_EL_BATTERY = 0,
    TS_EL_CONNECTION,
    TS_EL_DEVICE,
    TS_EL_VISIBILITY,
    TS_EL_UPTIME,
    TS_EL_PARTS_
} ts_el_part_t;

/* "battery", "connection", ...; NULL outside the enum. */
const char *ts_el_part_name(ts_el_part_t p);

#define TS_EL_SCORE_MAX 1000
#define TS_EL_WEIGHT_MAX 1000
#define TS_EL_UPTIME_FULL_MS 300000 /* uptime counts fully after five minutes */
#define TS_EL_LATE_WINDOW 10        /* heartbeats whose lateness counts */

typedef struct ts_el_weights {
    uint32_t w[TS_EL_PARTS_];
} ts_el_weights_t;

/* battery 20, connection 30, device 15, visibility 25, uptime 10. */
extern const ts_el_weights_t ts_el_default_weights;

/* Parses "battery=20,connection=30,..." (any subset; the others keep the
 * defaults). Returns 0, or TS_EPROTO with a one-line reason in why. */
int ts_el_weights_parse(const char *spec, ts_el_weights_t *out, char *why, size_t whylen);

/* What the server knows of a tab. Unknown values are negative. */
typedef struct ts_el_inputs {
    double battery_level;      /* 0..1; < 0 unknown */
    int charging;              /* 1, 0; < 0 unknown */
    int rtt_ms;                /* server-measured heartbeat round trip; < 0 unknown */
    int net_rtt_ms;            /* the tab's network.rtt report; < 0 unknown */
    const char *effective_type; /* the tab's network.effectiveType; NULL unknown */
    ts_sess_device_type_t type;
    int visible;               /* 1 visible, 0 hidden; < 0 unknown */
    uint64_t uptime_ms;        /* connected for */
    unsigned late_hb;          /* late leader heartbeats of the last TS_EL_LATE_WINDOW */
} ts_el_inputs_t;

typedef struct ts_el_score {
    uint32_t total;                 /* 0..TS_EL_SCORE_MAX */
    uint16_t part[TS_EL_PARTS_];    /* each fᵢ × 1000 */
} ts_el_score_t;

void ts_el_score(const ts_el_inputs_t *in, const ts_el_weights_t *w, ts_el_score_t *out);

/* ---- what a scope does next ---- */

typedef enum ts_el_reason {
    TS_EL_R_ELECTED = 0, /* nobody held the lease: the best candidate acquires it */
    TS_EL_R_HANDOFF,     /* the leader resigned: the backup takes over */
    TS_EL_R_LEFT,        /* the leader left or disconnected */
    TS_EL_R_LAPSE,       /* the leader's lease lapsed (no heartbeat) */
    TS_EL_R_PREEMPT,     /* a candidate scores clearly higher */
    TS_EL_R_ROTATION,    /* the leader led for the maximum tenure */
    TS_EL_R_DEMOTION,    /* the leader's score or heartbeats degraded */
    TS_EL_R_ADOPTED,     /* another loop or node granted it (learned from the store) */
    TS_EL_R_COUNT_
} ts_el_reason_t;

/* "elected", "handoff", ...; never NULL. */
const char *ts_el_reason_name(ts_el_reason_t r);

typedef enum ts_el_act {
    TS_EL_ACT_NONE = 0,
    TS_EL_ACT_ACQUIRE,  /* lease_acquire for `to` */
    TS_EL_ACT_TRANSFER, /* lease_transfer of the current term to `to` */
    TS_EL_ACT_RELEASE,  /* lease_release by the leader that left */
} ts_el_act_t;

/* Why the local leader is no longer there (the member is gone already). */
typedef enum ts_el_gone {
    TS_EL_GONE_NONE = 0,
    TS_EL_GONE_LEFT,
    TS_EL_GONE_RESIGNED,
    TS_EL_GONE_LAPSED,
} ts_el_gone_t;

typedef struct ts_el_cand {
    uint32_t score;
    uint64_t joined;     /* join order: ties go to the earlier */
    const char *holder;  /* then to the smaller holder id */
    uint8_t eligible;    /* may lead: not an observer, not stalled */
    uint8_t may_preempt; /* not rotated out within the last tenure */
} ts_el_cand_t;

typedef struct ts_el_params {
    uint32_t margin;        /* preemption needs this many points more */
    uint32_t demote_below;  /* a leader under this score yields to a better backup */
    uint64_t min_tenure_ms; /* no preemption before */
    uint64_t max_tenure_ms; /* rotation after; 0 = never */
} ts_el_params_t;

typedef struct ts_el_situation {
    const ts_el_cand_t *c; /* the scope's members: this loop's and, in a cluster,
                            * the others' as they last published them */
    size_t n;
    int leader;            /* index of the leader among c; -1: not one of them */
    int held;              /* the lease is held by someone (as last seen) */
    ts_el_gone_t gone;     /* the local leader just went (it is not in c) */
    uint64_t tenure_ms;    /* how long the local leader has led */
    unsigned late_hb;      /* its late heartbeats of the last TS_EL_LATE_WINDOW */
    int leader_remote;     /* c[leader] is another loop's or node's member: that
                            * loop decides its transfers; here only the backup */
} ts_el_situation_t;

typedef struct ts_el_decision {
    ts_el_act_t act;
    ts_el_reason_t reason;
    int to;              /* index in c of the new holder (acquire, transfer) */
    int backup;          /* index in c of the best candidate other than the
                          * leader (after the action); -1: none */
    uint64_t recheck_ms; /* time alone may change the answer in this many ms
                          * (min tenure, max tenure); 0 = not by time */
} ts_el_decision_t;

void ts_el_decide(const ts_el_situation_t *s, const ts_el_params_t *p, ts_el_decision_t *out);

/* ---- what a tab asks (the arguments of its events, docs/ELECTION.md) ---- */

typedef enum ts_el_req_kind {
    TS_EL_REQ_ELECT = 0, /* {join?, leave?, observer?, scores?} */
    TS_EL_REQ_HB,        /* {scope, term} */
    TS_EL_REQ_RESIGN,    /* {scope, term} */
    TS_EL_REQ_TASK,      /* {op, scope, name, term?, pct?, stall_ms?, to?} */
    TS_EL_REQ_LEAD,      /* a state change's lead: {scope, term} */
} ts_el_req_kind_t;

typedef enum ts_el_task_op {
    TS_EL_TASK_DECLARE = 0, /* leader: needs term */
    TS_EL_TASK_CANCEL,      /* leader: needs term */
    TS_EL_TASK_PROGRESS,    /* assignee: pct optional */
    TS_EL_TASK_DONE,
    TS_EL_TASK_FAIL,
} ts_el_task_op_t;

#define TS_EL_STALL_MIN_MS 100
#define TS_EL_STALL_MAX_MS 3600000

typedef struct ts_el_req {
    unsigned join, leave;       /* ELECT: bits (1 << ts_sess_scope_kind_t), disjoint */
    int observer, scores;       /* ELECT: 0, 1, or -1 (not given) */
    ts_sess_scope_kind_t scope; /* every other kind */
    uint64_t term;              /* HB, RESIGN, LEAD, TASK declare/cancel: >= 1 */
    ts_el_task_op_t op;         /* TASK */
    char name[TS_SESS_MAX_NAME + 1]; /* TASK: 1-64 characters of [A-Za-z0-9._:/-] */
    int pct;                    /* TASK progress: 0..100, or -1 (not given) */
    uint64_t stall_ms;          /* TASK declare: TS_EL_STALL_MIN_MS..MAX, 0 = default */
    char to_device[TS_SESS_ID_MAX + 1], to_tab[TS_SESS_ID_MAX + 1]; /* TASK declare: "" = any */
} ts_el_req_t;

/* Parses the argument of a tab's request (borrowed; anything, NULL
 * included). Returns 0 with *out filled, or TS_EPROTO with *code (the
 * error code of the answer: "bad_elect", "bad_task" or "bad_change") and a
 * one-line reason in why. Unknown members are ignored, as in envelopes. */
int ts_el_req_parse(const json_t *arg, ts_el_req_kind_t kind, ts_el_req_t *out,
                    const char **code, char *why, size_t whylen);

#endif
