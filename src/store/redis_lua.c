/* redis_lua.c - the Lua scripts of the "redis" store backend (redis.c),
 * one per verb, each atomic on one Cluster slot and on Redis's clock; kept
 * apart from the code that sends them so that redis.c stays readable. The
 * key layout they assume is described at the top of redis.c. */
#include <stdio.h>
#include <string.h>

#include <nettle/sha1.h>

#include "store/redis_lua.h"
#include "store/ts_store.h"

#define TS_STR_(x) #x
#define TS_STR(x) TS_STR_(x)

/* ---- the lease scripts ----
 * KEYS[1] = the lease hash. Every script answers {status, holder, term,
 * expires_at_ms}: status 0 ok, 1 held by another (acquire), 2 stale. */
#define LUA_NOW                                                                \
    "local tm = redis.call('TIME') local now = tm[1] * 1000 + math.floor(tm[2] / 1000) "
#define LUA_READ                                                               \
    "local v = redis.call('HMGET', KEYS[1], 'h', 't', 'x') "                   \
    "local h, t, x = v[1] or '', tonumber(v[2] or '0'), tonumber(v[3] or '0') " \
    "if x <= now then h = '' end "

static const char lua_acquire[] =
    LUA_NOW LUA_READ
    "local ttl = tonumber(ARGV[2]) "
    "if h ~= '' and h ~= ARGV[1] then return {1, h, t, x} end "
    "if h == '' then t = t + 1 end "
    "redis.call('HSET', KEYS[1], 'h', ARGV[1], 't', t, 'x', now + ttl) "
    "return {0, ARGV[1], t, now + ttl}";

static const char lua_renew[] =
    LUA_NOW LUA_READ
    "if h ~= ARGV[1] or t ~= tonumber(ARGV[2]) then return {2, h, t, x} end "
    "local e = now + tonumber(ARGV[3]) "
    "redis.call('HSET', KEYS[1], 'x', e) "
    "return {0, h, t, e}";

static const char lua_release[] =
    LUA_NOW LUA_READ
    "if h ~= ARGV[1] or t ~= tonumber(ARGV[2]) then return {2, h, t, x} end "
    "redis.call('HSET', KEYS[1], 'h', '', 'x', 0) "
    "return {0, '', t, 0}";

/* A compare-and-set on the last granted term, held or lapsed or released. */
static const char lua_transfer[] =
    LUA_NOW LUA_READ
    "if t == 0 or t ~= tonumber(ARGV[1]) then return {2, h, t, x} end "
    "local e = now + tonumber(ARGV[3]) "
    "redis.call('HSET', KEYS[1], 'h', ARGV[2], 't', t + 1, 'x', e) "
    "return {0, ARGV[2], t + 1, e}";

static const char lua_get[] = LUA_NOW LUA_READ "return {0, h, t, x}";

/* ---- the registry scripts ----
 * An entry is a hash <prefix>r{G}<session>\x1f<device>\x1f<tab> {s, d, t, u,
 * n, m (data), x (expiry, ms)}, kept by Redis 10 minutes past its expiry so
 * that the sweep can still report it; indexes are sets <prefix>i{G}s:<session>,
 * i{G}u:<user>, i{G}d:<device> of entry keys; <prefix>exp{G} orders the keys
 * by expiry (G: the session's group). ARGV carries the index prefix
 * <prefix>i{G} for the keys a script finds in an entry. Answers: 0, -1 (the
 * bound), -2 (not found). */
#define LUA_GRACE "600000"
static const char lua_reg_put[] =
    LUA_NOW
    "local old = redis.call('HGET', KEYS[1], 'u') "
    "if not old then "
    "  if redis.call('ZCARD', KEYS[5]) >= tonumber(ARGV[9]) then return -1 end "
    "elseif old ~= ARGV[4] then redis.call('SREM', ARGV[8] .. 'u:' .. old, KEYS[1]) end "
    "local x = now + tonumber(ARGV[7]) "
    "redis.call('HSET', KEYS[1], 's', ARGV[1], 'd', ARGV[2], 't', ARGV[3], 'u', ARGV[4], "
    "           'n', ARGV[5], 'm', ARGV[6], 'x', x) "
    "redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[7]) + " LUA_GRACE ") "
    "redis.call('SADD', KEYS[2], KEYS[1]) redis.call('SADD', KEYS[3], KEYS[1]) "
    "redis.call('SADD', KEYS[4], KEYS[1]) redis.call('ZADD', KEYS[5], x, KEYS[1]) "
    "return 0";

