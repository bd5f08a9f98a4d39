/* Compiled line parsers for nginx `combined` access logs and the registry's logrus JSON (see native.py); the
 * PostgreSQL stderr parser is in _pg.c, included below.
 *
 * One call parses a block of whole lines, with the GIL released, into column buffers: a line of the usual
 * shape becomes a canonical `requests` row here; any other line (a blank line aside) is handed back by number
 * and text for the SQL parser, which decides what it is. So this code never rejects a line and never has to
 * agree with the SQL parser on anything but the usual shape, where the test suite checks that both give the
 * same rows. The rules below are those of nginx.py (FAST_COMBINED_SQL, FAST_TIMED_RE, FAST_TIMES_RE) and
 * derive.py (requests_select, ROUTE_RE, strip_port), written out for the bytes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *p;
    size_t n, cap;
} Buf;

static int grow(Buf *b, size_t add) {
    size_t c = b->cap ? b->cap : 1 << 16;
    while (c < b->n + add) c *= 2;
    char *q = realloc(b->p, c);
    if (!q) return -1;
    b->p = q;
    b->cap = c;
    return 0;
}

static inline int reserve(Buf *b, size_t add) { return b->n + add <= b->cap ? 0 : grow(b, add); }

static inline int put(Buf *b, const void *src, size_t k) {
    if (reserve(b, k)) return -1;
    if (k) memcpy(b->p + b->n, src, k);
    b->n += k;
    return 0;
}

/* A string column: int32 offsets, bytes, one validity byte per row. */
typedef struct {
    Buf data, offs, valid;
} StrCol;

static int str_init(StrCol *c) {
    int32_t zero = 0;
    return put(&c->offs, &zero, 4);
}

static int str_add(StrCol *c, const char *s, size_t k, int valid) {
    uint8_t v = valid ? 1 : 0;
    if (valid && put(&c->data, s, k)) return -1;
    if (c->data.n > INT32_MAX) return -1;
    int32_t off = (int32_t)c->data.n;
    if (put(&c->offs, &off, 4) || put(&c->valid, &v, 1)) return -1;
    return 0;
}

typedef struct {
    Buf vals, valid;
} NumCol;

static int num_add(NumCol *c, const void *v, size_t width, int valid) {
    uint8_t f = valid ? 1 : 0;
    if (put(&c->vals, v, width) || put(&c->valid, &f, 1)) return -1;
    return 0;
}

/* ---- small parsers --------------------------------------------------------------------------------- */

static inline int is_ws(unsigned char c) { /* RE2's \s */
    return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}
