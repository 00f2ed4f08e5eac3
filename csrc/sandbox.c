/*
 * sandbox.c - aap.os's capped heap, for the policy sandbox (lua/aap/sandbox.lua).
 *
 *   resume(co, cap, ...)              -> like coroutine.resume, the Lua heap capped
 *       the heap may grow by at most cap bytes while co runs; a failure returns
 *       false, the error and whether the cap refused memory.
 *   heap_hit()                        -> true when the running capped resume refused memory
 */
#include "osutil.h"

#include <stdint.h>

/*
 * While a capped resume runs, the state's allocator is wrapped to count the
 * bytes of the Lua heap and refuse growth past the cap. Lua answers a
 * refusal with an emergency collection and then a memory error ("not enough
 * memory"), which is all the caller needs. Shrinking and freeing never fail,
 * as Lua requires. The wrapper is removed before the resume returns: blocks
 * it allocated are freed later by the allocator it wrapped, which is the one
 * that made them, and no pointer into aap.so outlives it (lua_close unloads
 * the library before it frees the last objects).
 */
typedef struct {
    lua_Alloc f;
    void *ud;
    int64_t used;  /* bytes in the heap, as Lua counts them at the start */
    int64_t limit; /* refuse growth past this */
    int hit;       /* a growth was refused */
} Heap;

static Heap *current_heap; /* the capped resume running, or NULL */

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    Heap *h = (Heap *)ud;
    size_t old = ptr != NULL ? osize : 0; /* with ptr NULL, osize is a type tag */
    if (nsize > old && h->used + (int64_t)(nsize - old) > h->limit) {
        h->hit = 1;
        return NULL;
    }
    void *p = h->f(h->ud, ptr, osize, nsize);
    if (p != NULL || nsize == 0)
        h->used += (int64_t)nsize - (int64_t)old;
    return p;
}

/* coroutine.resume(co, ...), with the heap allowed to grow by at most cap
 * bytes while co runs. A failure returns false, the error and whether the cap
 * refused memory. */
static int os_resume(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co != NULL, 1, "coroutine");
    lua_Integer cap = luaL_checkinteger(L, 2);
    luaL_argcheck(L, cap > 0, 2, "cap must be a positive number of bytes");
    int nargs = lua_gettop(L) - 2;
    int st = lua_status(co);
    if ((st != LUA_OK && st != LUA_YIELD) || (st == LUA_OK && lua_gettop(co) == 0)) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "cannot resume dead coroutine");
        return 2;
    }
    if (!lua_checkstack(co, nargs) || !lua_checkstack(L, 3))
        return luaL_error(L, "aap.os.resume: too many arguments");
    if (current_heap != NULL)
        return luaL_error(L, "aap.os.resume: already inside a capped resume");
    lua_xmove(L, co, nargs);

    Heap h;
    h.f = lua_getallocf(L, &h.ud);
    h.used = (int64_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + lua_gc(L, LUA_GCCOUNTB, 0);
    h.limit = h.used + (int64_t)cap;
    h.hit = 0;
    lua_setallocf(L, capped_alloc, &h);
    current_heap = &h;
    int nres;
    st = lua_resume(co, L, nargs, &nres);
    current_heap = NULL;
    lua_setallocf(L, h.f, h.ud);
    int hit = h.hit;

    if (st == LUA_OK || st == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            lua_pushboolean(L, 0);
            lua_pushliteral(L, "too many results to resume");
            return 2;
        }
        lua_pushboolean(L, 1);
        lua_xmove(co, L, nres);
        return nres + 1;
    }
    lua_pushboolean(L, 0);
    lua_xmove(co, L, 1);
    lua_pushboolean(L, hit);
    return 3;
}

static int os_heap_hit(lua_State *L)
{
    lua_pushboolean(L, current_heap != NULL && current_heap->hit);
    return 1;
}

const luaL_Reg aap_os_sandbox_funcs[] = {
    { "resume", os_resume },
    { "heap_hit", os_heap_hit },
    { NULL, NULL },
};
