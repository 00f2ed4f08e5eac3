/*
 * errors.c - aap.Error: a table with a stable `code`, the HTTP `status`, a
 * one-line `message` that never holds a secret, and details (`fields`,
 * `oauth_error`, `retry_after`, `candidates`, `method`, `path`).
 */
#include "aap.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MESSAGE_MAX 300
#define SCRUB_MAX 16384   /* bytes of an error body read before scrubbing and capping */

static const char *const CODES[] = {
    "auth", "forbidden", "expired", "not_found", "ambiguous", "invalid", "conflict",
    "rate_limited", "server", "bad_response", "too_large", "redirect", "timeout",
    "connect", "tls", "insecure", NULL
};

const char *aap_status_code(long status)
{
    switch (status) {
    case 400: return "invalid";
    case 401: return "auth";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 409: case 412: return "conflict";
    case 429: return "rate_limited";
    default: return "server";
    }
}

const char *aap_curl_code(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return "timeout";
    case CURLE_SSL_CONNECT_ERROR: case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM: case CURLE_SSL_CIPHER: case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR: case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS: case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND: case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED: case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_SHUTDOWN_FAILED: case CURLE_SSL_CLIENTCERT:
        return "tls";
    case CURLE_FILESIZE_EXCEEDED: case CURLE_WRITE_ERROR:
        return "too_large";
    case CURLE_TOO_MANY_REDIRECTS: case CURLE_UNSUPPORTED_PROTOCOL:
        return "redirect";
    case CURLE_BAD_CONTENT_ENCODING:
        return "bad_response";
    default:   /* refused, unreachable, DNS, reset, closed early, ... */
        return "connect";
    }
}

/* Appends s[0..n) to the message buffer, tags stripped, whitespace collapsed. */
static void add_clean(luaL_Buffer *b, size_t *room, const char *s, size_t n, int strip_tags)
{
    int space = 0, intag = 0;
    for (size_t i = 0; i < n && *room > 0; i++) {
        unsigned char c = (unsigned char)s[i];
        if (strip_tags && c == '<') { intag = 1; space = 1; continue; }
        if (intag) { if (c == '>') intag = 0; continue; }
        if (c < 0x20 || c == 0x7f || isspace(c)) { space = 1; continue; }
        if (space && luaL_bufflen(b) > 0) { luaL_addchar(b, ' '); (*room)--; }
        space = 0;
        if (*room == 0)
            break;
        luaL_addchar(b, (char)c);
        (*room)--;
    }
}

/* The text inside the first <name ...>...</name> of an HTML body (case-insensitive), or
 * NULL. Bounded by n: the body is not NUL-terminated. */
static const char *tag_text(const char *s, size_t n, const char *name, size_t *len)
{
    size_t k = strlen(name);
    for (size_t i = 0; i + k + 2 <= n; i++) {
        if (s[i] != '<' || strncasecmp(s + i + 1, name, k) != 0)
            continue;
        char after = s[i + 1 + k];
        if (after != '>' && after != ' ' && after != '\t')
            continue;
        const char *open_end = memchr(s + i, '>', n - i);
        if (!open_end)
            return NULL;
        const char *start = open_end + 1;
        size_t rest = n - (size_t)(start - s);
        for (size_t j = 0; j + k + 3 <= rest; j++) {
            if (start[j] == '<' && start[j + 1] == '/' && strncasecmp(start + j + 2, name, k) == 0) {
                *len = j;
                return start;
            }
        }
        return NULL;
    }
    return NULL;
}

/* One line, at most MESSAGE_MAX bytes cut on a UTF-8 boundary (value at top). */
static void cap_message(lua_State *L)
{
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    luaL_Buffer b;
    size_t room = MESSAGE_MAX;
    luaL_buffinit(L, &b);
    add_clean(&b, &room, s, n, 0);
    luaL_pushresult(&b);
    size_t m;
    s = lua_tolstring(L, -1, &m);
    if (m >= MESSAGE_MAX) {
        while (m > 0 && ((unsigned char)s[m - 1] & 0xC0) == 0x80)
            m--;
        if (m > 0 && ((unsigned char)s[m - 1] & 0xC0) == 0xC0)
            m--;
        lua_pushlstring(L, s, m);
        lua_pushliteral(L, "...");
        lua_concat(L, 2);
        lua_remove(L, -2);
    }
    lua_remove(L, -2);
}

