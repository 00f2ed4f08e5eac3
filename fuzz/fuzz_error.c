/*
 * fuzz_error.c - error parsing (csrc/errors.c): a non-2xx answer with an arbitrary
 * status, body and headers through aap_push_response_error. No crash; the error's
 * code is one of aap.codes; the message is one line, at most a few hundred bytes,
 * and never holds the session's password or token, even when the body echoes them.
 */
#include "fuzz_common.h"

#define PASSWORD "Sw0rdfish-pa55-Word"
#define TOKEN "tok3nVALUEabcdef0123"

static int run(lua_State *L)
{
    aap_xfer *x = lua_touserdata(L, 1);
    static char password[] = PASSWORD, token[] = TOKEN;
    aap_session S;
    memset(&S, 0, sizeof S);
    S.flavor = AAP_FLAVOR_GATEWAY;
    S.password = password;
    S.token = token;
    aap_req r = { "POST", "https://gw.example/o/token/", "/o/token/", NULL, 0, NULL, AAP_AUTH_SESSION,
                  NULL, NULL };
    FUZZ_CHECK(aap_push_response_error(L, &S, x, &r, NULL) == 2, "push_response_error did not push 2");
    int err = lua_gettop(L);
    FUZZ_CHECK(lua_isnil(L, err - 1), "no nil before the error");
    lua_getfield(L, err, "code");
    const char *code = lua_tostring(L, -1);
    FUZZ_CHECK(code != NULL, "the error has no code");
    lua_getglobal(L, "aap");
    lua_getfield(L, -1, "codes");
    FUZZ_CHECK(lua_getfield(L, -1, code) == LUA_TSTRING, "the code is not in aap.codes");
    lua_settop(L, err);
    lua_getfield(L, err, "message");
    size_t n;
    const char *m = lua_tolstring(L, -1, &n);
    FUZZ_CHECK(m != NULL && n <= 1200, "message missing or too long");
    FUZZ_CHECK(memchr(m, '\n', n) == NULL, "message spans lines");
    FUZZ_CHECK(strstr(m, PASSWORD) == NULL, "message holds the password");
    FUZZ_CHECK(strstr(m, TOKEN) == NULL, "message holds the token");
    const char *t = luaL_tolstring(L, err, NULL);
    FUZZ_CHECK(strchr(t, '\n') == NULL, "tostring(err) spans lines");
    FUZZ_CHECK(strstr(t, PASSWORD) == NULL && strstr(t, TOKEN) == NULL, "tostring(err) holds a secret");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    lua_State *L = fuzz_lua();
    aap_xfer x;
    memset(&x, 0, sizeof x);
    static const long statuses[] = { 400, 401, 403, 404, 409, 412, 429, 500, 502, 503, 504, 302, 200, 418 };
    x.status = statuses[data[0] % (sizeof statuses / sizeof statuses[0])];
    size_t split = (size_t)data[1] * (size - 2) / 255;
    const uint8_t *rest = data + 2;
    size_t nrest = size - 2;
    /* Exact-size copies, so that an over-read is caught. */
    if (split > 0) {
        x.head.data = malloc(split);
        memcpy(x.head.data, rest, split);
        x.head.len = x.head.cap = split;
    }
    if (nrest - split > 0) {
        x.body.data = malloc(nrest - split);
        memcpy(x.body.data, rest + split, nrest - split);
        x.body.len = x.body.cap = nrest - split;
    }
    int rc = fuzz_pcall(L, run, &x);
    FUZZ_CHECK(rc == LUA_OK, lua_tostring(L, -1));
    free(x.head.data);
    free(x.body.data);
    lua_settop(L, 0);
    return 0;
}
