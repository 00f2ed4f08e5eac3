/*
 * session.c - aap.connect and the aap.Session userdata: options, the base
 * URL, flavor detection (API doc 12.1), and the gateway calls.
 *
 * Like lsqlite3's newdb: the userdata and its complete metatable exist before
 * any C resource is acquired, so __gc frees whatever was acquired even when
 * connect fails half-way. __gc, __close and close() share one idempotent
 * function (as liolib does).
 */
#include "aap.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* ---- lifecycle ---------------------------------------------------------- */

static aap_session *get_session(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, AAP_SESSION_MT);
}

aap_session *aap_check_session(lua_State *L, int idx)
{
    aap_session *S = get_session(L, idx);
    if (S->closed)
        luaL_error(L, "attempt to use a closed aap.Session");
    return S;
}

static void session_release(aap_session *S)
{
    if (S->closed)
        return;
    S->closed = 1;
    aap_xfers_free(S);               /* detaches and cleans every easy handle */
    if (S->multi)
        curl_multi_cleanup(S->multi);
    S->multi = NULL;
    aap_pages_free(S);
    aap_buf_free(&S->form);
    aap_free_secret(&S->password);
    aap_free_secret(&S->token);
    free(S->username);
    free(S->base);
    free(S->origin);
    free(S->ca_file);
    free(S->user_agent);
    free(S->alt_url);
    free(S->alt_path);
    S->username = S->base = S->origin = S->ca_file = S->user_agent = NULL;
    S->alt_url = S->alt_path = NULL;
}

static int session_close(lua_State *L)
{
    session_release(get_session(L, 1));
    return 0;
}

static int session_tostring(lua_State *L)
{
    aap_session *S = get_session(L, 1);
    if (S->closed) {
        lua_pushliteral(L, "aap.Session(closed)");
        return 1;
    }
    const char *fl = S->flavor == AAP_FLAVOR_GATEWAY ? "gateway"
                   : S->flavor == AAP_FLAVOR_CONTROLLER ? "controller" : "auto";
    lua_pushfstring(L, "aap.Session(%s, %s%s%s)", S->base, fl,
                    S->token ? ", bearer" : S->username ? ", basic" : "",
                    S->insecure ? ", insecure: TLS verification off" : "");
    return 1;
}

/* ---- options ------------------------------------------------------------ */

static const char *const OPTIONS[] = {
    "url", "username", "password", "token", "ca_file", "insecure", "timeout",
    "connect_timeout", "retries", "flavor", "user_agent", "max_body", "max_header",
    "concurrency", "allow_plain_http", "allow_insecure_basic", "backoff", NULL
};

static const char *opt_string(lua_State *L, const char *key, int header_safe, size_t *len)
{
    if (lua_getfield(L, 1, key) == LUA_TNIL) {
        lua_pop(L, 1);
        return NULL;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "aap.connect: option '%s' must be a string", key);
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    if (header_safe ? aap_has_crlf(s, n) : memchr(s, '\0', n) != NULL)
        luaL_error(L, "aap.connect: option '%s' holds NUL, CR or LF", key);
    if (len)
        *len = n;
    lua_pop(L, 1);               /* the string stays alive in the options table */
    return s;
}

static double opt_number(lua_State *L, const char *key, double def, double lo, double hi)
{
    if (lua_getfield(L, 1, key) == LUA_TNIL) {
        lua_pop(L, 1);
        return def;
    }
    if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "aap.connect: option '%s' must be a number", key);
    double v = lua_tonumber(L, -1);
    if (!(v >= lo && v <= hi))
        luaL_error(L, "aap.connect: option '%s' out of range (%f to %f)", key, lo, hi);
    lua_pop(L, 1);
    return v;
}

