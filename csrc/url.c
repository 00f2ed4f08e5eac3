/*
 * url.c - URLs: the base from aap.connect, API paths, query strings from
 * Lua tables, form bodies, and next links resolved against the base.
 * NUL, CR and LF never reach a URL or a header.
 */
#include "aap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>

const char *aap_api_prefix(const aap_session *S)
{
    return S->flavor == AAP_FLAVOR_CONTROLLER ? "/api/v2/" : "/api/gateway/v1/";
}

const char *aap_oauth_prefix(const aap_session *S)
{
    return S->flavor == AAP_FLAVOR_CONTROLLER ? "/api/o/" : "/o/";
}

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

static const char HEX[] = "0123456789ABCDEF";

/* Pushes s[0..n) percent-encoded (everything but RFC 3986 unreserved). */
static void push_escaped(lua_State *L, const char *s, size_t n)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c)) {
            luaL_addchar(&b, (char)c);
        } else {
            luaL_addchar(&b, '%');
            luaL_addchar(&b, HEX[c >> 4]);
            luaL_addchar(&b, HEX[c & 15]);
        }
    }
    luaL_pushresult(&b);
}

char *aap_urlencode(const char *s, size_t n)
{
    char *d = malloc(n * 3 + 1), *p = d;
    if (!d)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c)) {
            *p++ = (char)c;
        } else {
            *p++ = '%';
            *p++ = HEX[c >> 4];
            *p++ = HEX[c & 15];
        }
    }
    *p = '\0';
    return d;
}

static int form_escaped(aap_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[3] = { '%', HEX[c >> 4], HEX[c & 15] };
        if (unreserved(c) ? aap_buf_add(b, &s[i], 1) : aap_buf_add(b, e, 3))
            return -1;
    }
    return 0;
}

int aap_form_add(aap_buf *b, const char *key, const char *val, size_t vlen)
{
    if (b->len > 0 && aap_buf_add(b, "&", 1) != 0)
        return -1;
    if (form_escaped(b, key, strlen(key)) != 0 || aap_buf_add(b, "=", 1) != 0)
        return -1;
    return form_escaped(b, val, vlen);
}

/* Replaces the query value at the top (string, number or boolean) with
 * its escaped text. */
static void escape_value(lua_State *L, const char *key)
{
    size_t n;
    const char *s;
    switch (lua_type(L, -1)) {
    case LUA_TBOOLEAN:
        lua_pushstring(L, lua_toboolean(L, -1) ? "true" : "false");
        break;
    case LUA_TNUMBER:
        if (!lua_isinteger(L, -1)) {
            int isnum;
            lua_Integer i = lua_tointegerx(L, -1, &isnum);
            if (isnum) {                 /* 3.0 from a JSON decoder is "3" */
                lua_pushinteger(L, i);
                lua_replace(L, -2);
            }
        }
        /* fall through */
    case LUA_TSTRING:
        s = lua_tolstring(L, -1, &n);
        if (aap_has_crlf(s, n))
            luaL_error(L, "query value for '%s' holds NUL, CR or LF", key);
        push_escaped(L, s, n);
        break;
    default:
        luaL_error(L, "query value for '%s' must be a string, number, boolean or array", key);
    }
    lua_remove(L, -2);
}

/* Pushes "?k=v&..." (or "") from the table at qidx, keys sorted so URLs are
 * predictable; the key `skip` is left out. Array values are joined by ",". */
