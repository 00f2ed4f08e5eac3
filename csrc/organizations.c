/*
 * organizations.c - organizations: the list (every page, filtered by the gateway: `name`,
 * `id`, ...). Finding one by name is aap.workflow.organization_id (Lua).
 */
#include "aap.h"

static int s_organizations(lua_State *L) { return aap_list_method(L, "organizations/", NULL); }

const luaL_Reg aap_organization_methods[] = {
    { "organizations", s_organizations },
    { NULL, NULL }
};