static int opt_bool(lua_State *L, const char *key)
{
    int t = lua_getfield(L, 1, key);
    if (t != LUA_TNIL && t != LUA_TBOOLEAN)
        luaL_error(L, "aap.connect: option '%s' must be a boolean", key);
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

static char *dup_or_die(lua_State *L, const char *s)
{
    char *d = s ? aap_strdup_secret(s, strlen(s)) : NULL;
    if (s && !d)
        luaL_error(L, "not enough memory");
    return d;
}

/* Parses and checks the URL with libcurl's parser. Returns NULL when it is fit for a session,
 * with *origin and *base malloc'ed when those are given (else not made), or what is wrong. */
static const char *parse_url(const char *url, char **origin_out, char **base_out, int *is_http, int *loopback)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *user = NULL, *pw = NULL, *query = NULL, *frag = NULL;
    char *host = NULL, *port = NULL, *path = NULL;
    const char *bad = NULL;
    if (!u)
        return "not enough memory";
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
        bad = "not a valid http:// or https:// URL";
    } else {
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
        curl_url_get(u, CURLUPART_USER, &user, 0);
        curl_url_get(u, CURLUPART_PASSWORD, &pw, 0);
        curl_url_get(u, CURLUPART_QUERY, &query, 0);
        curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0);
        curl_url_get(u, CURLUPART_HOST, &host, 0);
        curl_url_get(u, CURLUPART_PORT, &port, 0);
        curl_url_get(u, CURLUPART_PATH, &path, 0);
        if (!scheme || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
            bad = "scheme must be http or https";
        else if (user || pw)
            bad = "credentials do not belong in the URL: use username/password or token";
        else if (query || frag)
            bad = "URL must not have a query or fragment";
        else if (!host || !*host)
            bad = "URL has no host";
    }
    if (!bad && origin_out) {
        size_t plen = path ? strlen(path) : 0;
        while (plen > 0 && path[plen - 1] == '/')
            plen--;
        char *origin = malloc(strlen(scheme) + strlen(host) + (port ? strlen(port) : 0) + 8);
        char *base = origin ? malloc(strlen(scheme) + strlen(host) + (port ? strlen(port) : 0) + plen + 8) : NULL;
        if (origin && base) {
            sprintf(origin, "%s://%s%s%s", scheme, host, port ? ":" : "", port ? port : "");
            sprintf(base, "%s%.*s", origin, (int)plen, path ? path : "");
            *origin_out = origin;
            *base_out = base;
            *is_http = strcmp(scheme, "http") == 0;
            *loopback = aap_is_loopback(host);
        } else {
            free(origin);
            bad = "not enough memory";
        }
    }
    curl_free(scheme); curl_free(user); curl_free(pw); curl_free(query);
    curl_free(frag); curl_free(host); curl_free(port); curl_free(path);
    curl_url_cleanup(u);
    return bad;
}

/* Sets S->origin and S->base from the URL; a bad URL raises (a wrong argument). */
static void set_base(lua_State *L, aap_session *S, const char *url, int *is_http, int *loopback)
{
    const char *bad = parse_url(url, &S->origin, &S->base, is_http, loopback);
    if (bad)
        luaL_error(L, "aap.connect: option 'url': %s", bad);
}

/* aap.check_url(url) -> true | nil, reason: would aap.connect take this URL? For callers
 * that take a URL from a person (the command's --url, AAP_HOSTNAME) and must say what is
 * wrong with it rather than raise. */
static int l_check_url(lua_State *L)
{
    const char *url = luaL_checkstring(L, 1);
    const char *bad = strlen(url) == lua_rawlen(L, 1) ? parse_url(url, NULL, NULL, NULL, NULL) : "holds NUL";
    if (!bad) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, bad);
    return 2;
}