/* Replaces each secret in the string at the top with REDACTED. */
static void scrub(lua_State *L, const char *secret)
{
    if (!secret || strlen(secret) < 4)
        return;
    const char *s = lua_tostring(L, -1);
    if (!strstr(s, secret))
        return;
    luaL_gsub(L, s, secret, "REDACTED");
    lua_remove(L, -2);
}

int aap_fail(lua_State *L, const char *code, long status, const char *message,
             const char *method, const char *path)
{
    lua_pushnil(L);
    lua_createtable(L, 0, 8);
    lua_pushstring(L, code);
    lua_setfield(L, -2, "code");
    if (status > 0) {
        lua_pushinteger(L, status);
        lua_setfield(L, -2, "status");
    }
    lua_pushstring(L, message ? message : code);
    cap_message(L);
    lua_setfield(L, -2, "message");
    if (method) {
        lua_pushstring(L, method);
        lua_setfield(L, -2, "method");
    }
    if (path) {
        lua_pushstring(L, path);
        lua_setfield(L, -2, "path");
    }
    luaL_setmetatable(L, AAP_ERROR_MT);
    return 2;
}

int aap_push_transport_error(lua_State *L, const aap_xfer *x, const aap_req *r)
{
    if (x->refused)            /* aap's own refusal: its code, the answer's status */
        return aap_fail(L, x->refused, x->status, x->errbuf, r->method, r->path);
    const char *code = aap_curl_code(x->result);
    if (x->too_large)
        code = "too_large";
    else if (x->result == CURLE_WRITE_ERROR)
        code = "connect";
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (x->too_large)
        luaL_addstring(&b, "response over the size limit (max_body / max_header)");
    else if (x->errbuf[0])
        luaL_addstring(&b, x->errbuf);   /* the detailed form of the same text */
    else
        luaL_addstring(&b, curl_easy_strerror(x->result));
    luaL_pushresult(&b);
    aap_fail(L, code, 0, lua_tostring(L, -1), r->method, r->path);
    lua_remove(L, -3);
    /* No connection was made: the request certainly never reached the gateway
     * (err.unsent = true), which tells a lost create from one never sent -
     * unless its body went out on a kept-alive connection before libcurl's
     * reconnect failed (sent_any). */
    if (!x->sent_any && (x->result == CURLE_COULDNT_CONNECT || x->result == CURLE_COULDNT_RESOLVE_HOST ||
                         x->result == CURLE_COULDNT_RESOLVE_PROXY)) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "unsent");
    }
    return 2;
}

/* From a decoded JSON error body at the top: message pushed, or 0. Sets
 * err.fields and err.oauth_error on the error table at eidx. */
