/*
 * http.c - transfers: one libcurl easy handle per session (more only for
 * concurrent page fetches), all driven through the session's multi handle
 * so every transfer shares one connection cache (keep-alive).
 *
 * Safe defaults are set in C on every transfer, after curl_easy_reset, so
 * nothing set for one request leaks into the next and a caller cannot forget
 * them: http/https only, TLS verification, NOSIGNAL, connect and total
 * timeouts, and caps on body and header bytes enforced in the callbacks.
 * One exception, for speed: a plain GET (session credentials, no body) on a
 * handle whose last setup was the same kind of request and went well keeps
 * those options, which are exactly what a new setup would set again (a
 * session's settings never change); only its URL and time left are set.
 *
 * Redirects: libcurl follows none. aap follows a redirect itself only for GET
 * and HEAD, only to the session's own origin (scheme, host and port: https
 * never becomes http), at most MAX_REDIRS times; every other redirect is an
 * error (code "redirect"), so no credential and no body ever goes anywhere but
 * the gateway, and a POST is never sent twice.
 *
 * Plain http: no request that carries a credential (Basic, Bearer, OAuth client
 * authentication, an OAuth form with a token in it) goes over plain http:// to
 * a host that is not loopback (aap_is_loopback), unless the session allows it
 * (allow_plain_http). The check precedes any connection or name resolution.
 *
 * The callbacks touch only C memory and never call Lua.
 */
#include "aap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REDIRS 3L
#define BACKOFF_CAP 8.0          /* seconds between two attempts, at most */
#define RETRY_AFTER_CAP 60.0     /* a server's Retry-After, at most */

static size_t write_cb(char *p, size_t size, size_t n, void *ud)
{
    aap_xfer *x = ud;
    size_t len = size * n;
    if (len > x->max_body || x->body.len > x->max_body - len) {
        x->too_large = 1;
        return 0;                        /* a short count aborts the transfer */
    }
    if (aap_buf_add(&x->body, p, len) != 0)
        return 0;
    return len;
}

static size_t header_cb(char *p, size_t size, size_t n, void *ud)
{
    aap_xfer *x = ud;
    size_t len = size * n;
    if (len > x->max_head || x->head_total > x->max_head - len) {
        x->too_large = 1;
        return 0;
    }
    x->head_total += len;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0)
        aap_buf_clear(&x->head);         /* a new response: after a redirect or 100 */
    if (aap_buf_add(&x->head, p, len) != 0)
        return 0;
    return len;
}

int aap_xfers_reserve(aap_session *S, int n)
{
    if (n <= S->nxfers)
        return 0;
    aap_xfer *nx = calloc((size_t)n, sizeof *nx);
    if (!nx)
        return -1;
    if (S->nxfers)
        memcpy(nx, S->xfers, (size_t)S->nxfers * sizeof *nx);
    /* The moved handles still point at their old aap_xfer (CURLOPT_PRIVATE,
     * WRITEDATA, ERRORBUFFER...): their next setup must be a full one. */
    for (int i = 0; i < S->nxfers; i++)
        nx[i].plain_get = 0;
    for (int i = S->nxfers; i < n; i++) {
        nx[i].easy = curl_easy_init();
        nx[i].done = 1;
        /* The state's connection cache (curl_easy_reset keeps it). */
        if (nx[i].easy && S->share && curl_easy_setopt(nx[i].easy, CURLOPT_SHARE, S->share->sh) != CURLE_OK) {
            curl_easy_cleanup(nx[i].easy);
            nx[i].easy = NULL;
        }
        if (!nx[i].easy) {
            for (int j = S->nxfers; j < i; j++)
                curl_easy_cleanup(nx[j].easy);
            free(nx);
            return -1;
        }
    }
    free(S->xfers);
    S->xfers = nx;
    S->nxfers = n;
    return 0;
}

void aap_xfers_free(aap_session *S)
{
    for (int i = 0; i < S->nxfers; i++) {
        aap_xfer *x = &S->xfers[i];
        if (!x->done && S->multi)
            curl_multi_remove_handle(S->multi, x->easy);
        curl_easy_cleanup(x->easy);
        curl_slist_free_all(x->hdrs);
        aap_buf_free(&x->body);
        aap_buf_free(&x->head);
    }
    free(S->xfers);
    S->xfers = NULL;
    S->nxfers = 0;
}

static CURLcode set_protocols(CURL *e)
{
#if LIBCURL_VERSION_NUM >= 0x075500   /* 7.85: the string forms */
    CURLcode rc = curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    CURLcode rc = curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    return rc;
}