static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* Valid UTF-8 (no overlong forms, no surrogates, at most U+10FFFF), as DuckDB's reader requires. */
static int utf8_ok(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        /* 8 ASCII bytes at a time */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ULL) break;
            i += 8;
        }
        if (i >= n) break;
        unsigned char c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t k;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) { k = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { k = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { k = 3; cp = c & 0x07; }
        else return 0;
        if (i + k >= n) return 0;
        for (size_t j = 1; j <= k; j++) {
            unsigned char d = s[i + j];
            if ((d & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (d & 0x3F);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += k + 1;
    }
    return 1;
}

/* Non-negative integer of 1..18 digits; -1 when the text is not that. */
static int64_t parse_uint(const char *s, size_t n) {
    if (n == 0 || n > 18) return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit((unsigned char)s[i])) return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* [0-9.]+ as DuckDB casts it to DOUBLE: at most one dot and at least one digit, else NULL (returns 0). */
static int parse_decimal(const char *s, size_t n, double *out) {
    char tmp[64];
    int dots = 0, digits = 0;
    if (n == 0 || n >= sizeof tmp) return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') dots++;
        else if (is_digit((unsigned char)s[i])) digits++;
        else return 0;
    }
    if (dots > 1 || !digits) return 0;
    if (digits <= 15) { /* exact mantissa and power of ten: one correctly rounded division (Clinger) */
        static const double p10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
        int64_t m = 0;
        int frac = 0, seen = 0;
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '.') { seen = 1; continue; }
            m = m * 10 + (s[i] - '0');
            frac += seen;
        }
        *out = (double)m / p10[frac];
        return 1;
    }
    memcpy(tmp, s, n);
    tmp[n] = 0;
    *out = strtod(tmp, NULL);
    return 1;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int two(const char *s) {
    if (!is_digit((unsigned char)s[0]) || !is_digit((unsigned char)s[1])) return -1;
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* `28/Nov/2026:12:57:33 +0000` -> microseconds since the epoch, UTC; 0 when not exactly that shape. */
static int clf_time(const char *s, size_t n, int64_t *us) {
    static const char *mons = "JanFebMarAprMayJunJulAugSepOctNovDec";
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (n != 26 || s[2] != '/' || s[6] != '/' || s[11] != ':' || s[14] != ':' || s[17] != ':' || s[20] != ' ' ||
        (s[21] != '+' && s[21] != '-'))
        return 0;
    int d = two(s), y1 = two(s + 7), y2 = two(s + 9), hh = two(s + 12), mi = two(s + 15), ss = two(s + 18);
    int oh = two(s + 22), om = two(s + 24);
    if (d < 1 || y1 < 0 || y2 < 0 || hh < 0 || hh > 23 || mi < 0 || mi > 59 || ss < 0 || ss > 59 || oh < 0 ||
        oh > 23 || om < 0 || om > 59)
        return 0;
    int m = -1;
    for (int i = 0; i < 12; i++)
        if (memcmp(s + 3, mons + 3 * i, 3) == 0) { m = i + 1; break; }
    if (m < 0) return 0;
    int y = y1 * 100 + y2;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[m - 1] + (m == 2 && leap)) return 0;
    int64_t secs = days_from_civil(y, (unsigned)m, (unsigned)d) * 86400 + hh * 3600 + mi * 60 + ss;
    int64_t off = (int64_t)oh * 3600 + om * 60;
    secs -= s[21] == '+' ? off : -off;
    *us = secs * 1000000;
    return 1;
}

/* ---- /v2/ routes (derive.ROUTE_RE, with RE2's leftmost-first choice) ------------------------------- */

enum { R_MANIFEST, R_BLOB_UPLOAD, R_BLOB, R_TAGS, R_REFERRERS, R_BASE, R_CATALOG, R_OTHER };

typedef struct {
    const char *word;
    size_t len;
    int route, has_ref;
} Kind;

static const Kind KINDS[] = {
    {"manifests", 9, R_MANIFEST, 1}, {"blobs/uploads", 13, R_BLOB_UPLOAD, 0}, {"blobs", 5, R_BLOB, 1},
    {"tags/reference", 14, R_TAGS, 1}, {"tags", 4, R_TAGS, 0}, {"referrers", 9, R_REFERRERS, 1},
};

/* After the kind: (?:/([^/]*))?/?$ -> 1 and the reference (may be empty), or 0. */
static int route_tail(const char *r, size_t n, const char **ref, size_t *refn) {
    *ref = r;
    *refn = 0;
    if (n == 0) return 1;
    if (r[0] != '/') return 0;
    const char *slash = memchr(r + 1, '/', n - 1);
    if (!slash) { *ref = r + 1; *refn = n - 1; return 1; }
    if ((size_t)(slash - r) == n - 1) { *ref = r + 1; *refn = n - 2; return 1; }
    return 0;
}

static int route_of(const char *p, size_t n, const char **repo, size_t *repon, const char **ref, size_t *refn) {
    *repo = *ref = NULL;
    *repon = *refn = 0;
    if (n >= 4 && memcmp(p, "/v2/", 4) == 0) {
        for (size_t i = 5; i < n; i++) {
            if (p[i] != '/') continue;
            const char *s = p + i + 1;
            size_t sn = n - i - 1;
            for (size_t k = 0; k < sizeof KINDS / sizeof KINDS[0]; k++) {
                const Kind *K = &KINDS[k];
                if (sn < K->len || memcmp(s, K->word, K->len) != 0) continue;
                const char *rf;
                size_t rfn;
                if (!route_tail(s + K->len, sn - K->len, &rf, &rfn)) continue;
                *repo = p + 4;
                *repon = i - 4;
                if (K->has_ref && rfn) { *ref = rf; *refn = rfn; }
                return K->route;
            }
        }
    }
    if ((n == 3 && memcmp(p, "/v2", 3) == 0) || (n == 4 && memcmp(p, "/v2/", 4) == 0)) return R_BASE;
    if (n >= 12 && memcmp(p, "/v2/_catalog", 12) == 0) return R_CATALOG;
    return R_OTHER;
}

/* ---- one nginx combined line ----------------------------------------------------------------------- */

typedef struct {
    int64_t ts, bytes_out, bytes_in;
    int32_t status;
    double rt, urt;
    int has_bytes_out, has_bytes_in, has_rt, has_urt, route;
    const char *remote, *req, *ua, *rid, *us, *uri, *path, *repo, *ref, *inst;
    size_t remoten, reqn, uan, ridn, usn, urin, pathn, repon, refn, instn;
    int ua_escaped; /* nginx's \x22 / \x5C escapes to undo */
    /* an event (a registry line that is not a request): its fields as logged, and the line */
    const char *ev[9], *line;
    size_t evn[9], linen;
} Row;

/* what a line parser found */
enum { L_OTHER, L_REQUEST, L_EVENT };

/* The path (the URI before '?', NULL for '' and '-') and its /v2/ route, repository and reference. */
static void path_and_route(Row *r) {
    r->path = NULL;
    if (r->uri) {
        const char *qm = memchr(r->uri, '?', r->urin);
        r->path = r->uri;
        r->pathn = qm ? (size_t)(qm - r->uri) : r->urin;
        if (r->pathn == 0 || (r->pathn == 1 && r->path[0] == '-')) r->path = NULL;
    }
    r->route = r->path ? route_of(r->path, r->pathn, &r->repo, &r->repon, &r->ref, &r->refn) : R_OTHER;
    if (!r->path) r->repo = r->ref = NULL;
}

/* The remote address without its port, as derive.strip_port gives it: 10.0.0.1:5000, [::1]:5000, a bare
 * address; '' and '-' are NULL. 0 for what is left to the SQL (a list, surrounding spaces, no ']'). */
static int strip_port(Row *r) {
    if (!r->remote) return 1;
    if (r->remoten == 0 || (r->remoten == 1 && r->remote[0] == '-')) {
        r->remote = NULL;
        return 1;
    }
    if (memchr(r->remote, ',', r->remoten) || r->remote[0] == ' ' || r->remote[r->remoten - 1] == ' ') return 0;
    if (r->remote[0] == '[') {
        const char *rb = memchr(r->remote, ']', r->remoten);
        if (!rb) return 0;
        r->remoten = (size_t)(rb - r->remote - 1);
        r->remote++;
        return 1;
    }
    int colons = 0;
    const char *first = NULL;
    for (size_t i = 0; i < r->remoten; i++)
        if (r->remote[i] == ':') { colons++; if (!first) first = r->remote + i; }
    if (colons == 1) r->remoten = (size_t)(first - r->remote);
    return 1;
}

/* A token of \S+ ending at a space: its end, or NULL. No brackets (the SQL finds the time by the first '['). */
static const char *token(const char *s, const char *end) {
    const char *t = s;
    while (t < end && !is_ws((unsigned char)*t) && *t != '[' && *t != ']') t++;
    if (t == s || t >= end || *t != ' ') return NULL;
    return t;
}

static int split_spaces(const char *s, size_t n, const char **tok, size_t *tokn, int max) {
    /* s starts with ' '; tokens between single spaces; returns the count or -1 */
    int k = 0;
    size_t i = 0;
    while (i < n) {
        if (s[i] != ' ' || k == max) return -1;
        size_t j = i + 1;
        while (j < n && s[j] != ' ') j++;
        tok[k] = s + i + 1;
        tokn[k] = j - i - 1;
        k++;
        i = j;
    }
    return k;
}

static int digits_dots(const char *s, size_t n) { /* [0-9.]+ */
    for (size_t i = 0; i < n; i++)
        if (!is_digit((unsigned char)s[i]) && s[i] != '.') return 0;
    return n > 0;
}

static int lower_hex(const char *s, size_t n) { /* [0-9a-f]* */
    for (size_t i = 0; i < n; i++)
        if (!is_digit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f')) return 0;
    return 1;
}

static int is_num_token(const char *s, size_t n) { /* [0-9]+\.[0-9]+ */
    const char *dot = memchr(s, '.', n);
    if (!dot || dot == s || dot == s + n - 1) return 0;
    for (const char *c = s; c < s + n; c++)
        if (c != dot && !is_digit((unsigned char)*c)) return 0;
    return 1;
}

static int parse_line(const char *s, size_t n, Row *r) {
    for (const char *bs = memchr(s, '\\', n); bs; bs = memchr(bs + 1, '\\', s + n - bs - 1))
        if (bs + 1 < s + n && bs[1] == '"') return 0; /* an escaped quote: left to the SQL */
    const char *q[6];
    const char *c = s, *end = s + n;
    for (int i = 0; i < 6; i++) {
        q[i] = memchr(c, '"', end - c);
        if (!q[i]) return 0;
        c = q[i] + 1;
    }
    /* q5 (between the 4th and 5th quote) is one space */
    if (q[4] - q[3] != 2 || q[3][1] != ' ') return 0;
    /* q1: remote ident user [time] + ' ' */
    const char *a = token(s, q[0]);
    if (!a) return 0;
    const char *b = token(a + 1, q[0]);
    if (!b) return 0;
    const char *u = token(b + 1, q[0]);
    if (!u) return 0;
    const char *t0 = u + 1;
    if (t0 >= q[0] || *t0 != '[') return 0;
    const char *t1 = memchr(t0 + 1, ']', q[0] - t0 - 1);
    if (!t1 || t1 == t0 + 1 || memchr(t0 + 1, '[', t1 - t0 - 1) || t1 + 2 != q[0] || t1[1] != ' ') return 0;
    if (!clf_time(t0 + 1, t1 - t0 - 1, &r->ts)) return 0;
    /* q3: ' ' status ' ' bytes ' ' */
    const char *s3 = q[1] + 1;
    size_t n3 = q[2] - s3;
    if (n3 < 7 || s3[0] != ' ' || s3[4] != ' ' || s3[n3 - 1] != ' ') return 0;
    int64_t st = parse_uint(s3 + 1, 3);
    if (st < 0) return 0;
    r->status = (int32_t)st;
    const char *bs = s3 + 5;
    size_t bn = n3 - 6;
    if (bn == 1 && bs[0] == '-') r->has_bytes_out = 0;
    else {
        r->bytes_out = parse_uint(bs, bn);
        if (r->bytes_out < 0) return 0;
        r->has_bytes_out = 1;
    }
    /* the rest after the 6th quote */
    const char *rest = q[5] + 1;
    size_t restn = end - rest;
    r->rid = r->us = NULL;
    r->has_rt = r->has_urt = r->has_bytes_in = 0;
    if (restn) {
        const char *tk[5];
        size_t tn[5];
        int k = split_spaces(rest, restn, tk, tn, 5);
        if (k == 5) {
            /* ^ [0-9]+\.[0-9]+ ([0-9.]+|-) (\d{3}|-) [0-9a-f]{16,64} \d+$ */
            if (!is_num_token(tk[0], tn[0])) return 0;
            if (!(tn[1] == 1 && tk[1][0] == '-') && !digits_dots(tk[1], tn[1])) return 0;
            if (!(tn[2] == 1 && tk[2][0] == '-') && !(tn[2] == 3 && parse_uint(tk[2], 3) >= 0)) return 0;
            if (tn[3] < 16 || tn[3] > 64 || !lower_hex(tk[3], tn[3])) return 0;
            r->bytes_in = parse_uint(tk[4], tn[4]);
            if (r->bytes_in < 0) return 0;
            r->has_bytes_in = 1;
            r->us = tk[2];
            r->usn = tn[2];
            r->rid = tk[3];
            r->ridn = tn[3];
        } else if (k == 1 || k == 2) {
            /* ^ [0-9]+\.[0-9]+( ([0-9.]+|-))?$ */
            if (!is_num_token(tk[0], tn[0])) return 0;
            if (k == 2 && !(tn[1] == 1 && tk[1][0] == '-') && !digits_dots(tk[1], tn[1])) return 0;
        } else
            return 0;
        r->has_rt = parse_decimal(tk[0], tn[0], &r->rt);
        if (k >= 2) r->has_urt = parse_decimal(tk[1], tn[1], &r->urt);
    }
    /* the request line: ^[A-Z]+ \S+ -> method, uri (up to the next space) */
    r->req = q[0] + 1;
    r->reqn = q[1] - r->req;
    r->uri = NULL;
    {
        size_t i = 0;
        while (i < r->reqn && r->req[i] >= 'A' && r->req[i] <= 'Z') i++;
        if (i > 0 && i + 1 < r->reqn && r->req[i] == ' ' && !is_ws((unsigned char)r->req[i + 1])) {
            r->uri = r->req + i + 1;
            const char *sp = memchr(r->uri, ' ', r->reqn - i - 1);
            r->urin = sp ? (size_t)(sp - r->uri) : r->reqn - i - 1;
            r->reqn = i; /* the method */
        }
    }
    if (!r->uri) r->req = NULL;
    path_and_route(r);
    r->remote = s;
    r->remoten = a - s;
    if (!strip_port(r)) return 0;
    r->ua = q[4] + 1;
    r->uan = q[5] - r->ua;
    r->ua_escaped = 1;
    r->inst = NULL;
    return 1;
}

/* ---- one CNCF distribution logrus JSON line ------------------------------------------------------------ */

/* A compact JSON string starting at s[0] == '"': its end (after the closing quote) or NULL; *esc tells whether
 * it holds escapes. Escapes are checked; a raw control character makes it not ours (the SQL decides). */
static const char *json_string(const char *s, const char *end, int *esc) {
    const char *p = s + 1;
    *esc = 0;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') return p + 1;
        if (c < 0x20) return NULL;
        if (c == '\\') {
            *esc = 1;
            if (p + 1 >= end) return NULL;
            char e = p[1];
            if (e == 'u') {
                if (p + 6 > end) return NULL;
                for (int i = 2; i < 6; i++)
                    if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i]) return NULL;
                p += 6;
            } else if (strchr("\"\\/bfnrt", e) && e) p += 2;
            else return NULL;
        } else
            p++;
    }
    return NULL;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return c - 'A' + 10;
}

