/* Compiled parser for PostgreSQL stderr logs (included by _native.c; see native.py and postgres.py).
 *
 * One call parses a block of whole lines that starts at a record's head line (the caller cuts blocks there,
 * with pg_last_head) into records: a head line (the log_line_prefix, a severity, the message), its DETAIL /
 * HINT / CONTEXT / STATEMENT / … lines and their tab-indented continuations. A record of the usual shape
 * becomes a row with the parts of postgres.py's classify_sql worked out here (time in UTC, the lock-wait
 * message's parts, the duration and its statement, the statement's normalised text for the fingerprint
 * lookup). Every other line goes back by number and text to the format's SQL, which decides what it is: lines
 * that are no log line, continuations with no record, and every line of a record whose time, zone, pid or
 * duration this code would read differently from the SQL. The rules are those of postgres.py (prefix_regex,
 * StderrSql, classify_sql, NORM_SQL) and pg_time.py, written out for the bytes with RE2's leftmost-first
 * choices.
 */

/* ---- log_line_prefix as a list of nodes, matched with backtracking in RE2's order -------------------------- */

enum { P_LIT, P_TS, P_TSNOFRAC, P_EPOCH, P_DIGITS1, P_DIGITS0, P_ANY, P_NONSPACE, P_HEXDOT, P_SQLSTATE, P_QDIGITS,
       P_OPT };
enum { CAP_NONE, CAP_TS, CAP_PID, CAP_USER, CAP_DB, CAP_APP, CAP_SQLSTATE, N_CAP };

typedef struct {
    int kind, cap;
    const char *lit;
    size_t litn;
} PNode;

#define PG_MAX_NODES 64

typedef struct {
    PNode node[PG_MAX_NODES];
    int n;
    char lits[512];
} Prefix;

/* prefix_regex's escapes: -> whether the prefix has a time (%m or %t), or -1 when it is not one this code reads
   (too long, or two %q). */
static int prefix_compile_any(Prefix *p, const char *s, size_t n) {
    int seen[N_CAP] = {0}, opts = 0;
    size_t lp = 0;
    p->n = 0;
    if (n >= sizeof p->lits) return -1;
    for (size_t i = 0; i < n;) {
        if (p->n >= PG_MAX_NODES - 1) return -1;
        PNode *d = &p->node[p->n];
        d->cap = CAP_NONE;
        d->lit = NULL;
        d->litn = 0;
        if (s[i] == '%' && i + 1 < n) {
            char e = s[i + 1];
            i += 2;
            int cap = CAP_NONE;
            switch (e) {
            case '%': d->kind = P_LIT; p->lits[lp] = '%'; d->lit = p->lits + lp++; d->litn = 1; break;
            case 'q': d->kind = P_OPT; if (++opts > 1) return -1; break;
            case 'm': d->kind = P_TS; cap = CAP_TS; break;
            case 't': d->kind = P_TSNOFRAC; cap = CAP_TS; break;
            case 's': d->kind = P_TSNOFRAC; break;
            case 'n': d->kind = P_EPOCH; break; /* no %m / %t: not compiled (below) */
            case 'p': d->kind = P_DIGITS1; cap = CAP_PID; break;
            case 'l': d->kind = P_DIGITS1; break;
            case 'P': case 'x': d->kind = P_DIGITS0; break;
            case 'u': d->kind = P_ANY; cap = CAP_USER; break;
            case 'd': d->kind = P_ANY; cap = CAP_DB; break;
            case 'a': d->kind = P_ANY; cap = CAP_APP; break;
            case 'h': case 'r': case 'b': case 'i': d->kind = P_ANY; break;
            case 'c': d->kind = P_HEXDOT; break;
            case 'v': d->kind = P_NONSPACE; break;
            case 'e': d->kind = P_SQLSTATE; cap = CAP_SQLSTATE; break;
            case 'Q': d->kind = P_QDIGITS; break;
            default: /* an unknown escape is its own text */
                d->kind = P_LIT;
                p->lits[lp] = '%';
                p->lits[lp + 1] = e;
                d->lit = p->lits + lp;
                d->litn = 2;
                lp += 2;
            }
            if (cap != CAP_NONE && !seen[cap]) { /* the first of a name is the one read (prefix_regex) */
                seen[cap] = 1;
                d->cap = cap;
            }
            p->n++;
            continue;
        }
        /* a run of literal text */
        d->kind = P_LIT;
        d->lit = p->lits + lp;
        while (i < n && !(s[i] == '%' && i + 1 < n)) p->lits[lp++] = s[i++];
        if (i < n && s[i] == '%' && i + 1 >= n) p->lits[lp++] = s[i++];
        d->litn = (size_t)(p->lits + lp - d->lit);
        p->n++;
    }
    return seen[CAP_TS];
}

/* -> 1, or 0 when this prefix is not for the compiled parser (no time, or not one it reads: the SQL reads it). */
static int prefix_compile(Prefix *p, const char *s, size_t n) { return prefix_compile_any(p, s, n) == 1; }

#define SEV(x) {x, sizeof x - 1}
static const struct {
    const char *s;
    size_t n;
} SEVS[] = {SEV("DEBUG5"), SEV("DEBUG4"), SEV("DEBUG3"), SEV("DEBUG2"), SEV("DEBUG1"), SEV("DEBUG"), SEV("INFO"),
            SEV("NOTICE"), SEV("WARNING"), SEV("ERROR"), SEV("LOG"), SEV("FATAL"), SEV("PANIC"), SEV("DETAIL"),
            SEV("HINT"), SEV("QUERY"), SEV("CONTEXT"), SEV("LOCATION"), SEV("STATEMENT")};
#undef SEV
enum { SEV_ERROR = 9, SEV_FATAL = 11, SEV_PANIC = 12, SEV_FIRST_SECONDARY = 13, SEV_DETAIL = 13, SEV_HINT, SEV_QUERY,
       SEV_CONTEXT, SEV_LOCATION, SEV_STATEMENT, N_SEV };

typedef struct {
    const Prefix *p;
    const char *s;
    size_t lim; /* the match must end within the first 600 characters (StderrSql.lines: left(text, 600)) */
    const char *cap[N_CAP];
    size_t capn[N_CAP];
    int sev;
} PMatch;

static inline int is_alpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
static inline int is_hex_lower(unsigned char c) { return is_digit(c) || (c >= 'a' && c <= 'f'); }
static inline int is_upper_digit(unsigned char c) { return is_digit(c) || (c >= 'A' && c <= 'Z'); }
static inline size_t next_char(const char *s, size_t i, size_t n) {
    i++;
    while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
    return i;
}

static long pm_from(PMatch *m, int i, size_t pos);

