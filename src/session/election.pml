/* election.pml - a Promela model of tabsync's leader election
 * (docs/ELECTION.md), checked by Spin in `make test` through
 * tests/model/spin.sh. docs/ELECTION-MODEL.md maps each step here to the
 * code in tabsyncd, gives the bounds and the state counts, and records what
 * the checks found.
 *
 * What is in it: one scope whose lease lives in one store (term, holder,
 * expiry; acquire, renew, transfer, release, and the fenced commit, each
 * atomic as a store op is); two servers (event loops or nodes) deciding on
 * reads that may be stale; N tabs that lead when told, heartbeat, resign,
 * crash, and put the last term they held on leader-only actions at any
 * time; lossy channels that reorder; the store's clock and one drifting
 * clock per tab.
 *
 * Abstractions, and why each keeps every behaviour the properties depend on:
 *  - Time is discrete. The store's clock is real time; leases expire on it.
 *    A tab's clock advances K-1 or K+1 units per real tick, chosen per tab
 *    and per tick, so it runs at any rate within rho = 1/K of real time (a
 *    slower clock only keeps a window open longer, so the two extremes cover
 *    every rate between). Nothing stores an absolute time: the lease keeps
 *    "ticks left", a tab "units left" of its window, an ack in flight "units
 *    left" of the window it opens. Only these differences are ever compared,
 *    so runs are unbounded and the state space is finite.
 *  - Store ops are atomic: memory.c runs them one at a time on the store's
 *    queue (a Redis backend would run each as one script).
 *  - Stale views: a server acts on a read of the lease it made earlier
 *    (el_evaluate says what of a stale read can matter, and covers it).
 *  - Candidates: without LIVE a server may pick any tab, even one that
 *    crashed or never joined: the store arbitrates, so safety must not
 *    depend on the choice, and the registry need not be modelled. LIVE
 *    models it (joins, disconnects, stalled leaders).
 *  - Score, preemption, demotion and rotation are one event (some tab is
 *    now preferred): the store sees the same transfer whatever the reason.
 *  - Channels. Tab -> server: one lane per server, shared by the tabs; the
 *    two lanes reorder against each other. Server -> tab: one FIFO lane per
 *    tab carrying views and heartbeat acks; no more reordering is needed
 *    there: a tab takes a view only if its term is above the last it took,
 *    and an ack only for the term it leads now, keeping the larger window,
 *    so any reordering of that lane acts as a FIFO order with some messages
 *    lost. Any send may be lost; a full lane loses it too. Duplication is not
 *    modelled: one connection never duplicates, and a resend is a new message.
 *  - A heartbeat reaches a server at once; its ack travels back (and ages).
 *    A heartbeat that arrived later would renew the lease later (the lease
 *    lasts longer: a later grant, never an earlier one) and could only fail
 *    where the prompt one succeeds (an expired lease or a past term never
 *    comes back), while its ack would open the same window, counted from
 *    t_sent. So the prompt heartbeat shows every grant and window a late one
 *    could, and more.
 *  - Messages that only make a tab stop sooner (follower views, stale_term
 *    answers, requests to step down) are sent only with LIVE: a tab that
 *    never hears them can still do everything one that did can (it may
 *    resign or stop at any time), so leaving them out only adds behaviours.
 *  - A fenced commit reaches the store at any time with the last term its
 *    sender was told it leads: a commit sent long ago is one made now with an
 *    old term. Its reply is not modelled (a refusal only stops a tab).
 *  - Terms stop at MAX_TERM: the store grants no more, so every run with at
 *    most MAX_TERM grants is explored. LIVE asserts the bound is never what
 *    stops an election.
 *
 * Properties (docs/ELECTION-MODEL.md says how each is checked):
 *  P1 no two holders are ever granted the same term: asserted at every
 *     grant against the ghost record g_granted;
 *  P2 a fenced commit is accepted only with the term its sender holds,
 *     unexpired, and never after a later term was granted (so accepted
 *     actions never go back in term): asserted at acceptance;
 *  P3 a tab acts as leader (an open window, by its own clock) only while no
 *     other tab has been granted a later term: asserted at every grant and
 *     whenever a tab opens or extends its window;
 *  P4 (LIVE) when tab 0 stays connected, messages get through within a
 *     tick, and losses, crashes, resigns, score reports and disconnects are
 *     finitely many, some tab leads again and again: ltl `live`.
 *
 * Build switches (-D to spin): LIVE, the liveness configuration;
 * SPEC_PREEMPT_HELD, SPEC_LEAVE_HELD and SPEC_VIEW_RTT, rules of
 * docs/ELECTION.md as written that break P3; MUT_*, deliberate bugs that
 * the checks must catch. tests/model/spin.sh runs them all. */

