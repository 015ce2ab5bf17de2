/* test_state.c - the shared-state engine. One table row per case: rules,
 * initial state, change, context; expected return, code, effects, results,
 * document. Every row also checks the engine's two promises: a refused
 * change leaves the state byte for byte as it was, and replaying an applied
 * change's log entry (effects + meta, through JSON text as the store keeps
 * it) onto the initial state gives the state apply gave. Then a seeded
 * random walk checks the same promises and convergence at scale.
 * JSON in the rows is written with ' for " (the helper swaps them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ts_err.h"
#include "session/ts_sess_state.h"

/* ' -> " so rows stay readable. Returns new. */
static char *q(const char *s) {
    char *d = strdup(s);
    for (char *p = d; *p; p++)
        if (*p == '\'') *p = '"';
    return d;
}

static json_t *qj(const char *s) {
    char *t = q(s);
    json_error_t e;
    json_t *v = json_loads(t, JSON_DECODE_ANY, &e);
    if (!v) fail_msg("bad JSON in a row: %s (%s)", t, e.text);
    free(t);
    return v;
}

static char *dumps(const json_t *v) { return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY); }

static void expect_json(const char *row, const char *what, const json_t *got, const char *want) {
    json_t *w = qj(want);
    if (!got || !json_equal((json_t *)got, w)) {
        char *g = got ? dumps(got) : strdup("(null)"), *ws = dumps(w);
        fail_msg("row '%s': %s\n   got %s\n  want %s", row, what, g, ws);
    }
    json_decref(w);
}