/* aap.connect(opts) -> aap.Session | nil, err */
static int l_connect(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    /* Unknown keys are programmer errors: raise at the caller. */
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_pop(L, 1);
        int known = 0;
        if (lua_type(L, -1) == LUA_TSTRING)
            for (int i = 0; OPTIONS[i]; i++)
                if (strcmp(lua_tostring(L, -1), OPTIONS[i]) == 0)
                    known = 1;
        if (!known)
            return luaL_error(L, "aap.connect: unknown option '%s'", luaL_tolstring(L, -1, NULL));
    }
    const char *url = opt_string(L, "url", 1, NULL);
    if (!url)
        return luaL_error(L, "aap.connect: option 'url' is required");
    const char *username = opt_string(L, "username", 1, NULL);
    const char *password = opt_string(L, "password", 0, NULL);
    size_t toklen = 0;
    const char *token = opt_string(L, "token", 1, &toklen);
    const char *ca_file = opt_string(L, "ca_file", 1, NULL);
    const char *user_agent = opt_string(L, "user_agent", 1, NULL);
    const char *flavor = opt_string(L, "flavor", 1, NULL);
    int insecure = opt_bool(L, "insecure");
    /* allow_insecure_basic: the former name, which only covered Basic. */
    int allow_plain = opt_bool(L, "allow_plain_http") || opt_bool(L, "allow_insecure_basic");
    double timeout = opt_number(L, "timeout", 30, 0.001, 86400);
    double ctimeout = opt_number(L, "connect_timeout", 10, 0.001, 86400);
    int retries = (int)opt_number(L, "retries", 3, 0, 10);
    double backoff = opt_number(L, "backoff", 0.5, 0, 60);
    double max_body = opt_number(L, "max_body", 16 * 1024 * 1024, 1, 1024.0 * 1024 * 1024);
    double max_head = opt_number(L, "max_header", 64 * 1024, 256, 16.0 * 1024 * 1024);
    int concurrency = (int)opt_number(L, "concurrency", 4, 1, 32);
    if (token) {
        for (size_t i = 0; i < toklen; i++)
            if ((unsigned char)token[i] <= 0x20 || (unsigned char)token[i] >= 0x7f)
                return luaL_error(L, "aap.connect: option 'token' must be printable ASCII without spaces");
        username = password = NULL;       /* Bearer wins over Basic */
    }
    if (username && strchr(username, ':'))
        return luaL_error(L, "aap.connect: option 'username' must not contain ':'");
    if (password && !username)
        return luaL_error(L, "aap.connect: option 'password' needs 'username'");
    int fl = AAP_FLAVOR_UNKNOWN;
    if (flavor && strcmp(flavor, "gateway") == 0)
        fl = AAP_FLAVOR_GATEWAY;
    else if (flavor && strcmp(flavor, "controller") == 0)
        fl = AAP_FLAVOR_CONTROLLER;
    else if (flavor && strcmp(flavor, "auto") != 0)
        return luaL_error(L, "aap.connect: option 'flavor' must be \"auto\", \"gateway\" or \"controller\"");

    /* The owner exists, with its metatable, before any resource is taken. */
    aap_session *S = lua_newuserdatauv(L, sizeof *S, 1);
    memset(S, 0, sizeof *S);
    luaL_setmetatable(L, AAP_SESSION_MT);
    /* The state's shared caches, kept alive by the session's user value. */
    if (lua_getfield(L, LUA_REGISTRYINDEX, AAP_SHARE_KEY) == LUA_TUSERDATA)
        S->share = lua_touserdata(L, -1);
    lua_setiuservalue(L, -2, 1);

    int is_http = 0, loopback = 0;
    set_base(L, S, url, &is_http, &loopback);
    S->clear_ok = !is_http || loopback || allow_plain;
    /* Plain http:// is allowed credentials only because loopback bytes never leave the
     * machine: an http_proxy from the environment would carry them, in clear, to another
     * host. Such a session ignores proxies; https (tunnelled, verified) honours them. */
    S->no_proxy = is_http && loopback;
    if ((username || token) && !S->clear_ok) {
        /* A setting the operator chose (often from the environment): an
         * error to report, not a programmer error to raise. Refused here,
         * before any I/O; http.c refuses every other secret the same way. */
        session_release(S);
        return aap_fail(L, "insecure", 0, token
                        ? "refusing to send a token over plain http:// to a host that is not loopback "
                          "(use https://, or allow_plain_http = true)"
                        : "refusing to send a Basic password over plain http:// to a host that is not "
                          "loopback (use https://, or allow_plain_http = true)", NULL, NULL);
    }
    S->flavor = fl;
    S->insecure = insecure;
    S->retries = retries;
    S->backoff = backoff;
    S->concurrency = concurrency;
    S->timeout_ms = (long)(timeout * 1000.0);
    S->connect_timeout_ms = (long)(ctimeout * 1000.0);
    S->max_body = (size_t)max_body;
    S->max_head = (size_t)max_head;
    S->username = dup_or_die(L, username);
    S->password = dup_or_die(L, password);
    S->token = dup_or_die(L, token);
    S->ca_file = dup_or_die(L, ca_file);
    S->user_agent = dup_or_die(L, user_agent ? user_agent : "aap/" AAP_VERSION);
    if (getrandom(&S->rng, sizeof S->rng, GRND_NONBLOCK) != (ssize_t)sizeof S->rng)
        S->rng = (uint64_t)aap_now() * 1000003u ^ (uint64_t)getpid();
    if (S->rng == 0)
        S->rng = 0x9e3779b97f4a7c15ULL;
    S->multi = curl_multi_init();
    if (!S->multi || aap_xfers_reserve(S, 1) != 0)
        return luaL_error(L, "not enough memory");
    curl_multi_setopt(S->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)concurrency);
    curl_multi_setopt(S->multi, CURLMOPT_MAXCONNECTS, (long)concurrency);
    return 1;
}