#ifndef N
#define N 3                  /* tabs: 2 or 3 (pick(), server() and clock() list them) */
#endif
#define S 2                  /* servers: event loops or nodes */
#define NONE 255
#define L 3                  /* lease, in real ticks; a heartbeat every tick (lease / 3) */
#ifndef K
#define K 2                  /* tab clock units per real tick at the nominal rate: rho = 1/K */
#endif
#ifndef DELTA
#define DELTA 0              /* the margin delta, in tab clock units */
#endif

/* The window an acknowledged heartbeat opens, counted from its t_sent:
 * lease x (1 - rho) - delta, in tab units. (L ticks take L*(K-1) units on
 * the slowest admissible clock, L*K on a perfect one.) */
#if defined(MUT_NO_RHO)
#define W (L * K - DELTA)              /* bug: lease - delta, drift ignored */
#elif defined(MUT_WIDE)
#define W (L * (K - 1) - DELTA + 1)    /* bug: one unit more than lease x (1 - rho) */
#else
#define W (L * (K - 1) - DELTA)
#endif

#ifdef LIVE
#ifndef MAX_TERM
#define MAX_TERM 6
#endif
#ifndef MAX_LOSS
#define MAX_LOSS 1           /* messages lost, in a whole run */
#endif
#ifndef MAX_CRASH
#define MAX_CRASH 1          /* crashes (never tab 0) */
#endif
#ifndef MAX_RESIGN
#define MAX_RESIGN 1         /* resigns */
#endif
#ifndef MAX_SCORE
#define MAX_SCORE 1          /* score reports */
#endif
#ifndef MAX_DISC
#define MAX_DISC 1           /* disconnects of live tabs a server notices (never tab 0) */
#endif
#else
#ifndef MAX_TERM
#define MAX_TERM 4
#endif
#endif

mtype = { JOIN, RESIGN, SCORE,         /* tab -> server */
          VIEW, HBOK, STEPDOWN };      /* server -> tab */

/* ---- the store: one scope's lease (src/store/memory.c) ---- */
byte st_term;                /* last granted term; 0 = never granted */
byte st_holder = NONE;       /* who st_term was granted to; NONE once released */
byte st_exp;                 /* real ticks until it expires; 0 = not held */
#define HELD (st_exp > 0)

/* ---- ghosts, read by the assertions only ---- */
byte g_granted[MAX_TERM + 1] = NONE;   /* the holder each term was granted to */
byte gk;                     /* loop index; 0 between steps */

/* ---- the tabs (the libraries in clients/) ---- */
byte t_term[N];              /* last term it was told it leads (0: never) */
bool t_lead[N];              /* leader-elect for t_term: heartbeats it */
byte t_win[N];               /* window left, tab clock units: > 0 = acts as leader */

