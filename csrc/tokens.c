/*
 * tokens.c - aap.Token: a token object from the gateway (or an /o/token/
 * answer) as a Lua table with typed fields, masked values recognised, times
 * as epoch seconds, and the decoded server object kept in `raw`.
 * tostring never shows a secret. Also the token calls of aap.Session.
 */
#include "aap.h"

#include <string.h>

static int is_mask(const char *s)
{
    return strcmp(s, "$encrypted$") == 0 || strcmp(s, "************") == 0;
}

/* tok[field] = raw[field] as an integer, or nil (null, absent, not a number). */
static void copy_int(lua_State *L, int tok, int raw, const char *field)
{
    if (lua_getfield(L, raw, field) == LUA_TNUMBER) {
        int isnum;
        lua_Integer i = lua_tointegerx(L, -1, &isnum);  /* 7.0 from a decoder is 7 */
        if (isnum) {
            lua_pushinteger(L, i);
            lua_setfield(L, tok, field);
        }
    }
    lua_pop(L, 1);
}

static void copy_str(lua_State *L, int tok, int raw, const char *field)
{
    if (lua_getfield(L, raw, field) == LUA_TSTRING)
        lua_setfield(L, tok, field);
    else
        lua_pop(L, 1);
}

static void copy_time(lua_State *L, int tok, int raw, const char *field)
{
    size_t n;
    double t;
    if (lua_getfield(L, raw, field) == LUA_TSTRING) {
        const char *s = lua_tolstring(L, -1, &n);
        if (aap_parse_time(s, n, &t) == 0) {
            lua_pushnumber(L, t);
            lua_setfield(L, tok, field);
        }
    }
    lua_pop(L, 1);
}

/* A secret field: plaintext kept, a mask gives masked = true, null gives nil. */
static void copy_secret(lua_State *L, int tok, int raw, const char *from, const char *to)
{
    if (lua_getfield(L, raw, from) == LUA_TSTRING) {
        if (is_mask(lua_tostring(L, -1))) {
            lua_pushboolean(L, 1);
            lua_setfield(L, tok, "masked");
        } else if (lua_rawlen(L, -1) > 0) {
            lua_pushvalue(L, -1);
            lua_setfield(L, tok, to);
        }
    }
    lua_pop(L, 1);
}

void aap_make_token(lua_State *L)
{
    int raw = lua_gettop(L);
    lua_createtable(L, 0, 14);
    int tok = raw + 1;
    if (lua_type(L, raw) == LUA_TTABLE) {
        copy_int(L, tok, raw, "id");
        copy_int(L, tok, raw, "application");
        copy_int(L, tok, raw, "user");
        lua_pushstring(L, lua_getfield(L, tok, "application") == LUA_TNIL ? "personal" : "application");
        lua_setfield(L, tok, "kind");
        lua_pop(L, 1);
        lua_pushboolean(L, 0);
        lua_setfield(L, tok, "masked");
        copy_secret(L, tok, raw, "token", "token");
        copy_secret(L, tok, raw, "refresh_token", "refresh_token");
        copy_str(L, tok, raw, "scope");
        copy_str(L, tok, raw, "description");
        copy_time(L, tok, raw, "created");
        copy_time(L, tok, raw, "modified");
        copy_time(L, tok, raw, "expires");
        copy_time(L, tok, raw, "last_used");
    }
    lua_pushvalue(L, raw);
    lua_setfield(L, tok, "raw");
    luaL_setmetatable(L, AAP_TOKEN_MT);
    lua_replace(L, raw);
}

void aap_make_oauth_token(lua_State *L, double now)
{
    int raw = lua_gettop(L);
    lua_createtable(L, 0, 10);
    int tok = raw + 1;
    lua_pushliteral(L, "application");
    lua_setfield(L, tok, "kind");
    lua_pushboolean(L, 0);
    lua_setfield(L, tok, "masked");
    copy_secret(L, tok, raw, "access_token", "token");
    copy_secret(L, tok, raw, "refresh_token", "refresh_token");
    copy_str(L, tok, raw, "scope");
    copy_str(L, tok, raw, "token_type");
    /* expires_in may be 31536000000: beyond 32 bits, fine in a double/int64. */
    if (lua_getfield(L, raw, "expires_in") == LUA_TNUMBER) {
        lua_Number e = lua_tonumber(L, -1);
        lua_pushnumber(L, now + e);
        lua_setfield(L, tok, "expires");
        lua_pushnumber(L, now);
        lua_setfield(L, tok, "created");
    }
    lua_pop(L, 1);
    lua_pushvalue(L, raw);
    lua_setfield(L, tok, "raw");
    luaL_setmetatable(L, AAP_TOKEN_MT);
    lua_replace(L, raw);
}