/* ---- calls -------------------------------------------------------------- */

int aap_bad_response(lua_State *L, const aap_xfer *x, const aap_req *r, const char *what)
{
    return aap_fail(L, "bad_response", x->status, what, r->method, r->path);
}

/* The request at the top two slots (path, url) sent; pushes the decoded
 * 2xx body, or nil, err. */
static int send_json(lua_State *L, aap_session *S, aap_req *r)
{
    aap_xfer *x = &S->xfers[0];
    int rc = aap_http_call(L, S, x, r);
    if (rc == 2)
        return 2;
    if (rc != 0)
        return aap_push_transport_error(L, x, r);
    if (x->status < 200 || x->status > 299)
        return aap_push_response_error(L, S, x, r, NULL);
    if (x->body.len == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    int ok = aap_json_decode(L, x->body.data, x->body.len);
    aap_buf_clear(&x->body);             /* may hold a plaintext token */
    if (!ok)
        return aap_bad_response(L, x, r, "the answer is not JSON");
    return 1;
}

static int call_json(lua_State *L, aap_session *S, const char *method, const char *path,
                     int qidx, int jidx, int resend_safe)
{
    if (qidx)
        qidx = lua_absindex(L, qidx);
    if (jidx)
        jidx = lua_absindex(L, jidx);
    aap_push_url(L, S, path, qidx, NULL);
    aap_req r = { method, lua_tostring(L, -1), lua_tostring(L, -2), NULL, 0, NULL,
                  AAP_AUTH_SESSION, NULL, NULL, 0, resend_safe };
    if (jidx) {
        aap_json_encode(L, jidx);
        r.body = lua_tolstring(L, -1, &r.body_len);
        r.content_type = "application/json";
    }
    return send_json(L, S, &r);
}

int aap_call_json(lua_State *L, aap_session *S, const char *method, const char *path,
                  int qidx, int jidx)
{
    return call_json(L, S, method, path, qidx, jidx, 0);
}

int aap_call_json_marked(lua_State *L, aap_session *S, const char *method, const char *path,
                         int qidx, int jidx)
{
    return call_json(L, S, method, path, qidx, jidx, 1);
}

/* GET an absolute path for detection: pushes the decoded body (or nil) and
 * returns the status; -1 after pushing nil, err on a transport failure. */
static long probe(lua_State *L, aap_session *S, const char *path)
{
    lua_pushstring(L, path);
    lua_pushfstring(L, "%s%s", S->base, path);
    aap_req r = { "GET", lua_tostring(L, -1), lua_tostring(L, -2), NULL, 0, NULL,
                  AAP_AUTH_SESSION, NULL, NULL, 0, 0 };
    aap_xfer *x = &S->xfers[0];
    if (aap_http_run(S, x, &r) != 0) {
        aap_push_transport_error(L, x, &r);
        lua_remove(L, -3);
        lua_remove(L, -3);                /* leaves just nil, err */
        return -1;
    }
    lua_pop(L, 2);
    if (x->body.len == 0)
        lua_pushnil(L);
    else
        aap_json_decode(L, x->body.data, x->body.len);   /* nil when not JSON */
    aap_buf_clear(&x->body);
    return x->status;
}

int aap_has_field(lua_State *L, int idx, const char *f)
{
    if (lua_type(L, idx) != LUA_TTABLE)
        return 0;
    int t = lua_getfield(L, idx, f);
    lua_pop(L, 1);
    return t != LUA_TNIL;
}

/* Detection failed: one error naming every URL tried with its status. When one
 * of them answered 5xx the gateway is there but failing: code "server" with that
 * status (an outage is not a wrong URL); else "bad_response". */
static int detection_failed(lua_State *L, aap_session *S, const char *const *paths,
                            const long *status, int n)
{
    long outage = 0;
    int last = n - 1;
    for (int i = 0; i < n; i++)
        if (status[i] >= 500 && status[i] <= 599) {
            outage = status[i];
            last = i;
        }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (outage)
        lua_pushfstring(L, "the gateway at %s is failing (HTTP %d), so its API could not be told apart: ",
                        S->base, (int)outage);
    else
        lua_pushfstring(L, "no AAP gateway or controller API found at %s: ", S->base);
    luaL_addvalue(&b);
    for (int i = 0; i < n; i++) {
        lua_pushfstring(L, "%sGET %s -> %d", i ? ", " : "", paths[i], (int)status[i]);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    aap_fail(L, outage ? "server" : "bad_response", outage, lua_tostring(L, -1), "GET", paths[last]);
    lua_remove(L, -3);
    return 2;
}

int aap_detect_flavor(lua_State *L, aap_session *S)
{
    static const char *const paths[] = { "/api/gateway/v1/ping/", "/api/v2/ping/", "/api/",
                                         "/api/gateway/v1/me/" };
    long status[4] = { 0, 0, 0, 0 };
    if (S->flavor != AAP_FLAVOR_UNKNOWN)
        return 0;
    int top = lua_gettop(L);
    long st = status[0] = probe(L, S, paths[0]);
    if (st < 0)
        return 2;
    /* A gateway: 200 with pong/status; or a JSON 401/403 when ping needs auth. */
    if ((st == 200 && (aap_has_field(L, -1, "pong") || aap_has_field(L, -1, "status"))) ||
        ((st == 401 || st == 403) && aap_has_field(L, -1, "detail"))) {
        S->flavor = AAP_FLAVOR_GATEWAY;
        lua_settop(L, top);
        return 0;
    }
    lua_settop(L, top);
    st = status[1] = probe(L, S, paths[1]);
    if (st < 0)
        return 2;
    if (st == 200 && (aap_has_field(L, -1, "ha") || aap_has_field(L, -1, "active_node") ||
                      aap_has_field(L, -1, "install_uuid") || aap_has_field(L, -1, "instances"))) {
        S->flavor = AAP_FLAVOR_CONTROLLER;
        lua_settop(L, top);
        return 0;
    }
    lua_settop(L, top);
    st = status[2] = probe(L, S, paths[2]);
    if (st < 0)
        return 2;
    if (st == 200 && aap_has_field(L, -1, "apis")) {
        S->flavor = AAP_FLAVOR_GATEWAY;
    } else if (st == 200 && lua_type(L, -1) == LUA_TTABLE &&
               lua_getfield(L, -1, "current_version") == LUA_TSTRING &&
               strstr(lua_tostring(L, -1), "/api/v2/")) {
        S->flavor = AAP_FLAVOR_CONTROLLER;
    }
    lua_settop(L, top);
    if (S->flavor != AAP_FLAVOR_UNKNOWN)
        return 0;
    /* A gateway without ping/ (or behind a proxy that hides it): me/ is DRF's, JSON
     * with `results`, or a JSON 401/403 with `detail`. */
    st = status[3] = probe(L, S, paths[3]);
    if (st < 0)
        return 2;
    if ((st == 200 && aap_has_field(L, -1, "results")) ||
        ((st == 401 || st == 403) && aap_has_field(L, -1, "detail")))
        S->flavor = AAP_FLAVOR_GATEWAY;
    lua_settop(L, top);
    if (S->flavor == AAP_FLAVOR_UNKNOWN)
        return detection_failed(L, S, paths, status, 4);
    return 0;
}

/* r's URL (built with the gateway's prefix) aimed at the controller's route
 * instead: S->alt_url and S->alt_path, which r then points to. 0, or -1 when r
 * is not a gateway URL of this session (or no memory). */
static int reaim(aap_session *S, aap_req *r)
{
    static const char *const from[] = { "/api/gateway/v1/", "/o/" };
    static const char *const to[] = { "/api/v2/", "/api/o/" };
    size_t bl = strlen(S->base), ol = strlen(S->origin);
    if (strncmp(r->url, S->base, bl) != 0)
        return -1;
    const char *rest = r->url + bl;
    for (int i = 0; i < 2; i++) {
        size_t fl = strlen(from[i]);
        if (strncmp(rest, from[i], fl) != 0)
            continue;
        size_t n = bl + strlen(to[i]) + strlen(rest + fl) + 1;
        char *url = malloc(n);
        if (!url)
            return -1;
        snprintf(url, n, "%s%s%s", S->base, to[i], rest + fl);
        const char *p = url + ol;
        size_t pl = strcspn(p, "?");
        char *path = malloc(pl + 1);
        if (!path) {
            free(url);
            return -1;
        }
        memcpy(path, p, pl);
        path[pl] = '\0';
        free(S->alt_url);
        free(S->alt_path);
        S->alt_url = url;
        S->alt_path = path;
        r->url = url;
        r->path = path;
        return 0;
    }
    return -1;
}

/* Whether an answer's body reads as JSON (or is empty): its first byte. */
static int looks_json(const aap_xfer *x)
{
    for (size_t i = 0; i < x->body.len; i++) {
        char c = x->body.data[i];
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
            return c == '{' || c == '[';
    }
    return 1;
}

int aap_http_call(lua_State *L, aap_session *S, aap_xfer *x, aap_req *r)
{
    int rc = aap_http_run(S, x, r);
    if (S->flavor != AAP_FLAVOR_UNKNOWN || rc != 0)
        return rc;
    if (x->status != 404 && looks_json(x)) {
        S->flavor = AAP_FLAVOR_GATEWAY;    /* the gateway's route answered */
        return 0;
    }
    /* A 404 or a page that is not the API's: which API is this? The answer
     * is kept aside while the probes use the handle. */
    int was_json = looks_json(x);
    aap_buf body = x->body, head = x->head;
    long status = x->status;
    memset(&x->body, 0, sizeof x->body);
    memset(&x->head, 0, sizeof x->head);
    int n = aap_detect_flavor(L, S);
    aap_buf_free(&x->body);
    aap_buf_free(&x->head);
    x->body = body;
    x->head = head;
    x->status = status;
    x->result = CURLE_OK;
    x->refused = NULL;
    if (n)
        return 2;
    /* On a controller the gateway's route is no API (a 404, or a page some
     * front end serves for any path): the call did nothing there. Send it
     * where it goes - a request that is not idempotent only after a 404 or an
     * error page, never after a 2xx, which a misdetection could make a second
     * create. */
    int redo = status == 404 || (!was_json && (aap_idempotent(r->method) || status < 200 || status > 299));
    if (S->flavor == AAP_FLAVOR_CONTROLLER && redo && reaim(S, r) == 0)
        return aap_http_run(S, x, r);
    return 0;
}

/* Raises on keys of the table at idx that are not in `allowed`. */
void aap_check_keys(lua_State *L, int idx, const char *fn, const char *const *allowed)
{
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        int ok = 0;
        if (lua_type(L, -1) == LUA_TSTRING)
            for (int i = 0; allowed[i]; i++)
                if (strcmp(lua_tostring(L, -1), allowed[i]) == 0)
                    ok = 1;
        if (!ok)
            luaL_error(L, "%s: unknown option '%s'", fn, luaL_tolstring(L, -1, NULL));
    }
}

/* Copies opts[key] into the JSON body at dst when it has the right type. */
void aap_copy_opt(lua_State *L, int src, int dst, const char *fn, const char *key, int type)
{
    int t = lua_getfield(L, src, key);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    if (t != type && !(type == LUA_TNUMBER && aap_json_isnull(L, -1)))
        luaL_error(L, "%s: option '%s' must be a %s", fn, key, lua_typename(L, type));
    if (type == LUA_TNUMBER && t == LUA_TNUMBER) {
        int isnum;
        lua_Integer id = lua_tointegerx(L, -1, &isnum);   /* 3.0 from a JSON decoder is 3 */
        if (!isnum)
            luaL_error(L, "%s: option '%s' must be an integer id", fn, key);
        lua_pop(L, 1);
        lua_pushinteger(L, id);
    }
    lua_setfield(L, dst, key);
}

void aap_push_id_path(lua_State *L, const char *what, lua_Integer id)
{
    lua_pushfstring(L, "%s/%I/", what, (LUAI_UACINT)id);
}

static int s_flavor(lua_State *L)
{
    aap_session *S = aap_check_session(L, 1);
    int n = aap_detect_flavor(L, S);
    if (n)
        return n;
    lua_pushstring(L, S->flavor == AAP_FLAVOR_CONTROLLER ? "controller" : "gateway");
    return 1;
}

static int s_ping(lua_State *L)
{
    aap_session *S = aap_check_session(L, 1);
    return aap_call_json(L, S, "GET", "ping/", 0, 0);
}

static int s_me(lua_State *L)
{
    aap_session *S = aap_check_session(L, 1);
    int n = aap_call_json(L, S, "GET", "me/", 0, 0);
    if (n != 1)
        return n;
    int b = lua_gettop(L);
    if (lua_type(L, b) == LUA_TTABLE) {
        if (lua_getfield(L, b, "results") == LUA_TTABLE) {
            if (lua_rawgeti(L, -1, 1) == LUA_TTABLE)
                return 1;
        } else if (aap_has_field(L, b, "id")) {
            lua_settop(L, b);
            return 1;                     /* a plain user object */
        }
    }
    lua_settop(L, b);
    lua_pushfstring(L, "%s%s", aap_api_prefix(S), "me/");
    return aap_fail(L, "bad_response", 200, "me/ did not list the current user", "GET",
                    lua_tostring(L, -1));
}

const char *aap_list_path(lua_State *L, int fidx, const char *def)
{
    if (!lua_istable(L, fidx))
        return def;
    int t = lua_getfield(L, fidx, "path");
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return def;
    }
    size_t n;
    const char *p = lua_tolstring(L, -1, &n);  /* kept alive by the filters table */
    if (t != LUA_TSTRING || aap_has_crlf(p, n))
        luaL_error(L, "filter 'path' must be a string without NUL, CR or LF");
    lua_pop(L, 1);
    return p;
}

