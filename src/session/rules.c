/* rules.c - the state rules file (--state-rules): path patterns mapped to
 * conflict strategies, and the first-match lookup the state engine runs
 * for every write. Patterns are kept as unescaped segments, so matching a
 * path is a segment compare per rule with no allocation. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ts_err.h"
#include "core/ts_util.h"
#include "core/ts_jptr.h"
#include "core/ts_mem.h"
#include "session/ts_sess_state.h"

typedef struct rule {
    ts_sess_strategy_t st;
    uint32_t n;   /* pattern segments before a final "**" */
    int dstar;    /* the pattern ends in "**" (not counted in n) */
    char *buf;    /* the unescaped segments, each NUL-terminated */
    uint16_t *off, *len;
} rule_t;

struct ts_sess_rules {
    ts_sess_strategy_t def;
    size_t n;
    rule_t *r;
};

static const char *const names[TS_SESS_ST_COUNT_] = {"lww", "version", "counter", "set"};

const char *ts_sess_strategy_name(ts_sess_strategy_t s) {
    return (unsigned)s < TS_SESS_ST_COUNT_ ? names[s] : "unknown";
}

static int strategy_parse(const char *s, ts_sess_strategy_t *out) {
    for (int i = 0; i < TS_SESS_ST_COUNT_; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (ts_sess_strategy_t)i;
            return 0;
        }
    return -1;
}

ts_sess_rules_t *ts_sess_rules_default(void) {
    ts_sess_rules_t *r = ts_xcalloc(1, sizeof *r);
    r->def = TS_SESS_ST_LWW;
    return r;
}

void ts_sess_rules_free(ts_sess_rules_t *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->r[i].buf);
        free(r->r[i].off);
        free(r->r[i].len);
    }
    free(r->r);
    free(r);
}


#define STRATEGIES "lww, version, counter, set"

/* Parses rule number `num` (1-based, as the messages count) into r. */
static int rule_parse(json_t *o, size_t num, rule_t *r, char *why, size_t whylen) {
    if (!json_is_object(o)) return ts_errf(why, whylen, TS_EPROTO, "rule %zu: not an object", num);
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        if (strcmp(key, "path") != 0 && strcmp(key, "strategy") != 0)
            return ts_errf(why, whylen, TS_EPROTO,
                           "rule %zu: unknown member \"%.40s\" (a rule has path and strategy)",
                           num, key);
    }
    json_t *path = json_object_get(o, "path"), *st = json_object_get(o, "strategy");
    if (!path) return ts_errf(why, whylen, TS_EPROTO, "rule %zu: path is missing", num);
    if (!json_is_string(path))
        return ts_errf(why, whylen, TS_EPROTO, "rule %zu: path must be a string (a JSON Pointer)",
                       num);
    if (!st)
        return ts_errf(why, whylen, TS_EPROTO, "rule %zu: strategy is missing", num);
    if (!json_is_string(st))
        return ts_errf(why, whylen, TS_EPROTO,
                       "rule %zu: strategy must be a string, one of " STRATEGIES, num);
    if (strategy_parse(json_string_value(st), &r->st) != 0)
        return ts_errf(why, whylen, TS_EPROTO,
                       "rule %zu: strategy \"%.40s\" is not one of " STRATEGIES, num,
                       json_string_value(st));
    const char *text = json_string_value(path), *perr = NULL;
    size_t tlen = json_string_length(path);
    ts_jptr_t *p = ts_xmalloc(sizeof *p);
    int rc = ts_jptr_parse(p, text, tlen, &perr);
    if (rc != 0) {
        free(p);
        return ts_errf(why, whylen, TS_EPROTO,
                       "rule %zu: path \"%.60s\" is not a JSON Pointer: it %s", num, text, perr);
    }
    for (size_t i = 0; i + 1 < p->n; i++)
        if (strcmp(ts_jptr_seg(p, i), "**") == 0) {
            free(p);
            return ts_errf(why, whylen, TS_EPROTO,
                           "rule %zu: path \"%.60s\": ** may only be the last segment", num, text);
        }
    r->dstar = p->n > 0 && strcmp(ts_jptr_seg(p, p->n - 1), "**") == 0;
    r->n = p->n - (r->dstar ? 1u : 0u);
    if (r->st == TS_SESS_ST_COUNTER || r->st == TS_SESS_ST_SET) {
        const char *what = r->dstar ? "cannot end in ** (its unit must be one place)"
                           : p->n == 0 ? "cannot be the document root (it must be an object)"
                                       : NULL;
        if (what) {
            free(p);
            return ts_errf(why, whylen, TS_EPROTO, "rule %zu: a %s rule %s", num, names[r->st],
                           what);
        }
    }
    size_t used = r->n ? (size_t)p->off[r->n - 1] + p->len[r->n - 1] + 1 : 0;
    r->buf = ts_xcalloc(used + 1, 1);
    r->off = ts_xcalloc(r->n + 1u, sizeof *r->off);
    r->len = ts_xcalloc(r->n + 1u, sizeof *r->len);
    memcpy(r->buf, p->buf, used);
    memcpy(r->off, p->off, sizeof *r->off * r->n);
    memcpy(r->len, p->len, sizeof *r->len * r->n);
    free(p);
    return 0;
}