#ifdef LIVE
/* ---- what only liveness needs: the registry, due work, budgets ---- */
bool reg[N];                 /* joined and connected, as the servers see it */
byte stall[N];               /* ticks left of "stalled" after its lease lapsed */
bool lapse_seen;             /* a sweep has seen the current term lapse */
bool dirty[S];               /* an event asks server s for el_evaluate */
bool sweep[S];               /* server s's sweep is due (every tick) */
bool t_dead[N];              /* the tab crashed: silent for ever */
bool t_joined[N];            /* the tab has seen a view */
bool t_hbd[N];               /* the tab sent its heartbeat this tick */
bool t_jd[N];                /* the tab sent a join this tick */
byte g_loss, g_crash, g_resign, g_score, g_disc;
#endif

chan to_srv[S] = [1] of { mtype, byte, byte };   /* kind, tab, term */
chan to_tab[N] = [2] of { mtype, byte, byte };   /* kind, term, role (VIEW) or window (HBOK) */

#ifdef LIVE
#define CAN_LOSE (g_loss < MAX_LOSS)
#define LOSE g_loss++
#else
#define CAN_LOSE true
#define LOSE skip
#endif

/* A tab never waits to send: with both lanes full the message is lost. */
inline tab_send(k, i, t) {
    if
    :: to_srv[0] ! k, i, t
    :: to_srv[1] ! k, i, t
    :: full(to_srv[0]) && full(to_srv[1]) -> skip
    :: CAN_LOSE -> LOSE
    fi
}

/* A server waits for room: a tab always drains its lane, crashed or not. */
inline srv_send(i, k, t, a) {
    if
    :: to_tab[i] ! k, t, a
    :: CAN_LOSE -> LOSE
    fi
}

/* Sent only with LIVE: see "Messages that only make a tab stop sooner". */
#ifdef LIVE
#define srv_hint(i, k, t, a) srv_send(i, k, t, a)
#else
#define srv_hint(i, k, t, a) skip
#endif

/* ---- the checks ---- */

/* A new term for `to`: P1, and P3 for every tab whose window is open. */
inline grant(to) {
    st_term++;
    assert(g_granted[st_term] == NONE);                                     /* P1 */
    g_granted[st_term] = to;
    gk = 0;
    do
    :: gk < N -> assert(gk == to || t_win[gk] == 0); gk++                  /* P3 */
    :: else -> gk = 0; break
    od;
    st_holder = to;
    st_exp = L
#ifdef LIVE
    ; lapse_seen = 0
#endif
}

/* P3 when tab i opens or extends its window for term t: every term granted
 * after t went to i itself. */
inline check_window(i, t) {
    gk = t + 1;
    do
    :: gk <= st_term -> assert(g_granted[gk] == i); gk++                   /* P3 */
    :: else -> gk = 0; break
    od
}

/* ---- store verbs (src/store/memory.c, src/store/mem_log.c) ---- */

#define BOUND_OK (st_term < MAX_TERM)
#ifdef LIVE
#define AT_BOUND assert(st_term < MAX_TERM)   /* fails: make MAX_TERM larger */
#else
#define AT_BOUND skip                          /* the model's bound: no more grants */
#endif

/* exec_lease_acquire: nobody holds it -> term + 1 for c; c holds it -> extend. */
inline acquire(c, ok) {
    if
    :: HELD && st_holder == c -> st_exp = L; ok = 1
    :: HELD && st_holder != c -> ok = 0
#ifdef MUT_REGRANT
    :: !HELD && st_term > 0 ->        /* bug: a lapsed term is handed out again */
        st_term--; grant(c); ok = 1
    :: !HELD && st_term == 0 -> grant(c); ok = 1
#else
    :: !HELD && BOUND_OK -> grant(c); ok = 1
    :: !HELD && !BOUND_OK -> AT_BOUND; ok = 0
#endif
    fi
}

/* exec_lease_transfer: compare-and-set on the term, held or lapsed. */
inline transfer(t, c, ok) {
    if
#ifdef MUT_XFER_NOCAS
    :: BOUND_OK -> grant(c); ok = 1            /* bug: the term is not compared */
    :: !BOUND_OK -> ok = 0
#else
    :: st_term == t && BOUND_OK -> grant(c); ok = 1
    :: st_term == t && !BOUND_OK -> AT_BOUND; ok = 0
    :: st_term != t -> ok = 0
#endif
    fi
}