static size_t compact_size(const json_t *v) {
    return json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* Through JSON text, as the log keeps it. */
static json_t *roundtrip(const json_t *v) {
    char *s = dumps(v);
    json_t *r = json_loads(s, JSON_DECODE_ANY, NULL);
    free(s);
    return r;
}

#define RULES_CS                                                                             \
    "{'rules':[{'path':'/counters/*','strategy':'counter'},{'path':'/tags','strategy':'set'},"  \
    "{'path':'/doc/**','strategy':'version'},{'path':'/v/*','strategy':'version'}]}"

typedef struct st_case {
    const char *name;
    const char *rules; /* NULL: the default (lww per path) */
    const char *init;  /* state dump; NULL: empty */
    const char *change;
    uint64_t ver;      /* 0: 10 */
    uint64_t base;
    int has_base;
    uint64_t hlc;      /* 0: 1000 */
    const char *actor; /* NULL: "me" */
    size_t max_ops, max_bytes;
    int want;
    const char *code, *why; /* refusal code, fragment of the sentence */
    const char *effects, *results, *doc, *meta, *conflicts; /* expected (NULL: not checked) */
} st_case_t;

#define DOC(d) "{'doc':" d ",'meta':{}}"
#define S20 "01234567890123456789"
#define S200 S20 S20 S20 S20 S20 S20 S20 S20 S20 S20
#define ST(d, m) "{'doc':" d ",'meta':" m "}"
#define E(v, h, a) "{'v':" #v ",'h':" #h ",'a':'" a "'}"

static const st_case_t cases[] = {
    /* ---- RFC 6902 appendix A ---- */
    {.name = "A.1 add an object member", .init = DOC("{'foo':'bar'}"),
     .change = "{'patch':[{'op':'add','path':'/baz','value':'qux'}]}",
     .effects = "[{'op':'set','path':'/baz','value':'qux'}]",
     .results = "[{'path':'/baz','status':'applied','value':'qux'}]",
     .doc = "{'baz':'qux','foo':'bar'}", .meta = "{'/baz':" E(10, 1000, "me") "}"},
    {.name = "A.2 add an array element", .init = DOC("{'foo':['bar','baz']}"),
     .change = "{'patch':[{'op':'add','path':'/foo/1','value':'qux'}]}",
     .effects = "[{'op':'set','path':'/foo','value':['bar','qux','baz']}]",
     .results = "[{'path':'/foo/1','status':'applied','value':'qux'}]",
     .doc = "{'foo':['bar','qux','baz']}"},
    {.name = "A.3 remove an object member", .init = DOC("{'baz':'qux','foo':'bar'}"),
     .change = "{'patch':[{'op':'remove','path':'/baz'}]}",
     .effects = "[{'op':'del','path':'/baz'}]", .results = "[{'path':'/baz','status':'applied'}]",
     .doc = "{'foo':'bar'}"},
    {.name = "A.4 remove an array element", .init = DOC("{'foo':['bar','qux','baz']}"),
     .change = "{'patch':[{'op':'remove','path':'/foo/1'}]}",
     .effects = "[{'op':'set','path':'/foo','value':['bar','baz']}]",
     .doc = "{'foo':['bar','baz']}"},
    {.name = "A.5 replace a value", .init = DOC("{'baz':'qux','foo':'bar'}"),
     .change = "{'patch':[{'op':'replace','path':'/baz','value':'boo'}]}",
     .effects = "[{'op':'set','path':'/baz','value':'boo'}]", .doc = "{'baz':'boo','foo':'bar'}"},
    {.name = "A.6 move a value",
     .init = DOC("{'foo':{'bar':'baz','waldo':'fred'},'qux':{'corge':'grault'}}"),
     .change = "{'patch':[{'op':'move','from':'/foo/waldo','path':'/qux/thud'}]}",
     .effects = "[{'op':'del','path':'/foo/waldo'},{'op':'set','path':'/qux/thud','value':'fred'}]",
     .results = "[{'path':'/foo/waldo','status':'applied'},"
                "{'path':'/qux/thud','status':'applied','value':'fred'}]",
     .doc = "{'foo':{'bar':'baz'},'qux':{'corge':'grault','thud':'fred'}}"},
    {.name = "A.7 move an array element", .init = DOC("{'foo':['all','grass','cows','eat']}"),
     .change = "{'patch':[{'op':'move','from':'/foo/1','path':'/foo/3'}]}",
     .effects = "[{'op':'set','path':'/foo','value':['all','cows','eat','grass']}]",
     .doc = "{'foo':['all','cows','eat','grass']}"},
    {.name = "A.8 test: success", .init = DOC("{'baz':'qux','foo':['a',2,'c']}"),
     .change = "{'patch':[{'op':'test','path':'/baz','value':'qux'},"
               "{'op':'test','path':'/foo/1','value':2}]}",
     .effects = "[]", .results = "[]", .doc = "{'baz':'qux','foo':['a',2,'c']}"},
    {.name = "A.9 test: error", .init = DOC("{'baz':'qux'}"),
     .change = "{'patch':[{'op':'test','path':'/baz','value':'bar'}]}", .want = TS_EPROTO,
     .code = "test_failed", .why = "op 1 (test): the value at /baz is not the tested value"},
    {.name = "A.10 add a nested member object", .init = DOC("{'foo':'bar'}"),
     .change = "{'patch':[{'op':'add','path':'/child','value':{'grandchild':{}}}]}",
     .effects = "[{'op':'set','path':'/child','value':{'grandchild':{}}}]",
     .doc = "{'foo':'bar','child':{'grandchild':{}}}"},
    {.name = "A.11 unrecognized members ignored", .init = DOC("{'foo':'bar'}"),
     .change = "{'patch':[{'op':'add','path':'/baz','value':'qux','xyz':123}]}",
     .doc = "{'foo':'bar','baz':'qux'}"},
    {.name = "A.12 add to a nonexistent target", .init = DOC("{'foo':'bar'}"),
     .change = "{'patch':[{'op':'add','path':'/baz/bat','value':'qux'}]}", .want = TS_EPROTO,
     .code = "bad_path", .why = "op 1 (add): the parent /baz does not exist"},
    {.name = "A.14 ~ escape ordering", .init = DOC("{'/':9,'~1':10}"),
     .change = "{'patch':[{'op':'test','path':'/~01','value':10}]}", .effects = "[]"},
    {.name = "A.15 strings and numbers differ", .init = DOC("{'/':9,'~1':10}"),
     .change = "{'patch':[{'op':'test','path':'/~01','value':'10'}]}", .want = TS_EPROTO,
     .code = "test_failed"},
    {.name = "A.16 add an array value", .init = DOC("{'foo':['bar']}"),
     .change = "{'patch':[{'op':'add','path':'/foo/-','value':['abc','def']}]}",
     .results = "[{'path':'/foo/1','status':'applied','value':['abc','def']}]",
     .effects = "[{'op':'set','path':'/foo','value':['bar',['abc','def']]}]",
     .doc = "{'foo':['bar',['abc','def']]}"},

    /* ---- RFC 6902: more errors and corners ---- */
    {.name = "test: numbers by value", .init = DOC("{'n':1,'o':{'a':[2.0]}}"),
     .change = "{'patch':[{'op':'test','path':'/n','value':1.0},"
               "{'op':'test','path':'/o','value':{'a':[2]}}]}",
     .effects = "[]"},
    {.name = "test: absent target", .init = DOC("{}"),
     .change = "{'patch':[{'op':'test','path':'/x','value':null}]}", .want = TS_EPROTO,
     .code = "test_failed", .why = "/x does not exist"},
    {.name = "replace: absent", .init = DOC("{'todos':[1,2]}"),
     .change = "{'patch':[{'op':'test','path':'/todos/0','value':1},"
               "{'op':'replace','path':'/todos/7','value':3}]}",
     .want = TS_EPROTO, .code = "bad_path", .why = "op 2 (replace): /todos/7 does not exist"},
    {.name = "replace: array end is absent", .init = DOC("{'a':[1]}"),
     .change = "{'patch':[{'op':'replace','path':'/a/-','value':3}]}", .want = TS_EPROTO,
     .code = "bad_path", .why = "/a/- does not exist"},
    {.name = "replace: array element", .init = DOC("{'a':[1,2]}"),
     .change = "{'patch':[{'op':'replace','path':'/a/1','value':5}]}",
     .effects = "[{'op':'set','path':'/a','value':[1,5]}]", .doc = "{'a':[1,5]}"},
    {.name = "remove: absent", .init = DOC("{'a':{}}"),
     .change = "{'patch':[{'op':'remove','path':'/a/b'}]}", .want = TS_EPROTO,
     .code = "bad_path", .why = "op 1 (remove): /a/b does not exist"},
    {.name = "remove: below a scalar", .init = DOC("{'a':1}"),
     .change = "{'patch':[{'op':'remove','path':'/a/b'}]}", .want = TS_EPROTO,
     .code = "bad_path", .why = "/a/b does not exist"},
    {.name = "remove: a control character in the message", .init = DOC("{}"),
     .change = "{'patch':[{'op':'remove','path':'/a\\nb\\u00e9'}]}", .want = TS_EPROTO,
     .code = "bad_path", .why = "op 1 (remove): /a?b\u00e9 does not exist"},
    {.name = "remove: the root", .change = "{'patch':[{'op':'remove','path':''}]}",
     .want = TS_EPROTO, .code = "bad_path", .why = "the document root cannot be removed"},
    {.name = "add: index past the end", .init = DOC("{'a':[1]}"),
     .change = "{'patch':[{'op':'add','path':'/a/2','value':0}]}", .want = TS_EPROTO,
     .code = "bad_path", .why = "index 2 is past the end of the array /a (size 1)"},
    {.name = "add: leading zero", .init = DOC("{'a':[1]}"),
     .change = "{'patch':[{'op':'add','path':'/a/01','value':0}]}", .want = TS_EPROTO,
     .code = "bad_path", .why = "\"01\" is not an index of the array /a"},
    {.name = "add: at the end by index", .init = DOC("{'a':[1]}"),
     .change = "{'patch':[{'op':'add','path':'/a/1','value':0}]}", .doc = "{'a':[1,0]}"},
    {.name = "add: under a scalar", .init = DOC("{'a':true}"),
     .change = "{'patch':[{'op':'add','path':'/a/b','value':0}]}", .want = TS_EPROTO,
     .code = "bad_path", .why = "the parent /a is not an object or array"},
    {.name = "add: replaces an existing member", .init = DOC("{'a':{'x':1}}"),
     .change = "{'patch':[{'op':'add','path':'/a','value':[]}]}",
     .effects = "[{'op':'set','path':'/a','value':[]}]", .doc = "{'a':[]}"},
    {.name = "replace the root", .init = DOC("{'a':1}"),
     .change = "{'patch':[{'op':'replace','path':'','value':{'b':2}}]}",
     .effects = "[{'op':'set','path':'','value':{'b':2}}]",
     .results = "[{'path':'','status':'applied','value':{'b':2}}]", .doc = "{'b':2}"},
    {.name = "replace the root with an array", .init = DOC("{'a':1}"),
     .change = "{'patch':[{'op':'replace','path':'','value':[1]}]}", .want = TS_EPROTO,
     .code = "type_mismatch", .why = "the document root must be an object"},
    {.name = "root write covers later writes", .init = DOC("{'a':1}"),
     .change = "{'patch':[{'op':'add','path':'/x','value':1},{'op':'add','path':'','value':{}},"
               "{'op':'add','path':'/y','value':2}]}",
     .effects = "[{'op':'set','path':'','value':{'y':2}}]", .doc = "{'y':2}"},
    {.name = "move: from absent", .init = DOC("{}"),
     .change = "{'patch':[{'op':'move','from':'/x','path':'/y'}]}", .want = TS_EPROTO,
     .code = "bad_path", .why = "op 1 (move): from /x does not exist"},
    {.name = "move: into its own child", .init = DOC("{'a':{'b':{}}}"),
     .change = "{'patch':[{'op':'move','from':'/a','path':'/a/b/c'}]}", .want = TS_EPROTO,
     .code = "bad_path", .why = "cannot move /a into its own child /a/b/c"},
    {.name = "move: onto itself", .init = DOC("{'a':1}"),
     .change = "{'patch':[{'op':'move','from':'/a','path':'/a'}]}", .effects = "[]",
     .results = "[]", .doc = "{'a':1}"},
    {.name = "move: a subtree, then edit it", .init = DOC("{'a':{'b':{'c':1}},'z':{}}"),
     .change = "{'patch':[{'op':'move','from':'/a/b','path':'/z/b'},"
               "{'op':'add','path':'/z/b/d','value':2}]}",
     .effects = "[{'op':'del','path':'/a/b'},{'op':'set','path':'/z/b','value':{'c':1,'d':2}}]",
     .doc = "{'a':{},'z':{'b':{'c':1,'d':2}}}"},
    {.name = "copy: then edit the copy", .init = DOC("{'a':{'b':1}}"),
     .change = "{'patch':[{'op':'copy','from':'/a','path':'/c'},"
               "{'op':'add','path':'/c/x','value':2}]}",
     .effects = "[{'op':'set','path':'/c','value':{'b':1,'x':2}}]",
     .doc = "{'a':{'b':1},'c':{'b':1,'x':2}}"},
    {.name = "copy: from absent", .init = DOC("{}"),
     .change = "{'patch':[{'op':'copy','from':'/a/0','path':'/c'}]}", .want = TS_EPROTO,
     .code = "bad_path", .why = "from /a/0 does not exist"},
    {.name = "bad patch: op not an object", .change = "{'patch':[1]}", .want = TS_EPROTO,
     .code = "bad_patch", .why = "op 1: not an object"},
    {.name = "bad patch: no op", .change = "{'patch':[{'path':'/a'}]}", .want = TS_EPROTO,
     .code = "bad_patch", .why = "op 1: \"op\" is missing"},
    {.name = "bad patch: unknown op",
     .change = "{'patch':[{'op':'test','path':'','value':{}},{'op':'append','path':'/a'}]}",
     .want = TS_EPROTO, .code = "bad_patch", .why = "op 2: unknown op \"append\""},
    {.name = "bad patch: no path", .change = "{'patch':[{'op':'add','value':1}]}",
     .want = TS_EPROTO, .code = "bad_patch", .why = "op 1 (add): path is missing"},
    {.name = "bad patch: path not a pointer",
     .change = "{'patch':[{'op':'add','path':'a','value':1}]}", .want = TS_EPROTO,
     .code = "bad_patch", .why = "path \"a\" is not a JSON Pointer: it must start with \"/\""},
    {.name = "bad patch: bad escape", .change = "{'patch':[{'op':'remove','path':'/a~'}]}",
     .want = TS_EPROTO, .code = "bad_patch", .why = "~ not followed by 0 or 1"},
    {.name = "bad patch: no value", .change = "{'patch':[{'op':'replace','path':'/a'}]}",
     .want = TS_EPROTO, .code = "bad_patch", .why = "op 1 (replace): value is missing"},
    {.name = "bad patch: no from", .init = DOC("{'a':1}"),
     .change = "{'patch':[{'op':'move','path':'/a'}]}", .want = TS_EPROTO, .code = "bad_patch",
     .why = "from is missing"},
    {.name = "bad change: patch not an array", .change = "{'patch':{}}", .want = TS_EPROTO,
     .code = "bad_change", .why = "patch must be an array"},
    {.name = "bad change: both", .change = "{'patch':[],'merge':{}}", .want = TS_EPROTO,
     .code = "bad_change", .why = "not both"},
    {.name = "bad change: neither", .change = "{'id':1}", .want = TS_EPROTO,
     .code = "bad_change"},
    {.name = "bad change: not an object", .change = "[]", .want = TS_EPROTO,
     .code = "bad_change"},
    {.name = "empty patch", .change = "{'patch':[],'other':1}", .effects = "[]",
     .results = "[]", .meta = "{}"},

    /* ---- RFC 7396 appendix A (object roots; the others are refused) ---- */
    {.name = "7396: replace a member", .init = DOC("{'a':'b'}"), .change = "{'merge':{'a':'c'}}",
     .doc = "{'a':'c'}", .effects = "[{'op':'set','path':'/a','value':'c'}]"},
    {.name = "7396: add a member", .init = DOC("{'a':'b'}"), .change = "{'merge':{'b':'c'}}",
     .doc = "{'a':'b','b':'c'}"},
    {.name = "7396: remove a member", .init = DOC("{'a':'b'}"), .change = "{'merge':{'a':null}}",
     .doc = "{}", .effects = "[{'op':'del','path':'/a'}]"},
    {.name = "7396: remove one of two", .init = DOC("{'a':'b','b':'c'}"),
     .change = "{'merge':{'a':null}}", .doc = "{'b':'c'}"},
    {.name = "7396: array by string", .init = DOC("{'a':['b']}"), .change = "{'merge':{'a':'c'}}",
     .doc = "{'a':'c'}"},
    {.name = "7396: string by array", .init = DOC("{'a':'c'}"), .change = "{'merge':{'a':['b']}}",
     .doc = "{'a':['b']}"},
    {.name = "7396: nested", .init = DOC("{'a':{'b':'c'}}"),
     .change = "{'merge':{'a':{'b':'d','c':null}}}", .doc = "{'a':{'b':'d'}}",
     .effects = "[{'op':'set','path':'/a/b','value':'d'}]",
     .results = "[{'path':'/a/b','status':'applied','value':'d'},{'path':'/a/c','status':'applied'}]"},
    {.name = "7396: array of objects", .init = DOC("{'a':[{'b':'c'}]}"),
     .change = "{'merge':{'a':[1]}}", .doc = "{'a':[1]}"},
    {.name = "7396: root array patch", .init = DOC("{'a':'b'}"), .change = "{'merge':['c']}",
     .want = TS_EPROTO, .code = "bad_change", .why = "merge must be an object"},
    {.name = "7396: null patch", .init = DOC("{'a':'foo'}"), .change = "{'merge':null}",
     .want = TS_EPROTO, .code = "bad_change"},
    {.name = "7396: string patch", .init = DOC("{'a':'foo'}"), .change = "{'merge':'bar'}",
     .want = TS_EPROTO, .code = "bad_change"},
    {.name = "7396: null member kept", .init = DOC("{'e':null}"), .change = "{'merge':{'a':1}}",
     .doc = "{'e':null,'a':1}"},
    {.name = "7396: nulls stripped from a new object", .init = DOC("{}"),
     .change = "{'merge':{'a':{'bb':{'ccc':null}}}}", .doc = "{'a':{'bb':{}}}",
     .effects = "[{'op':'set','path':'/a','value':{'bb':{}}}]"},
    /* a null for an absent member deletes nothing but is an lww write all the
     * same: its tombstone makes an older write coming later lose to it */
    {.name = "merge: null of an absent member", .init = DOC("{'a':{'b':1}}"),
     .change = "{'merge':{'a':{'c':null},'z':null}}", .effects = "[]",
     .results = "[{'path':'/a/c','status':'applied'},{'path':'/z','status':'applied'}]",
     .doc = "{'a':{'b':1}}"},
    {.name = "merge: nulls inside arrays kept", .change = "{'merge':{'a':[{'b':null}]}}",
     .doc = "{'a':[{'b':null}]}"},
    {.name = "merge: keys escaped in paths", .change = "{'merge':{'a/b':{'~':1}}}",
     .effects = "[{'op':'set','path':'/a~1b','value':{'~':1}}]",
     .results = "[{'path':'/a~1b','status':'applied','value':{'~':1}}]"},

    /* ---- lww ---- */
    {.name = "lww: older hlc superseded", .init = ST("{'a':1}", "{'/a':" E(5, 2000, "x") "}"),
     .change = "{'merge':{'a':2}}", .effects = "[]",
     .results = "[{'path':'/a','status':'superseded','value':1}]", .doc = "{'a':1}",
     .meta = "{'/a':" E(5, 2000, "x") "}"},
    {.name = "lww: newer hlc wins", .init = ST("{'a':1}", "{'/a':" E(5, 2000, "x") "}"),
     .hlc = 3000, .change = "{'merge':{'a':2}}", .doc = "{'a':2}",
     .meta = "{'/a':" E(10, 3000, "me") "}"},
    {.name = "lww: hlc tie, greater actor wins",
     .init = ST("{'a':1}", "{'/a':" E(5, 1000, "z") "}"),
     .change = "{'merge':{'a':2}}", .effects = "[]",
     .results = "[{'path':'/a','status':'superseded','value':1}]"},
    {.name = "lww: hlc tie, smaller actor loses",
     .init = ST("{'a':1}", "{'/a':" E(5, 1000, "a") "}"),
     .change = "{'merge':{'a':2}}", .doc = "{'a':2}",
     .results = "[{'path':'/a','status':'applied','value':2}]"},
    {.name = "lww: own write at the same hlc", .init = ST("{'a':1}", "{'/a':" E(5, 1000, "me") "}"),
     .change = "{'merge':{'a':2}}", .doc = "{'a':2}"},
    {.name = "lww: a newer ancestor supersedes",
     .init = ST("{'a':{'b':1}}", "{'/a':" E(5, 2000, "x") "}"),
     .change = "{'patch':[{'op':'replace','path':'/a/b','value':2}]}", .effects = "[]",
     .results = "[{'path':'/a/b','status':'superseded','value':1}]"},
    {.name = "lww: a newer descendant supersedes",
     .init = ST("{'a':{'b':1}}", "{'/a/b':" E(5, 2000, "x") "}"),
     .change = "{'merge':{'a':5}}", .effects = "[]",
     .results = "[{'path':'/a','status':'superseded','value':{'b':1}}]"},
    {.name = "lww: siblings do not overlap",
     .init = ST("{'a':{'b':1}}", "{'/a/b':" E(5, 2000, "x") ",'/ab':" E(5, 2000, "x") "}"),
     .change = "{'merge':{'a':{'c':2}}}", .doc = "{'a':{'b':1,'c':2}}"},
    {.name = "lww: a write drops the entries below it",
     .init = ST("{'a':{'b':1}}", "{'/a/b':" E(5, 500, "x") ",'/ab':" E(5, 500, "x") "}"),
     .change = "{'merge':{'a':3}}", .doc = "{'a':3}",
     .meta = "{'/a':" E(10, 1000, "me") ",'/ab':" E(5, 500, "x") "}"},
    {.name = "lww: part of a change superseded",
     .init = ST("{'a':1,'b':1}", "{'/a':" E(5, 2000, "x") "}"),
     .change = "{'merge':{'a':2,'b':2}}", .effects = "[{'op':'set','path':'/b','value':2}]",
     .results = "[{'path':'/a','status':'superseded','value':1},"
                "{'path':'/b','status':'applied','value':2}]",
     .doc = "{'a':1,'b':2}"},
    {.name = "lww: move whose removal is superseded copies",
     .init = ST("{'a':{'k':1}}", "{'/a':" E(5, 2000, "x") "}"),
     .change = "{'patch':[{'op':'move','from':'/a','path':'/b'},"
               "{'op':'add','path':'/b/k2','value':2}]}",
     .effects = "[{'op':'set','path':'/b','value':{'k':1,'k2':2}}]",
     .doc = "{'a':{'k':1},'b':{'k':1,'k2':2}}"},

    /* ---- version ---- */
    {.name = "version: base required", .rules = RULES_CS, .init = DOC("{'doc':{}}"),
     .change = "{'merge':{'doc':{'a':1}}}", .want = TS_EPROTO, .code = "base_required",
     .why = "/doc/a is under version control"},
    {.name = "version: stale base refused", .rules = RULES_CS,
     .init = ST("{'doc':{'a':1}}", "{'/doc/a':" E(5, 1, "x") "}"), .has_base = 1, .base = 4,
     .change = "{'merge':{'doc':{'a':2}}}", .want = TS_ECONFLICT, .code = "conflict",
     .why = "/doc/a changed at version 5, after your base 4",
     .conflicts = "[{'path':'/doc/a','ver':5,'value':1}]"},
    {.name = "version: current base applies", .rules = RULES_CS,
     .init = ST("{'doc':{'a':1}}", "{'/doc/a':" E(5, 1, "x") "}"), .has_base = 1, .base = 5,
     .change = "{'merge':{'doc':{'a':2}}}", .doc = "{'doc':{'a':2}}",
     .meta = "{'/doc/a':" E(10, 1000, "me") "}"},
    {.name = "version: own later write is no conflict", .rules = RULES_CS,
     .init = ST("{'doc':{'a':1}}", "{'/doc/a':" E(5, 1, "me") "}"), .has_base = 1, .base = 4,
     .change = "{'merge':{'doc':{'a':2}}}", .doc = "{'doc':{'a':2}}"},
    {.name = "version: a newer ancestor conflicts", .rules = RULES_CS,
     .init = ST("{'doc':{'a':1}}", "{'/doc':" E(7, 1, "x") "}"), .has_base = 1, .base = 6,
     .change = "{'patch':[{'op':'replace','path':'/doc/a','value':2}]}", .want = TS_ECONFLICT,
     .code = "conflict", .conflicts = "[{'path':'/doc','ver':7,'value':{'a':1}}]"},
    {.name = "version: a newer descendant conflicts", .rules = RULES_CS,
     .init = ST("{'doc':{'a':{'b':1}}}", "{'/doc/a/b':" E(7, 1, "x") "}"), .has_base = 1,
     .base = 6, .change = "{'patch':[{'op':'remove','path':'/doc/a'}]}", .want = TS_ECONFLICT,
     .code = "conflict", .conflicts = "[{'path':'/doc/a/b','ver':7,'value':1}]"},
    {.name = "version: every conflict listed, value absent when deleted", .rules = RULES_CS,
     .init = ST("{'v':{'a':1}}", "{'/v/a':" E(7, 1, "x") ",'/v/b':" E(8, 1, "y") "}"),
     .has_base = 1, .base = 6,
     .change = "{'patch':[{'op':'add','path':'/v/b','value':1},"
               "{'op':'add','path':'/v/a','value':2}]}",
     .want = TS_ECONFLICT, .code = "conflict", .why = "(and more: see conflicts)",
     .conflicts = "[{'path':'/v/b','ver':8},{'path':'/v/a','ver':7,'value':1}]"},
    {.name = "version: a conflict explains a later failure", .rules = RULES_CS,
     .init = ST("{'v':{'a':1}}", "{'/v/a':" E(7, 1, "x") "}"), .has_base = 1, .base = 6,
     .change = "{'patch':[{'op':'remove','path':'/v/a'},{'op':'test','path':'/v/a','value':1}]}",
     .want = TS_ECONFLICT, .code = "conflict", .conflicts = "[{'path':'/v/a','ver':7,'value':1}]"},
    {.name = "version: lww part and conflict: nothing applied", .rules = RULES_CS,
     .init = ST("{'x':0,'doc':{'a':1}}", "{'/doc/a':" E(5, 1, "x") "}"), .has_base = 1,
     .base = 2,
     .change = "{'patch':[{'op':'replace','path':'/x','value':1},"
               "{'op':'add','path':'/doc/a','value':3}]}",
     .want = TS_ECONFLICT, .code = "conflict"},

    /* ---- counter ---- */
    {.name = "counter: incr of absent creates parents", .rules = RULES_CS,
     .change = "{'patch':[{'op':'incr','path':'/counters/a','value':5}]}",
     .effects = "[{'op':'set','path':'/counters/a','value':5}]",
     .results = "[{'path':'/counters/a','status':'applied','value':5}]",
     .doc = "{'counters':{'a':5}}", .meta = "{'/counters/a':" E(10, 1000, "me") "}"},
    {.name = "counter: integers add", .rules = RULES_CS, .init = DOC("{'counters':{'a':5}}"),
     .change = "{'patch':[{'op':'incr','path':'/counters/a','value':-7},"
               "{'op':'incr','path':'/counters/a','value':4}]}",
     .doc = "{'counters':{'a':2}}",
     .results = "[{'path':'/counters/a','status':'applied','value':2}]"},
    {.name = "counter: a real makes a real", .rules = RULES_CS, .init = DOC("{'counters':{'a':5}}"),
     .change = "{'patch':[{'op':'incr','path':'/counters/a','value':0.5}]}",
     .doc = "{'counters':{'a':5.5}}"},
    {.name = "counter: real plus integer", .rules = RULES_CS, .init = DOC("{'counters':{'a':1.5}}"),
     .change = "{'patch':[{'op':'incr','path':'/counters/a','value':1}]}",
     .doc = "{'counters':{'a':2.5}}"},
    {.name = "counter: overflow", .rules = RULES_CS,
     .init = DOC("{'counters':{'a':9223372036854775807}}"),
     .change = "{'patch':[{'op':'incr','path':'/counters/a','value':1}]}", .want = TS_EPROTO,
     .code = "counter_overflow", .why = "/counters/a + 1 leaves the 64-bit integer range"},
    {.name = "counter: negative overflow", .rules = RULES_CS,
     .init = DOC("{'counters':{'a':-9223372036854775807}}"),
     .change = "{'patch':[{'op':'incr','path':'/counters/a','value':-2}]}", .want = TS_EPROTO,
     .code = "counter_overflow"},
    {.name = "counter: real overflow", .rules = RULES_CS, .init = DOC("{'counters':{'a':1e308}}"),
     .change = "{'patch':[{'op':'incr','path':'/counters/a','value':1e308}]}", .want = TS_EPROTO,
     .code = "counter_overflow", .why = "not a finite number"},
    {.name = "counter: not a number there", .rules = RULES_CS,
     .init = DOC("{'counters':{'a':'x'}}"),
     .change = "{'patch':[{'op':'incr','path':'/counters/a','value':1}]}", .want = TS_EPROTO,
     .code = "type_mismatch", .why = "/counters/a holds a string, not a number"},
    {.name = "counter: value not a number", .rules = RULES_CS,
     .change = "{'patch':[{'op':'incr','path':'/counters/a','value':'1'}]}", .want = TS_EPROTO,
     .code = "bad_patch", .why = "op 1 (incr): value must be a number"},
    {.name = "counter: replace refused", .rules = RULES_CS, .init = DOC("{'counters':{'a':1}}"),
     .change = "{'patch':[{'op':'replace','path':'/counters/a','value':3}]}", .want = TS_EPROTO,
     .code = "strategy_mismatch",
     .why = "op 1 (replace): path /counters/a is a counter: use {op:\"incr\"}"},
    {.name = "counter: merge into it refused", .rules = RULES_CS,
     .init = DOC("{'counters':{'a':1}}"),
     .change = "{'merge':{'counters':{'a':3}}}", .want = TS_EPROTO, .code = "strategy_mismatch",
     .why = "merge: path /counters/a is a counter"},
    {.name = "counter: a write inside refused", .rules = RULES_CS,
     .init = DOC("{'counters':{'a':{}}}"),
     .change = "{'patch':[{'op':'add','path':'/counters/a/b','value':3}]}", .want = TS_EPROTO,
     .code = "strategy_mismatch", .why = "path /counters/a/b is inside the counter /counters/a"},
    {.name = "counter: incr inside refused", .rules = RULES_CS,
     .change = "{'patch':[{'op':'incr','path':'/counters/a/b','value':3}]}", .want = TS_EPROTO,
     .code = "strategy_mismatch", .why = "/counters/a/b is inside the counter /counters/a"},
    {.name = "counter: incr of an lww path refused", .rules = RULES_CS,
     .change = "{'patch':[{'op':'incr','path':'/x','value':3}]}", .want = TS_EPROTO,
     .code = "strategy_mismatch", .why = "op 1 (incr): /x is not a counter (its strategy is lww)"},
    {.name = "counter: remove resets", .rules = RULES_CS,
     .init = ST("{'counters':{'a':4}}", "{'/counters/a':" E(3, 1, "x") "}"),
     .change = "{'patch':[{'op':'remove','path':'/counters/a'}]}",
     .effects = "[{'op':'del','path':'/counters/a'}]", .doc = "{'counters':{}}",
     .meta = "{'/counters/a':" E(10, 1000, "me") "}"},
    {.name = "counter: merge null resets", .rules = RULES_CS, .init = DOC("{'counters':{'a':4}}"),
     .change = "{'merge':{'counters':{'a':null}}}", .doc = "{'counters':{}}"},
    {.name = "counter: a write above is the parent's", .rules = RULES_CS,
     .init = ST("{'counters':{'a':4}}", "{'/counters/a':" E(3, 1, "x") "}"),
     .change = "{'merge':{'counters':7}}", .doc = "{'counters':7}",
     .meta = "{'/counters':" E(10, 1000, "me") "}"},
    {.name = "counter: under a scalar", .rules = RULES_CS, .init = DOC("{'counters':3}"),
     .change = "{'patch':[{'op':'incr','path':'/counters/a','value':1}]}", .want = TS_EPROTO,
     .code = "bad_path", .why = "/counters is not an object or array"},
    {.name = "counter: a newer lww write above does not stop it", .rules = RULES_CS,
     .init = ST("{'counters':{'a':1}}", "{'/counters':" E(3, 9999, "x") "}"),
     .change = "{'patch':[{'op':'incr','path':'/counters/a','value':1}]}",
     .doc = "{'counters':{'a':2}}"},

    /* ---- set ---- */
    {.name = "set: sadd creates", .rules = RULES_CS,
     .change = "{'patch':[{'op':'sadd','path':'/tags','value':'x'}]}",
     .effects = "[{'op':'set','path':'/tags','value':['x']}]", .doc = "{'tags':['x']}",
     .meta = "{'/tags':{'v':10,'h':1000,'a':'me','t':{'\\'x\\'':[10]}}}"},
    {.name = "set: sadd of a present element adds a tag", .rules = RULES_CS,
     .init = ST("{'tags':['x','y']}", "{'/tags':{'v':4,'h':1,'a':'o','t':{'\\'x\\'':[4]}}}"),
     .change = "{'patch':[{'op':'sadd','path':'/tags','value':'x'},"
               "{'op':'sadd','path':'/tags','value':'x'}]}",
     .doc = "{'tags':['x','y']}",
     .meta = "{'/tags':{'v':10,'h':1000,'a':'me','t':{'\\'x\\'':[4,10]}}}"},
    {.name = "set: objects by value, keys sorted", .rules = RULES_CS,
     .init = ST("{'tags':[{'b':1,'a':2}]}",
                "{'/tags':{'v':4,'h':1,'a':'o','t':{'{\\'a\\':2,\\'b\\':1}':[4]}}}"),
     .change = "{'patch':[{'op':'sadd','path':'/tags','value':{'a':2,'b':1}},"
               "{'op':'sadd','path':'/tags','value':1},{'op':'sadd','path':'/tags','value':1.0}]}",
     .doc = "{'tags':[{'b':1,'a':2},1,1.0]}"},
    {.name = "set: srem of an observed add", .rules = RULES_CS,
     .init = ST("{'tags':['x','y']}",
                "{'/tags':{'v':5,'h':1,'a':'o','t':{'\\'x\\'':[5],'\\'y\\'':[2]}}}"),
     .has_base = 1, .base = 5, .change = "{'patch':[{'op':'srem','path':'/tags','value':'x'}]}",
     .doc = "{'tags':['y']}", .effects = "[{'op':'set','path':'/tags','value':['y']}]",
     .meta = "{'/tags':{'v':10,'h':1000,'a':'me','t':{'\\'y\\'':[2]}}}"},
    {.name = "set: a concurrent add survives srem", .rules = RULES_CS,
     .init = ST("{'tags':['x']}", "{'/tags':{'v':7,'h':1,'a':'o','t':{'\\'x\\'':[3,7]}}}"),
     .has_base = 1, .base = 5, .change = "{'patch':[{'op':'srem','path':'/tags','value':'x'}]}",
     .doc = "{'tags':['x']}", .meta = "{'/tags':{'v':10,'h':1000,'a':'me','t':{'\\'x\\'':[7]}}}"},
    {.name = "set: srem without base removes every add", .rules = RULES_CS,
     .init = ST("{'tags':['x','z']}", "{'/tags':{'v':7,'h':1,'a':'o','t':{'\\'x\\'':[3,7]}}}"),
     .change = "{'patch':[{'op':'srem','path':'/tags','value':'x'}]}", .doc = "{'tags':['z']}"},
    {.name = "set: an untagged element counts as tag 0", .rules = RULES_CS,
     .init = DOC("{'tags':['x','y']}"), .has_base = 1, .base = 0,
     .change = "{'patch':[{'op':'srem','path':'/tags','value':'y'}]}", .doc = "{'tags':['x']}"},
    {.name = "set: srem of an absent element", .rules = RULES_CS, .init = DOC("{'tags':['x']}"),
     .change = "{'patch':[{'op':'srem','path':'/tags','value':'q'}]}", .doc = "{'tags':['x']}",
     .results = "[{'path':'/tags','status':'applied','value':['x']}]"},
    {.name = "set: srem of an absent set", .rules = RULES_CS,
     .change = "{'patch':[{'op':'srem','path':'/tags','value':'q'}]}", .doc = "{}",
     .effects = "[{'op':'del','path':'/tags'}]",
     .results = "[{'path':'/tags','status':'applied'}]"},
    {.name = "set: sadd then srem in one change", .rules = RULES_CS, .has_base = 1, .base = 3,
     .change = "{'patch':[{'op':'sadd','path':'/tags','value':'x'},"
               "{'op':'srem','path':'/tags','value':'x'}]}",
     .doc = "{'tags':['x']}", .meta = "{'/tags':{'v':10,'h':1000,'a':'me','t':{'\\'x\\'':[10]}}}"},
    {.name = "set: remove clears", .rules = RULES_CS,
     .init = ST("{'tags':['x']}", "{'/tags':{'v':7,'h':1,'a':'o','t':{'\\'x\\'':[7]}}}"),
     .change = "{'patch':[{'op':'remove','path':'/tags'}]}", .doc = "{}",
     .meta = "{'/tags':{'v':10,'h':1000,'a':'me','t':{}}}"},
    {.name = "set: add to it refused", .rules = RULES_CS, .init = DOC("{'tags':['x']}"),
     .change = "{'patch':[{'op':'add','path':'/tags/-','value':'y'}]}", .want = TS_EPROTO,
     .code = "strategy_mismatch", .why = "path /tags/1 is inside the set /tags"},
    {.name = "set: replace refused", .rules = RULES_CS,
     .change = "{'merge':{'tags':['y']}}", .want = TS_EPROTO, .code = "strategy_mismatch",
     .why = "path /tags is a set: use {op:\"sadd\"} or {op:\"srem\"}"},
    {.name = "set: not an array there", .rules = RULES_CS, .init = DOC("{'tags':{}}"),
     .change = "{'patch':[{'op':'sadd','path':'/tags','value':1}]}", .want = TS_EPROTO,
     .code = "type_mismatch", .why = "/tags is not an array (a set)"},
    {.name = "set: sadd on an lww path", .rules = RULES_CS,
     .change = "{'patch':[{'op':'sadd','path':'/x','value':1}]}", .want = TS_EPROTO,
     .code = "strategy_mismatch", .why = "/x is not a set (its strategy is lww)"},
    {.name = "set: srem inside", .rules = RULES_CS,
     .change = "{'patch':[{'op':'srem','path':'/tags/0','value':1}]}", .want = TS_EPROTO,
     .code = "strategy_mismatch", .why = "/tags/0 is inside the set /tags: srem the set itself"},

    /* ---- effects: arrays lifted, maximal paths ---- */
    {.name = "effects: a write deep in an array lifts to it",
     .init = DOC("{'a':{'l':[{'x':1},{'x':2}]}}"),
     .change = "{'patch':[{'op':'replace','path':'/a/l/1/x','value':5},"
               "{'op':'replace','path':'/a/l/0/x','value':6}]}",
     .effects = "[{'op':'set','path':'/a/l','value':[{'x':6},{'x':5}]}]",
     .results = "[{'path':'/a/l/1/x','status':'applied','value':5},"
                "{'path':'/a/l/0/x','status':'applied','value':6}]"},
    {.name = "effects: the first array from the root", .init = DOC("{'l':[[1,2],[3]]}"),
     .change = "{'patch':[{'op':'add','path':'/l/1/-','value':4}]}",
     .effects = "[{'op':'set','path':'/l','value':[[1,2],[3,4]]}]"},
    {.name = "effects: an ancestor's write covers", .init = DOC("{'a':{'b':1}}"),
     .change = "{'patch':[{'op':'replace','path':'/a/b','value':2},"
               "{'op':'add','path':'/a/c','value':3},{'op':'replace','path':'/a','value':{'z':1}},"
               "{'op':'add','path':'/a/y','value':2}]}",
     .effects = "[{'op':'set','path':'/a','value':{'z':1,'y':2}}]"},
    {.name = "effects: added then removed", .init = DOC("{}"),
     .change = "{'patch':[{'op':'add','path':'/t','value':1},{'op':'remove','path':'/t'}]}",
     .effects = "[{'op':'del','path':'/t'}]", .doc = "{}"},

    /* ---- limits and atomicity ---- */
    {.name = "max_ops: patch length", .max_ops = 2,
     .change = "{'patch':[{'op':'add','path':'/a','value':1},{'op':'add','path':'/b','value':1},"
               "{'op':'add','path':'/c','value':1}]}",
     .want = TS_ETOOBIG, .code = "too_large", .why = "the patch has 3 operations (at most 2)"},
    {.name = "max_ops: merge writes", .max_ops = 2, .change = "{'merge':{'a':1,'b':1,'c':1}}",
     .want = TS_ETOOBIG, .code = "too_large", .why = "more than 2 writes"},
    {.name = "max_ops: a move is two writes", .max_ops = 1, .init = DOC("{'a':1}"),
     .change = "{'patch':[{'op':'move','from':'/a','path':'/b'}]}", .want = TS_ETOOBIG,
     .code = "too_large"},
    {.name = "max_ops: at the limit", .max_ops = 3, .change = "{'merge':{'a':1,'b':1,'c':1}}",
     .doc = "{'a':1,'b':1,'c':1}"},
    /* max_bytes bounds the document and its bookkeeping: here 18 + 33 */
    {.name = "max_bytes: over", .max_bytes = 50, .change = "{'merge':{'a':'0123456789'}}",
     .want = TS_ETOOBIG, .code = "too_large",
     .why = "merge: the document and its bookkeeping would be 51 bytes (max_bytes 50)"},
    {.name = "max_bytes: at the limit", .max_bytes = 51, .change = "{'merge':{'a':'0123456789'}}",
     .doc = "{'a':'0123456789'}"},
    {.name = "max_bytes: shrinking passes over the limit", .max_bytes = 5,
     .init = DOC("{'a':'" S200 "','b':1}"), .change = "{'merge':{'a':null}}", .doc = "{'b':1}"},
    {.name = "max_bytes: a deletion's bookkeeping counts", .max_bytes = 30,
     .init = DOC("{'a':'0123456789','b':1}"), .change = "{'merge':{'a':null}}",
     .want = TS_ETOOBIG, .why = "would be 40 bytes (max_bytes 30)"},
    {.name = "max_bytes: checked at every write", .max_bytes = 100,
     .init = DOC("{'a':'0123456789'}"),
     .change = "{'patch':[{'op':'copy','from':'/a','path':'/b'},"
               "{'op':'copy','from':'/a','path':'/c'},{'op':'remove','path':'/b'},"
               "{'op':'remove','path':'/c'}]}",
     .want = TS_ETOOBIG, .code = "too_large",
     .why = "op 2 (copy): the document and its bookkeeping would be 117 bytes (max_bytes 100)"},
    {.name = "max_bytes: doubling copies stop at the limit", .max_bytes = 1000,
     .init = DOC("{'a':{'x':'0123456789'}}"),
     .change = "{'patch':[{'op':'copy','from':'/a','path':'/a/1'},"
               "{'op':'copy','from':'/a','path':'/a/2'},{'op':'copy','from':'/a','path':'/a/3'},"
               "{'op':'copy','from':'/a','path':'/a/4'},{'op':'copy','from':'/a','path':'/a/5'},"
               "{'op':'copy','from':'/a','path':'/a/6'},{'op':'copy','from':'/a','path':'/a/7'},"
               "{'op':'copy','from':'/a','path':'/a/8'},{'op':'copy','from':'/a','path':'/a/9'}]}",
     .want = TS_ETOOBIG, .code = "too_large", .why = "(copy): the document and its bookkeeping"},
    {.name = "work: a cheap message cannot keep the engine busy", .max_bytes = 600,
     .init = DOC("{'a':'" S200 "'}"),
     .change = "{'patch':["
               "{'op':'copy','from':'/a','path':'/b'},{'op':'remove','path':'/b'},"
               "{'op':'copy','from':'/a','path':'/b'},{'op':'remove','path':'/b'},"
               "{'op':'copy','from':'/a','path':'/b'},{'op':'remove','path':'/b'},"
               "{'op':'copy','from':'/a','path':'/b'},{'op':'remove','path':'/b'},"
               "{'op':'copy','from':'/a','path':'/b'},{'op':'remove','path':'/b'},"
               "{'op':'copy','from':'/a','path':'/b'},{'op':'remove','path':'/b'},"
               "{'op':'copy','from':'/a','path':'/b'},{'op':'remove','path':'/b'},"
               "{'op':'copy','from':'/a','path':'/b'},{'op':'remove','path':'/b'},"
               "{'op':'copy','from':'/a','path':'/b'},{'op':'remove','path':'/b'},"
               "{'op':'copy','from':'/a','path':'/b'},{'op':'remove','path':'/b'},"
               "{'op':'copy','from':'/a','path':'/b'},{'op':'remove','path':'/b'},"
               "{'op':'copy','from':'/a','path':'/b'},{'op':'remove','path':'/b'},"
               "{'op':'test','path':'','value':{}}]}",
     .want = TS_ETOOBIG, .code = "too_large",
     .why = "the change copies and rewrites too much (over 8 times max_bytes); split it"},
    {.name = "atomic: a late bad path undoes everything", .rules = RULES_CS,
     .init = ST("{'x':{'y':1},'tags':['q'],'counters':{'c':1}}", "{'/x/y':" E(1, 1, "o") "}"),
     .change = "{'patch':[{'op':'replace','path':'/x/y','value':2},"
               "{'op':'add','path':'/x/z','value':{}},{'op':'incr','path':'/counters/c','value':1},"
               "{'op':'incr','path':'/counters/n','value':1},"
               "{'op':'sadd','path':'/tags','value':'r'},{'op':'srem','path':'/tags','value':'q'},"
               "{'op':'remove','path':'/x'},{'op':'add','path':'/nope/a','value':1}]}",
     .want = TS_EPROTO, .code = "bad_path", .why = "op 8 (add): the parent /nope does not exist"},
    {.name = "atomic: a failed test undoes a merge-like patch", .init = DOC("{'a':{'b':[1,2]}}"),
     .change = "{'patch':[{'op':'add','path':'/a/b/0','value':0},"
               "{'op':'test','path':'/a/b/0','value':1}]}",
     .want = TS_EPROTO, .code = "test_failed"},
};

static void run_case(const st_case_t *c) {
    ts_sess_rules_t *rules = NULL;
    char why[200] = "";
    if (c->rules) {
        char *r = q(c->rules);
        if (ts_sess_rules_parse(r, strlen(r), &rules, why, sizeof why) != 0)
            fail_msg("row '%s': rules: %s", c->name, why);
        free(r);
    }
    json_t *init = c->init ? qj(c->init) : NULL;
    ts_sess_state_t *st = NULL;
    if (init) {
        if (ts_sess_state_load(init, &st, why, sizeof why) != 0)
            fail_msg("row '%s': load: %s", c->name, why);
    } else {
        st = ts_sess_state_new();
    }
    json_t *before = ts_sess_state_dump(st);
    char *before_s = dumps(before);
    size_t before_bytes = ts_sess_state_bytes(st);
    assert_int_equal(before_bytes, compact_size(ts_sess_state_doc(st)));

    json_t *change = qj(c->change);
    ts_sess_state_ctx_t ctx = {.ver = c->ver ? c->ver : 10,
                               .base = c->base,
                               .has_base = c->has_base,
                               .hlc = c->hlc ? c->hlc : 1000,
                               .actor = c->actor ? c->actor : "me",
                               .max_ops = c->max_ops,
                               .max_bytes = c->max_bytes};
    ts_sess_state_outcome_t o;
    int rc = ts_sess_state_apply(st, rules, change, &ctx, &o);
    if (rc != c->want)
        fail_msg("row '%s': rc %s, want %s (%s: %s)", c->name, ts_err_name(rc),
                 ts_err_name(c->want), o.code, o.why);
    json_t *after = ts_sess_state_dump(st);
    char *after_s = dumps(after);
    assert_int_equal(ts_sess_state_bytes(st), compact_size(ts_sess_state_doc(st)));
    if (rc != 0) {
        if (c->code && strcmp(o.code, c->code) != 0)
            fail_msg("row '%s': code '%s', want '%s' (%s)", c->name, o.code, c->code, o.why);
        if (c->why && !strstr(o.why, c->why))
            fail_msg("row '%s': why '%s' lacks '%s'", c->name, o.why, c->why);
        json_t *w = json_string(o.why); /* one line of valid UTF-8 */
        assert_non_null(w);
        json_decref(w);
        assert_null(strchr(o.why, '\n'));
        if (strcmp(before_s, after_s) != 0)
            fail_msg("row '%s': refused, but the state changed:\n  %s\n  %s", c->name, before_s,
                     after_s);
        assert_int_equal(ts_sess_state_bytes(st), before_bytes);
        assert_null(o.effects);
        assert_null(o.meta);
        assert_null(o.results);
        if (rc == TS_ECONFLICT) assert_non_null(o.conflicts);
        if (c->conflicts) expect_json(c->name, "conflicts", o.conflicts, c->conflicts);
    } else {
        if (o.code[0]) fail_msg("row '%s': applied with a code '%s'", c->name, o.code);
        if (c->effects) expect_json(c->name, "effects", o.effects, c->effects);
        if (c->results) expect_json(c->name, "results", o.results, c->results);
        if (c->doc) expect_json(c->name, "doc", ts_sess_state_doc(st), c->doc);
        if (c->meta) expect_json(c->name, "meta", json_object_get(after, "meta"), c->meta);
        /* the fold property, through JSON text */
        ts_sess_state_t *st2 = NULL;
        if (init)
            assert_int_equal(ts_sess_state_load(init, &st2, why, sizeof why), 0);
        else
            st2 = ts_sess_state_new();
        json_t *eff = roundtrip(o.effects), *meta = roundtrip(o.meta);
        if (ts_sess_state_fold(st2, eff, meta, why, sizeof why) != 0)
            fail_msg("row '%s': fold refused its own entry: %s", c->name, why);
        json_t *folded = ts_sess_state_dump(st2);
        if (!json_equal(folded, after)) {
            char *f = dumps(folded);
            fail_msg("row '%s': fold differs\n  apply %s\n   fold %s", c->name, after_s, f);
        }
        assert_int_equal(ts_sess_state_bytes(st2), ts_sess_state_bytes(st));
        json_decref(folded);
        json_decref(eff);
        json_decref(meta);
        ts_sess_state_free(st2);
    }
    ts_sess_state_outcome_clear(&o);
    assert_null(o.effects);
    free(before_s);
    free(after_s);
    json_decref(before);
    json_decref(after);
    json_decref(change);
    json_decref(init);
    ts_sess_state_free(st);
    ts_sess_rules_free(rules);
}

static void table(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
}

/* ---- snapshots and replays: their refusals ---- */

static const struct {
    const char *snap, *why;
} load_cases[] = {
    {"[]", "snapshot: not an object"},
    {"{'meta':{}}", "doc must be an object"},
    {"{'doc':[],'meta':{}}", "doc must be an object"},
    {"{'doc':{},'meta':[]}", "meta must be an object"},
    {"{'doc':{},'x':1}", "unknown member \"x\""},
    {"{'doc':{},'meta':{'a':" E(1, 1, "x") "}}", "meta unit \"a\" is not a JSON Pointer"},
    {"{'doc':{},'meta':{'/a':1}}", "the meta entry of /a is not an object"},
    {"{'doc':{},'meta':{'/a':{'v':1,'h':1}}}", "lacks v, h or a"},
    {"{'doc':{},'meta':{'/a':{'v':-1,'h':1,'a':'x'}}}", "not a non-negative integer"},
    {"{'doc':{},'meta':{'/a':{'v':1,'h':1.5,'a':'x'}}}", "not a non-negative integer"},
    {"{'doc':{},'meta':{'/a':{'v':1,'h':1,'a':2}}}", "actor (a) that is not a string"},
    {"{'doc':{},'meta':{'/a':{'v':1,'h':1,'a':'x','z':0}}}", "unknown member"},
    {"{'doc':{},'meta':{'/a':{'v':1,'h':1,'a':'x','t':[]}}}",
     "set tags (t) that are not an object"},
    {"{'doc':{},'meta':{'/a':{'v':1,'h':1,'a':'x','t':{'1':1}}}}", "not arrays"},
    {"{'doc':{},'meta':{'/a':{'v':1,'h':1,'a':'x','t':{'1':['1']}}}}", "set tag that is not"},
};

static void load_refusals(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof load_cases / sizeof load_cases[0]; i++) {
        json_t *snap = qj(load_cases[i].snap);
        ts_sess_state_t *st = (ts_sess_state_t *)1;
        char why[200] = "";
        assert_int_equal(ts_sess_state_load(snap, &st, why, sizeof why), TS_EPROTO);
        assert_null(st);
        if (!strstr(why, load_cases[i].why))
            fail_msg("snapshot %s: why '%s' lacks '%s'", load_cases[i].snap, why,
                     load_cases[i].why);
        json_decref(snap);
    }
    /* a valid one round-trips through dump, and meta may be left out */
    json_t *snap = qj("{'doc':{'a':[1,{'b':null}]},'meta':{'/a':{'v':1,'h':2,'a':'x','t':{}}}}");
    ts_sess_state_t *st;
    char why[200];
    assert_int_equal(ts_sess_state_load(snap, &st, why, sizeof why), 0);
    json_t *d = ts_sess_state_dump(st);
    assert_true(json_equal(d, snap));
    assert_int_equal(ts_sess_state_bytes(st), strlen("{\"a\":[1,{\"b\":null}]}"));
    assert_true(json_is_null(ts_sess_state_get(st, "/a/1/b")));
    assert_null(ts_sess_state_get(st, "/a/2"));
    /* the dump is the caller's: changing it leaves the state alone */
    json_object_set_new(json_object_get(d, "doc"), "z", json_true());
    assert_null(ts_sess_state_get(st, "/z"));
    json_decref(d);
    ts_sess_state_free(st);
    json_decref(snap);
    snap = qj("{'doc':{}}");
    assert_int_equal(ts_sess_state_load(snap, &st, why, sizeof why), 0);
    ts_sess_state_free(st);
    json_decref(snap);
}

