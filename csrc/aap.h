/*
 * aap.h - the one private header of aap.so.
 *
 * luaopen_aap (aap.c) creates the module table and hands it to each part
 * below; every part adds its functions and metatables to the table at the
 * top of the stack and leaves the stack as it found it. aap.c also builds the
 * aap.Session metatable from the parts' method tables (aap_*_methods).
 *
 * Which file calls which (docs/design.md draws it): no cycle. The methods
 * (session.c, tokens.c, applications.c, oauth.c) call call.c and paging.c;
 * those call http.c, errors.c, url.c, json.c; errors.c and http.c read
 * headers through headers.c; nobody below calls back up.
 *
 * Rules every file follows:
 * - No Lua API call while a libcurl transfer is in progress: callbacks only
 *   append to C buffers owned by the session and set flags; results reach Lua
 *   after the transfer returns and every easy handle is detached again.
 * - Secrets held in C memory are wiped (explicit_bzero) before free.
 * - Times are 64-bit (int64_t / lua_Integer / double), never int or time_t.
 */
#ifndef AAP_H
#define AAP_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>
#include <lauxlib.h>
#include <curl/curl.h>

#if !defined(LUA_VERSION_NUM) || LUA_VERSION_NUM < 504
#error "aap needs Lua 5.4 or newer"
#endif

#ifndef AAP_VERSION
#define AAP_VERSION "0.1.0"
#endif

#define AAP_API __attribute__((visibility("default")))

#define AAP_SESSION_MT "aap.Session"
#define AAP_TOKEN_MT   "aap.Token"
#define AAP_ERROR_MT   "aap.Error"
#define AAP_SHARE_KEY  "aap.share"

/* session.c: curl_global_init, the state's shared caches, aap.connect, aap.check_url. */
void aap_open_session(lua_State *L);
/* osutil.c: aap.os, what Lua's stdlib lacks, assembled from its parts (osutil.h). */
void aap_open_osutil(lua_State *L);
/* crypto.c: SHA-256 and random bytes from libcrypto (state fingerprints, markers). */
void aap_open_crypto(lua_State *L);

/* ---- buffer.c: growable byte buffers that wipe what they held ---------- */

typedef struct aap_buf {
    char *data;
    size_t len, cap;
} aap_buf;

int aap_buf_add(aap_buf *b, const void *p, size_t n); /* 0, or -1: no memory */
int aap_buf_adds(aap_buf *b, const char *s);
void aap_buf_clear(aap_buf *b);   /* wipes the bytes used, keeps the memory */
void aap_buf_free(aap_buf *b);    /* wipes everything, frees */
char *aap_strdup_secret(const char *s, size_t n);
void aap_free_secret(char **s);   /* wipes and frees *s, sets it to NULL */
/* 1 when s[0..n) holds NUL, CR or LF. */
int aap_has_crlf(const char *s, size_t n);
int aap_sleep(double seconds);    /* -1: a signal ended the wait early */
double aap_now(void);             /* wall clock, seconds */

/* ---- timefmt.c: ISO-8601 <-> epoch seconds, 64-bit throughout ---------- */

/* 0 on success (*out = epoch seconds, fraction included), -1 on a bad string. */
int aap_parse_time(const char *s, size_t n, double *out);
/* Writes "YYYY-MM-DDTHH:MM:SSZ" (21 bytes with NUL); -1 outside years 0..9999. */
int aap_format_time(int64_t epoch, char out[32]);
void aap_open_timefmt(lua_State *L);

/* ---- json.c: a private lua-cjson instance ------------------------------- */

void aap_open_json(lua_State *L);
/* Pushes the decoded value (integral numbers as integers), or nil. */
int aap_json_decode(lua_State *L, const char *s, size_t n);
/* Encodes the value at idx; pushes the JSON text, or raises on a value
 * JSON cannot hold (a programmer error). */
void aap_json_encode(lua_State *L, int idx);
void aap_json_push_null(lua_State *L);
int aap_json_isnull(lua_State *L, int idx);

/* ---- errors.c: aap.Error ----------------------------------------------- */

void aap_open_errors(lua_State *L);   /* aap.codes, aap.error, the metatable */
/* Pushes nil and a new aap.Error; returns 2. method/path may be NULL. */
int aap_fail(lua_State *L, const char *code, long status, const char *message,
             const char *method, const char *path);