/* exec_lease_renew: only the holder, with its term, before expiry. */
inline renew(i, t, ok) {
    if
    :: HELD && st_holder == i && st_term == t -> st_exp = L; ok = 1
    :: else -> ok = 0
    fi
}

/* exec_lease_release */
inline release(i, t) {
    if
    :: HELD && st_holder == i && st_term == t -> st_exp = 0; st_holder = NONE
    :: else -> skip
    fi
}

/* The fenced commit (mem_log.c): appended only if the lease is held,
 * unexpired, with that term. The assertions state P2 on their own. */
#ifdef MUT_FENCE_NOEXP
#define FENCE(t) (st_term == t)                  /* bug: expiry not checked */
#else
#define FENCE(t) (st_term == t && HELD)
#endif
inline commit(i, t) {
    if
    :: FENCE(t) ->
        assert(st_term == t && HELD && st_holder == i);                     /* P2 */
        /* and no later term was ever granted: no action of a later term can
         * have been accepted before this one */
        gk = t + 1;
        do
        :: gk <= MAX_TERM -> assert(g_granted[gk] == NONE); gk++          /* P2 */
        :: else -> gk = 0; break
        od
    :: else -> skip
    fi
}

/* ---- tab side ---- */

inline step_down(i) {
    t_lead[i] = 0;
    t_win[i] = 0
}

/* The ack of a heartbeat of term t, with w units left of the window it opens. */
inline tab_ack(i, t, w) {
    if
    :: t_lead[i] && t_term[i] == t && w > 0 ->
#ifdef MUT_ACK_RECEIPT
        t_win[i] = W;                /* bug: the window counted from the ack, not t_sent */
#else
        t_win[i] = (w > t_win[i] -> w : t_win[i]);
#endif
        check_window(i, t)
    :: else -> skip
    fi
}

/* ---- server side: el_* in src/session/election.c ---- */

#ifdef LIVE
#define CAND(j, ex) (reg[j] && stall[j] == 0 && (j) != (ex))
#define REGISTER(i) reg[i] = 1; stall[i] = 0
#define DIRTY(s) dirty[s] = 1
#else
#define CAND(j, ex) ((j) != (ex))
#define REGISTER(i) skip
#define DIRTY(s) skip
#endif

/* The best candidate other than ex; NONE only when there is none. */
inline pick(c, ex) {
    if
    :: CAND(0, ex) -> c = 0
    :: CAND(1, ex) -> c = 1
#if N > 2
    :: CAND(2, ex) -> c = 2
#endif
    :: else -> c = NONE
    fi
}

/* el_evaluate, rules 1 and 3: the server read the lease (lease_get, or the
 * answer to its last op) and saw nobody hold it; it acquires for the best
 * candidate, or transfers the term it read. The read may be stale by now;
 * what counts of it is only what the verb compares. Transfer compares the
 * term, and the term read is either still the current one (then nobody
 * holds it still: a lapsed or released term is never renewed) or an older
 * one (el_evaluate_stale). Acquire compares nothing it read: on a lease
 * held by someone else it fails, and on one its candidate holds it extends
 * it, which can only delay the next grant; that case is left out. */
inline el_evaluate(s, c, ok) {
    pick(c, NONE);
    if
    :: c != NONE ->
        if
        :: acquire(c, ok)
        :: st_term > 0 -> transfer(st_term, c, ok)
        fi;
        if
        :: ok -> srv_send(c, VIEW, st_term, 1)
        :: else -> skip
        fi
    :: else -> skip
    fi
}

/* el_evaluate on a read made before the last grant: the transfer of a term
 * that is no longer the current one (any older term acts alike: st_term - 1
 * stands for them all). The compare-and-set refuses it. */
