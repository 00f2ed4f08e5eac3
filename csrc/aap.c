/*
 * aap.c - luaopen_aap, the only exported symbol of aap.so.
 */
#include "aap.h"

AAP_API int luaopen_aap(lua_State *L);

int luaopen_aap(lua_State *L)
{
    lua_newtable(L);
    lua_pushliteral(L, AAP_VERSION);
    lua_setfield(L, -2, "_VERSION");
    aap_open_session(L);
    aap_open_osutil(L);
    aap_open_crypto(L);
    return 1;
}
