/*
 * applications.c - OAuth applications: list, find one by name (names are
 * unique per organization only: 0, 1 or several matches) or id, create.
 */
#include "aap.h"

static int s_applications(lua_State *L)
{
    aap_session *S = aap_check_session(L, 1);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    return aap_list_all(L, S, aap_list_path(L, 2, "applications/"), lua_istable(L, 2) ? 2 : 0, NULL);
}

/* Does the application at the top belong to organization `org` (index)? */
static int in_org(lua_State *L, int org)
{
    int app = lua_gettop(L), r = 0;
    if (lua_isnil(L, org))
        return 1;
    if (lua_isinteger(L, org)) {
        lua_getfield(L, app, "organization");
        r = lua_isinteger(L, -1) && lua_tointeger(L, -1) == lua_tointeger(L, org);
    } else if (lua_getfield(L, app, "summary_fields") == LUA_TTABLE &&
               lua_getfield(L, -1, "organization") == LUA_TTABLE &&
               lua_getfield(L, -1, "name") == LUA_TSTRING) {
        r = lua_rawequal(L, -1, org);
    }
    lua_settop(L, app);
    return r;
}

static int s_application(lua_State *L)
{
    aap_session *S = aap_check_session(L, 1);
    static const char *const keys[] = { "organization", NULL };
    if (lua_type(L, 2) == LUA_TNUMBER) {
        lua_Integer id = luaL_checkinteger(L, 2);
        if (!lua_isnoneornil(L, 3))
            luaL_checktype(L, 3, LUA_TTABLE);
        aap_push_id_path(L, "applications", id);
        return aap_call_json(L, S, "GET", lua_tostring(L, -1), 0, 0);
    }
    luaL_checkstring(L, 2);
    if (lua_type(L, 2) != LUA_TSTRING)
        return luaL_argerror(L, 2, "application name (string) or id (integer) expected");
    lua_settop(L, 3);
    lua_pushnil(L);                                  /* 4: organization */
    if (!lua_isnil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        aap_check_keys(L, 3, "application", keys);
        int t = lua_getfield(L, 3, "organization");
        if (t == LUA_TNUMBER) {
            int isnum;
            lua_Integer org = lua_tointegerx(L, -1, &isnum);
            if (!isnum)
                return luaL_error(L, "application: option 'organization' must be an integer id or a name");
            lua_pop(L, 1);
            lua_pushinteger(L, org);
        } else if (t != LUA_TNIL && t != LUA_TSTRING) {
            return luaL_error(L, "application: option 'organization' must be an integer id or a name");
        }
        lua_replace(L, 4);
    }
    lua_newtable(L);                                 /* 5: query */
    lua_pushvalue(L, 2);
    lua_setfield(L, 5, "name");
    if (lua_isinteger(L, 4)) {
        lua_pushvalue(L, 4);
        lua_setfield(L, 5, "organization");
    }
    int n = aap_list_all(L, S, "applications/", 5, NULL);
    if (n != 1)
        return n;
    int all = lua_gettop(L);
    lua_newtable(L);
    int matches = all + 1, m = 0;
    for (lua_Integer i = 1; lua_rawgeti(L, all, i) == LUA_TTABLE; i++) {
        lua_getfield(L, -1, "name");
        int same = lua_rawequal(L, -1, 2);
        lua_pop(L, 1);
        if (same && in_org(L, 4))
            lua_rawseti(L, matches, ++m);
        else
            lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (m == 1) {
        lua_rawgeti(L, matches, 1);
        return 1;
    }
    lua_pushfstring(L, "%sapplications/", aap_api_prefix(S));
    int pathidx = lua_gettop(L);
    if (m == 0) {
        if (lua_isnil(L, 4))
            lua_pushfstring(L, "no application named '%s'", lua_tostring(L, 2));
        else
            lua_pushfstring(L, "no application named '%s' in organization %s", lua_tostring(L, 2),
                            luaL_tolstring(L, 4, NULL));
        return aap_fail(L, "not_found", 0, lua_tostring(L, -1), "GET", lua_tostring(L, pathidx));
    }
    lua_pushfstring(L, "%d applications are named '%s': choose one by organization or id", m,
                    lua_tostring(L, 2));
    aap_fail(L, "ambiguous", 0, lua_tostring(L, -1), "GET", lua_tostring(L, pathidx));
    int err = lua_gettop(L);
    lua_createtable(L, m, 0);
    for (int i = 1; i <= m; i++) {
        lua_rawgeti(L, matches, i);
        lua_createtable(L, 0, 4);
        lua_getfield(L, -2, "id");
        lua_setfield(L, -2, "id");
        lua_getfield(L, -2, "name");
        lua_setfield(L, -2, "name");
        lua_getfield(L, -2, "organization");
        lua_setfield(L, -2, "organization");
        if (lua_getfield(L, -2, "summary_fields") == LUA_TTABLE &&
            lua_getfield(L, -1, "organization") == LUA_TTABLE &&
            lua_getfield(L, -1, "name") == LUA_TSTRING) {
            lua_setfield(L, -4, "organization_name");
            lua_pop(L, 2);
        } else {
            lua_settop(L, err + 3);
        }
        lua_rawseti(L, err + 1, i);
        lua_pop(L, 1);
    }
    lua_setfield(L, err, "candidates");
    return 2;
}

static int s_create_application(lua_State *L)
{
    aap_session *S = aap_check_session(L, 1);
    static const char *const keys[] = { "name", "organization", "client_type",
        "authorization_grant_type", "redirect_uris", "description", "skip_authorization",
        "user", "app_url", NULL };
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    aap_check_keys(L, 2, "create_application", keys);
    lua_createtable(L, 0, 8);
    aap_copy_opt(L, 2, 3, "create_application", "name", LUA_TSTRING);
    aap_copy_opt(L, 2, 3, "create_application", "organization", LUA_TNUMBER);
    aap_copy_opt(L, 2, 3, "create_application", "client_type", LUA_TSTRING);
    aap_copy_opt(L, 2, 3, "create_application", "authorization_grant_type", LUA_TSTRING);
    aap_copy_opt(L, 2, 3, "create_application", "redirect_uris", LUA_TSTRING);
    aap_copy_opt(L, 2, 3, "create_application", "description", LUA_TSTRING);
    aap_copy_opt(L, 2, 3, "create_application", "skip_authorization", LUA_TBOOLEAN);
    aap_copy_opt(L, 2, 3, "create_application", "user", LUA_TNUMBER);
    aap_copy_opt(L, 2, 3, "create_application", "app_url", LUA_TSTRING);
    if (lua_getfield(L, 3, "name") == LUA_TNIL)
        return luaL_error(L, "create_application: option 'name' is required");
    if (lua_getfield(L, 3, "organization") == LUA_TNIL)
        return luaL_error(L, "create_application: option 'organization' is required");
    lua_pop(L, 2);
    static const char *const defaults[][2] = {
        { "client_type", "confidential" }, { "authorization_grant_type", "password" },
        { "redirect_uris", "" }, { NULL, NULL } };
    for (int i = 0; defaults[i][0]; i++) {
        if (lua_getfield(L, 3, defaults[i][0]) == LUA_TNIL) {
            lua_pushstring(L, defaults[i][1]);
            lua_setfield(L, 3, defaults[i][0]);
        }
        lua_pop(L, 1);
    }
    return aap_call_json(L, S, "POST", "applications/", 0, 3);
}

static const luaL_Reg application_methods[] = {
    { "applications", s_applications },
    { "application", s_application },
    { "create_application", s_create_application },
    { NULL, NULL }
};

void aap_add_application_methods(lua_State *L)
{
    luaL_setfuncs(L, application_methods, 0);
}