static long pm_sev(PMatch *m, size_t pos) {
    if (pos >= m->lim) return -1;
    switch (m->s[pos]) { /* the first letters of SEVS */
    case 'D': case 'I': case 'N': case 'W': case 'E': case 'L': case 'F': case 'P': case 'H': case 'Q': case 'C':
    case 'S': break;
    default: return -1;
    }
    for (int k = 0; k < N_SEV; k++) {
        size_t l = SEVS[k].n;
        if (pos + l + 3 <= m->lim && memcmp(m->s + pos, SEVS[k].s, l) == 0 && memcmp(m->s + pos + l, ":  ", 3) == 0) {
            m->sev = k;
            return (long)(pos + l + 3);
        }
    }
    return -1;
}

/* try the rest of the prefix from node i at `end`; on success record node i's capture [pos, end) */
static inline long pm_try(PMatch *m, int i, size_t pos, size_t end) {
    long r = pm_from(m, i + 1, end);
    if (r >= 0 && m->p->node[i].cap != CAP_NONE) {
        m->cap[m->p->node[i].cap] = m->s + pos;
        m->capn[m->p->node[i].cap] = end - pos;
    }
    return r;
}

static size_t run_of(const char *s, size_t pos, size_t lim, int (*ok)(unsigned char)) {
    size_t e = pos;
    while (e < lim && ok((unsigned char)s[e])) e++;
    return e - pos;
}
static int is_digit_fn(unsigned char c) { return is_digit(c); }
static int is_hex_fn(unsigned char c) { return is_hex_lower(c); }

/* a time's zone, _ZONE = (?: [A-Za-z]{1,6}| ?[+-]\d\d(?::?\d\d)?)?, each candidate end in RE2's order */
static long pm_zone(PMatch *m, int i, size_t start, size_t e) {
    const char *s = m->s;
    long r;
    if (e < m->lim && s[e] == ' ') {
        size_t l = 0;
        while (l < 6 && e + 1 + l < m->lim && is_alpha((unsigned char)s[e + 1 + l])) l++;
        for (; l >= 1; l--)
            if ((r = pm_try(m, i, start, e + 1 + l)) >= 0) return r;
    }
    for (int sp = 1; sp >= 0; sp--) {
        size_t z = e + (size_t)sp;
        if (sp && !(e < m->lim && s[e] == ' ')) continue;
        if (z + 3 <= m->lim && (s[z] == '+' || s[z] == '-') && is_digit((unsigned char)s[z + 1]) &&
            is_digit((unsigned char)s[z + 2])) {
            if (z + 6 <= m->lim && s[z + 3] == ':' && is_digit((unsigned char)s[z + 4]) && is_digit((unsigned char)s[z + 5]))
                if ((r = pm_try(m, i, start, z + 6)) >= 0) return r;
            if (z + 5 <= m->lim && is_digit((unsigned char)s[z + 3]) && is_digit((unsigned char)s[z + 4]))
                if ((r = pm_try(m, i, start, z + 5)) >= 0) return r;
            if ((r = pm_try(m, i, start, z + 3)) >= 0) return r;
        }
    }
    return pm_try(m, i, start, e);
}

/* \d{4}-\d\d-\d\d \d\d:\d\d:\d\d */
static int ts_shape(const char *s, size_t pos, size_t lim) {
    static const char shape[] = "dddd-dd-dd dd:dd:dd";
    if (pos + 19 > lim) return 0;
    for (int k = 0; k < 19; k++) {
        if (shape[k] == 'd' ? !is_digit((unsigned char)s[pos + k]) : s[pos + k] != shape[k]) return 0;
    }
    return 1;
}

static long pm_from(PMatch *m, int i, size_t pos) {
    const Prefix *p = m->p;
    const char *s = m->s;
    size_t lim = m->lim;
    long r;
    if (i >= p->n) return pm_sev(m, pos);
    const PNode *d = &p->node[i];
    switch (d->kind) {
    case P_LIT:
        if (pos + d->litn > lim || memcmp(s + pos, d->lit, d->litn) != 0) return -1;
        return pm_try(m, i, pos, pos + d->litn);
    case P_OPT:
        if ((r = pm_from(m, i + 1, pos)) >= 0) return r;
        return pm_sev(m, pos);
    case P_TS: {
        if (!ts_shape(s, pos, lim) || pos + 20 >= lim || s[pos + 19] != '.') return -1;
        size_t k = run_of(s, pos + 20, lim, is_digit_fn);
        for (; k >= 1; k--)
            if ((r = pm_zone(m, i, pos, pos + 20 + k)) >= 0) return r;
        return -1;
    }
    case P_TSNOFRAC:
        if (!ts_shape(s, pos, lim)) return -1;
        return pm_zone(m, i, pos, pos + 19);
    case P_EPOCH:   /* \d+\.\d+ */
    case P_HEXDOT: { /* [0-9a-f]+\.[0-9a-f]+ */
        int (*cls)(unsigned char) = d->kind == P_EPOCH ? is_digit_fn : is_hex_fn;
        size_t a = run_of(s, pos, lim, cls);
        if (!a || pos + a >= lim || s[pos + a] != '.') return -1;
        for (size_t b = run_of(s, pos + a + 1, lim, cls); b >= 1; b--)
            if ((r = pm_try(m, i, pos, pos + a + 1 + b)) >= 0) return r;
        return -1;
    }
    case P_DIGITS1:
    case P_DIGITS0: {
        size_t k = run_of(s, pos, lim, is_digit_fn);
        size_t low = d->kind == P_DIGITS1 ? 1 : 0;
        for (size_t j = k + 1; j-- > low;)
            if ((r = pm_try(m, i, pos, pos + j)) >= 0) return r;
        return -1;
    }
    case P_QDIGITS: { /* -?\d* */
        if (pos < lim && s[pos] == '-') {
            size_t k = run_of(s, pos + 1, lim, is_digit_fn);
            for (size_t j = k + 1; j-- > 0;)
                if ((r = pm_try(m, i, pos, pos + 1 + j)) >= 0) return r;
        }
        for (size_t j = run_of(s, pos, lim, is_digit_fn) + 1; j-- > 0;)
            if ((r = pm_try(m, i, pos, pos + j)) >= 0) return r;
        return -1;
    }
    case P_SQLSTATE:
        if (pos + 5 > lim) return -1;
        for (int k = 0; k < 5; k++)
            if (!is_upper_digit((unsigned char)s[pos + k])) return -1;
        return pm_try(m, i, pos, pos + 5);
    case P_ANY: /* .*? */
        if (i + 1 < p->n && p->node[i + 1].kind == P_LIT) { /* only where the text after it starts */
            const char c = p->node[i + 1].lit[0];
            for (const char *e = memchr(s + pos, c, lim - pos); e; e = memchr(e + 1, c, (size_t)(s + lim - e - 1))) {
                if ((r = pm_try(m, i, pos, (size_t)(e - s))) >= 0) return r;
                if (e + 1 >= s + lim) break;
            }
            return -1;
        }
        for (size_t e = pos;; e = next_char(s, e, lim)) {
            if ((r = pm_try(m, i, pos, e)) >= 0) return r;
            if (e >= lim || s[e] == '\n') return -1;
        }
    case P_NONSPACE: /* \S*? */
        for (size_t e = pos;; e = next_char(s, e, lim)) {
            if ((r = pm_try(m, i, pos, e)) >= 0) return r;
            if (e >= lim || is_ws((unsigned char)s[e])) return -1;
        }
    }
    return -1;
}