const char *aap_status_code(long status); /* error code for an HTTP status */
const char *aap_curl_code(CURLcode rc);    /* error code for a curl failure */

/* ---- http.c: one transfer, safe defaults, caps, retries ----------------- */

enum { AAP_AUTH_NONE, AAP_AUTH_SESSION, AAP_AUTH_CLIENT };
enum { AAP_FLAVOR_UNKNOWN, AAP_FLAVOR_GATEWAY, AAP_FLAVOR_CONTROLLER };

typedef struct aap_xfer {
    CURL *easy;
    aap_buf body;              /* response body (wiped on reuse) */
    aap_buf head;              /* header lines of the last response */
    size_t head_total;         /* header bytes over all responses (the cap) */
    size_t max_body, max_head;
    int too_large;             /* a callback refused more data */
    int page;                  /* paging.c: which page this transfer holds */
    int done;
    int watch_resend;          /* a POST/PATCH on a connection that may be reused */
    int rewound;               /* libcurl rewound its body: it sent it again */
    int sent_any;              /* read_cb handed out body bytes: the request may have
                                * reached the gateway, whatever the error says after */
    const char *up;            /* a watched request's body, read by read_cb */
    size_t up_len, up_off;
    CURLcode result;
    long status;
    const char *refused;       /* an error code when aap refused to go on ("redirect",
                                * "insecure"); the message is in errbuf */
    struct curl_slist *hdrs;
    int plain_get;             /* http.c: the easy handle is set up for a plain GET */
    char errbuf[CURL_ERROR_SIZE];
} aap_xfer;

/* One per Lua state (in the registry, created by aap_open_session): libcurl's
 * connection cache, TLS session cache and DNS cache, shared by every session
 * of the state, so that the sessions one command opens (the admin's, a new
 * token's Bearer check, a refresh) ride one TCP+TLS connection. libcurl reuses
 * a connection only for the same host, port and TLS settings (verification,
 * CA file), and Basic and Bearer credentials are per request, never per
 * connection. Finalized after every session (it is created first). */
typedef struct aap_share {
    CURLSH *sh;
} aap_share;

typedef struct aap_session aap_session;

struct aap_session {
    int closed;
    int flavor;                 /* AAP_FLAVOR_* (UNKNOWN until detected) */
    int insecure;
    int no_proxy;               /* plain http:// to loopback: never through a proxy */
    int clear_ok;               /* secrets may be sent: https, a loopback host, or allowed */
    int retries;
    int concurrency;
    int nxfers;
    CURLM *multi;
    aap_xfer *xfers;            /* [0] is the session's handle; more for paging */
    char *base;                 /* scheme://host[:port][/prefix], no trailing / */
    char *origin;               /* scheme://host[:port] */
    char *username, *password, *token;   /* password and token are secrets */
    char *ca_file, *user_agent;
    long timeout_ms, connect_timeout_ms;
    double backoff;
    size_t max_body, max_head;
    lua_Integer n_requests, n_connects, n_retries;
    lua_Integer n_maybe_resent; /* POST/PATCH that libcurl may have sent twice */
    aap_share *share;           /* the state's (kept alive by the user value) */
    char *alt_url, *alt_path;   /* a request re-aimed at the controller API */
    uint64_t rng;
    aap_buf form;               /* form bodies (may hold secrets) */
    struct aap_page *pages;     /* paging.c: bodies of concurrently fetched pages */
    int npages;
    /* paging.c's hook, set when it holds pages: session_release frees them
     * without knowing paging.c. */
    void (*free_pages)(aap_session *S);
};

typedef struct aap_req {
    const char *method;        /* GET, HEAD, POST, PUT, PATCH, DELETE */
    const char *url;           /* absolute */
    const char *path;          /* for errors: the path, no query */
    const char *body;          /* NULL: none */
    size_t body_len;
    const char *content_type;
    int auth;                  /* AAP_AUTH_* */
    const char *client_user, *client_pass; /* AAP_AUTH_CLIENT, URL-encoded */
    int secret_body;           /* the body holds secrets (OAuth forms) */
    int resend_safe;           /* a POST/PATCH the caller can tell apart when
                                * libcurl sends it twice (a create marker): it
                                * may go on a kept-alive connection */
} aap_req;