/* Decode the inside of a checked JSON string into the arena; 0 for a lone surrogate or \u0000. */
static int json_decode(const char *s, size_t n, Buf *arena, const char **out, size_t *outn) {
    char *dst = arena->p + arena->n, *d = dst;
    for (size_t i = 0; i < n;) {
        if (s[i] != '\\') { *d++ = s[i++]; continue; }
        char e = s[i + 1];
        if (e != 'u') {
            *d++ = e == 'b' ? '\b' : e == 'f' ? '\f' : e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
            i += 2;
            continue;
        }
        uint32_t cp = (uint32_t)(hexval(s[i + 2]) << 12 | hexval(s[i + 3]) << 8 | hexval(s[i + 4]) << 4 | hexval(s[i + 5]));
        i += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (i + 6 > n || s[i] != '\\' || s[i + 1] != 'u') return 0;
            uint32_t lo = (uint32_t)(hexval(s[i + 2]) << 12 | hexval(s[i + 3]) << 8 | hexval(s[i + 4]) << 4 | hexval(s[i + 5]));
            if (lo < 0xDC00 || lo > 0xDFFF) return 0;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
        } else if ((cp >= 0xDC00 && cp <= 0xDFFF) || cp == 0)
            return 0;
        if (cp < 0x80) *d++ = (char)cp;
        else if (cp < 0x800) { *d++ = (char)(0xC0 | cp >> 6); *d++ = (char)(0x80 | (cp & 0x3F)); }
        else if (cp < 0x10000) {
            *d++ = (char)(0xE0 | cp >> 12); *d++ = (char)(0x80 | ((cp >> 6) & 0x3F)); *d++ = (char)(0x80 | (cp & 0x3F));
        } else {
            *d++ = (char)(0xF0 | cp >> 18); *d++ = (char)(0x80 | ((cp >> 12) & 0x3F));
            *d++ = (char)(0x80 | ((cp >> 6) & 0x3F)); *d++ = (char)(0x80 | (cp & 0x3F));
        }
    }
    *out = dst;
    *outn = (size_t)(d - dst);
    arena->n += *outn;
    return 1;
}

