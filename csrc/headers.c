/*
 * headers.c - response headers as libcurl's header callback collected them
 * (raw lines of the last response): one header's value, all of them as a
 * table, and Retry-After read as seconds to wait. Used by the transfers
 * (http.c: Location, Retry-After), the errors (errors.c: WWW-Authenticate,
 * Retry-After) and s:request (session.c).
 */
#include "aap.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *aap_find_header(const aap_buf *head, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = head->data, *end = head->data + head->len;
    while (p && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        p = eol + 1;
    }
    return NULL;
}

int aap_push_header(lua_State *L, const aap_buf *head, const char *name)
{
    size_t n;
    const char *v = head->data ? aap_find_header(head, name, &n) : NULL;
    if (v)
        lua_pushlstring(L, v, n);
    else
        lua_pushnil(L);
    return 1;
}

void aap_push_headers(lua_State *L, const aap_buf *head)
{
    lua_newtable(L);
    if (!head->data)
        return;
    const char *p = head->data, *end = head->data + head->len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon && colon > p && !((size_t)(eol - p) >= 5 && memcmp(p, "HTTP/", 5) == 0)) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (const char *q = p; q < colon; q++)
                luaL_addchar(&b, (char)(*q >= 'A' && *q <= 'Z' ? *q + 32 : *q));
            luaL_pushresult(&b);
            const char *v = colon + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            lua_pushvalue(L, -1);
            if (lua_rawget(L, -3) == LUA_TSTRING) {  /* repeated: join with ", " */
                lua_pushliteral(L, ", ");
                lua_pushlstring(L, v, (size_t)(ve - v));
                lua_concat(L, 3);
            } else {
                lua_pop(L, 1);
                lua_pushlstring(L, v, (size_t)(ve - v));
            }
            lua_rawset(L, -3);
        }
        p = eol + 1;
    }
}

double aap_retry_after(const aap_buf *head)
{
    size_t n;
    const char *v = head->data ? aap_find_header(head, "retry-after", &n) : NULL;
    if (!v || n == 0 || n > 64)
        return -1;
    char tmp[65];
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    char *end;
    /* Capped at a day: a server's number is data, and an absurd one must neither
     * overflow a conversion nor stall a client for years. */
    const double cap = 86400;
    long long secs = strtoll(tmp, &end, 10);
    if (end != tmp && *end == '\0')
        return secs < 0 ? 0 : secs > (long long)cap ? cap : (double)secs;
    time_t when = curl_getdate(tmp, NULL);       /* an HTTP date */
    if (when == (time_t)-1)
        return -1;
    double d = (double)when - aap_now();
    return d > cap ? cap : d > 0 ? d : 0;
}