static const struct {
    const char *effects, *meta, *why;
} fold_cases[] = {
    {"{}", "[]", "effects and meta must be arrays"},
    {"[1]", "[]", "effect 1: not an object"},
    {"[{'op':'set'}]", "[]", "effect 1: needs op and path"},
    {"[{'op':'put','path':'/a','value':1}]", "[]", "op must be set or del"},
    {"[{'op':'set','path':'a','value':1}]", "[]", "path is not a JSON Pointer"},
    {"[{'op':'set','path':'/a'}]", "[]", "set needs a value"},
    {"[{'op':'set','path':'','value':[]}]", "[]", "root can only be set to an object"},
    {"[{'op':'del','path':''}]", "[]", "root can only be set"},
    {"[{'op':'set','path':'/x/0/y','value':1}]", "[]", "effect 1: /x is not an object"},
    {"[{'op':'set','path':'/n/y','value':1}]", "[]", "/n is not an object"},
    {"[{'op':'del','path':'/x/0'}]", "[]", "/x is not an object"},
    {"[{'op':'set','path':'/ok','value':1},{'op':'set','path':'/n/q','value':1}]", "[]",
     "effect 2"},
    {"[]", "[1]", "meta 1: needs u"},
    {"[]", "[{'u':'x','m':" E(1, 1, "a") "}]", "meta 1: u is not a JSON Pointer"},
    {"[]", "[{'u':'/x','m':{'v':1}}]", "meta 1: the entry lacks"},
};