/* A JSON number (RFC 8259 grammar): its end, or NULL. */
static const char *json_number(const char *p, const char *end) {
    if (p < end && *p == '-') p++;
    if (p >= end || !is_digit((unsigned char)*p)) return NULL;
    if (*p == '0') p++;
    else while (p < end && is_digit((unsigned char)*p)) p++;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit((unsigned char)*p)) return NULL;
        while (p < end && is_digit((unsigned char)*p)) p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || !is_digit((unsigned char)*p)) return NULL;
        while (p < end && is_digit((unsigned char)*p)) p++;
    }
    return p;
}

enum { K_TIME, K_MSG, K_METHOD, K_URI, K_ID, K_REMOTE, K_UA, K_STATUS, K_DURATION, K_WRITTEN, K_LENGTH, K_INSTANCE,
       K_LEVEL, K_ERR_CODE, K_ERR_MESSAGE, K_ERR_DETAIL, K_ERROR, K_VARS_NAME, N_KEYS };
static const struct { const char *name; size_t len; int key; } JSON_KEYS[] = {
    {"time", 4, K_TIME}, {"msg", 3, K_MSG}, {"http.request.method", 19, K_METHOD}, {"http.request.uri", 16, K_URI},
    {"http.request.id", 15, K_ID}, {"http.request.remoteaddr", 23, K_REMOTE},
    {"http.request.useragent", 22, K_UA}, {"http.response.status", 20, K_STATUS},
    {"http.response.duration", 22, K_DURATION}, {"http.response.written", 21, K_WRITTEN},
    {"http.request.contentlength", 26, K_LENGTH}, {"instance.id", 11, K_INSTANCE}, {"level", 5, K_LEVEL},
    {"err.code", 8, K_ERR_CODE}, {"err.message", 11, K_ERR_MESSAGE}, {"err.detail", 10, K_ERR_DETAIL},
    {"error", 5, K_ERROR}, {"vars.name", 9, K_VARS_NAME},
};

typedef struct {
    const char *p; /* the value's text (a string's inside, decoded), NULL when absent or null */
    size_t n;
    int is_string;
} Val;