/* The byte offset of the end of the first 600 characters of a line. */
static size_t first_600(const char *s, size_t n) {
    if (n <= 600) return n;
    size_t chars = 0, i = 0;
    for (; i < n; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (chars == 600) break;
            chars++;
        }
    }
    return i;
}

enum { K_HEAD, K_SEC, K_CONT, K_BLANK, K_BAD };

/* A line's kind (StderrSql.lines); for head and sec lines, the match (m) and the body's offset. */
static int pg_kind(const Prefix *p, const char *s, size_t n, PMatch *m, size_t *body) {
    memset(m, 0, sizeof *m);
    m->p = p;
    m->s = s;
    m->lim = first_600(s, n);
    long e = pm_from(m, 0, 0);
    if (e >= 0) {
        *body = (size_t)e;
        return m->sev >= SEV_FIRST_SECONDARY ? K_SEC : K_HEAD;
    }
    if (n && s[0] == '\t') return K_CONT;
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ') return K_BAD;
    return K_BLANK;
}

/* ---- records --------------------------------------------------------------------------------------------- */

typedef struct {
    const char *s;
    size_t n;
    int64_t line_no;
} PLine;

enum { PART_MESSAGE, PART_DETAIL, PART_HINT, PART_CONTEXT, PART_STATEMENT, PART_OTHER, N_PART };

/* A part's text: the rest of its line in the block, copied into `own` only when continuation lines are joined on. */
typedef struct {
    const char *p;
    size_t n;
    Buf own;
} Part;

static int part_set(Part *t, const char *s, size_t n) {
    t->p = s;
    t->n = n;
    t->own.n = 0;
    return 0;
}

static int part_join(Part *t, const char *s, size_t n) {
    if (t->p != t->own.p || !t->own.n) { /* still the block's text: copy it first */
        t->own.n = 0;
        if (put(&t->own, t->p, t->n)) return -1;
    }
    if (put(&t->own, "\n", 1) || put(&t->own, s, n)) return -1;
    t->p = t->own.p;
    t->n = t->own.n;
    return 0;
}

typedef struct {
    int active, slow, sev, part, have[N_PART];
    int64_t line_no;
    PMatch head;
    Part text[N_PART];
    PLine *lines;
    size_t nlines, caplines;
} PRec;

enum { G_USER, G_DATABASE, G_APPLICATION, G_SQLSTATE, G_SEVERITY, G_MESSAGE, G_DETAIL, G_HINT, G_CONTEXT,
       G_STATEMENT, G_WPID, G_VERB, G_MODE, G_OBJ, G_MS, G_DUR_STMT, G_NORM, G_EVENT, G_SLOW_TEXT, G_NSTR };
static const char *PG_STR_NAMES[G_NSTR] = {"user_name", "database", "application", "sqlstate", "severity", "message",
                                           "detail", "hint", "context", "statement", "wm_wpid", "wm_verb", "wm_mode",
                                           "wm_obj", "wm_ms", "dur_stmt", "_norm", "event", "slow_text"};
enum { H_REC_LINE, H_TS, H_PID, H_DUR_MS, H_EVENT_SQL, H_SLOW_LINE, H_NNUM };
static const char *PG_NUM_NAMES[H_NNUM] = {"rec_line", "ts", "pid", "dur_ms", "_event_sql", "slow_line_no"};

/* The db_lock_waits rows this code works out whole (postgres.lock_waits_sql, but fingerprint and source_file): the
   records whose event it knows (all but errors), unless a value is one it would read differently from the SQL. */
enum { WS_EVENT, WS_LOCK_MODE, WS_LOCK_TYPE, WS_LOCK_OBJECT, WS_RELATION, WS_STATEMENT, WS_USER, WS_DATABASE,
       WS_APPLICATION, WS_SQLSTATE, WS_MESSAGE, WS_DETAIL, WS_NORM, WS_N };
static const char *PG_WSTR_NAMES[WS_N] = {"w_event", "w_lock_mode", "w_lock_type", "w_lock_object", "w_relation",
                                          "w_statement", "w_user_name", "w_database", "w_application", "w_sqlstate",
                                          "w_message", "w_detail", "w_norm"};
enum { WN_LINE_NO, WN_TS, WN_PID, WN_WAIT_MS, WN_N };
static const char *PG_WNUM_NAMES[WN_N] = {"w_line_no", "w_ts", "w_pid", "w_wait_ms"};
enum { WL_HOLDERS, WL_WAITERS, WL_N };
static const char *PG_WLIST_NAMES[WL_N] = {"w_holders", "w_waiters"};

/* a list<int64> column: int32 offsets (one more than rows), values and a validity byte per row */
typedef struct {
    Buf offs, vals, valid;
} ListCol;

typedef struct {
    StrCol str[G_NSTR];
    NumCol num[H_NNUM];
    StrCol wstr[WS_N];
    NumCol wnum[WN_N];
    ListCol wlist[WL_N];
    Buf scratch, scratch2;
    int64_t rows, wrows, slow, blank, lines, used, bad_utf8;
    /* the caller's zones: upper-case name, its length and its offset east of UTC in seconds */
    const char *zones[256];
    size_t zonen[256];
    int64_t zoneoff[256];
    int nzones;
} POut;

static int rec_line_add(PRec *r, const char *s, size_t n, int64_t line_no) {
    if (r->nlines == r->caplines) {
        size_t c = r->caplines ? r->caplines * 2 : 64;
        PLine *q = realloc(r->lines, c * sizeof *q);
        if (!q) return -1;
        r->lines = q;
        r->caplines = c;
    }
    r->lines[r->nlines++] = (PLine){s, n, line_no};
    return 0;
}

static int slow_line(POut *o, const char *s, size_t n, int64_t line_no) {
    if (num_add(&o->num[H_SLOW_LINE], &line_no, 8, 1) || str_add(&o->str[G_SLOW_TEXT], s, n, 1)) return -1;
    o->slow++;
    return 0;
}

/* the zone as pg_time.zone_offset reads it, from the caller's table: 1 and its offset, or 0 */
static int zone_seconds(const POut *o, const char *z, size_t n, int64_t *off) {
    if (n && (z[0] == '+' || z[0] == '-')) { /* ([+-])(\d\d):?(\d\d)? */
        int h, mi = 0;
        if (n < 3 || (h = two(z + 1)) < 0) return 0;
        if (n == 5) { if ((mi = two(z + 3)) < 0) return 0; }
        else if (n == 6) { if (z[3] != ':' || (mi = two(z + 4)) < 0) return 0; }
        else if (n != 3) return 0;
        *off = (z[0] == '-' ? -1 : 1) * ((int64_t)h * 3600 + mi * 60);
        return 1;
    }
    char up[8];
    if (n > 6) return 0;
    for (size_t k = 0; k < n; k++) up[k] = (char)(z[k] >= 'a' && z[k] <= 'z' ? z[k] - 32 : z[k]);
    for (int k = 0; k < o->nzones; k++)
        if (o->zonen[k] == n && memcmp(o->zones[k], up, n) == 0) {
            *off = o->zoneoff[k];
            return 1;
        }
    return 0;
}

