/*
 * organizations.c - organizations: the list (every page, filtered by the gateway: `name`,
 * `id`, ...). Finding one by name is aap.workflow.organization_id (Lua).
 */
#include "aap.h"

static int s_organizations(lua_State *L)
{
    aap_session *S = aap_check_session(L, 1);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    return aap_list_all(L, S, aap_list_path(L, 2, "organizations/"), lua_istable(L, 2) ? 2 : 0, NULL);
}

const luaL_Reg aap_organization_methods[] = {
    { "organizations", s_organizations },
    { NULL, NULL }
};
