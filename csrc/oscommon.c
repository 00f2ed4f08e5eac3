/*
 * oscommon.c - what the parts of aap.os share (csrc/osutil.h): the path
 * argument and the failure returns. It calls nothing of the other parts.
 *
 * Failures of the environment return nil, a message and a short stable code,
 * as luv does: the message names the path and strerror(errno), never the data.
 */
#include "osutil.h"

#include <string.h>

/* A path argument: a string without embedded NUL bytes. */
const char *aap_os_check_path(lua_State *L, int arg)
{
    size_t len;
    const char *p = luaL_checklstring(L, arg, &len);
    if (len == 0)
        luaL_argerror(L, arg, "empty path");
    if (strlen(p) != len)
        luaL_argerror(L, arg, "path contains a NUL byte");
    return p;
}

/* nil, "<what> <path>: <strerror(err)>", code (as luv: a message, then a short stable code) */
int aap_os_fail_code(lua_State *L, const char *code, const char *what, const char *path, int err)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s %s: %s", what, path, strerror(err));
    lua_pushstring(L, code);
    return 3;
}

/* nil, "<what> <path>: <strerror(err)>", "io" */
int aap_os_fail(lua_State *L, const char *what, const char *path, int err)
{
    return aap_os_fail_code(L, "io", what, path, err);
}