typedef struct aap_page {
    aap_buf body;
    long status;
    CURLcode result;
    int too_large;
} aap_page;

/* GET, HEAD, DELETE, PUT, OPTIONS: a method safe to send twice. */
int aap_idempotent(const char *method);
/* Creates the easy handle(s) lazily; 0 or -1 (no memory). */
int aap_xfers_reserve(aap_session *S, int n);
void aap_xfers_free(aap_session *S);
/* One request with the retry policy. 0: a response arrived (any status, in
 * x->status/x->body/x->head); -1: transport failure (x->result). */
int aap_http_run(aap_session *S, aap_xfer *x, const aap_req *r);
/* GETs urls[0..n) concurrently (no retries) into pages[0..n). */
void aap_http_fetch_many(aap_session *S, const char *const *urls, aap_page *pages, int n);
/* Pushes nil, err for a failed or unexpected response; returns 2.
 * extra: NULL-terminated secrets to scrub from the message besides the session's. */
int aap_push_response_error(lua_State *L, aap_session *S, const aap_xfer *x,
                            const aap_req *r, const char *const *extra);
int aap_push_transport_error(lua_State *L, const aap_xfer *x, const aap_req *r);

/* ---- headers.c: the header lines of a response (aap_xfer.head) ------------ */

/* The value of header `name` (case-insensitive), blanks trimmed, *vlen its
 * length; NULL if absent. head->data must not be NULL. */
const char *aap_find_header(const aap_buf *head, const char *name, size_t *vlen);
/* Value of a response header (case-insensitive name), pushed; nil if absent. */
int aap_push_header(lua_State *L, const aap_buf *head, const char *name);
/* Pushes a table of the response headers (lowercase names). */
void aap_push_headers(lua_State *L, const aap_buf *head);
/* Seconds to wait from a Retry-After header, or -1. */
double aap_retry_after(const aap_buf *head);

/* ---- url.c: URLs from the base, paths and query tables ------------------ */

/* Checks a session's URL (http or https, a host, no credentials, query or
 * fragment): NULL when fit, with *origin and *base malloc'd when origin_out is
 * given (then is_http and loopback are set too); else what is wrong. */
const char *aap_parse_base_url(const char *url, char **origin_out, char **base_out,
                               int *is_http, int *loopback);

/* Pushes the path without query, then base+api+path(+?query from the table
 * at qidx, 0: none, leaving out the key `skip`). Raises on NUL/CR/LF or a
 * path that is not a path. */
void aap_push_url(lua_State *L, aap_session *S, const char *path, int qidx, const char *skip);
/* Resolves a next link against the base; pushes the absolute URL, or nil when
 * it leaves the base's origin. */
int aap_push_resolved(lua_State *L, aap_session *S, const char *link);
/* Appends an x-www-form-urlencoded pair to b; -1 when out of memory. */
int aap_form_add(aap_buf *b, const char *key, const char *val, size_t vlen);
/* URL-encodes s into a new malloc'd string (wipe with aap_free_secret). */
char *aap_urlencode(const char *s, size_t n);
const char *aap_api_prefix(const aap_session *S);
/* 1 when host (as libcurl's URL parser gives it: IPv6 in brackets) is loopback:
 * localhost, 127.0.0.0/8, [::1], [::ffff:127.0.0.0/104]. The one definition. */
int aap_is_loopback(const char *host);
/* Where a redirect from URL `from` to `location` goes. 1: to the session's own
 * origin (scheme, host and port), *next = the URL to follow (malloc'd); 0: to
 * another origin; -1: not an http(s) URL; -2: no memory. `where` receives
 * "scheme://host:port" of the target when it could be parsed. */
int aap_redirect_target(aap_session *S, const char *from, const char *location, char **next,
                        char *where, size_t wlen);
const char *aap_oauth_prefix(const aap_session *S);

/* ---- the aap.Session methods, one table per file --------------------------- */