int aap_idempotent(const char *m)
{
    return !strcmp(m, "GET") || !strcmp(m, "HEAD") || !strcmp(m, "DELETE") ||
           !strcmp(m, "PUT") || !strcmp(m, "OPTIONS");
}

static size_t read_cb(char *buf, size_t size, size_t nitems, void *ud)
{
    aap_xfer *x = ud;
    size_t n = size * nitems, left = x->up_len - x->up_off;
    if (n > left)
        n = left;
    memcpy(buf, x->up + x->up_off, n);
    x->up_off += n;
    if (n > 0 || x->up_len == 0)
        x->sent_any = 1;
    return n;
}

/* libcurl rewinds a body only to send it again (a dead reused connection, or
 * a redirect or auth round, which aap never lets happen): counted. */
static int seek_cb(void *ud, curl_off_t offset, int origin)
{
    aap_xfer *x = ud;
    if (origin != SEEK_SET || offset < 0 || (size_t)offset > x->up_len)
        return CURL_SEEKFUNC_CANTSEEK;
    x->up_off = (size_t)offset;
    x->rewound = 1;
    return CURL_SEEKFUNC_OK;
}

/* A GET with the session's credentials and nothing else: the calls made most. */
static int plain_get(const aap_req *r)
{
    return r->auth == AAP_AUTH_SESSION && !r->body && !r->content_type && !r->secret_body &&
           !r->client_user && !r->client_pass && strcmp(r->method, "GET") == 0;
}

static CURLcode setup(aap_session *S, aap_xfer *x, const aap_req *r, long timeout_ms)
{
    CURL *e = x->easy;
    /* A plain GET on a handle whose last setup was a plain GET that went well:
     * every option below but the URL and the time left would be set to what it
     * already holds (a session's settings never change), so the reset and some
     * 25 setopt calls are skipped. Anything else takes the full path. */
    int reuse = x->plain_get && x->result == CURLE_OK && plain_get(r);
    x->plain_get = 0;
    aap_buf_clear(&x->body);
    aap_buf_clear(&x->head);
    x->head_total = 0;
    x->too_large = 0;
    x->status = 0;
    x->result = CURLE_OK;
    x->refused = NULL;
    x->errbuf[0] = '\0';
    x->max_body = S->max_body;
    x->max_head = S->max_head;
    x->watch_resend = 0;                 /* set below for a marked POST/PATCH */
    x->rewound = 0;
    x->sent_any = 0;
    x->up = NULL;
    x->up_len = 0;
    x->up_off = 0;
    if (reuse) {
        CURLcode rc = curl_easy_setopt(e, CURLOPT_URL, r->url);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
        x->plain_get = rc == CURLE_OK;
        return rc;
    }
    curl_easy_reset(e);
    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;

    CURLcode rc = set_protocols(e);
#define SET(opt, val) do { if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, val); } while (0)
    SET(CURLOPT_URL, r->url);
    SET(CURLOPT_PRIVATE, (void *)x);
    SET(CURLOPT_ERRORBUFFER, x->errbuf);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_FOLLOWLOCATION, 0L);     /* aap decides (see the top of this file) */
    SET(CURLOPT_UNRESTRICTED_AUTH, 0L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, S->connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, timeout_ms);
    if (S->no_proxy)
        SET(CURLOPT_PROXY, "");          /* "": no proxy, whatever the environment says */
    SET(CURLOPT_SSL_VERIFYPEER, S->insecure ? 0L : 1L);
    SET(CURLOPT_SSL_VERIFYHOST, S->insecure ? 0L : 2L);
    if (S->ca_file)
        SET(CURLOPT_CAINFO, S->ca_file);
    SET(CURLOPT_USERAGENT, S->user_agent);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)S->max_body);
    SET(CURLOPT_WRITEFUNCTION, write_cb);
    SET(CURLOPT_WRITEDATA, (void *)x);
    SET(CURLOPT_HEADERFUNCTION, header_cb);
    SET(CURLOPT_HEADERDATA, (void *)x);

    /* libcurl silently re-sends a request whose reused connection turns out
     * dead before any answer byte - the server may have acted on it already.
     * A POST or PATCH (a refresh token spent) therefore goes on a fresh
     * connection, where libcurl never does that - unless the caller can tell
     * a second copy apart (resend_safe: a create whose description holds a
     * random marker). Such a request rides the kept-alive connection with its
     * body behind a read callback: a resend has to rewind it (seek_cb), which
     * is counted in n_maybe_resent, and the caller then deletes any other
     * token with its marker. The handshake is paid only when it must be. */
    if (!aap_idempotent(r->method)) {
        if (r->resend_safe)
            x->watch_resend = 1;
        else
            SET(CURLOPT_FRESH_CONNECT, 1L);
    }

    const char *m = r->method;
    if (strcmp(m, "GET") == 0) {
        SET(CURLOPT_HTTPGET, 1L);
    } else if (strcmp(m, "HEAD") == 0) {
        SET(CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(m, "POST") != 0)
            SET(CURLOPT_CUSTOMREQUEST, m);
        if (x->watch_resend) {
            x->up = r->body ? r->body : "";
            x->up_len = r->body ? r->body_len : 0;
            x->up_off = 0;
            SET(CURLOPT_POST, 1L);
            SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->up_len);
            SET(CURLOPT_READFUNCTION, read_cb);
            SET(CURLOPT_READDATA, (void *)x);
            SET(CURLOPT_SEEKFUNCTION, seek_cb);
            SET(CURLOPT_SEEKDATA, (void *)x);
        } else if (r->body || strcmp(m, "POST") == 0) {
            SET(CURLOPT_POSTFIELDS, r->body ? r->body : "");
            SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(r->body ? r->body_len : 0));
        }
    }

    /* Credentials through libcurl's own auth (never a custom header), for this
     * one URL: libcurl follows no redirect. */
    if (r->auth == AAP_AUTH_SESSION && S->token) {
        SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
        SET(CURLOPT_XOAUTH2_BEARER, S->token);
    } else if (r->auth == AAP_AUTH_SESSION && S->username) {
        SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        SET(CURLOPT_USERNAME, S->username);
        SET(CURLOPT_PASSWORD, S->password ? S->password : "");
    } else if (r->auth == AAP_AUTH_CLIENT) {
        SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        SET(CURLOPT_USERNAME, r->client_user);
        SET(CURLOPT_PASSWORD, r->client_pass ? r->client_pass : "");
    }

    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    if (h) {
        x->hdrs = h;
        h = curl_slist_append(x->hdrs, "Expect:");
    }
    if (h && r->body && r->content_type) {
        char ct[128];
        snprintf(ct, sizeof ct, "Content-Type: %s", r->content_type);
        h = curl_slist_append(x->hdrs, ct);
    }
    if (!h)
        rc = CURLE_OUT_OF_MEMORY;
    SET(CURLOPT_HTTPHEADER, x->hdrs);