static const char lua_reg_renew[] =
    LUA_NOW
    "local x = tonumber(redis.call('HGET', KEYS[1], 'x') or '0') "
    "if x <= now then return -2 end "
    "local nx = now + tonumber(ARGV[1]) "
    "redis.call('HSET', KEYS[1], 'x', nx) "
    "redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) + " LUA_GRACE ") "
    "redis.call('ZADD', KEYS[2], nx, KEYS[1]) "
    "return 0";

#define LUA_UNINDEX(k, v)                                                      \
    "redis.call('SREM', ARGV[1] .. 's:' .. " v "[1], " k ") "                  \
    "redis.call('SREM', ARGV[1] .. 'u:' .. " v "[4], " k ") "                  \
    "redis.call('SREM', ARGV[1] .. 'd:' .. " v "[2], " k ") "

/* Removed whether expired or not; an expired one answers not found. */
static const char lua_reg_remove[] =
    LUA_NOW
    "local v = redis.call('HMGET', KEYS[1], 's', 'd', 't', 'u', 'x') "
    "if not v[1] then return -2 end "
    "redis.call('DEL', KEYS[1]) redis.call('ZREM', KEYS[2], KEYS[1]) "
    LUA_UNINDEX("KEYS[1]", "v")
    "if tonumber(v[5]) <= now then return -2 end "
    "return 0";

/* The live entries of one index (dangling members pruned). */
static const char lua_reg_list[] =
    LUA_NOW
    "local out = {} "
    "for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do "
    "  local v = redis.call('HMGET', k, 's', 'd', 't', 'u', 'n', 'm', 'x') "
    "  if not v[1] then redis.call('SREM', KEYS[1], k) "
    "  elseif tonumber(v[7]) > now then out[#out + 1] = v end "
    "end "
    "return out";

/* Expired entries, each taken by exactly one sweep (the ZREM decides, so
 * every node sweeping one Redis reports each expiry once). */
static const char lua_reg_sweep[] =
    LUA_NOW
    "local out = {} "
    "for _, k in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, "
    "                               tonumber(ARGV[2]))) do "
    "  redis.call('ZREM', KEYS[1], k) "
    "  local v = redis.call('HMGET', k, 's', 'd', 't', 'u', 'n', 'm', 'x') "
    "  if v[1] then redis.call('DEL', k) " LUA_UNINDEX("k", "v") " out[#out + 1] = v end "
    "end "
    "return out";

/* ---- the log scripts ----
 * A session's log is a stream <prefix>l:{<session>} (field e: the event, t:
 * when it was appended, the node's wall clock in ms, which only retention
 * reads), and a hash <prefix>l:{<session>}:m with the trim mark and what
 * the history scripts below keep. Both keys carry the session as their hash
 * tag: one Cluster slot.
 *
 * Two layouts of entry ids. Layout 2 (every log this build creates): ids
 * 0-<seq>, so that Redis numbers the entries itself (XADD 0-*, Redis 7.0):
 * the stream's last id is the last seq (numbers are never reused: a trimmed
 * stream keeps its last id), and a plain commit needs no script at all
 * (redis.c send_fast: an XADD and an HMGET, about 2.2 us of Redis CPU
 * against 6.5 for a script, docs/PERFORMANCE.md). Its hash holds last =
 * 'v2': not a number,
 * so that an older tabsyncd's scripts fail on such a log (HINCRBY: "not an
 * integer") instead of appending ids of the other layout to it. Layout 1
 * (logs written by builds before it): ids <seq>-1 and the hash's last, the
 * last seq assigned, kept as before. A hash without last is a log not
 * written yet: it starts in layout 2, or in layout 1 from the scripts that
 * end in 1 (lua_commit1, ...), which a node sends with --redis-log-layout 1
 * while nodes of an earlier build still write to the same Redis (a rolling
 * upgrade: docs/DEPLOYMENT.md) -- unless its stream already has an entry:
 * a layout-2 node's XADD made it, and the mark that follows it is set here
 * instead. new1 says which: LUA_LOG_AS("true") in those scripts. */