/* Non-negative JSON integer of at most `digits` digits -> value, or -1. */
static int64_t json_uint(const Val *v, size_t digits) {
    if (v->is_string || v->n > digits) return -1;
    return parse_uint(v->p, v->n);
}

/* Go's time.Duration string in its simple forms (850µs, 12.3ms, 1.5s, 40ns) as derive.go_dur reads them. */
static int go_duration(const char *d, size_t n, double *out) {
    double v;
    if (n >= 3 && memcmp(d + n - 2, "ms", 2) == 0) {
        if (!parse_decimal(d, n - 2, &v)) return 0;
        *out = v / 1e3;
    } else if (n >= 4 && (memcmp(d + n - 3, "\xc2\xb5s", 3) == 0 || memcmp(d + n - 3, "\xce\xbcs", 3) == 0)) {
        if (!parse_decimal(d, n - 3, &v)) return 0;
        *out = v / 1e6;
    } else if (n >= 3 && memcmp(d + n - 2, "us", 2) == 0) {
        if (!parse_decimal(d, n - 2, &v)) return 0;
        *out = v / 1e6;
    } else if (n >= 3 && memcmp(d + n - 2, "ns", 2) == 0) {
        if (!parse_decimal(d, n - 2, &v)) return 0;
        *out = v / 1e9;
    } else if (n >= 2 && d[n - 1] == 's') {
        if (!parse_decimal(d, n - 1, &v)) return 0;
        *out = v;
    } else
        return 0;
    return 1;
}

/* RFC 3339 in UTC as Go writes it: 2026-11-28T06:29:38.412004795Z -> microseconds (the fraction truncated, as
 * DuckDB's cast does). */
static int rfc3339_utc(const char *s, size_t n, int64_t *us) {
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (n < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[n - 1] != 'Z')
        return 0;
    int y1 = two(s), y2 = two(s + 2), m = two(s + 5), d = two(s + 8), hh = two(s + 11), mi = two(s + 14),
        ss = two(s + 17);
    if (y1 < 0 || y2 < 0 || m < 1 || m > 12 || d < 1 || hh < 0 || hh > 23 || mi < 0 || mi > 59 || ss < 0 || ss > 59)
        return 0;
    int y = y1 * 100 + y2;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || d > mdays[m - 1] + (m == 2 && leap)) return 0;
    int64_t frac = 0;
    if (n > 20) {
        if (s[19] != '.' || n - 21 < 1 || n - 21 > 9) return 0;
        int k = 0;
        for (size_t i = 20; i < n - 1; i++, k++) {
            if (!is_digit((unsigned char)s[i])) return 0;
            if (k < 6) frac = frac * 10 + (s[i] - '0');
        }
        for (; k < 6; k++) frac *= 10;
    }
    *us = (days_from_civil(y, (unsigned)m, (unsigned)d) * 86400 + hh * 3600 + mi * 60 + ss) * 1000000 + frac;
    return 1;
}