/* `YYYY-MM-DD HH:MM:SS[.f{1,6}][ ZONE]` (the whole capture) -> UTC microseconds, or 0 (the SQL decides). */
static int pg_time(const POut *o, const char *s, size_t n, int64_t *us) {
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (n < 19) return 0;
    int y = two(s) * 100 + two(s + 2), mo = two(s + 5), d = two(s + 8), hh = two(s + 11), mi = two(s + 14),
        ss = two(s + 17);
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || hh < 0 || hh > 23 || mi < 0 || mi > 59 || ss < 0 || ss > 59) return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap)) return 0;
    size_t i = 19;
    int64_t frac = 0;
    if (i < n && s[i] == '.') {
        size_t k = 0;
        i++;
        while (i < n && is_digit((unsigned char)s[i])) { if (++k > 6) return 0; frac = frac * 10 + (s[i++] - '0'); }
        if (!k) return 0;
        for (; k < 6; k++) frac *= 10;
    }
    const char *z = "";
    size_t zn = 0;
    if (i < n) {
        if (s[i] != ' ') return 0; /* a zone with no space before it: split_part gives no zone */
        z = s + i + 1;
        zn = n - i - 1;
        if (memchr(z, ' ', zn)) return 0;
    }
    int64_t off;
    if (!zone_seconds(o, z, zn, &off)) return 0;
    *us = ((days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + hh * 3600 + mi * 60 + ss) - off) * 1000000 + frac;
    return 1;
}

static inline int is_word(unsigned char c) { return is_digit(c) || is_alpha(c) || c == '_'; }

/* NORM_SQL: '(?:[^']|'')*' and \b\d+(?:\.\d+)?\b replaced by ?, leftmost-first, into b */
static int norm_sql(Buf *b, const char *s, size_t n) {
    b->n = 0;
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\'') {
            /* '(?:[^']|'')*' with a greedy star: the longest match whose inside has only pairs of quotes. Each run
               of quotes after the opening one: an odd run closes it at its last quote; an even run is pairs (or
               closes it at its last quote but one, if nothing closes it later). */
            size_t j = i + 1, close = 0;
            int found = 0;
            for (;;) {
                const char *q = memchr(s + j, '\'', n - j);
                if (!q) break;
                size_t r = (size_t)(q - s), k = 0;
                while (r + k < n && s[r + k] == '\'') k++;
                found = 1;
                close = r + k - (k % 2 ? 1 : 2);
                if (k % 2) break;
                j = r + k;
            }
            if (found) {
                if (put(b, "?", 1)) return -1;
                i = close + 1;
                continue;
            }
        } else if (is_digit(c) && (i == 0 || !is_word((unsigned char)s[i - 1]))) {
            size_t j = i;
            while (j < n && is_digit((unsigned char)s[j])) j++;
            size_t e = 0;
            if (j + 1 < n && s[j] == '.' && is_digit((unsigned char)s[j + 1])) {
                size_t f = j + 1;
                while (f < n && is_digit((unsigned char)s[f])) f++;
                if (f >= n || !is_word((unsigned char)s[f])) e = f;
            }
            if (!e && (j >= n || !is_word((unsigned char)s[j]))) e = j;
            if (e) {
                if (put(b, "?", 1)) return -1;
                i = e;
                continue;
            }
            /* no match here; nor at the digits after it (no word boundary) */
            if (put(b, s + i, j - i)) return -1;
            i = j;
            continue;
        }
        /* a run of other text, up to the next quote or digit that starts a word */
        size_t j = i + 1;
        while (j < n && s[j] != '\'' && !(is_digit((unsigned char)s[j]) && !is_word((unsigned char)s[j - 1]))) j++;
        if (put(b, s + i, j - i)) return -1;
        i = j;
    }
    return 0;
}

static int starts(const char *s, size_t n, const char *lit) {
    size_t l = strlen(lit);
    return n >= l && memcmp(s, lit, l) == 0;
}

static const char *find(const char *s, size_t n, const char *lit) {
    size_t l = strlen(lit);
    if (n < l) return NULL;
    return memmem(s, n, lit, l);
}

typedef struct {
    const char *p;
    size_t n;
    int valid;
} Span;

/* _WAIT_RE on a message of one line: the five groups, '' each when it does not match */
static void wait_parts(const char *s, size_t n, Span g[5]) {
    static const char *const VERBS[] = {"still waiting for", "acquired", "avoided deadlock for",
                                        "detected deadlock while waiting for"};
    for (int k = 0; k < 5; k++) g[k] = (Span){"", 0, 1};
    if (memchr(s, '\n', n)) return;
    size_t i = 8; /* "process " */
    size_t a = i;
    while (i < n && is_digit((unsigned char)s[i])) i++;
    if (i == a || i >= n || s[i] != ' ') return;
    Span wpid = {s + a, i - a, 1};
    i++;
    Span verb = {0};
    for (int k = 0; k < 4; k++) {
        size_t l = strlen(VERBS[k]);
        if (i + l < n && memcmp(s + i, VERBS[k], l) == 0 && s[i + l] == ' ') { verb = (Span){s + i, l, 1}; break; }
    }
    if (!verb.p) return;
    i += verb.n + 1;
    size_t ms = i;
    while (i < n && !is_ws((unsigned char)s[i])) i++;
    if (i == ms || !starts(s + i, n - i, " on ")) return;
    Span mode = {s + ms, i - ms, 1};
    size_t o = i + 4;
    /* the tail: ` (by rearranging queue order )?after ([0-9.]+) ms` to the end */
    if (n < 3 || memcmp(s + n - 3, " ms", 3) != 0) return;
    size_t xe = n - 3, xs = xe;
    while (xs > 0 && (is_digit((unsigned char)s[xs - 1]) || s[xs - 1] == '.')) xs--;
    if (xs == xe || xs < 7 || memcmp(s + xs - 7, " after ", 7) != 0) return;
    size_t e2 = xs - 7, e = e2;
    static const char by[] = " by rearranging queue order";
    size_t bl = sizeof by - 1;
    if (e2 >= bl && memcmp(s + e2 - bl, by, bl) == 0 && e2 - bl >= o + 1) e = e2 - bl;
    if (e < o + 1) return;
    g[0] = wpid;
    g[1] = verb;
    g[2] = mode;
    g[3] = (Span){s + o, e - o, 1};
    g[4] = (Span){s + xs, xe - xs, 1};
}

