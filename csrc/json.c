/*
 * json.c - JSON through a private lua-cjson instance.
 *
 * At module load we require("cjson.safe") and call .new(): our settings
 * (strict numbers, a small nesting limit) never touch the shared cjson
 * instance other code uses, and lua-cjson is not linked at build time.
 * The instance lives in the registry under AAP_JSON_KEY.
 */
#include "aap.h"

#define AAP_JSON_KEY "aap.json"

/* Calls inst[name](arg) when the instance has that setting. */
static void configure(lua_State *L, int inst, const char *name, lua_Integer arg)
{
    if (lua_getfield(L, inst, name) == LUA_TFUNCTION) {
        lua_pushinteger(L, arg);
        lua_call(L, 1, 0);
    } else {
        lua_pop(L, 1);
    }
}

static void configure_bool(lua_State *L, int inst, const char *name, int arg)
{
    if (lua_getfield(L, inst, name) == LUA_TFUNCTION) {
        lua_pushboolean(L, arg);
        lua_call(L, 1, 0);
    } else {
        lua_pop(L, 1);
    }
}

void aap_open_json(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson.safe");
    lua_call(L, 1, 1);
    if (lua_getfield(L, -1, "new") != LUA_TFUNCTION)
        luaL_error(L, "aap: cjson.safe has no new(): lua-cjson 2.1 or newer is needed");
    lua_call(L, 0, 1);
    int inst = lua_gettop(L);
    configure_bool(L, inst, "decode_invalid_numbers", 0);  /* no NaN, Infinity, hex */
    configure_bool(L, inst, "encode_invalid_numbers", 0);
    configure(L, inst, "decode_max_depth", 64);
    configure(L, inst, "encode_max_depth", 64);
    configure_bool(L, inst, "encode_keep_buffer", 0);     /* no stale copies of secrets */
    lua_setfield(L, LUA_REGISTRYINDEX, AAP_JSON_KEY);
    lua_pop(L, 1);                                         /* cjson.safe */
    aap_json_push_null(L);
    lua_setfield(L, -2, "null");
}

/* lua-cjson 2.1.0 decodes every number as a float: give integral values
 * back their integer type (ids, counts, expires_in of 31536000000). */
static void integers(lua_State *L, int idx, int depth)
{
    if (depth > 70)
        return;
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
            lua_Number x = lua_tonumber(L, -1);
            lua_Integer i;
            if (x >= -9007199254740992.0 && x <= 9007199254740992.0 &&
                lua_numbertointeger(x, &i) && (lua_Number)i == x) {
                lua_pop(L, 1);
                lua_pushvalue(L, -1);
                lua_pushinteger(L, i);
                lua_rawset(L, idx);
                continue;
            }
        } else if (lua_type(L, -1) == LUA_TTABLE) {
            integers(L, -1, depth + 1);
        }
        lua_pop(L, 1);
    }
}

int aap_json_decode(lua_State *L, const char *s, size_t n)
{
    lua_getfield(L, LUA_REGISTRYINDEX, AAP_JSON_KEY);
    lua_getfield(L, -1, "decode");
    lua_remove(L, -2);
    lua_pushlstring(L, s, n);
    lua_call(L, 1, 1);                 /* cjson.safe: nil on bad JSON */
    if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
        lua_Number x = lua_tonumber(L, -1);
        lua_Integer i;
        if (lua_numbertointeger(x, &i) && (lua_Number)i == x) {
            lua_pop(L, 1);
            lua_pushinteger(L, i);
        }
    } else if (lua_type(L, -1) == LUA_TTABLE) {
        integers(L, -1, 0);
    }
    return !lua_isnil(L, -1);
}

void aap_json_encode(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_getfield(L, LUA_REGISTRYINDEX, AAP_JSON_KEY);
    lua_getfield(L, -1, "encode");
    lua_remove(L, -2);
    lua_pushvalue(L, idx);
    lua_call(L, 1, 2);
    if (lua_isnil(L, -2))
        luaL_error(L, "cannot encode as JSON: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
}

void aap_json_push_null(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, AAP_JSON_KEY);
    lua_getfield(L, -1, "null");
    lua_remove(L, -2);
}

int aap_json_isnull(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TLIGHTUSERDATA)
        return 0;
    idx = lua_absindex(L, idx);
    aap_json_push_null(L);
    int r = lua_rawequal(L, idx, -1);
    lua_pop(L, 1);
    return r;
}