/* aap.Token(id=7, personal, scope=write, expires=2027-11-29T10:21:27Z) */
static int token_tostring(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int n = 1;
    lua_pushliteral(L, "aap.Token(");
    if (lua_getfield(L, 1, "id") == LUA_TNUMBER) {
        lua_pushfstring(L, "id=%I, ", (LUAI_UACINT)lua_tointeger(L, -1));
        lua_remove(L, -2);
        n++;
    } else {
        lua_pop(L, 1);
    }
    lua_getfield(L, 1, "kind");
    lua_pushstring(L, lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
    lua_remove(L, -2);
    n++;
    if (lua_getfield(L, 1, "scope") == LUA_TSTRING) {
        /* Server text: one line, printable, bounded (no log-line injection). */
        size_t len;
        const char *sc = lua_tolstring(L, -1, &len);
        char clean[64];
        size_t m = len < sizeof clean - 1 ? len : sizeof clean - 1;
        for (size_t i = 0; i < m; i++)
            clean[i] = (unsigned char)sc[i] < 0x20 || (unsigned char)sc[i] >= 0x7f ? '?' : sc[i];
        clean[m] = '\0';
        lua_pushfstring(L, ", scope=%s%s", clean, len > m ? "..." : "");
        lua_remove(L, -2);
        n++;
    } else {
        lua_pop(L, 1);
    }
    if (lua_getfield(L, 1, "expires") == LUA_TNUMBER) {
        char buf[32];
        lua_Number x = lua_tonumber(L, -1);
        int64_t e = x > -1e13 && x < 1e13 ? (int64_t)x : 0;
        if (aap_format_time(e, buf) == 0) {
            lua_pushfstring(L, ", expires=%s", buf);
            lua_remove(L, -2);
            n++;
        } else {
            lua_pop(L, 1);
        }
    } else {
        lua_pop(L, 1);
    }
    if (lua_getfield(L, 1, "masked") == LUA_TBOOLEAN && lua_toboolean(L, -1)) {
        lua_pushliteral(L, ", masked");
        lua_remove(L, -2);
        n++;
    } else {
        lua_pop(L, 1);
    }
    lua_pushliteral(L, ")");
    lua_concat(L, n + 1);
    return 1;
}

/* aap.parse_token(obj) -> aap.Token, for objects from s:request(). */
static int l_parse_token(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    int oauth = lua_getfield(L, 1, "access_token") == LUA_TSTRING &&
                lua_getfield(L, 1, "id") == LUA_TNIL;
    lua_settop(L, 1);
    if (oauth)
        aap_make_oauth_token(L, aap_now());
    else
        aap_make_token(L);
    return 1;
}

/* ---- the token calls --------------------------------------------------- */

static int s_create_token(lua_State *L)
{
    aap_session *S = aap_check_session(L, 1);
    static const char *const keys[] = { "application", "description", "scope", "resend_safe", NULL };
    if (lua_isnoneornil(L, 2)) {
        lua_settop(L, 1);
        lua_newtable(L);
    }
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    aap_check_keys(L, 2, "create_token", keys);
    lua_createtable(L, 0, 3);
    aap_copy_opt(L, 2, 3, "create_token", "application", LUA_TNUMBER);
    aap_copy_opt(L, 2, 3, "create_token", "description", LUA_TSTRING);
    aap_copy_opt(L, 2, 3, "create_token", "scope", LUA_TSTRING);
    if (lua_getfield(L, 3, "application") == LUA_TNIL) {
        aap_json_push_null(L);           /* a PAT: "application": null */
        lua_setfield(L, 3, "application");
    }
    lua_pop(L, 1);
    if (lua_getfield(L, 3, "description") == LUA_TNIL) {
        lua_pushliteral(L, "");
        lua_setfield(L, 3, "description");
    }
    lua_pop(L, 1);
    /* resend_safe: the description holds a marker the caller sweeps by when
     * s:stats().maybe_resent grows; the POST may then reuse the connection. */
    lua_getfield(L, 2, "resend_safe");
    int marked = lua_toboolean(L, -1);
    lua_pop(L, 1);
    int n = marked ? aap_call_json_marked(L, S, "POST", "tokens/", 0, 3)
                   : aap_call_json(L, S, "POST", "tokens/", 0, 3);
    if (n != 1)
        return n;
    aap_make_token(L);
    return 1;
}

/* s:token(id), s:update_token(id, fields), s:delete_token(id): METHOD tokens/ID/. */
static int token_by_id(lua_State *L, const char *method, int with_body)
{
    aap_session *S = aap_check_session(L, 1);
    lua_Integer id = luaL_checkinteger(L, 2);
    if (with_body)
        luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, with_body ? 3 : 2);
    aap_push_id_path(L, "tokens", id);
    int n = aap_call_json(L, S, method, lua_tostring(L, -1), 0, with_body ? 3 : 0);
    if (n != 1)
        return n;
    if (strcmp(method, "DELETE") == 0)
        lua_pushboolean(L, 1);         /* 204, no body */
    else
        aap_make_token(L);
    return 1;
}

static int s_token(lua_State *L) { return token_by_id(L, "GET", 0); }
static int s_update_token(lua_State *L) { return token_by_id(L, "PATCH", 1); }
static int s_delete_token(lua_State *L) { return token_by_id(L, "DELETE", 0); }

static int s_tokens(lua_State *L) { return aap_list_method(L, "tokens/", aap_make_token); }

static int s_each_token(lua_State *L)
{
    aap_session *S = aap_check_session(L, 1);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    static const aap_conv make_token = { aap_make_token };
    return aap_list_iter(L, S, 1, aap_list_path(L, 2, "tokens/"), lua_istable(L, 2) ? 2 : 0, &make_token);
}

const luaL_Reg aap_token_methods[] = {
    { "create_token", s_create_token },
    { "token", s_token },
    { "tokens", s_tokens },
    { "each_token", s_each_token },
    { "update_token", s_update_token },
    { "delete_token", s_delete_token },
    { NULL, NULL }
};

void aap_open_tokens(lua_State *L)
{
    luaL_newmetatable(L, AAP_TOKEN_MT);
    lua_pushcfunction(L, token_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_parse_token);
    lua_setfield(L, -2, "parse_token");
}
