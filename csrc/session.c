/*
 * session.c - aap.connect and the aap.Session userdata: options, the base
 * URL, the state's shared libcurl caches, and the session's own methods
 * (close, flavor, ping, me, request, stats). The calls every method shares
 * are in call.c; aap.c puts this file's methods and those of tokens.c,
 * applications.c and oauth.c into the aap.Session metatable.
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

static void session_release(aap_session *S)
{
    if (S->closed)
        return;
    S->closed = 1;
    aap_xfers_free(S);               /* detaches and cleans every easy handle */
    if (S->multi)
        curl_multi_cleanup(S->multi);
    S->multi = NULL;
    if (S->free_pages)
        S->free_pages(S);            /* paging.c's scratch, by its own hook */
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

/* Sets S->origin and S->base from the URL; a bad URL raises (a wrong argument). */
static void set_base(lua_State *L, aap_session *S, const char *url, int *is_http, int *loopback)
{
    const char *bad = aap_parse_base_url(url, &S->origin, &S->base, is_http, loopback);
    if (bad)
        luaL_error(L, "aap.connect: option 'url': %s", bad);
}

/* aap.check_url(url) -> true | nil, reason: would aap.connect take this URL? For callers
 * that take a URL from a person (the command's --url, AAP_HOSTNAME) and must say what is
 * wrong with it rather than raise. */
static int l_check_url(lua_State *L)
{
    const char *url = luaL_checkstring(L, 1);
    const char *bad = strlen(url) == lua_rawlen(L, 1) ? aap_parse_base_url(url, NULL, NULL, NULL, NULL) : "holds NUL";
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
    aap_check_keys(L, 1, "aap.connect", OPTIONS);
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

const luaL_Reg aap_session_methods[] = {
    { "close", session_close },
    { "flavor", s_flavor },
    { "ping", s_ping },
    { "me", s_me },
    { "request", s_request },
    { "stats", s_stats },
    { NULL, NULL }
};

const luaL_Reg aap_session_meta[] = {
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
    lua_pushcfunction(L, l_connect);
    lua_setfield(L, -2, "connect");
    lua_pushcfunction(L, l_check_url);
    lua_setfield(L, -2, "check_url");
}