static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int json_message(lua_State *L, int eidx, long status)
{
    int body = lua_gettop(L);
    if (lua_type(L, body) != LUA_TTABLE)
        return 0;
    if (lua_getfield(L, body, "error") == LUA_TSTRING) {
        lua_pushvalue(L, -1);
        lua_setfield(L, eidx, "oauth_error");
        if (lua_getfield(L, body, "error_description") == LUA_TSTRING) {
            lua_remove(L, -2);
            return 1;
        }
        lua_pop(L, 1);
        return 1;                                  /* "invalid_grant" */
    }
    lua_pop(L, 1);
    if (lua_getfield(L, body, "detail") == LUA_TSTRING)
        return 1;
    lua_pop(L, 1);
    if (status != 400)
        return 0;
    /* DRF validation: {"field": ["msg", ...], ...} -> err.fields, "field: msg; ..." */
    lua_newtable(L);
    int fields = lua_gettop(L);
    lua_newtable(L);
    int parts = lua_gettop(L);
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, body)) {
        if (lua_type(L, -2) == LUA_TSTRING) {
            lua_newtable(L);
            int k = 0;
            if (lua_type(L, -2) == LUA_TSTRING) {
                lua_pushvalue(L, -2);
                lua_rawseti(L, -2, ++k);
            } else if (lua_type(L, -2) == LUA_TTABLE) {
                for (lua_Integer i = 1; lua_rawgeti(L, -2, i) == LUA_TSTRING; i++)
                    lua_rawseti(L, -2, ++k);
                lua_pop(L, 1);
            }
            if (k > 0) {
                lua_pushvalue(L, -3);
                lua_pushvalue(L, -2);
                lua_rawset(L, fields);
                lua_rawgeti(L, -1, 1);
                lua_pushfstring(L, "%s: %s", lua_tostring(L, -4), lua_tostring(L, -1));
                lua_rawseti(L, parts, ++n);
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    if (n == 0) {
        lua_settop(L, body);
        return 0;
    }
    /* Sorted, so the message does not depend on hash order. The body may hold
     * thousands of fields: sort pointers (the strings stay anchored in `parts`)
     * and build at most a few times MESSAGE_MAX bytes, in one buffer. */
    const char **v = lua_newuserdatauv(L, (size_t)n * sizeof *v, 0);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, parts, i);
        v[i - 1] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    qsort(v, (size_t)n, sizeof *v, cmp_cstr);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 0; i < n && luaL_bufflen(&b) < 4 * MESSAGE_MAX; i++) {
        if (i > 0)
            luaL_addstring(&b, "; ");
        luaL_addstring(&b, v[i]);
    }
    luaL_pushresult(&b);
    lua_remove(L, -2);                             /* the pointer array */
    lua_pushvalue(L, fields);
    lua_setfield(L, eidx, "fields");
    lua_replace(L, fields);
    lua_settop(L, fields);
    return 1;
}

int aap_push_response_error(lua_State *L, aap_session *S, const aap_xfer *x,
                            const aap_req *r, const char *const *extra)
{
    long status = x->status;
    const char *code = aap_status_code(status);
    int top = lua_gettop(L);
    aap_fail(L, code, status, NULL, r->method, r->path);
    int eidx = lua_gettop(L);

    int have = 0;
    const char *body = x->body.data ? x->body.data : "";
    if (x->body.len > 0) {
        if (aap_json_decode(L, body, x->body.len) && json_message(L, eidx, status)) {
            lua_remove(L, -2);
            have = 1;
        } else {
            lua_pop(L, 1);
        }
    }
    if (!have && x->body.len > 0) {
        luaL_Buffer b;
        size_t room = SCRUB_MAX;     /* generous: secrets are scrubbed before the cap */
        luaL_buffinit(L, &b);
        /* An HTML page (a proxy's 502, a server's 500): its <title>, else its first
         * <h1>, says it all; the rest is boilerplate that repeats it. */
        size_t inner = 0;
        const char *t = tag_text(body, x->body.len, "title", &inner);
        if (!t || inner == 0)
            t = tag_text(body, x->body.len, "h1", &inner);
        if (t && inner > 0)
            add_clean(&b, &room, t, inner, 1);
        else
            add_clean(&b, &room, body, x->body.len, 1);
        luaL_pushresult(&b);
        have = lua_rawlen(L, -1) > 0;
        if (!have)
            lua_pop(L, 1);
    }
    if (status == 401) {
        /* The same 401 body means "no credentials" and "bad token": the
         * WWW-Authenticate header tells them apart. */
        aap_push_header(L, &x->head, "www-authenticate");
        const char *wa = lua_tostring(L, -1);
        const char *d = wa ? strstr(wa, "error_description=\"") : NULL;
        if (d) {
            d += strlen("error_description=\"");
            const char *e = strchr(d, '"');
            if (e && e > d) {
                lua_pushlstring(L, d, (size_t)(e - d));
                if (have)
                    lua_remove(L, -3);
                lua_remove(L, -2);
                have = 1;
            } else {
                lua_pop(L, 1);
            }
        } else {
            lua_pop(L, 1);
        }
    }
    if (!have)
        lua_pushfstring(L, "HTTP %d", (int)status);
    size_t pl = r->path ? strlen(r->path) : 0;
    int token_endpoint = pl >= 9 && strcmp(r->path + pl - 9, "/o/token/") == 0;
    if (status == 403 && token_endpoint && strstr(lua_tostring(L, -1), "expired")) {
        lua_pushliteral(L, "expired");
        lua_setfield(L, eidx, "code");
    }
    /* Scrub first, then cut: a cut through a secret would leave its start. */
    scrub(L, S->password);
    scrub(L, S->token);
    for (int i = 0; extra && extra[i]; i++)
        scrub(L, extra[i]);
    cap_message(L);
    lua_setfield(L, eidx, "message");

    double ra = aap_retry_after(&x->head);
    if (ra >= 0) {
        lua_pushinteger(L, (lua_Integer)(ra + 0.5));
        lua_setfield(L, eidx, "retry_after");
    }
    lua_settop(L, eidx);
    (void)top;
    return 2;
}

