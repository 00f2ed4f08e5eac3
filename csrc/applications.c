/*
 * applications.c - OAuth applications: list, one by id, create. Finding one
 * by name (names are unique per organization only: 0, 1 or several matches)
 * is a workflow on top of the list: lua/aap/apps.lua.
 */
#include "aap.h"

static int s_applications(lua_State *L) { return aap_list_method(L, "applications/", NULL); }

/* s:application(id): by name is aap.apps.find (Lua), which lists with a name filter and
 * tells one match from none or several. */
static int s_application(lua_State *L)
{
    aap_session *S = aap_check_session(L, 1);
    if (lua_type(L, 2) != LUA_TNUMBER)
        return luaL_argerror(L, 2, "application id (integer) expected; find one by name with "
                             "require(\"aap.apps\").find");
    lua_Integer id = luaL_checkinteger(L, 2);
    lua_settop(L, 2);
    aap_push_id_path(L, "applications", id);
    return aap_call_json(L, S, "GET", lua_tostring(L, -1), 0, 0);
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

const luaL_Reg aap_application_methods[] = {
    { "applications", s_applications },
    { "application", s_application },
    { "create_application", s_create_application },
    { NULL, NULL }
};