/* ---- the raw escape hatch ----------------------------------------------- */

static const char *const METHODS[] = { "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", NULL };

/* s:request(method, path, {query=, json=, form=}) -> status, body, headers | nil, err */
static int s_request(lua_State *L)
{
    aap_session *S = aap_check_session(L, 1);
    static const char *const keys[] = { "query", "json", "form", NULL };
    int mi = luaL_checkoption(L, 2, NULL, METHODS);
    size_t plen;
    const char *path = luaL_checklstring(L, 3, &plen);
    luaL_argcheck(L, !aap_has_crlf(path, plen), 3, "path holds NUL, CR or LF");
    if (!lua_isnoneornil(L, 4))
        luaL_checktype(L, 4, LUA_TTABLE);
    lua_settop(L, 4);
    int query = 0, json = 0, form = 0;
    if (lua_istable(L, 4)) {
        aap_check_keys(L, 4, "request", keys);
        if (lua_getfield(L, 4, "query") != LUA_TNIL) {      /* 5 */
            luaL_argcheck(L, lua_istable(L, 5), 4, "'query' must be a table");
            query = 5;
        }
        if (lua_getfield(L, 4, "json") != LUA_TNIL)          /* 6 */
            json = 6;
        if (lua_getfield(L, 4, "form") != LUA_TNIL) {        /* 7 */
            luaL_argcheck(L, lua_istable(L, 7), 4, "'form' must be a table");
            luaL_argcheck(L, !json, 4, "'json' and 'form' exclude each other");
            form = 7;
        }
    }
    lua_settop(L, 7);
    if (form && !S->clear_ok)    /* before flavor detection: nothing is sent */
        return aap_fail(L, "insecure", 0, "refusing to send a form (OAuth: tokens, client secrets) over "
                        "plain http:// to a host that is not loopback (use https://, or allow_plain_http = true)",
                        METHODS[mi], path);
    aap_push_url(L, S, path, query, NULL);                  /* 8 path, 9 url */
    aap_req r = { METHODS[mi], lua_tostring(L, 9), lua_tostring(L, 8), NULL, 0, NULL,
                  AAP_AUTH_SESSION, NULL, NULL, 0, 0 };
    aap_buf_clear(&S->form);
    if (json) {
        aap_json_encode(L, json);
        r.body = lua_tolstring(L, -1, &r.body_len);
        r.content_type = "application/json";
    } else if (form) {
        lua_pushnil(L);
        while (lua_next(L, form)) {
            size_t vl;
            if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1)) {
                aap_buf_clear(&S->form);
                return luaL_error(L, "request: 'form' maps strings to strings");
            }
            const char *v = lua_tolstring(L, -1, &vl);
            if (aap_form_add(&S->form, lua_tostring(L, -2), v, vl) != 0) {
                aap_buf_clear(&S->form);
                return luaL_error(L, "not enough memory");
            }
            lua_pop(L, 1);
        }
        r.body = S->form.data ? S->form.data : "";
        r.body_len = S->form.len;
        r.content_type = "application/x-www-form-urlencoded";
        r.secret_body = 1;       /* forms are OAuth's: grants, tokens, client secrets */
    }
    aap_xfer *x = &S->xfers[0];
    int rc = aap_http_call(L, S, x, &r);
    aap_buf_clear(&S->form);
    if (rc == 2)
        return 2;
    if (rc != 0)
        return aap_push_transport_error(L, x, &r);
    lua_pushinteger(L, x->status);
    if (x->body.len == 0 || !aap_json_decode(L, x->body.data, x->body.len)) {
        if (x->body.len > 0)
            lua_pop(L, 1);
        lua_pushlstring(L, x->body.data ? x->body.data : "", x->body.len);
    }
    aap_buf_clear(&x->body);
    aap_push_headers(L, &x->head);
    return 3;
}

