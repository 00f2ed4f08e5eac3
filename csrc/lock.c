/*
 * lock.c - aap.os.lock and aap.Lock: an advisory lock on a file.
 *
 *   lock(path [, wait])               -> aap.Lock | nil, msg, "busy"|"io"
 *       flock(LOCK_EX|LOCK_NB) on path, created 0600 and never removed; a
 *       symlink, FIFO or device is refused, never opened or blocked on. With
 *       wait, tries again every 20 ms for up to wait seconds (0 to 3600), and
 *       stops early once a signal was caught (process.c).
 *   lock:unlock()                     -> nothing; also __gc and __close, all idempotent
 *   lock:held()                       -> boolean
 *   lock:path()                       -> the path
 *   tostring(lock)                    -> "aap.Lock(<path>, held|released)"
 *
 * osutil.c builds the aap.Lock metatable from aap_os_lock_meta and
 * aap_os_lock_methods before any lock exists.
 */
#include "osutil.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd; /* -1 once released */
} Lock;

static Lock *check_lock(lua_State *L)
{
    return (Lock *)luaL_checkudata(L, 1, AAP_LOCK_MT);
}

/* Releasing closes the descriptor, which drops the flock. The lock file
 * itself stays: removing it would let a third process lock a new inode
 * while a second still waits on the old one. */
static int lock_unlock(lua_State *L)
{
    Lock *lk = check_lock(L);
    if (lk->fd >= 0) {
        close(lk->fd);
        lk->fd = -1;
    }
    return 0;
}

static int lock_held(lua_State *L)
{
    lua_pushboolean(L, check_lock(L)->fd >= 0);
    return 1;
}

static int lock_tostring(lua_State *L)
{
    Lock *lk = check_lock(L);
    lua_getiuservalue(L, 1, 1);
    lua_pushfstring(L, "aap.Lock(%s, %s)", lua_tostring(L, -1), lk->fd >= 0 ? "held" : "released");
    return 1;
}

static int lock_path(lua_State *L)
{
    check_lock(L);
    lua_getiuservalue(L, 1, 1);
    return 1;
}

static int os_lock(lua_State *L)
{
    const char *path = aap_os_check_path(L, 1);
    double wait = luaL_optnumber(L, 2, 0);
    luaL_argcheck(L, wait >= 0 && wait <= 3600, 2, "wait must be 0 to 3600 seconds");
    lua_settop(L, 1);
    /* The userdata and its metatable exist before the descriptor does, so
     * __gc covers every later exit. */
    Lock *lk = lua_newuserdatauv(L, sizeof *lk, 1);
    lk->fd = -1;
    luaL_setmetatable(L, AAP_LOCK_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);

    /* Only a regular file: a device is never opened, a FIFO never blocks. */
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot open lock file %s: %s", path,
                        S_ISLNK(st.st_mode) ? "it is a symbolic link" : "not a regular file");
        lua_pushliteral(L, "io");
        return 3;
    }
    int fd;
    do {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0600);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return aap_os_fail(L, "cannot open lock file", path, errno);
    lk->fd = fd;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        lk->fd = -1;
        close(fd);
        lua_pushnil(L);
        lua_pushfstring(L, "cannot open lock file %s: not a regular file", path);
        lua_pushliteral(L, "io");
        return 3;
    }
    /* Optional wait: poll (never a blocking flock, which no timeout can
     * bound) every 20 ms until the deadline. */
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int rc;
    for (;;) {
        do {
            rc = flock(fd, LOCK_EX | LOCK_NB);
        } while (rc != 0 && errno == EINTR);
        if (rc == 0 || errno != EWOULDBLOCK || wait <= 0)
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double spent = (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9;
        if (spent >= wait || aap_os_caught_signal())
            break;
        struct timespec nap = { 0, 20 * 1000 * 1000 };
        nanosleep(&nap, NULL);
    }
    if (rc != 0) {
        int err = errno;
        lk->fd = -1;
        close(fd);
        if (err == EWOULDBLOCK) {
            lua_pushnil(L);
            lua_pushfstring(L, "%s is locked by another process", path);
            lua_pushliteral(L, "busy");
            return 3;
        }
        return aap_os_fail(L, "cannot lock", path, err);
    }
    return 1;
}

const luaL_Reg aap_os_lock_methods[] = {
    { "unlock", lock_unlock },
    { "held", lock_held },
    { "path", lock_path },
    { NULL, NULL },
};

const luaL_Reg aap_os_lock_meta[] = {
    { "__gc", lock_unlock },
    { "__close", lock_unlock },
    { "__tostring", lock_tostring },
    { NULL, NULL },
};

const luaL_Reg aap_os_lock_funcs[] = {
    { "lock", os_lock },
    { NULL, NULL },
};
