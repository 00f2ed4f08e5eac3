/*
 * fuzz_common.h - what every libFuzzer harness of aap shares: one Lua state with
 * the aap module loaded (metatables, the private cjson instance), built once.
 * The harnesses compile the csrc sources directly, so internal functions are reachable.
 */
#ifndef AAP_FUZZ_COMMON_H
#define AAP_FUZZ_COMMON_H

#include "aap.h"

#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int luaopen_aap(lua_State *L);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *fuzz_L;

/* A Lua state with aap loaded as the global `aap`. */
static lua_State *fuzz_lua(void)
{
    if (fuzz_L)
        return fuzz_L;
    fuzz_L = luaL_newstate();
    if (!fuzz_L)
        abort();
    luaL_openlibs(fuzz_L);
    luaL_requiref(fuzz_L, "aap", luaopen_aap, 1);
    lua_pop(fuzz_L, 1);
    return fuzz_L;
}

/* Runs fn under lua_pcall; a Lua error is an accepted outcome (it is how the
 * code reports bad input), a crash or a sanitizer report is not. */
static int fuzz_pcall(lua_State *L, lua_CFunction fn, void *ud)
{
    lua_pushcfunction(L, fn);
    lua_pushlightuserdata(L, ud);
    return lua_pcall(L, 1, 0, 0);
}

/* A failed property: print it and abort, so libFuzzer saves the input. */
#define FUZZ_CHECK(cond, what) do { \
        if (!(cond)) { fprintf(stderr, "property failed: %s\n", what); abort(); } \
    } while (0)

#endif