#undef SET
    x->plain_get = rc == CURLE_OK && plain_get(r);
    return rc;
}

static void finish(aap_session *S, aap_xfer *x, CURLcode res)
{
    long status = 0, conns = 0;
    x->result = res;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &conns);
    x->status = res == CURLE_OK ? status : 0;
    x->done = 1;
    S->n_requests++;
    S->n_connects += conns;
    if (x->watch_resend && x->rewound)
        S->n_maybe_resent++;
}

/* Called when x is done; returns 1 when it set x up again for another transfer. */
typedef int (*next_fn)(aap_session *S, aap_xfer *x, void *ud);

/* Drives every attached transfer to completion. Handles are detached before
 * this returns, so Lua code never runs with a transfer in flight. */
static void drive(aap_session *S, int active, next_fn next, void *ud)
{
    while (active > 0) {
        int running = 0;
        CURLMcode mc = curl_multi_perform(S->multi, &running);
        CURLMsg *msg;
        int queued;
        while ((msg = curl_multi_info_read(S->multi, &queued))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *e = msg->easy_handle;
            CURLcode res = msg->data.result;
            aap_xfer *x = NULL;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
            curl_multi_remove_handle(S->multi, e);
            active--;
            finish(S, x, res);
            if (next && next(S, x, ud)) {
                x->done = 0;
                if (curl_multi_add_handle(S->multi, x->easy) == CURLM_OK)
                    active++;
                else
                    finish(S, x, CURLE_OUT_OF_MEMORY);
            }
        }
        if (mc == CURLM_OK && active > 0)
            mc = curl_multi_poll(S->multi, NULL, 0, 1000, NULL);
        if (mc != CURLM_OK) {
            for (int i = 0; i < S->nxfers; i++) {
                aap_xfer *x = &S->xfers[i];
                if (!x->done) {
                    curl_multi_remove_handle(S->multi, x->easy);
                    finish(S, x, CURLE_OUT_OF_MEMORY);
                }
            }
            return;
        }
    }
}