/* tostring(err): "code: message (HTTP 401, GET /path/)"; the message alone when
 * err.plain is true (aap.errors: a whole sentence written for the operator). */
static int error_tostring(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_Buffer b;
    lua_getfield(L, 1, "code");
    lua_getfield(L, 1, "message");
    lua_getfield(L, 1, "status");
    lua_getfield(L, 1, "method");
    lua_getfield(L, 1, "path");
    if (lua_getfield(L, 1, "plain") == LUA_TBOOLEAN && lua_toboolean(L, -1)) {
        lua_pushstring(L, lua_isstring(L, 3) ? lua_tostring(L, 3) : lua_isstring(L, 2) ? lua_tostring(L, 2)
                                                                                          : "error");
        return 1;
    }
    lua_pop(L, 1);
    luaL_buffinit(L, &b);
    luaL_addstring(&b, lua_isstring(L, 2) ? lua_tostring(L, 2) : "error");
    if (lua_isstring(L, 3)) {
        luaL_addstring(&b, ": ");
        luaL_addstring(&b, lua_tostring(L, 3));
    }
    int st = lua_isinteger(L, 4), mp = lua_isstring(L, 5) && lua_isstring(L, 6);
    if (st || mp) {
        luaL_addstring(&b, " (");
        if (st) {
            lua_pushfstring(L, "HTTP %d", (int)lua_tointeger(L, 4));
            luaL_addvalue(&b);
        }
        if (mp) {
            if (st)
                luaL_addstring(&b, ", ");
            luaL_addstring(&b, lua_tostring(L, 5));
            luaL_addchar(&b, ' ');
            luaL_addstring(&b, lua_tostring(L, 6));
        }
        luaL_addchar(&b, ')');
    }
    luaL_pushresult(&b);
    return 1;
}

/* aap.error(code, message [, fields]): the low-level constructor of an aap.Error made by Lua:
 * the fields copied, then code and message; it takes any code. Lua code makes its errors with
 * aap.errors.new, which refuses a code not in aap.errors.CODES and then calls this. */
static int error_new(lua_State *L)
{
    luaL_checkstring(L, 1);
    luaL_checkstring(L, 2);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    lua_createtable(L, 0, 4);
    if (lua_istable(L, 3)) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, -4);
        }
    }
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "code");
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "message");
    luaL_setmetatable(L, AAP_ERROR_MT);
    return 1;
}

void aap_open_errors(lua_State *L)
{
    luaL_newmetatable(L, AAP_ERROR_MT);
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    lua_pushcfunction(L, error_new);
    lua_setfield(L, -2, "error");
    lua_newtable(L);
    for (int i = 0; CODES[i]; i++) {
        lua_pushstring(L, CODES[i]);
        lua_setfield(L, -2, CODES[i]);
    }
    lua_setfield(L, -2, "codes");
}