#define LUA_LOG LUA_LOG_AS("false")
#define LUA_LOG_AS(new1)                                                       \
    "local new1 = " new1 " "                                                   \
    /* a stream id's seq, in either layout */                                  \
    "local function sq(id) local a, b = string.match(id, '^(%d+)-(%d+)$') "    \
    "  if a == '0' then return tonumber(b) end return tonumber(a) end "        \
    /* the id of seq n */                                                      \
    "local function idof(v2, n) if v2 then return '0-' .. n end return n .. '-1' end " \
    /* layout 2's last seq: the stream's last entry, or the trim mark when  \
     * every entry was trimmed (or none written) */                           \
    "local function top(trim) "                                                \
    "  local t = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1) "      \
    "  if #t > 0 then return sq(t[1][1]) end return trim end "                 \
    /* appends ARGV[1] at time tm, `last` the hash's field: its seq */         \
    "local function append(last, tm) "                                         \
    "  if not last then "                                                      \
    "    if new1 and #redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1) == 0 then " \
    "      last = '0' "                                                        \
    "    else redis.call('HSET', KEYS[2], 'last', 'v2') last = 'v2' end end "  \
    "  if last ~= 'v2' then "                                                  \
    "    local n = redis.call('HINCRBY', KEYS[2], 'last', 1) "                 \
    "    redis.call('XADD', KEYS[1], n .. '-1', 'e', ARGV[1], 't', tm) return n end " \
    "  return sq(redis.call('XADD', KEYS[1], '0-*', 'e', ARGV[1], 't', tm)) end "
/* The layout of a log whose hash has `last` = v: 2 unless v is a number. */
#define LUA_V2(v) "(not " v " or " v " == 'v2')"

/* KEYS: the log, its hash; ARGV: the event, an epoch for a new log, the
 * time. */
#define LUA_LOG_APPEND                                                         \
    "redis.call('HSETNX', KEYS[2], 'ep', ARGV[2]) "                            \
    "return append(redis.call('HGET', KEYS[2], 'last'), ARGV[3])"
static const char lua_log_append[] = LUA_LOG LUA_LOG_APPEND;
static const char lua_log_append1[] = LUA_LOG_AS("true") LUA_LOG_APPEND;

static const char lua_log_read[] =
    LUA_LOG
    "local m = redis.call('HMGET', KEYS[2], 'last', 'trim') "
    "local trim, v2 = tonumber(m[2] or '0'), " LUA_V2("m[1]") " "
    "local last = v2 and top(trim) or tonumber(m[1]) "
    "local from = tonumber(ARGV[1]) + 1 "
    "if from <= trim then from = trim + 1 end "
    "return {last, trim, redis.call('XRANGE', KEYS[1], idof(v2, from), '+', 'COUNT', "
    "                               tonumber(ARGV[2]))}";

static const char lua_log_trim[] =
    LUA_LOG
    "local m = redis.call('HMGET', KEYS[2], 'last', 'trim') "
    "local trim, v2 = tonumber(m[2] or '0'), " LUA_V2("m[1]") " "
    "local last = v2 and top(trim) or tonumber(m[1]) "
    "local upto = math.min(tonumber(ARGV[1]), last) "
    "if upto <= trim then return 0 end "
    "redis.call('XTRIM', KEYS[1], 'MINID', idof(v2, upto + 1)) "
    "redis.call('HSET', KEYS[2], 'trim', upto) "
    "return 0";

/* ---- the state scripts ----
 * A session's document is a hash <prefix>s:{<session>} {v: version, d: doc}.
 * Both answer {status (0, or 1 for a conflict), version, doc or false}. */
static const char lua_state_get[] =
    "local v = redis.call('HMGET', KEYS[1], 'v', 'd') "
    "return {0, tonumber(v[1] or '0'), v[2] or false}";

