/*
 * fuzz_token.c - token parsing (csrc/tokens.c, csrc/json.c): arbitrary bytes as a
 * server's JSON body, decoded by the private cjson instance and turned into an
 * aap.Token (a token object, and an /o/token/ answer). No crash; tostring(token)
 * is one line and never holds the token or refresh token value.
 */
#include "fuzz_common.h"

struct input { const char *s; size_t n; int oauth; };

static void check_tostring(lua_State *L)
{
    int tok = lua_gettop(L);
    const char *s = luaL_tolstring(L, tok, NULL);
    FUZZ_CHECK(strchr(s, '\n') == NULL, "tostring(token) spans lines");
    /* No secret in it: the text must not change when the secret values do. (A substring
     * test gives false alarms: a short "secret" such as "2027-" can be part of a date.) */
    static const char *const secrets[] = { "token", "refresh_token", NULL };
    for (int i = 0; secrets[i]; i++) {
        if (lua_getfield(L, tok, secrets[i]) == LUA_TSTRING) {
            lua_pushliteral(L, "\x01replaced\x01");
            lua_setfield(L, tok, secrets[i]);
        }
        lua_pop(L, 1);
    }
    const char *again = luaL_tolstring(L, tok, NULL);
    FUZZ_CHECK(strcmp(s, again) == 0, "tostring(token) depends on a secret value");
    lua_pop(L, 2);
}

static int run(lua_State *L)
{
    struct input *in = lua_touserdata(L, 1);
    if (!aap_json_decode(L, in->s, in->n)) {
        lua_pop(L, 1);
        return 0;
    }
    if (in->oauth) {
        if (lua_type(L, -1) != LUA_TTABLE)
            return 0;
        aap_make_oauth_token(L, 1.0e9);
    } else {
        aap_make_token(L);
    }
    check_tostring(L);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = fuzz_lua();
    for (int oauth = 0; oauth < 2; oauth++) {
        struct input in = { (const char *)data, size, oauth };
        int rc = fuzz_pcall(L, run, &in);
        FUZZ_CHECK(rc == LUA_OK, lua_tostring(L, -1));
        lua_settop(L, 0);
    }
    return 0;
}