/* ---- the db_lock_waits columns (postgres.lock_waits_sql) ------------------------------------------------- */

static int list_init(ListCol *c) {
    int32_t z = 0;
    return put(&c->offs, &z, 4);
}

/* regexp_extract(s, '<lit>"([^"]+)"', 1) for lit ending in a quote: the leftmost match's group, or 0 */
static int quoted_after(const char *s, size_t n, const char *lit, Span *out) {
    size_t l = strlen(lit);
    for (const char *q = s; q && (size_t)(s + n - q) >= l; q++) {
        q = memmem(q, (size_t)(s + n - q), lit, l);
        if (!q) break;
        const char *a = q + l, *e = memchr(a, '"', (size_t)(s + n - a));
        if (!e) break; /* no closing quote after any later start either */
        if (e > a) { *out = (Span){a, (size_t)(e - a), 1}; return 1; }
    }
    return 0;
}

/* regexp_extract(s, '<lit>(\d+)', 1): the leftmost match's digits, or 0 */
static int digits_after(const char *s, size_t n, const char *lit, Span *out) {
    size_t l = strlen(lit);
    for (const char *q = s; q && (size_t)(s + n - q) >= l; q++) {
        q = memmem(q, (size_t)(s + n - q), lit, l);
        if (!q) break;
        const char *a = q + l, *e = a;
        while (e < s + n && is_digit((unsigned char)*e)) e++;
        if (e > a) { *out = (Span){a, (size_t)(e - a), 1}; return 1; }
    }
    return 0;
}

/* regexp_extract(detail, 'Process(?:es)? holding the lock: ([0-9, ]*)\.', 1) (holders) or 'Wait queue: ([0-9, ]*)\.'
   (waiters): the leftmost match's group, '' when none */
static Span pid_list_text(const char *s, size_t n, int holders) {
    const char *lit = holders ? "Process" : "Wait queue: ";
    size_t l = strlen(lit);
    for (const char *q = s; q && (size_t)(s + n - q) >= l; q++) {
        q = memmem(q, (size_t)(s + n - q), lit, l);
        if (!q) break;
        const char *a = q + l;
        if (holders) {
            size_t rest = (size_t)(s + n - a);
            if (starts(a, rest, "es holding the lock: ")) a += 21;
            else if (starts(a, rest, " holding the lock: ")) a += 19;
            else continue;
        }
        const char *e = a;
        while (e < s + n && (is_digit((unsigned char)*e) || *e == ',' || *e == ' ')) e++;
        if (e < s + n && *e == '.') return (Span){a, (size_t)(e - a), 1};
    }
    return (Span){"", 0, 1};
}

/* _INT_LIST of that text: spaces dropped, split at commas, empty items dropped, each CAST to BIGINT. 0 when an item
   has more than 18 digits (the SQL's CAST decides) */
static int pid_list_ok(Span t) {
    size_t digits = 0;
    for (size_t i = 0; i < t.n; i++) {
        if (t.p[i] == ',') digits = 0;
        else if (t.p[i] != ' ' && ++digits > 18) return 0;
    }
    return 1;
}

static int pid_list_add(ListCol *c, Span t, int valid) {
    int64_t v = 0;
    int have = 0;
    uint8_t f = valid ? 1 : 0;
    for (size_t i = 0; valid && i <= t.n; i++) {
        if (i == t.n || t.p[i] == ',') {
            if (have && put(&c->vals, &v, 8)) return -1;
            v = 0;
            have = 0;
        } else if (t.p[i] != ' ') {
            v = v * 10 + (t.p[i] - '0');
            have = 1;
        }
    }
    if (c->vals.n / 8 > INT32_MAX) return -1;
    int32_t off = (int32_t)(c->vals.n / 8);
    return put(&c->offs, &off, 4) || put(&c->valid, &f, 1) ? -1 : 0;
}

static int span_add(StrCol *c, Span v) { return str_add(c, v.p, v.n, v.valid); }
static Span nonempty(const char *p, size_t n, int have) { return (Span){p, n, have && n && p}; }

/* The statement of a lock-wait row: coalesce(nullif(dur_stmt, ''), statement) */
static Span wait_statement(const PRec *r, Span dstmt) {
    if (dstmt.valid && dstmt.n) return dstmt;
    const Part *t = &r->text[PART_STATEMENT];
    return (Span){t->p ? t->p : "", t->n, r->have[PART_STATEMENT]};
}

/* a statement's normalised text (NORM_SQL) onto a column, NULL for no statement */
static int add_norm(POut *o, StrCol *c, Span stmt) {
    if (!stmt.valid) return str_add(c, NULL, 0, 0);
    if (norm_sql(&o->scratch, stmt.p, stmt.n)) return -1;
    return str_add(c, o->scratch.p ? o->scratch.p : "", o->scratch.n, 1);
}

/* A record's db_lock_waits row, when this code reads every value as the SQL does: 1 (added), 0 (not: the SQL makes
   it), -1 (out of memory). */