static const char lua_state_cas[] =
    "local v = redis.call('HMGET', KEYS[1], 'v', 'd') "
    "local ver = tonumber(v[1] or '0') "
    "if ver ~= tonumber(ARGV[1]) then return {1, ver, v[2] or false} end "
    "redis.call('HSET', KEYS[1], 'v', ver + 1, 'd', ARGV[2]) "
    "redis.call('HSETNX', KEYS[2], 'ep', ARGV[3]) "
    "return {0, ver + 1, ARGV[2]}";

/* ---- the history scripts ----
 * In the log's hash beside `last` and `trim`: ep (the epoch, set at the
 * first write, kept as text: 64 bits do not fit a Lua number), hv (the
 * state changes committed), bc (the chain broken last), ss, sv, sd (the
 * snapshot: its seq, state_ver, document). A client's exactly-once window
 * is a sorted set <log key>:w:<client> of "mut:seq" scored by mut, the
 * newest TS_STORE_MUT_WINDOW kept. */
/* KEYS: the log, its hash. */
static const char lua_sess_get[] =
    LUA_LOG
    "redis.call('HSETNX', KEYS[2], 'ep', ARGV[1]) "
    "local m = redis.call('HMGET', KEYS[2], 'ep', 'last', 'trim', 'hv', 'ss', 'sv', 'sd') "
    "if " LUA_V2("m[2]") " then m[2] = top(tonumber(m[3] or '0')) end "
    "return m";

/* KEYS: the log, its hash, the client's window, and (ARGV[10] == '1') the
 * fence lease. ARGV[10]: '0' no fence, '1' read the lease here, 'v' the
 * lease was read on its own slot: ARGV[11] the verdict ('0' held, '1' not:
 * ARGV[12] its term, '2' unknown), and the term that committed last under
 * fence ARGV[13] must not be newer than ARGV[7].
 * Answers {status, epoch, seq, state_ver, original or false, term}:
 * 0 appended, 1 duplicate, 2 too old, 3 stale fence, 4 conflict, 5 the
 * fence could not be read (TS_ESTORE). The window's size is read once: the
 * member added is new (no member has its score), so it grows by one. Each
 * redis.call costs ~1.2 us of Redis CPU beyond its command (measured with
 * redis-benchmark, docs/PERFORMANCE.md "Across nodes"). */