inline el_evaluate_stale(s, c, ok) {
    pick(c, NONE);
    if
    :: c != NONE ->
        transfer(st_term - 1, c, ok);
        if
        :: ok -> srv_send(c, VIEW, st_term, 1)
        :: else -> skip
        fi
    :: else -> skip
    fi
}

/* el_on_hb: renew, then ack with the heartbeat's window; stale_term when
 * the renew is refused. */
inline el_on_hb(s, i, t, w, ok) {
#ifdef MUT_HB_CACHED
    if   /* bug: the view still shows i leading t: acked without a renew */
    :: st_holder == i && st_term == t -> ok = 1
    :: else -> renew(i, t, ok)
    fi;
#else
    renew(i, t, ok);
#endif
    if
    :: ok -> srv_send(i, HBOK, t, w)
    :: else ->
#ifdef LIVE
        if   /* the stale_term answer: the tab steps down */
        :: t_lead[i] && t_term[i] == t -> step_down(i)
        :: else -> skip
        fi;
#endif
        DIRTY(s)
    fi
}

/* el_on_resign (and a leave the tab asked for: it stopped first): the
 * resigned term goes to the backup in one compare-and-set, or is released. */
inline el_on_resign(s, i, t, c, ok) {
    pick(c, i);
    if
    :: c != NONE ->
#ifdef MUT_RESIGN_VIEWTERM
        transfer(st_term, c, ok);     /* bug: the term it leads now, not the resigned one */
#else
        transfer(t, c, ok);
#endif
        if
        :: ok -> srv_send(c, VIEW, st_term, 1)
        :: else -> skip
        fi
    :: else -> release(i, t)
    fi;
    DIRTY(s)
}

/* el_evaluate, rules 4-6 (preemption, demotion, rotation), when tab i is
 * preferred to the leader. docs/ELECTION.md (SPEC_PREEMPT_HELD):
 * lease_transfer of the held lease at once. The model's rule: ask the
 * leader to step down; it resigns (el_on_resign transfers) or its lease
 * lapses (el_evaluate takes it). */
inline el_on_score(s, i, c, ok) {
    if
    :: HELD && st_holder != i && CAND(i, NONE) ->
        c = st_holder;
#ifdef SPEC_PREEMPT_HELD
        transfer(st_term, i, ok);
        if
        :: ok -> srv_send(i, VIEW, st_term, 1); srv_hint(c, VIEW, st_term, 0)
        :: else -> skip
        fi
#else
        srv_hint(c, STEPDOWN, st_term, 0)
#endif
    :: else -> DIRTY(s)
    fi
}

/* el_on_leave for a disconnect the server noticed (ping timeout, transport
 * closed): the tab may be alive and still acting. docs/ELECTION.md
 * (SPEC_LEAVE_HELD): transfer to the backup at once, or release. The
 * model's rule: forget the member; its lease lapses unless it comes back. */
inline el_on_leave(s, i, c, ok) {
#ifdef LIVE
    reg[i] = 0;
#endif
#ifdef SPEC_LEAVE_HELD
    if
    :: HELD && st_holder == i ->
        pick(c, i);
        if
        :: c != NONE ->
            transfer(st_term, c, ok);
            if
            :: ok -> srv_send(c, VIEW, st_term, 1)
            :: else -> skip
            fi
        :: else -> release(i, st_term)
        fi
    :: else -> skip
    fi;
#endif
    DIRTY(s)
}

#ifdef LIVE
/* el_sweep: reads the lease; the holder of a lapsed term is stalled (not a
 * candidate) until it sends something, or for a while (2 ticks). */
inline el_sweep(s) {
#ifndef MUT_NO_SWEEP
    if
    :: !HELD && st_holder != NONE && !lapse_seen -> stall[st_holder] = 2; lapse_seen = 1
    :: else -> skip
    fi;
    if
    :: !HELD -> DIRTY(s)
    :: else -> skip
    fi
#else
    skip                              /* bug: the sweep never sees a lapse */
#endif
}
#endif