static void push_query(lua_State *L, int qidx, const char *skip)
{
    lua_newtable(L);
    int keys = lua_gettop(L), n = 0;
    lua_pushnil(L);
    while (lua_next(L, qidx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "query keys must be strings");
        if (skip && strcmp(lua_tostring(L, -1), skip) == 0)
            continue;
        lua_pushvalue(L, -1);
        lua_rawseti(L, keys, ++n);
    }
    for (int i = 2; i <= n; i++)
        for (int j = i; j > 1; j--) {
            lua_rawgeti(L, keys, j - 1);
            lua_rawgeti(L, keys, j);
            if (!lua_compare(L, -1, -2, LUA_OPLT)) {
                lua_pop(L, 2);
                break;
            }
            lua_rawseti(L, keys, j - 1);
            lua_rawseti(L, keys, j);
        }
    lua_pushliteral(L, "");
    for (int i = 1; i <= n; i++) {
        lua_pushstring(L, i == 1 ? "?" : "&");
        lua_rawgeti(L, keys, i);
        size_t kl;
        const char *k = lua_tolstring(L, -1, &kl);
        if (aap_has_crlf(k, kl))
            luaL_error(L, "query key holds NUL, CR or LF");
        push_escaped(L, k, kl);
        lua_remove(L, -2);
        lua_pushliteral(L, "=");
        lua_getfield(L, qidx, k);
        if (lua_type(L, -1) == LUA_TTABLE) {
            int t = lua_gettop(L);
            lua_Integer len = (lua_Integer)lua_rawlen(L, t);
            lua_pushliteral(L, "");
            for (lua_Integer j = 1; j <= len; j++) {
                if (j > 1)
                    lua_pushliteral(L, ",");
                lua_rawgeti(L, t, j);
                escape_value(L, k);
                lua_concat(L, j > 1 ? 3 : 2);
            }
            lua_remove(L, t);
        } else {
            escape_value(L, k);
        }
        lua_concat(L, 5);   /* previous, "?"/"&", key, "=", value */
    }
    lua_remove(L, keys);
}

static void check_path(lua_State *L, const char *path)
{
    for (const char *p = path; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c == 0x7f)
            luaL_error(L, "path holds a space or control character (NUL, CR, LF, ...)");
    }
    if (strstr(path, "://") || (path[0] == '/' && path[1] == '/') || strchr(path, '#'))
        luaL_error(L, "path must be a path on the session's host, not a URL");
}

void aap_push_url(lua_State *L, aap_session *S, const char *path, int qidx, const char *skip)
{
    check_path(L, path);
    if (qidx)
        qidx = lua_absindex(L, qidx);
    /* "/..." is a path on the site (e.g. "/api/"), anything else is relative
     * to the flavor's API base. */
    if (path[0] == '/')
        lua_pushfstring(L, "%s", path);
    else
        lua_pushfstring(L, "%s%s", aap_api_prefix(S), path);
    const char *full = lua_tostring(L, -1);
    const char *q = strchr(full, '?');
    if (q) {
        lua_pushlstring(L, full, (size_t)(q - full));
        lua_insert(L, -2);
    } else {
        lua_pushvalue(L, -1);
        lua_insert(L, -2);
    }
    /* stack: path-without-query, path-with-its-own-query */
    lua_pushstring(L, S->base);
    lua_insert(L, -2);
    if (qidx) {
        push_query(L, qidx, skip);
        if (q && lua_rawlen(L, -1) > 0) {      /* the path had a query already */
            const char *qs = lua_tostring(L, -1);
            lua_pushfstring(L, "&%s", qs + 1);
            lua_remove(L, -2);
        }
        lua_concat(L, 3);
    } else {
        lua_concat(L, 2);
    }
}

