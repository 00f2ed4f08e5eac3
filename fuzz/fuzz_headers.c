/*
 * fuzz_headers.c - response header handling (csrc/http.c): the raw header block a
 * server sends, as the header callback stores it, through aap_push_headers,
 * aap_push_header and aap_retry_after. No crash or over-read; Retry-After is -1 or
 * a finite, non-negative number of seconds.
 */
#include "fuzz_common.h"

#include <math.h>

static int run(lua_State *L)
{
    aap_buf *b = lua_touserdata(L, 1);
    aap_push_headers(L, b);
    lua_pushnil(L);
    while (lua_next(L, -2)) {           /* names are lowercase */
        size_t n;
        const char *k = lua_tolstring(L, -2, &n);
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(!(k[i] >= 'A' && k[i] <= 'Z'), "a header name kept upper case");
        lua_pop(L, 1);
    }
    static const char *const names[] = { "retry-after", "content-type", "www-authenticate",
                                         "location", "x", NULL };
    for (int i = 0; names[i]; i++)
        aap_push_header(L, b, names[i]);
    double ra = aap_retry_after(b);
    FUZZ_CHECK(ra == -1 || (isfinite(ra) && ra >= 0), "retry_after out of range");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = fuzz_lua();
    /* An exact-size copy, so that reading one byte past the block is caught. */
    aap_buf b = { 0 };
    if (size > 0) {
        b.data = malloc(size);
        if (!b.data)
            return 0;
        memcpy(b.data, data, size);
        b.len = b.cap = size;
    }
    int rc = fuzz_pcall(L, run, &b);
    FUZZ_CHECK(rc == LUA_OK, "header handling raised");
    free(b.data);
    lua_settop(L, 0);
    return 0;
}