static int registry_line(const char *s, size_t n, Row *r, Buf *arena) {
    const char *p = s, *end = s + n;
    Val v[N_KEYS];
    memset(v, 0, sizeof v);
    int seen[N_KEYS] = {0};
    if (n < 2 || *p != '{' || end[-1] != '}') return 0;
    p++;
    if (*p == '}') return 0;
    for (;;) {
        if (p >= end || *p != '"') return 0;
        int esc;
        const char *kend = json_string(p, end, &esc);
        if (!kend || esc) return 0;
        const char *key = p + 1;
        size_t keyn = (size_t)(kend - 1 - key);
        int which = -1;
        for (size_t i = 0; i < sizeof JSON_KEYS / sizeof JSON_KEYS[0]; i++)
            if (JSON_KEYS[i].len == keyn && memcmp(JSON_KEYS[i].name, key, keyn) == 0) { which = JSON_KEYS[i].key; break; }
        p = kend;
        if (p >= end || *p != ':') return 0;
        p++;
        while (p < end && *p == ' ') p++; /* compact as Go writes it, or with a space as other writers do */
        if (p >= end) return 0;
        const char *vs = p, *ve;
        int is_string = 0, is_null = 0;
        if (*p == '"') {
            ve = json_string(p, end, &esc);
            if (!ve) return 0;
            is_string = 1;
        } else if (*p == '-' || is_digit((unsigned char)*p)) {
            ve = json_number(p, end);
            /* plain numbers only: an exponent or a long number may not fit DuckDB's reading */
            if (!ve || ve - p > 20 || memchr(p, 'e', ve - p) || memchr(p, 'E', ve - p)) return 0;
        } else if (end - p >= 4 && memcmp(p, "true", 4) == 0) ve = p + 4;
        else if (end - p >= 5 && memcmp(p, "false", 5) == 0) ve = p + 5;
        else if (end - p >= 4 && memcmp(p, "null", 4) == 0) { ve = p + 4; is_null = 1; }
        else return 0; /* an object or array in a value: left to the SQL */
        if (which >= 0) {
            if (seen[which]++) return 0; /* a key twice: left to the SQL */
            if (!is_null) {
                if (is_string) {
                    v[which].is_string = 1;
                    if (esc) {
                        if (!json_decode(vs + 1, (size_t)(ve - vs - 2), arena, &v[which].p, &v[which].n)) return 0;
                    } else {
                        v[which].p = vs + 1;
                        v[which].n = (size_t)(ve - vs - 2);
                    }
                } else if (ve - vs == 4 && (memcmp(vs, "true", 4) == 0)) return 0;
                else if (ve - vs == 5 && (memcmp(vs, "false", 5) == 0)) return 0;
                else {
                    v[which].p = vs;
                    v[which].n = (size_t)(ve - vs);
                }
            }
        }
        p = ve;
        if (p < end && *p == ',') {
            p++;
            while (p < end && *p == ' ') p++;
            continue;
        }
        if (p == end - 1 && *p == '}') break;
        return 0;
    }
    if (!v[K_TIME].p || !v[K_TIME].is_string || !rfc3339_utc(v[K_TIME].p, v[K_TIME].n, &r->ts)) return L_OTHER;
    if (v[K_MSG].p && !v[K_MSG].is_string) return L_OTHER;
    int completed = v[K_MSG].p && v[K_MSG].n == 18 && memcmp(v[K_MSG].p, "response completed", 18) == 0;
    if (!completed) {
        /* an event, but for an error response (repeated ones are found across the whole file, by the SQL) */
        if (v[K_MSG].p && v[K_MSG].n == 29 && memcmp(v[K_MSG].p, "response completed with error", 29) == 0)
            return L_OTHER;
        static const int EV[9] = {K_LEVEL, K_MSG, K_ERR_CODE, K_ERR_MESSAGE, K_ERR_DETAIL, K_ERROR, K_ID,
                                  K_VARS_NAME, K_INSTANCE};
        for (int k = 0; k < 9; k++) {
            if (v[EV[k]].p && !v[EV[k]].is_string) return L_OTHER; /* a number where text belongs */
            r->ev[k] = v[EV[k]].p;
            r->evn[k] = v[EV[k]].n;
        }
        r->line = s;
        r->linen = n;
        return L_EVENT;
    }
    if (v[K_ERR_CODE].p || v[K_ERR_MESSAGE].p || v[K_ERR_DETAIL].p) return L_OTHER; /* an error: left to the SQL */
    /* numbers: JSON integers (a string or a fraction is left to the SQL) */
    r->status = 0;
    if (v[K_STATUS].p) {
        int64_t st = json_uint(&v[K_STATUS], 9);
        if (st < 0) return 0;
        r->status = (int32_t)st;
    } else
        return 0; /* a request without a status: left to the SQL */
    r->has_bytes_out = r->has_bytes_in = 0;
    if (v[K_WRITTEN].p) {
        if ((r->bytes_out = json_uint(&v[K_WRITTEN], 18)) < 0) return 0;
        r->has_bytes_out = 1;
    }
    if (v[K_LENGTH].p) {
        if ((r->bytes_in = json_uint(&v[K_LENGTH], 18)) < 0) return 0;
        r->has_bytes_in = 1;
    }
    r->has_rt = 0;
    if (v[K_DURATION].p) {
        if (!v[K_DURATION].is_string || !go_duration(v[K_DURATION].p, v[K_DURATION].n, &r->rt)) return 0;
        r->has_rt = 1;
    }
    r->has_urt = 0;
    r->us = NULL;
    /* strings: '' and '-' are NULL where the SQL says nullif_dash */
#define DASH(x) ((x).p && ((x).n == 0 || ((x).n == 1 && (x).p[0] == '-')))
    static const int TEXT[] = {K_METHOD, K_URI, K_ID, K_REMOTE, K_UA, K_INSTANCE};
    for (size_t k = 0; k < sizeof TEXT / sizeof TEXT[0]; k++)
        if (v[TEXT[k]].p && !v[TEXT[k]].is_string) return 0; /* a number where text belongs: left to the SQL */
    r->rid = DASH(v[K_ID]) ? NULL : v[K_ID].p;
    r->ridn = v[K_ID].n;
    r->uri = v[K_URI].p;
    r->urin = v[K_URI].n;
    r->req = DASH(v[K_METHOD]) ? NULL : v[K_METHOD].p;
    r->reqn = v[K_METHOD].n;
    r->ua = v[K_UA].p;
    r->uan = v[K_UA].n;
    r->ua_escaped = 0;
    r->inst = v[K_INSTANCE].p;
    r->instn = v[K_INSTANCE].n;
    path_and_route(r);
    r->remote = v[K_REMOTE].p;
    r->remoten = v[K_REMOTE].n;
    if (!strip_port(r)) return 0;
    return L_REQUEST;
#undef DASH
}

/* ---- the block ------------------------------------------------------------------------------------- */

enum { C_REQUEST_ID, C_METHOD, C_PATH, C_REPOSITORY, C_REFERENCE, C_REMOTE_IP, C_USER_AGENT, C_UPSTREAM_STATUS,
       C_INSTANCE, C_SLOW_TEXT, C_EV /* 9 event fields, then the line */, N_STR = C_EV + 10 };
static const char *STR_NAMES[N_STR] = {"request_id", "method", "path", "repository", "reference", "remote_ip",
                                       "user_agent", "upstream_status", "instance", "slow_text", "ev_level",
                                       "ev_msg", "ev_err_code", "ev_err_message", "ev_err_detail", "ev_error",
                                       "ev_request_id", "ev_vars_name", "ev_instance_id", "ev_text"};
enum { N_TS, N_LINE_NO, N_STATUS, N_DURATION, N_BYTES_OUT, N_BYTES_IN, N_UPSTREAM_DURATION, N_ROUTE, N_SLOW_LINE,
       N_EV_TS, N_EV_LINE_NO, N_NUM };
static const char *NUM_NAMES[N_NUM] = {"ts", "line_no", "status", "duration_s", "bytes_out", "bytes_in",
                                       "upstream_duration_s", "route", "slow_line_no", "ev_ts", "ev_line_no"};

typedef struct {
    StrCol str[N_STR];
    NumCol num[N_NUM];
    Buf scratch, arena;
    int64_t rows, events, slow, blank, lines, bad_utf8;
} Out;