int aap_push_resolved(lua_State *L, aap_session *S, const char *link)
{
    if (aap_has_crlf(link, strlen(link))) {
        lua_pushnil(L);
        return 0;
    }
    CURLU *u = curl_url();
    if (!u) {
        lua_pushnil(L);
        return 0;
    }
    char *path = NULL, *query = NULL;
    int ok = curl_url_set(u, CURLUPART_URL, S->base, 0) == CURLUE_OK &&
             curl_url_set(u, CURLUPART_URL, link, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK;
    if (ok && curl_url_get(u, CURLUPART_QUERY, &query, 0) != CURLUE_OK)
        query = NULL;
    /* Only the path and query are taken: a next link never moves the session
     * (and its credentials) to another scheme, host or port. */
    if (ok)
        lua_pushfstring(L, "%s%s%s%s", S->origin, path, query ? "?" : "", query ? query : "");
    else
        lua_pushnil(L);
    curl_free(path);
    curl_free(query);
    curl_url_cleanup(u);
    return ok;
}

/* ---- the base URL of a session ------------------------------------------ */

/* aap.connect's url (and aap.check_url's), parsed and checked with libcurl's parser.
 * Returns NULL when it is fit for a session, with *origin and *base malloc'ed when those
 * are given (else not made), or what is wrong. */
const char *aap_parse_base_url(const char *url, char **origin_out, char **base_out, int *is_http, int *loopback)
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

/* ---- where credentials may go --------------------------------------------- */

/* The one definition of loopback (docs/design.md): the name `localhost`, an IPv4
 * literal in 127.0.0.0/8, the IPv6 literal [::1], and an IPv4-mapped IPv6 literal
 * of 127.0.0.0/8 ([::ffff:127.0.0.1]: the kernel delivers it to 127.0.0.1 over the
 * loopback interface, so it never leaves the machine either). Never a name that
 * merely starts like one ("127.attacker.example", "localhost.attacker.example"):
 * a name other than localhost would be resolved by DNS, which can answer anything. */
int aap_is_loopback(const char *host)
{
    if (!host)
        return 0;
    if (strcasecmp(host, "localhost") == 0)
        return 1;
    unsigned char a[16];
    if (inet_pton(AF_INET, host, a) == 1)
        return a[0] == 127;
    size_t n = strlen(host);
    if (n > 2 && n < 64 && host[0] == '[' && host[n - 1] == ']') {
        char v6[64];
        memcpy(v6, host + 1, n - 2);
        v6[n - 2] = '\0';
        if (inet_pton(AF_INET6, v6, a) != 1)
            return 0;
        static const unsigned char one[16] = { [15] = 1 };
        static const unsigned char mapped[12] = { [10] = 0xff, [11] = 0xff };
        return memcmp(a, one, 16) == 0 || (memcmp(a, mapped, 12) == 0 && a[12] == 127);
    }
    return 0;
}

struct origin {
    char *scheme, *host, *port;
};

static void origin_free(struct origin *o)
{
    curl_free(o->scheme);
    curl_free(o->host);
    curl_free(o->port);
}

static int origin_get(CURLU *u, struct origin *o)
{
    o->scheme = o->host = o->port = NULL;
    return curl_url_get(u, CURLUPART_SCHEME, &o->scheme, 0) == CURLUE_OK &&
           curl_url_get(u, CURLUPART_HOST, &o->host, 0) == CURLUE_OK &&
           curl_url_get(u, CURLUPART_PORT, &o->port, CURLU_DEFAULT_PORT) == CURLUE_OK;
}

int aap_redirect_target(aap_session *S, const char *from, const char *location, char **next,
                        char *where, size_t wlen)
{
    *next = NULL;
    if (wlen)
        where[0] = '\0';
    if (aap_has_crlf(location, strlen(location)))
        return -1;
    CURLU *u = curl_url(), *b = curl_url();
    struct origin to = { NULL, NULL, NULL }, base = { NULL, NULL, NULL };
    char *path = NULL, *query = NULL;
    int rc = -1;
    /* The Location is resolved against the URL that answered (it may be relative). */
    if (u && b && curl_url_set(u, CURLUPART_URL, from, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_URL, location, 0) == CURLUE_OK && origin_get(u, &to) &&
        curl_url_set(b, CURLUPART_URL, S->origin, 0) == CURLUE_OK && origin_get(b, &base) &&
        curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK) {
        if (curl_url_get(u, CURLUPART_QUERY, &query, 0) != CURLUE_OK)
            query = NULL;
        if (wlen)
            snprintf(where, wlen, "%s://%s:%s", to.scheme, to.host, to.port);
        rc = 0;
        if (strcasecmp(to.scheme, base.scheme) == 0 && strcasecmp(to.host, base.host) == 0 &&
            strcmp(to.port, base.port) == 0) {
            /* Rebuilt from the session's own origin: user info and fragment dropped. */
            size_t n = strlen(S->origin) + strlen(path) + (query ? strlen(query) + 1 : 0) + 1;
            *next = malloc(n);
            if (*next) {
                snprintf(*next, n, "%s%s%s%s", S->origin, path, query ? "?" : "", query ? query : "");
                rc = 1;
            } else {
                rc = -2;
            }
        }
    }
    origin_free(&to);
    origin_free(&base);
    curl_free(path);
    curl_free(query);
    curl_url_cleanup(u);
    curl_url_cleanup(b);
    return rc;
}
