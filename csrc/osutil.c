/*
 * osutil.c - aap.os: what Lua's standard library lacks.
 *
 *   write_atomic(path, data [, mode]) -> true | nil, msg
 *   mode(path)                        -> integer | nil, msg
 *   lock(path)                        -> aap.Lock | nil, msg
 *   catch_signals()                   -> true
 *   caught()                          -> signal number | nil
 *   isatty(fd | file)                 -> boolean
 *   getpid()                          -> integer
 *   now()                             -> float seconds (CLOCK_REALTIME)
 *   spawn(argv, env [, stdin [, timeout]])
 *                                     -> exit status | nil, msg, "timeout"|"spawn"|"interrupted"
 *   resume(co, cap, ...)              -> like coroutine.resume, the Lua heap capped
 *   heap_hit()                        -> true when the running capped resume refused memory
 *
 * Wrong argument types raise; failures of the environment return nil plus a
 * message that names the path and strerror(errno), never the data written.
 * Lua strings are taken with their explicit lengths; a path with an embedded
 * NUL is a programmer error (it cannot name a file) and raises.
 */
#include "aap.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <spawn.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LOCK_MT "aap.Lock"
#define TEMP_TRIES 16

/* ---------------------------------------------------------------- helpers */

/* A path argument: a string without embedded NUL bytes. */
static const char *check_path(lua_State *L, int arg)
{
    size_t len;
    const char *p = luaL_checklstring(L, arg, &len);
    if (len == 0)
        luaL_argerror(L, arg, "empty path");
    if (strlen(p) != len)
        luaL_argerror(L, arg, "path contains a NUL byte");
    return p;
}

/* nil, "<what> <path>: <strerror(err)>" */
static int fail(lua_State *L, const char *what, const char *path, int err)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s %s: %s", what, path, strerror(err));
    return 2;
}

static int fsync_retry(int fd)
{
    int rc;
    do {
        rc = fsync(fd);
    } while (rc != 0 && errno == EINTR);
    return rc;
}

/* Write all of buf; 0, or -1 with errno set. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) {
            errno = EIO;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* 64 unpredictable bits for a temporary name. getrandom() may be missing
 * (old kernels, seccomp): O_EXCL keeps us safe anyway, so fall back to
 * mixing the clock, the pid and a counter. */
static uint64_t random_bits(void)
{
    static unsigned counter;
    uint64_t r;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) == (ssize_t)sizeof r)
        return r;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 16) ^ ++counter;
    r ^= r >> 33;
    r *= UINT64_C(0xff51afd7ed558ccd);
    r ^= r >> 33;
    return r;
}

/* ----------------------------------------------------------- write_atomic */

/*
 * The buffers live in a userdata so that a Lua error (out of memory in
 * lua_pushfstring) cannot leak them; everything else is plain C.
 */
static int os_write_atomic(lua_State *L)
{
    const char *path = check_path(L, 1);
    size_t dlen;
    const char *data = luaL_checklstring(L, 2, &dlen);
    lua_Integer want = luaL_optinteger(L, 3, 0600);
    luaL_argcheck(L, want >= 0 && want <= 07777, 3, "mode must be between 0 and 07777");
    lua_settop(L, 3);

    /* A symlink is followed: the file it points to is replaced, the link stays. */
    const char *target = path;
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        char *real = realpath(path, NULL);
        if (real == NULL)
            return fail(L, "cannot resolve symlink", path, errno);
        lua_pushstring(L, real); /* index 4: keeps the resolved path alive */
        free(real);
        target = lua_tostring(L, 4);
    }

    mode_t mode = (mode_t)want;
    int existing = 0;
    if (stat(target, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return fail(L, "cannot replace", path, EISDIR);
        existing = 1;
        /* Never grant more than the file already allowed. */
        mode &= st.st_mode & 07777;
    } else if (errno != ENOENT) {
        return fail(L, "cannot stat", path, errno);
    }

    size_t tlen = strlen(target);
    if (target[tlen - 1] == '/')
        return fail(L, "cannot replace", path, EISDIR);
    const char *slash = strrchr(target, '/');
    const char *base = slash ? slash + 1 : target;
    size_t dirlen = slash ? (size_t)(slash - target) : 0;

    /* "<dir>/.<base>.tmp-<16 hex>" and "<dir>" (or "." / "/"). */
    size_t cap = tlen + 32;
    char *tmp = lua_newuserdatauv(L, cap, 0);          /* index 5 */
    char *dir = lua_newuserdatauv(L, dirlen + 2, 0);   /* index 6 */
    if (slash == NULL) {
        strcpy(dir, ".");
    } else if (dirlen == 0) {
        strcpy(dir, "/");
    } else {
        memcpy(dir, target, dirlen);
        dir[dirlen] = '\0';
    }

    int fd = -1;
    for (int i = 0; i < TEMP_TRIES && fd < 0; i++) {
        /* At most 200 bytes of the name, so the temporary name fits NAME_MAX. */
        snprintf(tmp, cap, "%.*s%s.%.200s.tmp-%016llx", (int)dirlen, target, slash ? "/" : "",
                 base, (unsigned long long)random_bits());
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0 && errno != EEXIST && errno != EINTR)
            return fail(L, "cannot create a temporary file beside", path, errno);
    }
    if (fd < 0)
        return fail(L, "cannot create a temporary file beside", path, EEXIST);

    const char *what;
    /* The umask may have narrowed the mode: set it exactly. Keep the owner
     * of an existing file when we are allowed to (root rewriting a user's file). */
    if (existing && (st.st_uid != geteuid() || st.st_gid != getegid()) &&
        fchown(fd, st.st_uid, st.st_gid) != 0 && errno != EPERM) {
        what = "cannot set the owner of";
        goto fail_tmp;
    }
    if (fchmod(fd, mode) != 0) {
        what = "cannot set the mode of";
        goto fail_tmp;
    }
    if (write_all(fd, data, dlen) != 0) {
        what = "cannot write";
        goto fail_tmp;
    }
    if (fsync_retry(fd) != 0) {
        what = "cannot sync";
        goto fail_tmp;
    }
    int rc = close(fd);
    fd = -1;
    if (rc != 0 && errno != EINTR) {
        what = "cannot close";
        goto fail_tmp;
    }
    if (rename(tmp, target) != 0) {
        what = "cannot replace";
        goto fail_tmp;
    }

    /* Make the rename durable. The file is replaced whatever happens here, so
     * a directory that cannot be opened or synced (EINVAL on some file
     * systems, a write-only directory) does not turn success into failure. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync_retry(dfd);
        close(dfd);
    }
    lua_pushboolean(L, 1);
    return 1;

fail_tmp: {
    int err = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return fail(L, what, path, err);
}
}

/* ------------------------------------------------------------------- mode */