static void fold_refusals(void **state) {
    (void)state;
    json_t *snap = qj("{'doc':{'x':[{'y':0}],'n':3},'meta':{'/x':" E(1, 1, "a") "}}");
    for (size_t i = 0; i < sizeof fold_cases / sizeof fold_cases[0]; i++) {
        ts_sess_state_t *st;
        char why[200] = "";
        assert_int_equal(ts_sess_state_load(snap, &st, why, sizeof why), 0);
        json_t *e = qj(fold_cases[i].effects), *m = qj(fold_cases[i].meta);
        assert_int_equal(ts_sess_state_fold(st, e, m, why, sizeof why), TS_EPROTO);
        if (!strstr(why, fold_cases[i].why))
            fail_msg("fold %s %s: why '%s' lacks '%s'", fold_cases[i].effects, fold_cases[i].meta,
                     why, fold_cases[i].why);
        /* refused as a whole */
        json_t *d = ts_sess_state_dump(st);
        assert_true(json_equal(d, snap));
        json_decref(d);
        json_decref(e);
        json_decref(m);
        ts_sess_state_free(st);
    }
    /* del of an absent path, or under a scalar, is nothing; set creates parents */
    ts_sess_state_t *st;
    char why[200];
    assert_int_equal(ts_sess_state_load(snap, &st, why, sizeof why), 0);
    json_t *e = qj("[{'op':'del','path':'/q/r'},{'op':'del','path':'/n/r'},"
                   "{'op':'set','path':'/p/q/r','value':[1]}]"),
           *m = qj("[{'u':'','m':" E(2, 2, "b") "}]");
    assert_int_equal(ts_sess_state_fold(st, e, m, why, sizeof why), 0);
    expect_json("fold", "doc", ts_sess_state_doc(st), "{'x':[{'y':0}],'n':3,'p':{'q':{'r':[1]}}}");
    json_t *d = ts_sess_state_dump(st);
    expect_json("fold", "meta", json_object_get(d, "meta"), "{'':" E(2, 2, "b") "}");
    assert_int_equal(ts_sess_state_bytes(st), compact_size(ts_sess_state_doc(st)));
    json_decref(d);
    json_decref(e);
    json_decref(m);
    ts_sess_state_free(st);
    json_decref(snap);
}

