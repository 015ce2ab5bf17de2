/* ts_sess_state.h - the shared state of a session: one JSON document, the
 * conflict rules per key path (--state-rules FILE) and the engine that
 * applies a change (JSON Merge Patch, JSON Patch, counter and set ops)
 * under those rules. Pure: no I/O and no clock (the caller passes the
 * version, HLC and actor), so the namespace, the tests and the fuzzer share
 * it. docs/CONSISTENCY.md says what each strategy guarantees.
 *
 * A state is the document plus metadata per "unit" (the path a rule names):
 * the state version (ver) of its last write, that write's HLC and actor,
 * and for sets the add tags of every element. A change applied here yields
 * the entry the session log keeps: `effects` (what the document became, as
 * final values of disjoint subtrees) and `meta` (what the metadata became);
 * ts_sess_state_fold replays such an entry, so the state is a fold of the
 * log. */
#ifndef TS_SESS_STATE_H
#define TS_SESS_STATE_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* ---- rules: path patterns -> strategy ----
 * The file (docs/CONSISTENCY.md "State rules"; below, a space keeps each
 * "/" apart from the "*" after it, which would open a comment):
 *   {"default": "lww",
 *    "rules": [{"path": "/counters/ *", "strategy": "counter"},
 *              {"path": "/tags",       "strategy": "set"},
 *              {"path": "/doc/ **",     "strategy": "version"}]}
 * A pattern is a JSON Pointer (RFC 6901) whose segment `*` matches any one
 * segment and whose last segment may be `**` (any number of segments,
 * zero included). The first rule in file order that matches a written path
 * (the pattern matches the path's first segments) governs it; the unit is
 * that matched prefix, or for a `**` pattern the written path itself. No
 * rule matching: `default`, with the written path as the unit. counter and
 * set patterns may not end in `**` (their unit is a fixed place). */
typedef enum ts_sess_strategy {
    TS_SESS_ST_LWW = 0,  /* last writer wins by (hlc, actor) */
    TS_SESS_ST_VERSION,  /* a write against a stale base is refused */
    TS_SESS_ST_COUNTER,  /* {op:"incr"}: increments commute */
    TS_SESS_ST_SET,      /* {op:"sadd"|"srem"}: an OR-set, concurrent adds survive */
    TS_SESS_ST_COUNT_
} ts_sess_strategy_t;

#define TS_SESS_RULES_MAX 1000
typedef struct ts_sess_rules ts_sess_rules_t;

/* Parses a rules file. Returns 0 and *out (new), or TS_EPROTO with a
 * one-line reason naming the rule (counted from 1), e.g. "rule 3: strategy
 * \"sum\" is not one of lww, version, counter, set". The default must be
 * lww or version (a counter or a set needs a rule naming its place). */
int ts_sess_rules_parse(const char *text, size_t len, ts_sess_rules_t **out, char *why,
                        size_t whylen);
/* Returns new: {"default":"lww","rules":[]}. */
ts_sess_rules_t *ts_sess_rules_default(void);
void ts_sess_rules_free(ts_sess_rules_t *r);
/* The strategy governing the pointer `path` (valid RFC 6901 text; an
 * invalid one gets the default); writes the unit (a prefix of path, or path
 * itself), NUL-terminated and cut to fit, to unit[0..unitlen): a buffer of
 * strlen(path) + 1 bytes always suffices. */
ts_sess_strategy_t ts_sess_rules_match(const ts_sess_rules_t *r, const char *path, char *unit,
                                       size_t unitlen);
const char *ts_sess_strategy_name(ts_sess_strategy_t s);

/* ---- state ---- */
typedef struct ts_sess_state ts_sess_state_t;

/* Returns new: the empty document {} with no metadata. */
ts_sess_state_t *ts_sess_state_new(void);
void ts_sess_state_free(ts_sess_state_t *st);
/* The stored form (a snapshot): {"doc": {...}, "meta": {unit: entry}}, an
 * entry being {"v": ver, "h": hlc, "a": actor} plus, for a set, "t":
 * {element as compact JSON with sorted keys: [add versions]}.
 * _dump returns new (a copy the caller may change); _load borrows
 * `snapshot` (it copies it), checks its shape and returns 0 and *out (new)
 * or TS_EPROTO with why ("meta" may be left out). */
json_t *ts_sess_state_dump(const ts_sess_state_t *st);
int ts_sess_state_load(json_t *snapshot, ts_sess_state_t **out, char *why, size_t whylen);
/* The document (borrowed; never modify it). Valid until the next apply,
 * fold or free of st: a change swaps in a new root. */
json_t *ts_sess_state_doc(const ts_sess_state_t *st);
/* Bytes of the document as compact JSON (json_dumpb with JSON_COMPACT),
 * exact, kept up to date by every write (the metadata is not counted here;
 * max_bytes counts both). */
size_t ts_sess_state_bytes(const ts_sess_state_t *st);

/* ---- applying a change ----
 * `change` is what the client sent, one of:
 *   {"merge": <object>}                      JSON Merge Patch (RFC 7396) at the root
 *   {"patch": [<op>, ...]}                   JSON Patch (RFC 6902) plus three ops:
 *       {"op":"incr","path":P,"value":<number>}   counter units
 *       {"op":"sadd","path":P,"value":<any>}      set units
 *       {"op":"srem","path":P,"value":<any>}      set units
 * Other members of `change` are the caller's (ignored here). */
typedef struct ts_sess_state_ctx {
    uint64_t ver;        /* the state version this change gets (current + 1), >= 1 */
    uint64_t base;       /* the client's base version (what it had seen) */
    int has_base;        /* 0: no base given (version units refuse: base_required) */
    uint64_t hlc;        /* the change's hybrid logical clock (core/ts_hlc.h) */
    const char *actor;   /* who writes (client id): lww tie break; version units
                          * never conflict with the actor's own writes */
    size_t max_bytes;    /* refuse (too_large) a change that grows the document and
                          * its metadata (compact JSON of both; deleted units keep
                          * their entries) past this many bytes at any point; a
                          * state already over it may take changes that do not
                          * grow it. 0 = no limit, for trusted input only: copy
                          * ops can double the document with every operation */
    size_t max_ops;      /* writes per change (a merge patch's members, a patch's
                          * operations, a move counting two); 0 = 1000 */
} ts_sess_state_ctx_t;

typedef struct ts_sess_state_outcome {
    /* On refusal: a code for the ack (docs/PROTOCOL.md): bad_change,
     * bad_patch, bad_path, test_failed, strategy_mismatch, type_mismatch,
     * base_required, conflict, too_large, counter_overflow; and a one-line
     * sentence saying what and where, e.g. "op 2 (replace): /todos/7 does
     * not exist" (operations count from 1). Empty when applied. */
    char code[32];
    char why[200];
    json_t *effects;   /* applied: [{"op":"set","path":P,"value":V} | {"op":"del","path":P}],
                        * disjoint subtrees, final values; never a path inside an
                        * array (a write into an array sets the whole array).
                        * Values are shared with the document: read-only */
    json_t *meta;      /* applied: [{"u":unit,"m":entry}], in order: replaying one
                        * drops every entry below u, then sets u */
    json_t *results;   /* applied: [{"path":unit,"status":"applied"|"superseded",
                        * "value":V (absent: deleted)}], one per unit written */
    json_t *conflicts; /* code "conflict": [{"path":unit,"ver":N,"value":V?}] */
} ts_sess_state_outcome_t;

/* Applies `change` (borrowed) to `st` under `rules` (NULL: everything lww
 * per written path). Returns 0 (st changed; effects, meta and results set;
 * a change whose every write was superseded is still 0, with empty
 * effects) or, with out->code and out->why set and `st` exactly as before:
 * TS_ECONFLICT (conflict; out->conflicts set), TS_ETOOBIG (too_large: over
 * max_ops or max_bytes, a value nested deeper than 512 containers, or more
 * than 8 times max_bytes of values measured and copied, which bounds the
 * time one change takes) or TS_EPROTO (every other code). When a version conflict was found, it is
 * the answer even if a later operation failed too (a stale base explains
 * both). The caller frees the outcome with ts_sess_state_outcome_clear
 * either way. */
int ts_sess_state_apply(ts_sess_state_t *st, const ts_sess_rules_t *rules, json_t *change,
                        const ts_sess_state_ctx_t *ctx, ts_sess_state_outcome_t *out);
void ts_sess_state_outcome_clear(ts_sess_state_outcome_t *out);

/* Replays a logged change (its effects and meta, as ts_sess_state_apply
 * produced them; borrowed). A set creates missing parent objects, a del
 * of an absent path does nothing. Returns 0, or TS_EPROTO with why if they
 * are malformed (st unchanged). Folding apply's entry onto the state it was
 * applied to gives the state apply left (fuzz_sess_state checks it). */
int ts_sess_state_fold(ts_sess_state_t *st, json_t *effects, json_t *meta, char *why,
                       size_t whylen);

/* The value at pointer `path` (borrowed, as ts_sess_state_doc) or NULL. */
json_t *ts_sess_state_get(const ts_sess_state_t *st, const char *path);

#endif
