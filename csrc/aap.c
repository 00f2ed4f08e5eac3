/*
 * aap.c - luaopen_aap, the only exported symbol of aap.so: the module
 * assembled from its parts. Each part adds its own functions to the module
 * table; the aap.Session metatable is built here, complete before any session
 * exists, from the method tables of session.c, tokens.c, applications.c,
 * organizations.c and oauth.c - so no part knows another's methods.
 */
#include "aap.h"

AAP_API int luaopen_aap(lua_State *L);

static void open_session_metatable(lua_State *L)
{
    static const luaL_Reg *const parts[] = {
        aap_session_methods, aap_token_methods, aap_application_methods, aap_organization_methods,
        aap_oauth_methods, NULL
    };
    luaL_newmetatable(L, AAP_SESSION_MT);
    luaL_setfuncs(L, aap_session_meta, 0);
    lua_newtable(L);
    for (int i = 0; parts[i]; i++)
        luaL_setfuncs(L, parts[i], 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

int luaopen_aap(lua_State *L)
{
    lua_newtable(L);
    lua_pushliteral(L, AAP_VERSION);
    lua_setfield(L, -2, "_VERSION");
    aap_open_session(L);     /* first: curl_global_init and the shared caches */
    aap_open_json(L);
    aap_open_errors(L);
    aap_open_tokens(L);
    aap_open_timefmt(L);
    open_session_metatable(L);
    aap_open_osutil(L);
    aap_open_crypto(L);
    return 1;
}