/* The outcome shares subtrees with the document: a later change must not
 * alter what an earlier outcome (or a dump taken before it) shows. */
static void outcomes_are_stable(void **state) {
    (void)state;
    ts_sess_state_t *st = ts_sess_state_new();
    ts_sess_state_ctx_t ctx = {.ver = 1, .hlc = 5, .actor = "a"};
    ts_sess_state_outcome_t o1, o2;
    json_t *c1 = qj("{'merge':{'a':{'b':{'c':1}}}}");
    json_t *c2 = qj("{'merge':{'a':{'b':{'c':2,'d':3}}}}");
    assert_int_equal(ts_sess_state_apply(st, NULL, c1, &ctx, &o1), 0);
    json_t *doc1 = ts_sess_state_doc(st);
    json_incref(doc1);
    ctx.ver = 2;
    assert_int_equal(ts_sess_state_apply(st, NULL, c2, &ctx, &o2), 0);
    expect_json("stable", "first effects", o1.effects,
                "[{'op':'set','path':'/a','value':{'b':{'c':1}}}]");
    expect_json("stable", "old document", doc1, "{'a':{'b':{'c':1}}}");
    expect_json("stable", "second effects", o2.effects,
                "[{'op':'set','path':'/a/b/c','value':2},{'op':'set','path':'/a/b/d','value':3}]");
    ts_sess_state_outcome_clear(&o1);
    ts_sess_state_outcome_clear(&o2);
    json_decref(doc1);
    json_decref(c1);
    json_decref(c2);
    ts_sess_state_free(st);
}

