/*
 * fuzz_url.c - URL checks (csrc/url.c): a server's `next` link through
 * aap_push_resolved (never leaves the session's origin, never carries CR/LF), a
 * caller's path through aap_push_url (raises on control characters and URLs,
 * otherwise stays under the base), and URL-encoding (only unreserved or %XX).
 */
#include "fuzz_common.h"

#include <ctype.h>

#define ORIGIN "https://gw.example:8443"

struct input { const char *s; };

static aap_session *session(void)
{
    static aap_session S;
    static char base[] = ORIGIN, origin[] = ORIGIN;
    S.flavor = AAP_FLAVOR_GATEWAY;
    S.base = base;
    S.origin = origin;
    return &S;
}

static void no_ctl(const char *s, const char *what)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        FUZZ_CHECK(*p > 0x20 && *p != 0x7f, what);
}

static int resolved(lua_State *L)
{
    struct input *in = lua_touserdata(L, 1);
    aap_push_resolved(L, session(), in->s);
    if (!lua_isnil(L, -1)) {
        const char *u = lua_tostring(L, -1);
        FUZZ_CHECK(strncmp(u, ORIGIN "/", strlen(ORIGIN) + 1) == 0, "a next link left the origin");
        no_ctl(u, "a resolved link holds a control character or space");
    }
    return 0;
}

static int url(lua_State *L)
{
    struct input *in = lua_touserdata(L, 1);
    lua_newtable(L);
    lua_pushstring(L, in->s);
    lua_setfield(L, -2, "q");
    lua_pushstring(L, in->s);
    lua_setfield(L, -2, in->s[0] ? in->s : "empty");
    int q = lua_gettop(L);
    aap_push_url(L, session(), in->s, q, "skip");   /* raises on bad paths: accepted */
    const char *u = lua_tostring(L, -1);
    FUZZ_CHECK(strncmp(u, ORIGIN "/", strlen(ORIGIN) + 1) == 0, "a URL left the base");
    no_ctl(u, "a URL holds a control character or space");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = fuzz_lua();
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    struct input in = { s };
    FUZZ_CHECK(fuzz_pcall(L, resolved, &in) == LUA_OK, lua_tostring(L, -1));
    lua_settop(L, 0);
    (void)fuzz_pcall(L, url, &in);
    lua_settop(L, 0);

    FUZZ_CHECK(aap_has_crlf((const char *)data, size) ==
               (memchr(data, 0, size) || memchr(data, '\r', size) || memchr(data, '\n', size)),
               "aap_has_crlf disagrees with memchr");
    char *e = aap_urlencode((const char *)data, size);
    if (e) {
        for (const char *p = e; *p; p++) {
            if (*p == '%') {
                FUZZ_CHECK(isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2]), "bad %XX escape");
                p += 2;
            } else {
                FUZZ_CHECK(isalnum((unsigned char)*p) || strchr("-._~", *p), "an unescaped reserved byte");
            }
        }
        aap_free_secret(&e);
    }
    aap_buf b = { 0 };
    if (aap_form_add(&b, "k", (const char *)data, size) == 0)
        FUZZ_CHECK(memchr(b.data, '&', b.len) == NULL || b.len == 0, "form value not escaped");
    aap_buf_free(&b);
    free(s);
    return 0;
}