/* One message from a tab; any message shows the tab is there. */
inline srv_handle(s, k, i, t, c, ok) {
    REGISTER(i);
    if
    :: k == RESIGN -> el_on_resign(s, i, t, c, ok)
#ifdef LIVE
    :: k == JOIN -> ok = (HELD && st_holder == i); srv_send(i, VIEW, st_term, ok); DIRTY(s)
    :: k == SCORE -> el_on_score(s, i, c, ok)
#endif
    fi
}

#ifdef LIVE
#define EVAL_DUE(s) (dirty[s] && !HELD)
#define EVAL_BEGIN(s) dirty[s] = 0
/* a disconnect a server notices: a crashed tab's within the tick (the ping
 * timeout, in ticks), a live tab's (never tab 0's) within the budget */
#define DISC(j) (reg[j] && (t_dead[j] || (j != 0 && g_disc < MAX_DISC)))
#define DISC_DONE(j) g_disc = (t_dead[j] -> g_disc : g_disc + 1)
#else
#define EVAL_DUE(s) (!HELD)
#define EVAL_BEGIN(s) skip
#endif

proctype server(byte s) {
    mtype k;
    byte i, t, c;
    bool ok;
    do
    :: atomic { to_srv[s] ? k, i, t -> srv_handle(s, k, i, t, c, ok);
                k = 0; i = 0; t = 0; c = 0; ok = 0 }
    :: atomic { EVAL_DUE(s) -> EVAL_BEGIN(s); el_evaluate(s, c, ok); c = 0; ok = 0 }
#ifdef LIVE
    :: atomic { dirty[s] && HELD -> dirty[s] = 0 }   /* someone holds it: nothing to do */
    :: atomic { sweep[s] -> sweep[s] = 0; el_sweep(s) }
    :: atomic { DISC(1) -> DISC_DONE(1); el_on_leave(s, 1, c, ok); c = 0; ok = 0 }
#if N > 2
    :: atomic { DISC(2) -> DISC_DONE(2); el_on_leave(s, 2, c, ok); c = 0; ok = 0 }
#endif
#else
    :: atomic { st_term > 1 -> el_evaluate_stale(s, c, ok); c = 0; ok = 0 }
#ifdef SPEC_PREEMPT_HELD
    /* some tab is preferred to the leader, at any time */
    :: atomic { HELD && st_holder != 0 -> el_on_score(s, 0, c, ok); c = 0; ok = 0 }
    :: atomic { HELD && st_holder != 1 -> el_on_score(s, 1, c, ok); c = 0; ok = 0 }
#if N > 2
    :: atomic { HELD && st_holder != 2 -> el_on_score(s, 2, c, ok); c = 0; ok = 0 }
#endif
#endif
#ifdef SPEC_LEAVE_HELD
    /* the server notices the leader's disconnect, at any time */
    :: atomic { HELD && st_holder == 0 -> el_on_leave(s, 0, c, ok); c = 0; ok = 0 }
    :: atomic { HELD && st_holder == 1 -> el_on_leave(s, 1, c, ok); c = 0; ok = 0 }
#if N > 2
    :: atomic { HELD && st_holder == 2 -> el_on_leave(s, 2, c, ok); c = 0; ok = 0 }
#endif
#endif
#endif
    od
}

/* ---- tab side: the libraries' election participant ---- */

#ifndef RTT_MAX
#define RTT_MAX 1            /* SPEC_VIEW_RTT: the RTT a tab may have measured */
#endif

#ifdef LIVE
/* LIVE: a tab sends only when a lane has room (and heartbeats only when its
 * own lane has room for the ack), so no message is lost beyond the budget
 * but the resign after STEPDOWN, at most MAX_SCORE times. */