/* Changes that touch many containers, or go past the path limits. */
static void big_changes(void **state) {
    (void)state;
    ts_sess_state_t *st = ts_sess_state_new();
    ts_sess_state_ctx_t ctx = {.ver = 1, .hlc = 5, .actor = "a"};
    ts_sess_state_outcome_t o;
    json_t *init = json_object(), *m = json_object();
    for (int i = 0; i < 40; i++) {
        char k[8];
        snprintf(k, sizeof k, "o%d", i);
        json_object_set_new(init, k, json_pack("{s{si}}", "x", "y", i));
        json_object_set_new(m, k, json_pack("{s{si}}", "x", "z", i));
    }
    json_t *c = json_pack("{so}", "merge", init);
    assert_int_equal(ts_sess_state_apply(st, NULL, c, &ctx, &o), 0);
    ts_sess_state_outcome_clear(&o);
    json_decref(c);
    /* 40 members, each copied on write: fold still agrees */
    json_t *snap = ts_sess_state_dump(st);
    c = json_pack("{so}", "merge", m);
    ctx.ver = 2;
    assert_int_equal(ts_sess_state_apply(st, NULL, c, &ctx, &o), 0);
    assert_int_equal(json_array_size(o.effects), 40);
    ts_sess_state_t *st2;
    char why[200];
    assert_int_equal(ts_sess_state_load(snap, &st2, why, sizeof why), 0);
    assert_int_equal(ts_sess_state_fold(st2, o.effects, o.meta, why, sizeof why), 0);
    json_t *d1 = ts_sess_state_dump(st), *d2 = ts_sess_state_dump(st2);
    assert_true(json_equal(d1, d2));
    assert_int_equal(ts_sess_state_bytes(st), compact_size(ts_sess_state_doc(st)));
    json_decref(d1);
    json_decref(d2);
    json_decref(snap);
    json_decref(c);
    ts_sess_state_outcome_clear(&o);
    ts_sess_state_free(st2);

    /* a member name that makes the path longer than 1024 bytes */
    char key[1100];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    c = json_pack("{s{si}}", "merge", key, 1);
    assert_int_equal(ts_sess_state_apply(st, NULL, c, &ctx, &o), TS_EPROTO);
    assert_string_equal(o.code, "bad_change");
    assert_non_null(strstr(o.why, "is too long (1024 bytes, 64 levels at most)"));
    ts_sess_state_outcome_clear(&o);
    json_decref(c);

    /* nested 65 levels into an existing 65-level object */
    json_t *deep = json_integer(1), *patch = json_integer(2);
    for (int i = 0; i < 65; i++) {
        deep = json_pack("{so}", "d", deep);
        patch = json_pack("{so}", "d", patch);
    }
    c = json_pack("{s{so}}", "merge", "deep", deep);
    assert_int_equal(ts_sess_state_apply(st, NULL, c, &ctx, &o), 0);
    ts_sess_state_outcome_clear(&o);
    json_decref(c);
    c = json_pack("{s{so}}", "merge", "deep", patch);
    assert_int_equal(ts_sess_state_apply(st, NULL, c, &ctx, &o), TS_EPROTO);
    assert_non_null(strstr(o.why, "64 levels"));
    ts_sess_state_outcome_clear(&o);
    json_decref(c);

    /* nesting: at most 512 containers, however the value gets there */
    json_t *v = json_array();
    for (int i = 1; i < 500; i++) v = json_pack("[o]", v); /* 500 levels */
    c = json_pack("{s[{ssssso}]}", "patch", "op", "add", "path", "/n", "value", v);
    ctx.actor = "a";
    if (ts_sess_state_apply(st, NULL, c, &ctx, &o) != 0) fail_msg("%s: %s", o.code, o.why);
    ts_sess_state_outcome_clear(&o);
    json_decref(c);
    c = qj("{'patch':[{'op':'add','path':'/b','value':{'c':{'d':{'e':{'f':{'g':{'h':{'i':{'j':"
           "{'k':{'l':{'m':{},'m2':{}}}}}}}}}}}}},"
           "{'op':'copy','from':'/n','path':'/b/c/d/e/f/g/h/i/j/k/l/m'}]}");
    assert_int_equal(ts_sess_state_apply(st, NULL, c, &ctx, &o), 0); /* 12 + 500 */
    ts_sess_state_outcome_clear(&o);
    json_decref(c);
    c = qj("{'patch':[{'op':'move','from':'/n','path':'/b/c/d/e/f/g/h/i/j/k/l/m2/x'}]}");
    assert_int_equal(ts_sess_state_apply(st, NULL, c, &ctx, &o), TS_ETOOBIG); /* 13 + 500 */
    assert_string_equal(o.code, "too_large");
    assert_non_null(strstr(o.why, "op 1 (move): the document would nest deeper than 512 levels "
                                  "at /b/c/d/e/f/g/h/i/j/k/l/m2/x"));
    ts_sess_state_outcome_clear(&o);
    json_decref(c);
    v = json_array();
    for (int i = 1; i < 512; i++) v = json_pack("[o]", v); /* 512 levels */
    c = json_pack("{s{so}}", "merge", "r", v);
    assert_int_equal(ts_sess_state_apply(st, NULL, c, &ctx, &o), TS_ETOOBIG); /* 1 + 512 */
    ts_sess_state_outcome_clear(&o);
    json_decref(c);
    c = qj("{'patch':[{'op':'sadd','path':'/b/c','value':1}]}"); /* set rule-less: mismatch */
    assert_int_equal(ts_sess_state_apply(st, NULL, c, &ctx, &o), TS_EPROTO);
    ts_sess_state_outcome_clear(&o);
    json_decref(c);

    /* an actor that is not UTF-8 (the caller's mistake) is refused, not stored */
    ctx.actor = "\xff";
    c = qj("{'merge':{'a':1}}");
    assert_int_equal(ts_sess_state_apply(st, NULL, c, &ctx, &o), TS_EPROTO);
    assert_string_equal(o.code, "bad_change");
    ts_sess_state_outcome_clear(&o);
    json_decref(c);
    ts_sess_state_free(st);
}