static int wait_row(POut *o, const PRec *r, const char *ev, int64_t ts, int64_t pid, int has_pid, const char *m,
                    size_t mn, int has_w, const Span *w, int has_dur, double dur, Span dstmt) {
    const PMatch *h = &r->head;
    /* pid: coalesce(TRY_CAST(nullif(wm.wpid, '') AS BIGINT), pid) */
    if (has_w && w[0].n) {
        if (w[0].n > 18) return 0;
        pid = parse_uint(w[0].p, w[0].n);
        has_pid = 1;
    }
    /* wait_ms: coalesce(TRY_CAST(nullif(wm.ms, '') AS DOUBLE), dur_ms) */
    double wait = dur;
    int has_wait = has_dur;
    if (has_w && w[4].n) {
        double x;
        if (parse_decimal(w[4].p, w[4].n, &x)) { wait = x; has_wait = 1; }
        else if (!(w[4].n == 1 && w[4].p[0] == '.')) return 0; /* other forms TRY_CAST may read: the SQL */
    }
    const Part *det = &r->text[PART_DETAIL], *ctx = &r->text[PART_CONTEXT], *hint = &r->text[PART_HINT];
    int has_det = r->have[PART_DETAIL], has_ctx = r->have[PART_CONTEXT], has_hint = r->have[PART_HINT];
    const char *dp = det->p ? det->p : "";
    int lists = has_det && (!strcmp(ev, "waiting") || !strcmp(ev, "acquired"));
    Span held = {0}, queue = {0};
    int has_held = lists && find(dp, det->n, "holding the lock"), has_queue = lists && find(dp, det->n, "Wait queue:");
    if (has_held && !pid_list_ok(held = pid_list_text(dp, det->n, 1))) return 0;
    if (has_queue && !pid_list_ok(queue = pid_list_text(dp, det->n, 0))) return 0;
    /* lock_type from the locked object */
    Span obj = has_w ? w[3] : (Span){0}, type = {0}, rel = {0};
    if (obj.valid && obj.n) {
        if (starts(obj.p, obj.n, "transaction ")) type = (Span){"transactionid", 13, 1};
        else if (starts(obj.p, obj.n, "virtual transaction ")) type = (Span){"virtualxid", 10, 1};
        else if (starts(obj.p, obj.n, "extension of relation ")) type = (Span){"extend", 6, 1};
        else if (starts(obj.p, obj.n, "advisory lock ")) type = (Span){"advisory", 8, 1};
        else {
            size_t k = 0;
            while (k < obj.n && obj.p[k] >= 'a' && obj.p[k] <= 'z') k++;
            type = (Span){obj.p, k, 1};
        }
    }
    /* relation: the CONTEXT's relation name, else the object's oid */
    if (!(has_ctx && quoted_after(ctx->p ? ctx->p : "", ctx->n, "in relation \"", &rel)) && obj.valid)
        digits_after(obj.p, obj.n, "relation ", &rel);
    /* sqlstate: the logged one but 00000, else the event's */
    Span state = nonempty(h->cap[CAP_SQLSTATE], h->capn[CAP_SQLSTATE], 1);
    if (state.valid && state.n == 5 && !memcmp(state.p, "00000", 5)) state.valid = 0;
    if (!state.valid) {
        if (!strcmp(ev, "deadlock")) state = (Span){"40P01", 5, 1};
        else if (!strcmp(ev, "lock_timeout")) state = (Span){"55P03", 5, 1};
        else if (!strcmp(ev, "statement_timeout")) state = (Span){"57014", 5, 1};
    }
    /* detail: DETAIL, CONTEXT: …, HINT: … on their lines (concat_ws), NULL when that is empty */
    Buf *d = &o->scratch2;
    d->n = 0;
    int pieces = 0;
    if (has_det) { if (put(d, dp, det->n)) return -1; pieces++; }
    if (has_ctx && ctx->n) {
        if ((pieces++ && put(d, "\n", 1)) || put(d, "CONTEXT: ", 9) || put(d, ctx->p, ctx->n)) return -1;
    }
    if (has_hint && hint->n) {
        if ((pieces++ && put(d, "\n", 1)) || put(d, "HINT: ", 6) || put(d, hint->p, hint->n)) return -1;
    }
    Span stmt = wait_statement(r, dstmt);
    static const int CAPS[] = {CAP_USER, CAP_DB, CAP_APP};
    if (num_add(&o->wnum[WN_LINE_NO], &r->line_no, 8, 1) || num_add(&o->wnum[WN_TS], &ts, 8, 1) ||
        num_add(&o->wnum[WN_PID], &pid, 8, has_pid) || num_add(&o->wnum[WN_WAIT_MS], &wait, 8, has_wait) ||
        str_add(&o->wstr[WS_EVENT], ev, strlen(ev), 1) ||
        span_add(&o->wstr[WS_LOCK_MODE], has_w ? nonempty(w[2].p, w[2].n, 1) : (Span){0}) ||
        span_add(&o->wstr[WS_LOCK_TYPE], type) || span_add(&o->wstr[WS_LOCK_OBJECT], nonempty(obj.p, obj.n, obj.valid)) ||
        span_add(&o->wstr[WS_RELATION], rel) || span_add(&o->wstr[WS_STATEMENT], stmt) ||
        span_add(&o->wstr[WS_SQLSTATE], state) || str_add(&o->wstr[WS_MESSAGE], m, mn, 1) ||
        str_add(&o->wstr[WS_DETAIL], d->p ? d->p : "", d->n, d->n > 0) ||
        add_norm(o, &o->wstr[WS_NORM], stmt) ||
        pid_list_add(&o->wlist[WL_HOLDERS], held, has_held) || pid_list_add(&o->wlist[WL_WAITERS], queue, has_queue))
        return -1;
    for (int k = 0; k < 3; k++)
        if (span_add(&o->wstr[WS_USER + k], nonempty(h->cap[CAPS[k]], h->capn[CAPS[k]], 1))) return -1;
    o->wrows++;
    o->used += (int64_t)r->nlines;
    return 1;
}

/* Finish the current record: a row, or (slow) its lines for the SQL. */
static int rec_finish(POut *o, PRec *r) {
    if (!r->active) return 0;
    r->active = 0;
    int64_t ts = 0, pid = 0;
    const PMatch *h = &r->head;
    int ok = !r->slow && h->cap[CAP_TS] && pg_time(o, h->cap[CAP_TS], h->capn[CAP_TS], &ts);
    int has_pid = h->cap[CAP_PID] && h->capn[CAP_PID];
    if (ok && has_pid && (pid = parse_uint(h->cap[CAP_PID], h->capn[CAP_PID])) < 0) ok = 0;
    /* the message without ` at character N` at its end */
    const Part *msg = &r->text[PART_MESSAGE];
    size_t mn = msg->n;
    {
        size_t j = mn;
        while (j > 0 && is_digit((unsigned char)msg->p[j - 1])) j--;
        if (j < mn && j >= 14 && memcmp(msg->p + j - 14, " at character ", 14) == 0) mn = j - 14;
    }
    const char *m = msg->p ? msg->p : "";
    double dur = 0;
    int has_dur = 0;
    Span dstmt = {0};
    if (ok && starts(m, mn, "duration: ")) {
        const char *t = m + 10, *sp = memchr(t, ' ', mn - 10);
        size_t tn = sp ? (size_t)(sp - t) : mn - 10;
        for (size_t k = 0; k < tn; k++)
            if (!is_digit((unsigned char)t[k]) && t[k] != '.') ok = 0; /* TRY_CAST's other forms: the SQL */
        if (ok && tn) has_dur = parse_decimal(t, tn, &dur);
        const char *rest = find(m, mn, " ms  ");
        if (rest) {
            rest += 5;
            size_t rn = (size_t)(m + mn - rest);
            const char *colon = find(rest, rn, ": ");
            size_t at = colon ? (size_t)(colon - rest) + 2 : (rn ? next_char(rest, 0, rn) : 0);
            dstmt = (Span){rest + at, rn - at, 1};
        }
    }
    if (!ok) {
        for (size_t k = 0; k < r->nlines; k++)
            if (slow_line(o, r->lines[k].s, r->lines[k].n, r->lines[k].line_no)) return -1;
        return 0;
    }
    Span w[5];
    int has_w = starts(m, mn, "process ");
    if (has_w) wait_parts(m, mn, w);
    /* the event (postgres.EVENT_SQL), but for an error's: whether it is a connection failure is the SQL's regex */
#define IS(p, n, lit) ((n) == sizeof lit - 1 && memcmp((p), lit, sizeof lit - 1) == 0)
    const char *ev = NULL;
    int8_t ev_sql = 0;
    if (has_w && (IS(w[1].p, w[1].n, "still waiting for") || IS(w[1].p, w[1].n, "detected deadlock while waiting for") ||
                  IS(w[1].p, w[1].n, "avoided deadlock for")))
        ev = "waiting";
    else if (has_w && IS(w[1].p, w[1].n, "acquired")) ev = "acquired";
    else if (IS(m, mn, "deadlock detected")) ev = "deadlock";
    else if (IS(m, mn, "canceling statement due to lock timeout")) ev = "lock_timeout";
    else if (IS(m, mn, "canceling statement due to statement timeout")) ev = "statement_timeout";
    else if (has_dur) ev = "slow_statement";
    else if (r->sev == SEV_ERROR || r->sev == SEV_FATAL || r->sev == SEV_PANIC) ev_sql = 1;
#undef IS
    if (ev) {
        int k = wait_row(o, r, ev, ts, pid, has_pid, m, mn, has_w, w, has_dur, dur, dstmt);
        if (k) return k < 0 ? -1 : 0;
    }
    double zero = 0;
    if (num_add(&o->num[H_REC_LINE], &r->line_no, 8, 1) || num_add(&o->num[H_TS], &ts, 8, 1) ||
        num_add(&o->num[H_PID], &pid, 8, has_pid) || num_add(&o->num[H_DUR_MS], has_dur ? &dur : &zero, 8, has_dur) ||
        num_add(&o->num[H_EVENT_SQL], &ev_sql, 1, 1) || str_add(&o->str[G_EVENT], ev, ev ? strlen(ev) : 0, ev != NULL))
        return -1;
    static const int CAPS[] = {CAP_USER, CAP_DB, CAP_APP, CAP_SQLSTATE};
    for (int k = 0; k < 4; k++) {
        const char *c = h->cap[CAPS[k]];
        size_t cn = h->capn[CAPS[k]];
        if (str_add(&o->str[G_USER + k], c, cn, c && cn)) return -1;
    }
    if (str_add(&o->str[G_SEVERITY], SEVS[r->sev].s, SEVS[r->sev].n, 1) || str_add(&o->str[G_MESSAGE], m, mn, 1)) return -1;
    static const int PARTS[] = {PART_DETAIL, PART_HINT, PART_CONTEXT, PART_STATEMENT};
    for (int k = 0; k < 4; k++) {
        const Part *b = &r->text[PARTS[k]];
        if (str_add(&o->str[G_DETAIL + k], b->p ? b->p : "", b->n, r->have[PARTS[k]])) return -1;
    }
    for (int k = 0; k < 5; k++)
        if (str_add(&o->str[G_WPID + k], has_w ? w[k].p : NULL, has_w ? w[k].n : 0, has_w)) return -1;
    if (str_add(&o->str[G_DUR_STMT], dstmt.p, dstmt.n, dstmt.valid)) return -1;
    if (add_norm(o, &o->str[G_NORM], wait_statement(r, dstmt))) return -1;
    o->rows++;
    o->used += (int64_t)r->nlines;
    return 0;
}

