/*
 * aap.h - the one private header of aap.so.
 *
 * luaopen_aap (aap.c) creates the module table and hands it to each part
 * below; every part adds its functions and metatables to the table at the
 * top of the stack and leaves the stack as it found it.
 */
#ifndef AAP_H
#define AAP_H

#include <lua.h>
#include <lauxlib.h>

#if !defined(LUA_VERSION_NUM) || LUA_VERSION_NUM < 504
#error "aap needs Lua 5.4 or newer"
#endif

#ifndef AAP_VERSION
#define AAP_VERSION "0.1.0"
#endif

#define AAP_API __attribute__((visibility("default")))

/* session.c and friends: libcurl sessions and the gateway calls. */
void aap_open_session(lua_State *L);
/* osutil.c: atomic file writes, locks, signals - what Lua's stdlib lacks. */
void aap_open_osutil(lua_State *L);

#endif