static int add_ua(Out *o, const Row *r) {
    /* nginx_unescape (\x22 -> ", \x5C -> \) then nullif_dash */
    StrCol *c = &o->str[C_USER_AGENT];
    const char *bs = r->ua_escaped && r->uan ? memchr(r->ua, '\\', r->uan) : NULL;
    if (!bs) {
        int valid = !(r->uan == 0 || (r->uan == 1 && r->ua[0] == '-'));
        return str_add(c, r->ua, r->uan, valid);
    }
    o->scratch.n = 0;
    for (size_t i = 0; i < r->uan;) {
        if (i + 4 <= r->uan && r->ua[i] == '\\' && r->ua[i + 1] == 'x' &&
            ((r->ua[i + 2] == '2' && r->ua[i + 3] == '2') || (r->ua[i + 2] == '5' && r->ua[i + 3] == 'C'))) {
            char ch = r->ua[i + 2] == '2' ? '"' : '\\';
            if (put(&o->scratch, &ch, 1)) return -1;
            i += 4;
        } else {
            if (put(&o->scratch, r->ua + i, 1)) return -1;
            i++;
        }
    }
    int valid = !(o->scratch.n == 0 || (o->scratch.n == 1 && o->scratch.p[0] == '-'));
    return str_add(c, o->scratch.p, o->scratch.n, valid);
}

static int add_row(Out *o, const Row *r, int64_t line_no) {
    double nan = 0;
    int64_t zero = 0;
    int8_t route = (int8_t)r->route;
    int dash_us = r->us && r->usn == 1 && r->us[0] == '-';
    if (num_add(&o->num[N_TS], &r->ts, 8, 1) || num_add(&o->num[N_LINE_NO], &line_no, 8, 1) ||
        num_add(&o->num[N_STATUS], &r->status, 4, 1) ||
        num_add(&o->num[N_DURATION], r->has_rt ? &r->rt : &nan, 8, r->has_rt) ||
        num_add(&o->num[N_BYTES_OUT], r->has_bytes_out ? &r->bytes_out : &zero, 8, r->has_bytes_out) ||
        num_add(&o->num[N_BYTES_IN], r->has_bytes_in ? &r->bytes_in : &zero, 8, r->has_bytes_in) ||
        num_add(&o->num[N_UPSTREAM_DURATION], r->has_urt ? &r->urt : &nan, 8, r->has_urt) ||
        num_add(&o->num[N_ROUTE], &route, 1, 1) ||
        str_add(&o->str[C_REQUEST_ID], r->rid, r->rid ? r->ridn : 0, r->rid != NULL) ||
        str_add(&o->str[C_METHOD], r->req, r->req ? r->reqn : 0, r->req != NULL) ||
        str_add(&o->str[C_PATH], r->path, r->path ? r->pathn : 0, r->path != NULL) ||
        str_add(&o->str[C_REPOSITORY], r->repo, r->repo ? r->repon : 0, r->repo != NULL) ||
        str_add(&o->str[C_REFERENCE], r->ref, r->ref ? r->refn : 0, r->ref != NULL) ||
        str_add(&o->str[C_REMOTE_IP], r->remote, r->remote ? r->remoten : 0, r->remote != NULL) ||
        str_add(&o->str[C_UPSTREAM_STATUS], r->us, r->us ? r->usn : 0, r->us != NULL && !dash_us) ||
        str_add(&o->str[C_INSTANCE], r->inst, r->inst ? r->instn : 0, r->inst != NULL) ||
        add_ua(o, r))
        return -1;
    o->rows++;
    return 0;
}

typedef int (*LineParser)(const char *s, size_t n, Row *r, Buf *arena);

static int nginx_line(const char *s, size_t n, Row *r, Buf *arena) {
    (void)arena;
    return parse_line(s, n, r);
}

static int add_event(Out *o, const Row *r, int64_t line_no) {
    if (num_add(&o->num[N_EV_TS], &r->ts, 8, 1) || num_add(&o->num[N_EV_LINE_NO], &line_no, 8, 1)) return -1;
    for (int k = 0; k < 9; k++)
        if (str_add(&o->str[C_EV + k], r->ev[k], r->ev[k] ? r->evn[k] : 0, r->ev[k] != NULL)) return -1;
    if (str_add(&o->str[C_EV + 9], r->line, r->linen, 1)) return -1;
    o->events++;
    return 0;
}

static int parse_block(Out *o, const char *buf, size_t n, int64_t first_line, LineParser parse) {
    const char *p = buf, *end = buf + n;
    int64_t line_no = first_line;
    while (p < end) {
        const char *nl = memchr(p, '\n', end - p);
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (!utf8_ok((const unsigned char *)p, len)) {
            o->bad_utf8 = line_no;
            return 0;
        }
        Row r;
        o->arena.n = 0; /* decoded strings of this line: never longer than the line, so never moved */
        if (reserve(&o->arena, len + 1)) return -1;
        int kind = len ? parse(p, len, &r, &o->arena) : L_OTHER;
        if (len == 0) o->blank++;
        else if (kind == L_REQUEST) {
            if (add_row(o, &r, line_no)) return -1;
        } else if (kind == L_EVENT) {
            if (add_event(o, &r, line_no)) return -1;
        } else {
            if (num_add(&o->num[N_SLOW_LINE], &line_no, 8, 1) || str_add(&o->str[C_SLOW_TEXT], p, len, 1)) return -1;
            o->slow++;
        }
        o->lines++;
        line_no++;
        p = nl ? nl + 1 : end;
    }
    return 0;
}

static void out_free(Out *o) {
    for (int i = 0; i < N_STR; i++) { free(o->str[i].data.p); free(o->str[i].offs.p); free(o->str[i].valid.p); }
    for (int i = 0; i < N_NUM; i++) { free(o->num[i].vals.p); free(o->num[i].valid.p); }
    free(o->scratch.p);
    free(o->arena.p);
}