#define ROOM (len(to_srv[0]) == 0 || len(to_srv[1]) == 0)
#define ALIVE(i) (!t_dead[i])
#define JOIN_OK(i) (ROOM && !t_joined[i] && !t_jd[i])
#define HB_OK(i) (len(to_tab[i]) < 2 && !t_hbd[i])
#define HB_DONE(i) t_hbd[i] = 1
#define RESIGN_OK (ROOM && g_resign < MAX_RESIGN)
#define RESIGN_DONE g_resign++
#define CRASH_OK(i) (i != 0 && g_crash < MAX_CRASH)
#define SCORE_OK(i) (ROOM && t_joined[i] && g_score < MAX_SCORE)
#else
#define ALIVE(i) true
#define HB_OK(i) true
#define HB_DONE(i) skip
#define RESIGN_OK true
#define RESIGN_DONE skip
#endif

inline tab_on_msg(i, k, t, a) {
    if
    :: !ALIVE(i) -> skip                  /* a crashed tab's lane just drains */
    :: else ->
#ifdef LIVE
        t_joined[i] = 1;
#endif
        if
        :: k == VIEW && a == 1 && t > t_term[i] ->
            /* told it leads t: it heartbeats, and acts once one is acked */
            t_term[i] = t; t_lead[i] = 1; t_win[i] = 0;
#ifdef SPEC_VIEW_RTT
            /* docs/ELECTION.md: or acts from the view's receipt minus its RTT */
            if
            :: t_win[i] = W
            :: t_win[i] = W - RTT_MAX
            fi;
            check_window(i, t)
#endif
        :: k == VIEW && a == 0 && t_lead[i] && t > t_term[i] -> step_down(i)
        :: k == HBOK -> tab_ack(i, t, a)
        :: k == STEPDOWN && t_lead[i] && t == t_term[i] ->   /* stop, then resign */
            step_down(i); tab_send(RESIGN, i, t)
        :: else -> skip
        fi
    fi
}

/* The term a leader-only action carries: the last one the tab was told it
 * leads, current or stale. MUT_ROGUE: a member that does not lead uses the
 * current term, which every view shows. */
#ifdef MUT_ROGUE
#define ACT_TERM(i) st_term
#else
#define ACT_TERM(i) t_term[i]
#endif

proctype tab(byte i) {
    mtype k;
    byte t, a, s;
    bool ok;
    do
    :: atomic { to_tab[i] ? k, t, a -> tab_on_msg(i, k, t, a); k = 0; t = 0; a = 0 }
    :: atomic { ALIVE(i) && t_lead[i] && HB_OK(i) ->
        /* a heartbeat, at server 0 or 1 at once (see the header); its ack
         * opens a window of W counted from now, its t_sent */
        HB_DONE(i);
        if
        :: s = 0
        :: s = 1
        fi;
        el_on_hb(s, i, t_term[i], W, ok);
        s = 0; ok = 0 }
    :: atomic { ALIVE(i) && t_lead[i] && RESIGN_OK ->   /* stop, then resign */
        RESIGN_DONE; step_down(i); tab_send(RESIGN, i, t_term[i]) }
#ifdef LIVE
    :: atomic { ALIVE(i) && CRASH_OK(i) -> g_crash++; t_dead[i] = 1; step_down(i) }
    :: atomic { ALIVE(i) && JOIN_OK(i) -> t_jd[i] = 1; tab_send(JOIN, i, 0) }
    :: atomic { ALIVE(i) && SCORE_OK(i) -> g_score++; tab_send(SCORE, i, 0) }
#else
    /* a crash, or a leader that stops without a word: it acts no more. A
     * live tab that stopped may be told later that it leads again, a
     * crashed one not, so this covers crashes. */
    :: atomic { t_lead[i] -> step_down(i) }
    /* a leader-only action reaching the store, at any time (it may have
     * been sent long before, before a crash too) */
    :: atomic { ACT_TERM(i) > 0 -> t = ACT_TERM(i); commit(i, t); t = 0 }
#endif
    od
}