int ts_sess_rules_parse(const char *text, size_t len, ts_sess_rules_t **out, char *why,
                        size_t whylen) {
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return ts_errf(why, whylen, TS_EPROTO, "rules: not valid JSON (line %d, column %d: %s)",
                       jerr.line, jerr.column, jerr.text);
    int rc = 0;
    ts_sess_rules_t *r = ts_sess_rules_default();
    if (!json_is_object(root)) {
        rc = ts_errf(why, whylen, TS_EPROTO, "rules: the file must be a JSON object");
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "default") != 0 && strcmp(key, "rules") != 0) {
            rc = ts_errf(why, whylen, TS_EPROTO,
                         "rules: unknown member \"%.40s\" (the file has default and rules)", key);
            goto done;
        }
    }
    json_t *def = json_object_get(root, "default");
    if (def) {
        if (!json_is_string(def)) {
            rc = ts_errf(why, whylen, TS_EPROTO,
                         "rules: default must be a string, one of " STRATEGIES);
            goto done;
        }
        if (strategy_parse(json_string_value(def), &r->def) != 0) {
            rc = ts_errf(why, whylen, TS_EPROTO,
                         "rules: default \"%.40s\" is not one of " STRATEGIES,
                         json_string_value(def));
            goto done;
        }
        if (r->def == TS_SESS_ST_COUNTER || r->def == TS_SESS_ST_SET) {
            rc = ts_errf(why, whylen, TS_EPROTO,
                         "rules: default \"%s\" is refused: a %s needs a rule naming its "
                         "place; the default is lww or version",
                         names[r->def], names[r->def]);
            goto done;
        }
    }
    json_t *rules = json_object_get(root, "rules");
    if (rules) {
        if (!json_is_array(rules)) {
            rc = ts_errf(why, whylen, TS_EPROTO, "rules: rules must be an array");
            goto done;
        }
        size_t n = json_array_size(rules);
        if (n > TS_SESS_RULES_MAX) {
            rc = ts_errf(why, whylen, TS_EPROTO, "rules: %zu rules (at most %d)", n,
                         TS_SESS_RULES_MAX);
            goto done;
        }
        r->r = ts_xcalloc(n ? n : 1, sizeof *r->r);
        for (size_t i = 0; i < n; i++) {
            rc = rule_parse(json_array_get(rules, i), i + 1, &r->r[i], why, whylen);
            if (rc != 0) goto done;
            r->n++;
        }
    }
done:
    json_decref(root);
    if (rc != 0) {
        ts_sess_rules_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* 1 if rule r matches p, with *unit_segs = the unit's segment count. */
static int rule_match(const rule_t *r, const ts_jptr_t *p, size_t *unit_segs) {
    if (p->n < r->n) return 0;
    for (size_t i = 0; i < r->n; i++) {
        const char *s = r->buf + r->off[i];
        if (r->len[i] == 1 && s[0] == '*') continue;
        if (r->len[i] != p->len[i] || memcmp(s, ts_jptr_seg(p, i), r->len[i]) != 0) return 0;
    }
    *unit_segs = r->dstar ? p->n : r->n;
    return 1;
}

ts_sess_strategy_t ts_sess_rules_match(const ts_sess_rules_t *r, const char *path, char *unit,
                                       size_t unitlen) {
    size_t plen = strlen(path), ulen = plen;
    ts_sess_strategy_t st = r->def;
    ts_jptr_t p;
    if (ts_jptr_parse(&p, path, plen, NULL) == 0) {
        for (size_t i = 0; i < r->n; i++) {
            size_t k;
            if (rule_match(&r->r[i], &p, &k)) {
                st = r->r[i].st;
                ulen = ts_jptr_prefix_len(&p, k);
                break;
            }
        }
    }
    if (unitlen) {
        if (ulen >= unitlen) ulen = unitlen - 1;
        memcpy(unit, path, ulen);
        unit[ulen] = '\0';
    }
    return st;
}