static int s_stats(lua_State *L)
{
    aap_session *S = aap_check_session(L, 1);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, S->n_maybe_resent);
    lua_setfield(L, -2, "maybe_resent");
    lua_pushinteger(L, S->n_requests);
    lua_setfield(L, -2, "requests");
    lua_pushinteger(L, S->n_connects);
    lua_setfield(L, -2, "connects");
    lua_pushinteger(L, S->n_retries);
    lua_setfield(L, -2, "retries");
    return 1;
}

static const luaL_Reg session_methods[] = {
    { "close", session_close },
    { "flavor", s_flavor },
    { "ping", s_ping },
    { "me", s_me },
    { "request", s_request },
    { "stats", s_stats },
    { NULL, NULL }
};

static const luaL_Reg session_meta[] = {
    { "__gc", session_close },
    { "__close", session_close },
    { "__tostring", session_tostring },
    { "__index", NULL },
    { NULL, NULL }
};

static int share_gc(lua_State *L)
{
    aap_share *sh = lua_touserdata(L, 1);
    /* Every session is finalized before (they were created after it); should
     * one still hold a handle, the share is left to the process's end. */
    if (sh->sh && curl_share_cleanup(sh->sh) == CURLSHE_OK)
        sh->sh = NULL;
    return 0;
}