static PyObject *as_bytes(const Buf *b) { return PyBytes_FromStringAndSize(b->p ? b->p : "", (Py_ssize_t)b->n); }

static int set_item(PyObject *d, const char *key, PyObject *v) {
    if (!v) return -1;
    int rc = PyDict_SetItemString(d, key, v);
    Py_DECREF(v);
    return rc;
}

/* d[name] = a tuple of the buffers' bytes (two or three), each buffer freed once copied */
static int hand_over(PyObject *d, const char *name, Buf *a, Buf *b, Buf *c) {
    PyObject *t = c ? Py_BuildValue("(NNN)", as_bytes(a), as_bytes(b), as_bytes(c))
                    : Py_BuildValue("(NN)", as_bytes(a), as_bytes(b));
    Buf *bufs[] = {a, b, c};
    for (int i = 0; i < 3; i++)
        if (bufs[i]) { free(bufs[i]->p); *bufs[i] = (Buf){0}; }
    return set_item(d, name, t);
}

PyDoc_STRVAR(nginx_combined_doc,
             "nginx_combined(block, first_line) -> dict\n\n"
             "Parse a block of whole lines (bytes-like, lines ended by \\n) numbered from first_line. Returns the\n"
             "rows of the usual shape as column buffers (name -> (values, validity) for numbers, (offsets, data,\n"
             "validity) for strings), the other lines as slow_line_no / slow_text, and the counts rows, slow,\n"
             "blank, lines; bad_utf8 is the number of the first line that is not valid UTF-8 (parsing stops\n"
             "there), or 0.");

static PyObject *run_parser(PyObject *args, LineParser parse) {
    Py_buffer view;
    long long first_line;
    if (!PyArg_ParseTuple(args, "y*L", &view, &first_line)) return NULL;
    Out o;
    memset(&o, 0, sizeof o);
    int rc = 0;
    for (int i = 0; i < N_STR && !rc; i++) rc = str_init(&o.str[i]);
    if (!rc) {
        Py_BEGIN_ALLOW_THREADS
        rc = parse_block(&o, (const char *)view.buf, (size_t)view.len, first_line, parse);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&view);
    if (rc) {
        out_free(&o);
        return PyErr_NoMemory();
    }
    PyObject *d = PyDict_New();
    int err = !d;
    for (int i = 0; i < N_NUM && !err; i++) err = hand_over(d, NUM_NAMES[i], &o.num[i].vals, &o.num[i].valid, NULL);
    for (int i = 0; i < N_STR && !err; i++)
        err = hand_over(d, STR_NAMES[i], &o.str[i].offs, &o.str[i].data, &o.str[i].valid);
    if (!err) err = set_item(d, "rows", PyLong_FromLongLong(o.rows));
    if (!err) err = set_item(d, "slow", PyLong_FromLongLong(o.slow));
    if (!err) err = set_item(d, "events", PyLong_FromLongLong(o.events));
    if (!err) err = set_item(d, "blank", PyLong_FromLongLong(o.blank));
    if (!err) err = set_item(d, "lines", PyLong_FromLongLong(o.lines));
    if (!err) err = set_item(d, "bad_utf8", PyLong_FromLongLong(o.bad_utf8));
    out_free(&o);
    if (err) {
        Py_XDECREF(d);
        return NULL;
    }
    return d;
}

/* ---- a file's bytes: newlines, CR, NUL ---------------------------------------------------------------- */

#define HAS_ZERO(v) (((v) - 0x0101010101010101ULL) & ~(v) & 0x8080808080808080ULL)
#define HAS_BYTE(w, b) HAS_ZERO((w) ^ (0x0101010101010101ULL * (uint64_t)(b)))

PyDoc_STRVAR(scan_doc, "scan(buffer) -> (newlines, has_cr, has_nul), counted with the GIL released.");

static PyObject *scan(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*", &view)) return NULL;
    const unsigned char *p = view.buf;
    size_t n = (size_t)view.len, i = 0;
    long long nl = 0;
    int cr = 0, nul = 0;
    Py_BEGIN_ALLOW_THREADS
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (HAS_BYTE(w, '\n')) {
            for (int j = 0; j < 8; j++) nl += p[i + j] == '\n';
        }
        if (HAS_BYTE(w, '\r')) cr = 1;
        if (HAS_ZERO(w)) nul = 1;
    }
    for (; i < n; i++) {
        nl += p[i] == '\n';
        cr |= p[i] == '\r';
        nul |= p[i] == 0;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return Py_BuildValue("(LNN)", nl, PyBool_FromLong(cr), PyBool_FromLong(nul));
}

static PyObject *nginx_combined(PyObject *self, PyObject *args) {
    (void)self;
    return run_parser(args, nginx_line);
}

PyDoc_STRVAR(registry_json_doc,
             "registry_json(block, first_line) -> dict\n\n"
             "As nginx_combined, for CNCF distribution's logrus JSON: the \"response completed\" lines of the usual\n"
             "shape become rows; every other line is handed back (events, errors, access lines, other layouts).");

static PyObject *registry_json(PyObject *self, PyObject *args) {
    (void)self;
    return run_parser(args, registry_line);
}

#include "_pg.c"

static PyMethodDef methods[] = {
    {"postgres_stderr", postgres_stderr, METH_VARARGS, postgres_stderr_doc},
    {"pg_prefix_count", pg_prefix_count, METH_VARARGS, pg_prefix_count_doc},
    {"pg_last_head", pg_last_head, METH_VARARGS, pg_last_head_doc},
    {"registry_json", registry_json, METH_VARARGS, registry_json_doc},
    {"nginx_combined", nginx_combined, METH_VARARGS, nginx_combined_doc},
    {"scan", scan, METH_VARARGS, scan_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native", "Compiled line parsers.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