static int start(aap_session *S, aap_xfer *x, const aap_req *r, long timeout_ms)
{
    CURLcode rc = setup(S, x, r, timeout_ms);
    if (rc == CURLE_OK) {
        x->done = 0;
        if (curl_multi_add_handle(S->multi, x->easy) == CURLM_OK)
            return 0;
        x->done = 1;
        rc = CURLE_OUT_OF_MEMORY;
    }
    x->result = rc;
    x->status = 0;
    return -1;
}

static int retry_transport(const aap_xfer *x, int idem)
{
    if (x->refused)
        return 0;
    /* A body that went out on a kept-alive connection which then died, after
     * which libcurl's own reconnect failed: the gateway may have acted on it,
     * whatever the last error says. Never repeated. */
    if (!idem && x->sent_any)
        return 0;
    /* Nothing was sent: safe to repeat even a POST that creates a token. */
    if (x->result == CURLE_COULDNT_CONNECT || x->result == CURLE_COULDNT_RESOLVE_HOST)
        return 1;
    if (!idem || x->too_large)
        return 0;
    if (x->result == CURLE_OPERATION_TIMEDOUT)
        return 1;
    return strcmp(aap_curl_code(x->result), "connect") == 0 && x->result != CURLE_WRITE_ERROR;
}

static double jitter(aap_session *S, double base)
{
    /* xorshift64*, seeded per session: spreads clients' retries apart. */
    uint64_t v = S->rng;
    v ^= v >> 12;
    v ^= v << 25;
    v ^= v >> 27;
    S->rng = v;
    double u = (double)((v * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
    return base / 2 + u * base / 2;
}

/* Exponential back-off with jitter: backoff * 2^attempt, capped. */
static double backoff(aap_session *S, int attempt)
{
    double d = S->backoff * (double)(1 << (attempt < 16 ? attempt : 16));
    return jitter(S, d < BACKOFF_CAP ? d : BACKOFF_CAP);
}

/* aap refuses to go on: the transfer counts as failed with `code` (the
 * message goes to errbuf; x->status keeps the answer's status, if any). */
static void refuse(aap_xfer *x, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->errbuf, sizeof x->errbuf, fmt, ap);
    va_end(ap);
    x->refused = code;
    x->result = CURLE_ABORTED_BY_CALLBACK;
}

static int carries_secret(const aap_session *S, const aap_req *r)
{
    return (r->auth == AAP_AUTH_SESSION && (S->token || S->username)) ||
           r->auth == AAP_AUTH_CLIENT || r->secret_body;
}

/* 0 when r may be sent; else refuses x (code "insecure") before any I/O. */
static int check_clear(aap_session *S, aap_xfer *x, const aap_req *r)
{
    x->refused = NULL;
    if (S->clear_ok || !carries_secret(S, r))
        return 0;
    x->status = 0;
    refuse(x, "insecure", "refusing to send credentials over plain http:// to a host that is not "
           "loopback (use https://, or allow_plain_http = true)");
    return -1;
}

static int is_redirect(long status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* x holds a redirect answer to `hop`: 1 with *next set when aap follows it, else
 * 0 after refusing x. */
static int follow(aap_session *S, aap_xfer *x, const aap_req *hop, int hops, char **next)
{
    size_t n;
    const char *loc = x->head.data ? aap_find_header(&x->head, "location", &n) : NULL;
    char where[200];
    char *l = loc ? malloc(n + 1) : NULL;
    int t = -1;
    *next = NULL;
    if (l) {
        memcpy(l, loc, n);
        l[n] = '\0';
        t = aap_redirect_target(S, hop->url, l, next, where, sizeof where);
        free(l);
    } else if (loc) {
        t = -2;
    }
    int get = !strcmp(hop->method, "GET") || !strcmp(hop->method, "HEAD");
    if (t == 1 && get && hops < MAX_REDIRS)
        return 1;
    free(*next);
    *next = NULL;
    if (t == -2)
        refuse(x, "redirect", "not enough memory to read a redirect");
    else if (t < 0)
        refuse(x, "redirect", "a redirect to a location that is not an http(s) URL with a host; "
               "not followed");
    else if (t == 0)
        refuse(x, "redirect", "a redirect to another origin, %s; not followed: credentials and "
               "request bodies go only to %s (if the gateway moved, use its new URL)", where, S->origin);
    else if (!get)
        refuse(x, "redirect", "a redirect; a %s is never sent again, to any location", hop->method);
    else
        refuse(x, "redirect", "too many redirects (more than %d)", (int)MAX_REDIRS);
    return 0;
}

/* One attempt: the request, then the redirects aap follows (same origin,
 * GET/HEAD), within the deadline. A redirect answer without a Location is an
 * answer like any other. */
static void exchange(aap_session *S, aap_xfer *x, const aap_req *r, double deadline)
{
    aap_req hop = *r;
    char *url = NULL;
    for (int hops = 0;; hops++) {
        double left = deadline - aap_now();
        long ms = left > 0.001 ? (long)(left * 1000.0) : 1;
        if (start(S, x, &hop, ms) == 0)
            drive(S, 1, NULL, NULL);
        size_t n;
        if (x->result != CURLE_OK || !is_redirect(x->status) || !x->head.data ||
            !aap_find_header(&x->head, "location", &n))
            break;
        char *next;
        if (!follow(S, x, &hop, hops, &next))
            break;
        free(url);
        url = next;
        hop.url = url;
    }
    free(url);
}

int aap_http_run(aap_session *S, aap_xfer *x, const aap_req *r)
{
    if (check_clear(S, x, r) != 0)
        return -1;
    double deadline = aap_now() + (double)S->timeout_ms / 1000.0;
    int idem = aap_idempotent(r->method);
    for (int attempt = 0;; attempt++) {
        exchange(S, x, r, deadline);
        int failed = x->result != CURLE_OK;
        if (attempt >= S->retries)
            return failed ? -1 : 0;
        double delay;
        if (failed) {
            if (!retry_transport(x, idem))
                return -1;
            delay = backoff(S, attempt);
        } else if (idem && (x->status == 429 || x->status == 502 || x->status == 503 ||
                            x->status == 504)) {
            double ra = aap_retry_after(&x->head);
            if (ra >= 0)
                delay = ra < RETRY_AFTER_CAP ? ra : RETRY_AFTER_CAP;
            else
                delay = backoff(S, attempt);
        } else {
            return 0;
        }
        if (aap_now() + delay >= deadline)
            return failed ? -1 : 0;      /* no time left for another attempt */
        if (aap_sleep(delay) != 0)
            return failed ? -1 : 0;      /* a signal: stop, let the caller see it */
        S->n_retries++;
    }
}

struct many {
    const char *const *urls;
    aap_page *pages;
    int n, next;
    aap_req req;
};

static void keep_page(aap_xfer *x, aap_page *p)
{
    aap_buf t = p->body;
    p->body = x->body;
    x->body = t;
    aap_buf_clear(&x->body);
    p->status = x->status;
    p->result = x->result;
    p->too_large = x->too_large;
}

static int many_next(aap_session *S, aap_xfer *x, void *ud)
{
    struct many *m = ud;
    keep_page(x, &m->pages[x->page]);
    while (m->next < m->n) {
        x->page = m->next++;
        m->req.url = m->urls[x->page];
        if (setup(S, x, &m->req, S->timeout_ms) == CURLE_OK)
            return 1;
        m->pages[x->page].result = CURLE_OUT_OF_MEMORY;
    }
    return 0;
}

void aap_http_fetch_many(aap_session *S, const char *const *urls, aap_page *pages, int n)
{
    struct many m = { urls, pages, n, 0, { "GET", NULL, NULL, NULL, 0, NULL, AAP_AUTH_SESSION, NULL, NULL, 0, 0 } };
    for (int i = 0; i < n; i++) {
        pages[i].result = CURLE_FAILED_INIT;   /* until fetched */
        pages[i].status = 0;
    }
    /* A page that is not a 200 (a redirect too: libcurl follows none) is
     * fetched again alone, through aap_http_run and its checks. */
    if (!S->clear_ok && carries_secret(S, &m.req))
        return;
    int h = S->concurrency < n ? S->concurrency : n;
    if (h < 1)
        h = 1;
    if (aap_xfers_reserve(S, h) != 0)
        h = S->nxfers;                         /* fewer in parallel, still correct */
    int active = 0;
    for (int i = 0; i < h && m.next < n; i++) {
        aap_xfer *x = &S->xfers[i];
        x->page = m.next++;
        m.req.url = urls[x->page];
        if (start(S, x, &m.req, S->timeout_ms) == 0)
            active++;
        else
            pages[x->page].result = x->result;
    }
    drive(S, active, many_next, &m);
    for (int i = 0; i < h; i++)
        aap_buf_clear(&S->xfers[i].body);
}