/* One share per Lua state, in the registry; a second require finds it. */
static void open_share(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, AAP_SHARE_KEY) == LUA_TUSERDATA) {
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    aap_share *sh = lua_newuserdatauv(L, sizeof *sh, 0);
    memset(sh, 0, sizeof *sh);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, share_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    sh->sh = curl_share_init();
    if (sh->sh) {
        CURLSHcode rc = curl_share_setopt(sh->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
        if (rc == CURLSHE_OK)
            rc = curl_share_setopt(sh->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        if (rc == CURLSHE_OK)
            rc = curl_share_setopt(sh->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        if (rc != CURLSHE_OK) {
            curl_share_cleanup(sh->sh);
            sh->sh = NULL;
        }
    }
    if (!sh->sh) {
        lua_pop(L, 1);                   /* no sharing: each session on its own */
        return;
    }
    lua_setfield(L, LUA_REGISTRYINDEX, AAP_SHARE_KEY);
}

void aap_open_session(lua_State *L)
{
    static int curl_ready = 0;
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            luaL_error(L, "aap: curl_global_init failed");
        curl_ready = 1;
    }
    open_share(L);
    aap_open_json(L);
    aap_open_errors(L);
    aap_open_tokens(L);
    aap_open_timefmt(L);
    /* The metatable is complete before any session exists. */
    luaL_newmetatable(L, AAP_SESSION_MT);
    luaL_setfuncs(L, session_meta, 0);
    luaL_newlib(L, session_methods);
    aap_add_token_methods(L);
    aap_add_application_methods(L);
    aap_add_oauth_methods(L);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_connect);
    lua_setfield(L, -2, "connect");
    lua_pushcfunction(L, l_check_url);
    lua_setfield(L, -2, "check_url");
}