#define LUA_COMMIT \
    "local m = redis.call('HMGET', KEYS[2], 'ep', 'hv', 'bc', 'last') "        \
    "local ep, hv, chain = m[1] or '0', tonumber(m[2] or '0'), ARGV[6] "       \
    "local zc = 0 "                                                            \
    "local function broke() "                                                  \
    "  if chain ~= '0' and m[1] then redis.call('HSET', KEYS[2], 'bc', chain) end end "\
    "if ARGV[2] ~= '' then "                                                   \
    "  local mut = tonumber(ARGV[3]) "                                         \
    "  local f = redis.call('ZRANGEBYSCORE', KEYS[3], mut, mut) "              \
    "  if #f > 0 then "                                                        \
    "    local seq = tonumber(string.match(f[1], ':(%d+)$')) "                 \
    "    broke() "                                                             \
    "    local id = idof(" LUA_V2("m[4]") ", seq) "                            \
    "    local e = redis.call('XRANGE', KEYS[1], id, id) "                     \
    "    local orig = false "                                                  \
    "    if #e > 0 then orig = e[1][2][2] end "                                \
    "    return {1, ep, seq, hv, orig, 0} "                                    \
    "  end "                                                                   \
    "  zc = redis.call('ZCARD', KEYS[3]) "                                     \
    "  if zc >= " TS_STR(TS_STORE_MUT_WINDOW) " then "                         \
    "    local o = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES') "         \
    "    if mut < tonumber(o[2]) then broke() return {2, ep, 0, hv, false, 0} end "\
    "  end "                                                                   \
    "end "                                                                     \
    "if ARGV[10] == '1' then "                                                 \
    "  local v = redis.call('HMGET', KEYS[4], 'h', 't', 'x') "                 \
    "  local h, t, x = v[1] or '', tonumber(v[2] or '0'), tonumber(v[3] or '0') "\
    "  if x <= now then h = '' end "                                           \
    "  if h ~= ARGV[8] or t ~= tonumber(ARGV[7]) then broke() return {3, ep, 0, hv, false, t} end "\
    "elseif ARGV[10] == 'v' then "                                             \
    "  if ARGV[11] == '2' then broke() return {5, ep, 0, hv, false, 0} end "   \
    "  if ARGV[11] == '1' then broke() return {3, ep, 0, hv, false, tonumber(ARGV[12])} end "\
    "  local hw = tonumber(redis.call('HGET', KEYS[2], 'f:' .. ARGV[13]) or '0') "\
    "  if hw > tonumber(ARGV[7]) then broke() return {3, ep, 0, hv, false, hw} end "\
    "end "                                                                     \
    "if (ARGV[4] ~= 'any' and tonumber(ARGV[4]) ~= hv) or (chain ~= '0' and m[3] == chain) then "\
    "  broke() return {4, ep, 0, hv, false, 0} end "                           \
    "if not m[1] then ep = ARGV[9] redis.call('HSET', KEYS[2], 'ep', ep) end " \
    "if ARGV[10] == 'v' then redis.call('HSET', KEYS[2], 'f:' .. ARGV[13], ARGV[7]) end "\
    "local seq = append(m[4], now) "                                           \
    "if ARGV[5] == '1' then hv = redis.call('HINCRBY', KEYS[2], 'hv', 1) end " \
    "if ARGV[2] ~= '' then "                                                   \
    "  redis.call('ZADD', KEYS[3], tonumber(ARGV[3]), ARGV[3] .. ':' .. seq) " \
    "  local n = zc + 1 "                                                      \
    "  if n > " TS_STR(TS_STORE_MUT_WINDOW) " then "                           \
    "    redis.call('ZREMRANGEBYRANK', KEYS[3], 0, n - " TS_STR(TS_STORE_MUT_WINDOW) " - 1) end "\
    "end "                                                                     \
    "return {0, ep, seq, hv, false, 0}"
static const char lua_commit[] = LUA_NOW LUA_LOG LUA_COMMIT;
static const char lua_commit1[] = LUA_NOW LUA_LOG_AS("true") LUA_COMMIT;

/* lua_commit without its conditions (no client, version, chain or fence:
 * a plain event, the common commit): the same keys 1 and 2 and the same
 * answer, ARGV[1] the event, ARGV[2] the epoch to give a new session and
 * ARGV[3] the time. redis.c sends it only when its XADD was refused (a
 * layout-1 log, or Redis before 7.0). Each
 * redis.call costs Redis about 1 us and the script's arguments more (9.4 ->
 * 7.8 -> 6.5 us of Redis CPU per commit, docs/PERFORMANCE.md "Across
 * nodes"). */
#define LUA_COMMIT_PLAIN \
    "local m = redis.call('HMGET', KEYS[2], 'ep', 'hv', 'last') "              \
    "local ep = m[1] "                                                         \
    "if not ep then ep = ARGV[2] redis.call('HSET', KEYS[2], 'ep', ep) end "   \
    "local seq = append(m[3], ARGV[3]) "                                       \
    "return {0, ep, seq, tonumber(m[2] or '0'), false, 0}"
static const char lua_commit_plain[] = LUA_LOG LUA_COMMIT_PLAIN;
static const char lua_commit_plain1[] = LUA_LOG_AS("true") LUA_COMMIT_PLAIN;

/* KEYS: the log, its hash. -3: a session never written, or seq past its
 * last; -4: not newer. */
static const char lua_snap_put[] =
    LUA_LOG
    "local m = redis.call('HMGET', KEYS[2], 'ep', 'last', 'ss', 'trim') "
    "local seq = tonumber(ARGV[1]) "
    "if not m[1] then return -3 end "
    "local last = " LUA_V2("m[2]") " and top(tonumber(m[4] or '0')) or tonumber(m[2]) "
    "if seq > last then return -3 end "
    "if seq <= tonumber(m[3] or '0') then return -4 end "
    "redis.call('HSET', KEYS[2], 'ss', ARGV[1], 'sv', ARGV[2], 'sd', ARGV[3]) "
    "return 0";