static int pg_block(POut *o, const Prefix *p, const char *buf, size_t n, int64_t first_line) {
    const char *q = buf, *end = buf + n;
    int64_t line_no = first_line;
    PRec r;
    memset(&r, 0, sizeof r);
    int rc = 0;
    while (q < end && !rc) {
        const char *nl = memchr(q, '\n', end - q);
        size_t len = nl ? (size_t)(nl - q) : (size_t)(end - q);
        if (!utf8_ok((const unsigned char *)q, len)) {
            o->bad_utf8 = line_no;
            break;
        }
        PMatch m;
        size_t body = 0;
        int k = pg_kind(p, q, len, &m, &body);
        if (k == K_HEAD) {
            if ((rc = rec_finish(o, &r))) break;
            r.active = 1;
            r.slow = 0;
            r.sev = m.sev;
            r.line_no = line_no;
            r.head = m;
            r.nlines = 0;
            for (int j = 0; j < N_PART; j++) { part_set(&r.text[j], "", 0); r.have[j] = 0; }
            r.part = PART_MESSAGE;
            r.have[PART_MESSAGE] = 1;
            rc = rec_line_add(&r, q, len, line_no) || part_set(&r.text[PART_MESSAGE], q + body, len - body);
        } else if (k == K_SEC || k == K_CONT) {
            if (!r.active) rc = slow_line(o, q, len, line_no); /* no record before it: the SQL rejects it */
            else {
                rc = rec_line_add(&r, q, len, line_no);
                if (k == K_SEC) {
                    int part = m.sev == SEV_DETAIL ? PART_DETAIL : m.sev == SEV_HINT ? PART_HINT
                             : m.sev == SEV_CONTEXT ? PART_CONTEXT : m.sev == SEV_STATEMENT ? PART_STATEMENT : PART_OTHER;
                    if (part != PART_OTHER && r.have[part]) r.slow = 1; /* two DETAILs: which one is the SQL's choice */
                    r.part = part;
                    r.have[part] = 1;
                    if (!rc && part != PART_OTHER) rc = part_set(&r.text[part], q + body, len - body);
                } else if (!rc && r.part != PART_OTHER) {
                    rc = part_join(&r.text[r.part], q + 1, len - 1);
                }
            }
        } else if (k == K_BLANK) {
            o->blank++;
        } else {
            rc = slow_line(o, q, len, line_no);
        }
        o->lines++;
        line_no++;
        q = nl ? nl + 1 : end;
    }
    if (!rc && !o->bad_utf8) rc = rec_finish(o, &r);
    for (int j = 0; j < N_PART; j++) free(r.text[j].own.p);
    free(r.lines);
    return rc;
}

static void pg_out_free(POut *o) {
    for (int i = 0; i < G_NSTR; i++) { free(o->str[i].data.p); free(o->str[i].offs.p); free(o->str[i].valid.p); }
    for (int i = 0; i < H_NNUM; i++) { free(o->num[i].vals.p); free(o->num[i].valid.p); }
    for (int i = 0; i < WS_N; i++) { free(o->wstr[i].data.p); free(o->wstr[i].offs.p); free(o->wstr[i].valid.p); }
    for (int i = 0; i < WN_N; i++) { free(o->wnum[i].vals.p); free(o->wnum[i].valid.p); }
    for (int i = 0; i < WL_N; i++) { free(o->wlist[i].offs.p); free(o->wlist[i].vals.p); free(o->wlist[i].valid.p); }
    free(o->scratch.p);
    free(o->scratch2.p);
}

PyDoc_STRVAR(postgres_stderr_doc,
             "postgres_stderr(block, first_line, prefix, zones) -> dict or None\n\n"
             "Parse a block of whole lines of a PostgreSQL stderr log written with this log_line_prefix, the block\n"
             "starting at a record's head line (see pg_last_head). zones maps upper-case zone abbreviations to\n"
             "seconds east of UTC ('' for a time with no zone). Returns the records of the usual shape as column\n"
             "buffers (as nginx_combined does), the other lines as slow_line_no / slow_text, and the counts rows,\n"
             "used (lines in those rows), slow, blank, lines and bad_utf8. Of those records, the ones whose\n"
             "db_lock_waits row it works out whole are not among the records but w_rows rows of w_* columns\n"
             "(w_holders and w_waiters as list offsets, values and validity); None when the prefix is not one for\n"
             "this parser (no %m or %t, or two %q).");