extern const luaL_Reg aap_session_meta[];         /* session.c: __gc, __close, __tostring, __index */
extern const luaL_Reg aap_session_methods[];      /* session.c: close, flavor, ping, me, request, stats */
extern const luaL_Reg aap_token_methods[];        /* tokens.c */
extern const luaL_Reg aap_application_methods[];  /* applications.c */
extern const luaL_Reg aap_organization_methods[]; /* organizations.c */
extern const luaL_Reg aap_oauth_methods[];        /* oauth.c: refresh, revoke */

/* ---- tokens.c: aap.Token records ---------------------------------------- */

void aap_open_tokens(lua_State *L);              /* the metatable, aap.parse_token */
/* Replaces the decoded token object at the top with an aap.Token. */
void aap_make_token(lua_State *L);
/* Replaces the decoded /o/token/ answer at the top with an aap.Token. */
void aap_make_oauth_token(lua_State *L, double now);

/* ---- paging.c: every page of a list ------------------------------------- */

/* Pushes an array of every item (converted by conv when not NULL, e.g.
 * aap_make_token), or nil, err. Returns the number of values pushed. */
int aap_list_all(lua_State *L, aap_session *S, const char *path, int qidx,
                 void (*conv)(lua_State *L));
/* The method s:NAME([filters]) of a list: the session at 1, the optional filters table at 2
 * (its `path` names another list), every page of `resource` (e.g. "applications/"). */
int aap_list_method(lua_State *L, const char *resource, void (*conv)(lua_State *L));
/* A converter for aap_list_iter, in a struct so that a light userdata can
 * carry it (ISO C has no function pointer in a void *). */
typedef struct aap_conv {
    void (*fn)(lua_State *L);
} aap_conv;
/* Pushes an iterator over the items (converted by conv->fn when conv is not
 * NULL; conv must outlive the iterator: a static), one page in memory at a
 * time; the session at sidx is kept by it. */
int aap_list_iter(lua_State *L, aap_session *S, int sidx, const char *path, int qidx,
                  const aap_conv *conv);

/* ---- call.c: what the methods share ---------------------------------------- */

/* The value at idx has field f (a table whose f is not nil). */
int aap_has_field(lua_State *L, int idx, const char *f);
/* Raises on keys of the table at idx that are not in `allowed`. */
void aap_check_keys(lua_State *L, int idx, const char *fn, const char *const *allowed);
/* Copies src[key] into dst when it has the right type (raises otherwise). */
void aap_copy_opt(lua_State *L, int src, int dst, const char *fn, const char *key, int type);
void aap_push_id_path(lua_State *L, const char *what, lua_Integer id); /* "what/ID/" */
/* The `path` filter of a list call, or def. */
const char *aap_list_path(lua_State *L, int fidx, const char *def);

aap_session *aap_check_session(lua_State *L, int idx); /* raises when closed */
/* Detects the flavor when still unknown (probes ping/ and friends); 0, or
 * pushes nil, err and returns 2. Only s:flavor() needs this: calls learn the
 * flavor from their own answer (aap_http_call). */
int aap_detect_flavor(lua_State *L, aap_session *S);
/* aap_http_run for a request built with the session's API prefix. While the
 * flavor is unknown the request goes to the gateway's routes: an answer there
 * (not a 404, and JSON or empty) settles it as a gateway; a 404 or an answer
 * that is not JSON runs the detection, and on a controller the request is sent
 * again to the controller's route (a 404 did nothing, so even a POST may be).
 * 0: an answer in x; -1: a transport failure in x; 2: nil, err pushed. */
int aap_http_call(lua_State *L, aap_session *S, aap_xfer *x, aap_req *r);
/* Sends method path (API-relative; query from the table at qidx, 0: none;
 * JSON body from the value at jidx, 0: none) and pushes the decoded body of a
 * 2xx answer (true when empty), or nil, err. Returns the number pushed. */
int aap_call_json(lua_State *L, aap_session *S, const char *method, const char *path,
                  int qidx, int jidx);
/* The same for a POST/PATCH whose body carries a create marker (resend_safe). */
int aap_call_json_marked(lua_State *L, aap_session *S, const char *method, const char *path,
                         int qidx, int jidx);
/* Pushes nil, err for a 2xx body that is not what was expected. */
int aap_bad_response(lua_State *L, const aap_xfer *x, const aap_req *r, const char *what);

#endif
