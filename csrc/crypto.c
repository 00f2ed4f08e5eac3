/*
 * crypto.c - aap.sha256 and aap.random_bytes: the SHA-256 of the state file's fingerprints
 * and the randomness of creation markers, from the libcrypto that libcurl's TLS already
 * loads. The library then needs no Lua binding to OpenSSL (luaossl stays the emulator's).
 */
#include "aap.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

/* aap.sha256(s) -> the 32-byte binary digest of s. */
static int l_sha256(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(s, n, md, &len, EVP_sha256(), NULL) != 1)
        return luaL_error(L, "aap.sha256: the digest failed");
    lua_pushlstring(L, (const char *)md, len);
    return 1;
}

/* aap.random_bytes(n) -> n bytes (1..4096) from OpenSSL's CSPRNG (seeded by the kernel). */
static int l_random_bytes(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    unsigned char buf[4096];
    luaL_argcheck(L, n >= 1 && n <= (lua_Integer)sizeof buf, 1, "between 1 and 4096");
    if (RAND_bytes(buf, (int)n) != 1)
        return luaL_error(L, "aap.random_bytes: no randomness available");
    lua_pushlstring(L, (const char *)buf, (size_t)n);
    return 1;
}

void aap_open_crypto(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "sha256", l_sha256 },
        { "random_bytes", l_random_bytes },
        { NULL, NULL },
    };
    luaL_setfuncs(L, funcs, 0);
}