/* Retention, from the sweep, one session (KEYS: its log and its hash):
 * drop the events that are older than both bounds (not among the newest
 * ARGV[1], and appended at least ARGV[2] ms ago) and covered by the
 * snapshot; at most 100 per sweep. An entry's time is its node's clock
 * (plain commits) or Redis's: a skew between them moves the age bound by
 * as much, which for a retention of hours is nothing. */
static const char lua_retain[] =
    LUA_NOW LUA_LOG
    "local m = redis.call('HMGET', KEYS[2], 'last', 'trim', 'ss') "
    "local trim, ss, v2 = tonumber(m[2] or '0'), tonumber(m[3] or '0'), " LUA_V2("m[1]") " "
    "local last = v2 and top(trim) or tonumber(m[1]) "
    "local upto = math.min(ss, last - tonumber(ARGV[1])) "
    "if upto <= trim then return 0 end "
    "local cut = trim "
    "for _, e in ipairs(redis.call('XRANGE', KEYS[1], idof(v2, trim + 1), idof(v2, upto), 'COUNT', 100)) do "
    "  local f, t = e[2], 0 "
    "  for i = 1, #f, 2 do if f[i] == 't' then t = tonumber(f[i + 1]) end end "
    "  if now - t < tonumber(ARGV[2]) then break end "
    "  cut = sq(e[1]) "
    "end "
    "if cut > trim then "
    "  redis.call('XTRIM', KEYS[1], 'MINID', idof(v2, cut + 1)) "
    "  redis.call('HSET', KEYS[2], 'trim', cut) "
    "end "
    "return 0";

/* A page of a group's sessions with a snapshot: {cursor, sessions}. */
static const char lua_retain_scan[] =
    "return redis.call('SSCAN', KEYS[1], ARGV[1], 'COUNT', 100)";

script_t ts_store__rds_scripts[S_COUNT] = {{lua_acquire, ""},   {lua_renew, ""},     {lua_release, ""},
                             {lua_transfer, ""},  {lua_get, ""},       {lua_reg_put, ""},
                             {lua_reg_renew, ""}, {lua_reg_remove, ""}, {lua_reg_list, ""},
                             {lua_reg_sweep, ""}, {lua_log_append, ""}, {lua_log_read, ""},
                             {lua_log_trim, ""}, {lua_state_get, ""}, {lua_state_cas, ""},
                             {lua_sess_get, ""}, {lua_commit, ""}, {lua_snap_put, ""},
                             {lua_retain, ""}, {lua_retain_scan, ""}, {lua_commit_plain, ""},
                             {lua_log_append1, ""}, {lua_commit1, ""}, {lua_commit_plain1, ""}};

/* Scripts that change what a caller was (or will be) answered: with
 * ?replicas=N their answers wait for WAIT (rconn_int.h). Not the sweep's
 * (an expiry lost in a failover is reported again, which beats one never
 * reported) nor retention's (trimming again is harmless). */
int ts_store__rds_script_writes(int script) {
    switch (script) {
    case S_ACQUIRE: case S_RENEW: case S_RELEASE: case S_TRANSFER:
    case S_REG_PUT: case S_REG_RENEW: case S_REG_REMOVE:
    case S_LOG_APPEND: case S_LOG_TRIM: case S_STATE_CAS: case S_COMMIT: case S_SNAP_PUT:
    case S_COMMIT_PLAIN: case S_LOG_APPEND1: case S_COMMIT1: case S_COMMIT_PLAIN1:
        return 1;
    default:
        return 0;
    }
}

/* EVALSHA's name of a script: the hex SHA-1 of its text. */
void ts_store__rds_sha1_hex(const char *src, char out[41]) {
    struct sha1_ctx ctx;
    uint8_t d[SHA1_DIGEST_SIZE];
    sha1_init(&ctx);
    sha1_update(&ctx, strlen(src), (const uint8_t *)src);
    sha1_digest(&ctx, sizeof d, d);
    for (int i = 0; i < SHA1_DIGEST_SIZE; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