static int os_mode(lua_State *L)
{
    const char *path = check_path(L, 1);
    struct stat st;
    if (stat(path, &st) != 0)
        return fail(L, "cannot stat", path, errno);
    lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
    return 1;
}

/* ------------------------------------------------------------------- lock */

typedef struct {
    int fd; /* -1 once released */
} Lock;

static Lock *check_lock(lua_State *L)
{
    return (Lock *)luaL_checkudata(L, 1, LOCK_MT);
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

static volatile sig_atomic_t caught_signal = 0;

static int os_lock(lua_State *L)
{
    const char *path = check_path(L, 1);
    double wait = luaL_optnumber(L, 2, 0);
    luaL_argcheck(L, wait >= 0 && wait <= 3600, 2, "wait must be 0 to 3600 seconds");
    lua_settop(L, 1);
    /* The userdata and its metatable exist before the descriptor does, so
     * __gc covers every later exit. */
    Lock *lk = lua_newuserdatauv(L, sizeof *lk, 1);
    lk->fd = -1;
    luaL_setmetatable(L, LOCK_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);

    int fd;
    do {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return fail(L, "cannot open lock file", path, errno);
    lk->fd = fd;
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
        if (spent >= wait || caught_signal)
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
            return 2;
        }
        return fail(L, "cannot lock", path, err);
    }
    return 1;
}

/* ---------------------------------------------------------------- signals */


static void on_signal(int sig)
{
    if (caught_signal == 0)
        caught_signal = sig;
}

/* No SA_RESTART: a blocking select/read returns EINTR, so a loop can look at
 * caught() and stop cleanly. */
static int os_catch_signals(lua_State *L)
{
    static const int sigs[] = { SIGTERM, SIGINT };
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        if (sigaction(sigs[i], &sa, NULL) != 0) {
            lua_pushnil(L);
            lua_pushfstring(L, "sigaction: %s", strerror(errno));
            return 2;
        }
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int os_caught(lua_State *L)
{
    int sig = caught_signal;
    if (sig == 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, sig);
    return 1;
}

/* ------------------------------------------------------------------ misc */

static int os_isatty(lua_State *L)
{
    int fd;
    luaL_Stream *stream = (luaL_Stream *)luaL_testudata(L, 1, LUA_FILEHANDLE);
    if (stream != NULL) {
        luaL_argcheck(L, stream->closef != NULL && stream->f != NULL, 1, "closed file");
        fd = fileno(stream->f);
    } else {
        lua_Integer n = luaL_checkinteger(L, 1);
        luaL_argcheck(L, n >= 0 && n <= INT32_MAX, 1, "not a file descriptor");
        fd = (int)n;
    }
    lua_pushboolean(L, isatty(fd) == 1);
    return 1;
}

static int os_getpid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

static int os_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* ------------------------------------------------------------------ spawn */

/* The strings of the sequence at arg, NULL-terminated, in a userdata pushed
 * on the stack; the table keeps the strings alive. */
static char **check_words(lua_State *L, int arg, lua_Integer min)
{
    luaL_checktype(L, arg, LUA_TTABLE);
    lua_Integer n = (lua_Integer)lua_rawlen(L, arg);
    luaL_argcheck(L, n >= min && n <= 4096, arg, "must hold 1 to 4096 strings");
    char **v = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *v, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        size_t len;
        if (lua_rawgeti(L, arg, i) != LUA_TSTRING)
            luaL_argerror(L, arg, "must hold strings only");
        const char *w = lua_tolstring(L, -1, &len);
        if (strlen(w) != len)
            luaL_argerror(L, arg, "a string contains a NUL byte");
        v[i - 1] = (char *)w;
        lua_pop(L, 1);
    }
    v[n] = NULL;
    return v;
}