/* ---- random walk: fold, atomicity and convergence ---- */

static uint64_t rng_state;
static uint32_t rnd(uint32_t n) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static json_t *rnd_value(int depth) {
    switch (rnd(depth > 2 ? 5 : 8)) {
    case 0: return json_integer((json_int_t)rnd(5));
    case 1: return json_string(rnd(2) ? "x" : "y");
    case 2: return json_null();
    case 3: return json_real(rnd(4) / 2.0);
    case 4: return json_integer(rnd(3) ? 1 : INT64_MAX);
    case 5: case 6: {
        json_t *o = json_object();
        for (uint32_t i = rnd(3); i > 0; i--) {
            char k[2] = {(char)('a' + rnd(3)), 0};
            json_object_set_new(o, k, rnd_value(depth + 1));
        }
        return o;
    }
    default: {
        json_t *a = json_array();
        for (uint32_t i = rnd(3); i > 0; i--) json_array_append_new(a, rnd_value(depth + 1));
        return a;
    }
    }
}

static const char *const heads[] = {"a", "b", "counters", "tags", "doc", "v", "0"};

/* A path under heads[h]; counters and sets get their unit depth mostly. */
static json_t *rnd_path(uint32_t h) {
    static const char *const segs[] = {"a", "b", "0", "1", "-", "c"};
    char p[64];
    size_t n = (size_t)snprintf(p, sizeof p, "/%s", heads[h]);
    uint32_t d = rnd(6), depth = d < 3 ? 0 : d < 5 ? 1 : 2;
    if (!strcmp(heads[h], "counters") && rnd(4)) depth = 1;
    if (!strcmp(heads[h], "tags") && rnd(4)) depth = 0;
    for (; depth > 0; depth--) n += (size_t)snprintf(p + n, sizeof p - n, "/%s", segs[rnd(6)]);
    if (rnd(30) == 0) return json_string("");
    return json_string(p);
}

