/*
 * osutil.c - aap.os: what Lua's standard library lacks, assembled here from
 * its parts (csrc/osutil.h); each part's header documents its functions.
 *
 *   files.c    write_atomic, remove_stale_temps, stat, open, mode
 *   lock.c     lock (aap.Lock)
 *   process.c  catch_signals, caught, spawn, isatty, geteuid, getpid,
 *              no_core_dumps, now
 *   sandbox.c  resume, heap_hit (the capped heap of the policy sandbox)
 *   prompt.c   read_password
 *   oscommon.c what they share: the path argument, the failure returns
 *
 * Wrong argument types raise; failures of the environment return nil plus a
 * message that names the path and strerror(errno), never the data written,
 * and a short stable code. Lua strings are taken with their explicit lengths;
 * a path with an embedded NUL is a programmer error (it cannot name a file)
 * and raises.
 */
#include "osutil.h"

/* Pushes a table of the functions of every luaL_Reg in parts (NULL-terminated). */
static void new_lib(lua_State *L, const luaL_Reg *const *parts)
{
    int n = 0;
    for (int i = 0; parts[i]; i++)
        for (const luaL_Reg *r = parts[i]; r->name; r++)
            n++;
    lua_createtable(L, 0, n);
    for (int i = 0; parts[i]; i++)
        luaL_setfuncs(L, parts[i], 0);
}

void aap_open_osutil(lua_State *L)
{
    static const luaL_Reg *const lock_methods[] = { aap_os_lock_methods, NULL };
    static const luaL_Reg *const parts[] = {
        aap_os_files_funcs, aap_os_lock_funcs, aap_os_process_funcs, aap_os_sandbox_funcs,
        aap_os_prompt_funcs, NULL
    };

    /* The metatable is complete before any lock exists. */
    luaL_newmetatable(L, AAP_LOCK_MT);
    luaL_setfuncs(L, aap_os_lock_meta, 0);
    new_lib(L, lock_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);

    new_lib(L, parts);
    lua_setfield(L, -2, "os");
}