static PyObject *postgres_stderr(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    long long first_line;
    const char *ps;
    Py_ssize_t pn;
    PyObject *zones;
    if (!PyArg_ParseTuple(args, "y*Ls#O!", &view, &first_line, &ps, &pn, &PyDict_Type, &zones)) return NULL;
    Prefix *p = malloc(sizeof *p);
    POut *o = calloc(1, sizeof *o);
    if (!p || !o) { free(p); free(o); PyBuffer_Release(&view); return PyErr_NoMemory(); }
    if (!prefix_compile(p, ps, (size_t)pn)) {
        free(p); free(o); PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    PyObject *key, *val;
    Py_ssize_t pos = 0;
    while (PyDict_Next(zones, &pos, &key, &val) && o->nzones < 256) {
        Py_ssize_t kn;
        const char *k = PyUnicode_AsUTF8AndSize(key, &kn);
        long long v = PyLong_AsLongLong(val);
        if (!k || PyErr_Occurred()) { free(p); pg_out_free(o); free(o); PyBuffer_Release(&view); return NULL; }
        o->zones[o->nzones] = k; /* the dict keeps the strings alive for this call */
        o->zonen[o->nzones] = (size_t)kn;
        o->zoneoff[o->nzones++] = v;
    }
    int rc = 0;
    for (int i = 0; i < G_NSTR && !rc; i++) rc = str_init(&o->str[i]);
    for (int i = 0; i < WS_N && !rc; i++) rc = str_init(&o->wstr[i]);
    for (int i = 0; i < WL_N && !rc; i++) rc = list_init(&o->wlist[i]);
    if (!rc) {
        Py_BEGIN_ALLOW_THREADS
        rc = pg_block(o, p, (const char *)view.buf, (size_t)view.len, first_line);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&view);
    free(p);
    if (rc) { pg_out_free(o); free(o); return PyErr_NoMemory(); }
    PyObject *d = PyDict_New();
    int err = !d;
    /* each column's buffers are freed once copied, so the block's rows are in memory twice only one column at
       a time */
    for (int i = 0; i < H_NNUM && !err; i++) err = hand_over(d, PG_NUM_NAMES[i], &o->num[i].vals, &o->num[i].valid, NULL);
    for (int i = 0; i < G_NSTR && !err; i++)
        err = hand_over(d, PG_STR_NAMES[i], &o->str[i].offs, &o->str[i].data, &o->str[i].valid);
    for (int i = 0; i < WN_N && !err; i++) err = hand_over(d, PG_WNUM_NAMES[i], &o->wnum[i].vals, &o->wnum[i].valid, NULL);
    for (int i = 0; i < WS_N && !err; i++)
        err = hand_over(d, PG_WSTR_NAMES[i], &o->wstr[i].offs, &o->wstr[i].data, &o->wstr[i].valid);
    for (int i = 0; i < WL_N && !err; i++)
        err = hand_over(d, PG_WLIST_NAMES[i], &o->wlist[i].offs, &o->wlist[i].vals, &o->wlist[i].valid);
    const char *counts[] = {"rows", "w_rows", "used", "slow", "blank", "lines", "bad_utf8"};
    int64_t vals[] = {o->rows, o->wrows, o->used, o->slow, o->blank, o->lines, o->bad_utf8};
    for (int i = 0; i < 7 && !err; i++) err = set_item(d, counts[i], PyLong_FromLongLong(vals[i]));
    pg_out_free(o);
    free(o);
    if (err) { Py_XDECREF(d); return NULL; }
    return d;
}

PyDoc_STRVAR(pg_prefix_count_doc,
             "pg_prefix_count(lines, prefix) -> int\n\n"
             "How many of the lines (UTF-8, each ended by \\n but maybe the last) start with this log_line_prefix\n"
             "and a severity (postgres.detect_prefix's test, read as the compiled parser reads a line), or -1 when\n"
             "the prefix is not one it reads.");

/* The (lines, prefix) arguments: the buffer and the compiled prefix (prefix_compile_any's answer in *kind), or
   NULL with an exception set. The caller frees the prefix and releases the buffer. */
static Prefix *lines_and_prefix(PyObject *args, Py_buffer *view, int *kind) {
    const char *ps;
    Py_ssize_t pn;
    if (!PyArg_ParseTuple(args, "y*s#", view, &ps, &pn)) return NULL;
    Prefix *p = malloc(sizeof *p);
    if (!p) { PyBuffer_Release(view); PyErr_NoMemory(); return NULL; }
    *kind = prefix_compile_any(p, ps, (size_t)pn);
    return p;
}

static PyObject *pg_prefix_count(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    int kind;
    Prefix *p = lines_and_prefix(args, &view, &kind);
    if (!p) return NULL;
    long long count = -1;
    if (kind >= 0) {
        const char *q = view.buf, *end = q + view.len;
        count = 0;
        Py_BEGIN_ALLOW_THREADS
        while (q < end) {
            const char *nl = memchr(q, '\n', (size_t)(end - q));
            size_t len = nl ? (size_t)(nl - q) : (size_t)(end - q), body;
            PMatch m;
            int k = pg_kind(p, q, len, &m, &body);
            count += k == K_HEAD || k == K_SEC;
            q = nl ? nl + 1 : end;
        }
        Py_END_ALLOW_THREADS
    }
    free(p);
    PyBuffer_Release(&view);
    return PyLong_FromLongLong(count);
}

PyDoc_STRVAR(pg_last_head_doc,
             "pg_last_head(block, prefix) -> int\n\n"
             "The offset of the last line of a block of whole lines that is a record's head line for this\n"
             "log_line_prefix (a message, not a DETAIL, … or continuation), or -1 when only the first line is.");

static PyObject *pg_last_head(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    int kind;
    Prefix *p = lines_and_prefix(args, &view, &kind);
    if (!p) return NULL;
    long long found = -1;
    if (kind == 1) {
        const char *buf = view.buf;
        size_t n = (size_t)view.len;
        Py_BEGIN_ALLOW_THREADS
        /* lines from the last one back: [s, e) */
        size_t e = n && buf[n - 1] == '\n' ? n - 1 : n;
        for (;;) {
            size_t s = e;
            while (s > 0 && buf[s - 1] != '\n') s--;
            if (s == 0) break;
            PMatch m;
            size_t body;
            if (utf8_ok((const unsigned char *)buf + s, e - s) && pg_kind(p, buf + s, e - s, &m, &body) == K_HEAD) {
                found = (long long)s;
                break;
            }
            e = s - 1;
        }
        Py_END_ALLOW_THREADS
    }
    free(p);
    PyBuffer_Release(&view);
    return PyLong_FromLongLong(found);
}