static json_t *rnd_change(void) {
    if (rnd(3) == 0) {
        json_t *m = json_object();
        for (uint32_t i = rnd(3) + 1; i > 0; i--) {
            static const char *const k[] = {"a", "b", "counters", "tags", "doc", "v"};
            json_object_set_new(m, k[rnd(6)], rnd(4) ? rnd_value(0) : json_null());
        }
        return json_pack("{so}", "merge", m);
    }
    static const char *const ops[] = {"add",  "remove", "replace", "move", "copy",
                                      "test", "incr",   "sadd",    "srem"};
    json_t *ops_a = json_array();
    for (uint32_t i = rnd(4) ? 1 : 2 + rnd(3); i > 0; i--) {
        uint32_t h = rnd(7);
        /* mostly the operations the path's strategy takes */
        const char *op = ops[rnd(6)];
        if (!strcmp(heads[h], "counters") && rnd(5)) op = rnd(4) ? "incr" : "remove";
        if (!strcmp(heads[h], "tags") && rnd(5)) {
            uint32_t r = rnd(5);
            op = r < 2 ? "sadd" : r < 4 ? "srem" : "remove";
        }
        if (rnd(20) == 0) op = ops[rnd(9)];
        json_t *o = json_pack("{ssso}", "op", op, "path", rnd_path(h));
        if (!strcmp(op, "move") || !strcmp(op, "copy"))
            json_object_set_new(o, "from", rnd_path(rnd(7)));
        if (!strcmp(op, "incr"))
            json_object_set_new(o, "value", rnd(3) ? json_integer((json_int_t)rnd(5) - 2)
                                                   : json_real(0.5));
        else if (strcmp(op, "remove") != 0)
            json_object_set_new(o, "value", rnd_value(1));
        json_array_append_new(ops_a, o);
    }
    return json_pack("{so}", "patch", ops_a);
}

static void random_walk(void **state) {
    (void)state;
    static const char *const rule_files[] = {
        NULL, RULES_CS,
        "{'default':'version','rules':[{'path':'/counters/*','strategy':'counter'},"
        "{'path':'/tags','strategy':'set'},{'path':'/a/*/**','strategy':'lww'}]}",
    };
    static const char *const actors[] = {"x", "y", "z"};
    int applied = 0, refused = 0;
    for (size_t f = 0; f < 3; f++) {
        rng_state = 0x9e3779b97f4a7c15ull + f;
        ts_sess_rules_t *rules = NULL;
        char why[200];
        if (rule_files[f]) {
            char *r = q(rule_files[f]);
            assert_int_equal(ts_sess_rules_parse(r, strlen(r), &rules, why, sizeof why), 0);
            free(r);
        }
        ts_sess_state_t *a = ts_sess_state_new(), *b = ts_sess_state_new(),
                        *c = ts_sess_state_new();
        uint64_t ver = 0;
        for (int it = 0; it < 1500; it++) {
            json_t *change = rnd_change();
            ts_sess_state_ctx_t ctx = {.ver = ver + 1,
                                       .base = ver ? rnd((uint32_t)ver + 1) : 0,
                                       .has_base = rnd(5) != 0,
                                       .hlc = 1 + rnd(60),
                                       .actor = actors[rnd(3)],
                                       .max_bytes = 400};
            json_t *before = ts_sess_state_dump(a);
            char *before_s = dumps(before);
            ts_sess_state_outcome_t oa, oc;
            int ra = ts_sess_state_apply(a, rules, change, &ctx, &oa);
            int rcc = ts_sess_state_apply(c, rules, change, &ctx, &oc);
            assert_int_equal(ra, rcc);
            assert_string_equal(oa.code, oc.code);
            json_t *da = ts_sess_state_dump(a), *dc = ts_sess_state_dump(c);
            char *sa = dumps(da), *sc = dumps(dc);
            if (strcmp(sa, sc) != 0) fail_msg("diverged at %d:\n  %s\n  %s", it, sa, sc);
            assert_int_equal(ts_sess_state_bytes(a), compact_size(ts_sess_state_doc(a)));
            if (ra == 0) {
                applied++;
                ver++;
                assert_true(json_equal(oa.effects, oc.effects));
                json_t *e = roundtrip(oa.effects), *m = roundtrip(oa.meta);
                if (ts_sess_state_fold(b, e, m, why, sizeof why) != 0)
                    fail_msg("step %d: fold: %s", it, why);
                json_t *db = ts_sess_state_dump(b);
                if (!json_equal(db, da)) {
                    char *sb = dumps(db), *ch = dumps(change);
                    fail_msg("step %d: fold differs\n change %s\n before %s\n  apply %s\n"
                             "   fold %s",
                             it, ch, before_s, sa, sb);
                }
                assert_int_equal(ts_sess_state_bytes(b), ts_sess_state_bytes(a));
                json_decref(db);
                json_decref(e);
                json_decref(m);
            } else {
                refused++;
                assert_true(oa.code[0] && oa.why[0]);
                if (strcmp(before_s, sa) != 0) {
                    char *ch = dumps(change);
                    fail_msg("step %d: refused (%s) but changed\n change %s", it, oa.why, ch);
                }
            }
            ts_sess_state_outcome_clear(&oa);
            ts_sess_state_outcome_clear(&oc);
            free(before_s);
            free(sa);
            free(sc);
            json_decref(before);
            json_decref(da);
            json_decref(dc);
            json_decref(change);
        }
        ts_sess_state_free(a);
        ts_sess_state_free(b);
        ts_sess_state_free(c);
        ts_sess_rules_free(rules);
    }
    /* the walk must exercise both sides */
    assert_true(applied > 1200);
    assert_true(refused > 1200);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table),
        cmocka_unit_test(load_refusals),
        cmocka_unit_test(fold_refusals),
        cmocka_unit_test(outcomes_are_stable),
        cmocka_unit_test(big_changes),
        cmocka_unit_test(random_walk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