static double monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Kills the child's process group (it leads one) and reaps the child. */
static void kill_and_reap(pid_t pid)
{
    int status;
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
}

/*
 * The program argv[1] (found on PATH) with exactly the environment env, no
 * shell; its standard output goes to our standard error, its standard input
 * is `stdin` (or empty). It leads a new process group, which is killed when
 * `timeout` seconds pass or SIGINT/SIGTERM was caught (see catch_signals).
 */
static int os_spawn(lua_State *L)
{
    lua_settop(L, 4);
    char **argv = check_words(L, 1, 1);
    char **envp = check_words(L, 2, 0);
    size_t inlen = 0;
    const char *in = luaL_optlstring(L, 3, "", &inlen);
    double timeout = luaL_optnumber(L, 4, 60);
    luaL_argcheck(L, timeout > 0 && timeout <= 86400, 4, "timeout must be 0 to 86400 seconds");

    int fds[2];
    if (pipe(fds) != 0)
        return fail(L, "cannot run", argv[0], errno);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFL, O_NONBLOCK);

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
    posix_spawn_file_actions_adddup2(&fa, 2, 1);
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    static const int reset[] = { SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD };
    for (size_t i = 0; i < sizeof reset / sizeof reset[0]; i++)
        sigaddset(&dfl, reset[i]);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &dfl);

    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(fds[0]);
    if (rc != 0) {
        close(fds[1]);
        lua_pushnil(L);
        lua_pushfstring(L, "cannot run %s: %s", argv[0], strerror(rc));
        lua_pushliteral(L, "spawn");
        return 3;
    }

    /* A child that stops reading must not kill us with SIGPIPE. */
    struct sigaction ign, old_pipe;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &old_pipe);

    int wfd = fds[1];
    size_t off = 0;
    if (inlen == 0) {
        close(wfd);
        wfd = -1;
    }
    double deadline = monotonic() + timeout;
    int status = 0;
    const char *why = NULL;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            why = strerror(errno);
            kill_and_reap(pid);
            break;
        }
        if (caught_signal) {
            why = "interrupted";
            kill_and_reap(pid);
            break;
        }
        if (monotonic() >= deadline) {
            why = "timeout";
            kill_and_reap(pid);
            break;
        }
        if (wfd < 0) {
            aap_sleep(0.01);
            continue;
        }
        struct pollfd p = { wfd, POLLOUT, 0 };
        if (poll(&p, 1, 10) <= 0)
            continue;
        ssize_t n = write(wfd, in + off, inlen - off);
        if (n > 0)
            off += (size_t)n;
        /* EPIPE: the child closed its input; it keeps running. */
        if (off == inlen || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            close(wfd);
            wfd = -1;
        }
    }
    if (wfd >= 0)
        close(wfd);
    sigaction(SIGPIPE, &old_pipe, NULL);

    if (why != NULL) {
        lua_pushnil(L);
        if (strcmp(why, "timeout") == 0) {
            lua_pushfstring(L, "%s ran longer than %f s and was killed", argv[0], (lua_Number)timeout);
        } else if (strcmp(why, "interrupted") == 0) {
            lua_pushfstring(L, "%s was killed: aap was interrupted", argv[0]);
        } else {
            lua_pushfstring(L, "cannot wait for %s: %s", argv[0], why);
            why = "spawn";
        }
        lua_pushstring(L, why);
        return 3;
    }
    if (WIFEXITED(status))
        lua_pushinteger(L, WEXITSTATUS(status));
    else
        lua_pushinteger(L, 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0));
    return 1;
}

/* ------------------------------------------------------------ capped heap */

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

/* ------------------------------------------------------------------ open */

void aap_open_osutil(lua_State *L)
{
    static const luaL_Reg lock_methods[] = {
        { "unlock", lock_unlock },
        { "held", lock_held },
        { "path", lock_path },
        { NULL, NULL },
    };
    static const luaL_Reg lock_meta[] = {
        { "__gc", lock_unlock },
        { "__close", lock_unlock },
        { "__tostring", lock_tostring },
        { NULL, NULL },
    };
    static const luaL_Reg funcs[] = {
        { "write_atomic", os_write_atomic },
        { "mode", os_mode },
        { "lock", os_lock },
        { "catch_signals", os_catch_signals },
        { "caught", os_caught },
        { "isatty", os_isatty },
        { "getpid", os_getpid },
        { "now", os_now },
        { "spawn", os_spawn },
        { "resume", os_resume },
        { "heap_hit", os_heap_hit },
        { NULL, NULL },
    };

    /* The metatable is complete before any lock exists. */
    luaL_newmetatable(L, LOCK_MT);
    luaL_setfuncs(L, lock_meta, 0);
    luaL_newlib(L, lock_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);

    luaL_newlib(L, funcs);
    lua_setfield(L, -2, "os");
}