/* ---- real time ---- */

/* Only a tab that leads has a window or an ack worth ageing (it never
 * leads a term again once it stopped), so only its clock needs to drift. */
#ifdef LIVE
#define DRIFT(i) dr[i] = K
#else
#define DRIFT(i) \
    if \
    :: t_lead[i] || t_win[i] > 0 -> \
        if \
        :: dr[i] = K - 1 \
        :: dr[i] = K + 1 \
        fi \
    :: else -> dr[i] = K \
    fi
#endif
#define AGE(x, i) x = (x > dr[i] -> x - dr[i] : 0)

inline tab_tick(i) {
    DRIFT(i);
    AGE(t_win[i], i);
#ifdef LIVE
    stall[i] = (stall[i] > 0 -> stall[i] - 1 : 0);
    t_hbd[i] = 0;
    t_jd[i] = 0
#else
    skip
#endif
}

/* Acks in flight age with their tab's clock; each message goes round the
 * lane once, so the order is kept. An ack whose window has run out would
 * change nothing when it arrives: it is dropped now (a lost message), which
 * frees its slot sooner and so only adds behaviours. */
inline age_tab_lane(i) {
    mn = len(to_tab[i]);
    do
    :: mn > 0 ->
        to_tab[i] ? mk, mt, mw;
        if
        :: mk == HBOK -> AGE(mw, i)
        :: else -> skip
        fi;
        if
        :: mk == HBOK && mw == 0 -> skip
        :: else -> to_tab[i] ! mk, mt, mw
        fi;
        mn--
    :: else -> break
    od
}

#ifdef LIVE
/* Messages get through within a tick, and every due step (a sweep, an
 * evaluation, a leader's heartbeat, a join, noticing a crashed tab) is taken
 * before time moves on: this is what "messages eventually get through"
 * means here, and why no fairness flag is needed. */
#define IDLE(i) (t_dead[i] && !reg[i] || \
                 !t_dead[i] && (!t_lead[i] || t_hbd[i]) && (t_joined[i] || t_jd[i]))
#define LANES_EMPTY (len(to_srv[0]) == 0 && len(to_srv[1]) == 0 && len(to_tab[0]) == 0 && \
                     len(to_tab[1]) == 0)
#if N > 2
#define TABS_IDLE (IDLE(0) && IDLE(1) && IDLE(2) && len(to_tab[2]) == 0)
#else
#define TABS_IDLE (IDLE(0) && IDLE(1))
#endif
#define QUIET (LANES_EMPTY && TABS_IDLE && !dirty[0] && !dirty[1] && !sweep[0] && !sweep[1])
#else
#define QUIET true
#endif

active proctype clock() {
    byte dr[N];              /* this tick's advance of each tab's clock */
    mtype mk;
    byte mt, mw, mn;
    do
    :: atomic { QUIET ->
        if
        :: st_exp > 0 -> st_exp--
        :: else -> skip
        fi;
        tab_tick(0);
        tab_tick(1);
#if N > 2
        tab_tick(2);
#endif
        age_tab_lane(0);
        age_tab_lane(1);
#if N > 2
        age_tab_lane(2);
#endif
#ifdef LIVE
        sweep[0] = 1;
        sweep[1] = 1;
#endif
        dr[0] = 0;
        dr[1] = 0;
#if N > 2
        dr[2] = 0;
#endif
        mk = 0; mt = 0; mw = 0
    }
    od
}

init {
    atomic {
        run server(0);
        run server(1);
        run tab(0);
        run tab(1);
#if N > 2
        run tab(2)
#endif
    }
}

#ifdef LIVE
/* Some tab acts as leader, now, with the lease the store holds for it. */
#define ELECTED (HELD && st_holder != NONE && t_lead[st_holder] && \
                 t_term[st_holder] == st_term && t_win[st_holder] > 0)
ltl live { []<> ELECTED }
#endif
