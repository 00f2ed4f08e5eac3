/*
 * osutil.c - aap.os: what Lua's standard library lacks.
 *
 *   write_atomic(path, data [, mode]) -> true | nil, msg
 *   mode(path)                        -> integer | nil, msg
 *   stat(path [, follow])             -> table | nil, msg, errno
 *   open(path)                        -> file, table | nil, msg, errno
 *   lock(path)                        -> aap.Lock | nil, msg
 *   geteuid()                         -> integer
 *   catch_signals()                   -> true
 *   caught()                          -> signal number | nil
 *   isatty(fd | file)                 -> boolean
 *   read_password(prompt)             -> string | nil, msg, "notty"|"interrupted"|"io"
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
#define _GNU_SOURCE   /* posix_spawn_file_actions_addclosefrom_np (glibc 2.34+) */
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
#include <dirent.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
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

/* nil, "<what> <path>: <strerror(err)>", code (as luv: a message, then a short stable code) */
static int fail_code(lua_State *L, const char *code, const char *what, const char *path, int err)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s %s: %s", what, path, strerror(err));
    lua_pushstring(L, code);
    return 3;
}

/* nil, "<what> <path>: <strerror(err)>", "io" */
static int fail(lua_State *L, const char *what, const char *path, int err)
{
    return fail_code(L, "io", what, path, err);
}

/* nil, "<path>: <why>", errno: for callers that tell "missing" from the rest. */
static int fail_errno(lua_State *L, const char *path, const char *why, int err)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, why);
    lua_pushinteger(L, err);
    return 3;
}

static const char *type_name(mode_t m)
{
    if (S_ISREG(m))
        return "file";
    if (S_ISDIR(m))
        return "directory";
    if (S_ISLNK(m))
        return "link";
    if (S_ISFIFO(m))
        return "fifo";
    if (S_ISSOCK(m))
        return "socket";
    if (S_ISCHR(m))
        return "char";
    if (S_ISBLK(m))
        return "block";
    return "other";
}

/* {type=, mode=, uid=, gid=, nlink=, size=} */
static void push_stat(lua_State *L, const struct stat *st)
{
    lua_createtable(L, 0, 6);
    lua_pushstring(L, type_name(st->st_mode));
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, (lua_Integer)(st->st_mode & 07777));
    lua_setfield(L, -2, "mode");
    lua_pushinteger(L, (lua_Integer)st->st_uid);
    lua_setfield(L, -2, "uid");
    lua_pushinteger(L, (lua_Integer)st->st_gid);
    lua_setfield(L, -2, "gid");
    lua_pushinteger(L, (lua_Integer)st->st_nlink);
    lua_setfield(L, -2, "nlink");
    lua_pushinteger(L, (lua_Integer)st->st_size);
    lua_setfield(L, -2, "size");
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

/* Whether name is ".<base>.tmp-<16 lowercase hex>": the name write_atomic
 * gives its temporary files beside base (base cut to 200 bytes, as there). */
static int is_temp_name(const char *name, const char *base)
{
    size_t blen = strnlen(base, 200);
    if (name[0] != '.' || strncmp(name + 1, base, blen) != 0)
        return 0;
    const char *p = name + 1 + blen;
    if (strncmp(p, ".tmp-", 5) != 0)
        return 0;
    p += 5;
    for (int i = 0; i < 16; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return 0;
    }
    return p[16] == '\0';
}

/*
 * Removes the temporary files of base that a write_atomic killed before its
 * rename left in dir (they may hold a secret): regular files of ours with
 * exactly that name, whose writer is gone. A writer holds an flock on its
 * temporary file until the rename is done, so a file we can lock is
 * abandoned; one still being written is left alone. Best effort.
 */
static void remove_stale_temps(const char *dir, const char *base)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return;
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        close(dfd);
        return;
    }
    uid_t me = geteuid();
    const struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat st, fst;
        if (!is_temp_name(de->d_name, base) || fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode) || st.st_uid != me)
            continue;
        int fd = openat(dfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (fstat(fd, &fst) == 0 && fst.st_dev == st.st_dev && fst.st_ino == st.st_ino &&
            flock(fd, LOCK_EX | LOCK_NB) == 0)
            (void)unlinkat(dfd, de->d_name, 0);
        close(fd);
    }
    closedir(d);
}

/* aap.os.remove_stale_temps(path): what write_atomic does first, for a run that
 * holds an env file without writing it (a create that keeps the file's token). */
static int os_remove_stale_temps(lua_State *L)
{
    size_t plen;
    const char *path = luaL_checklstring(L, 1, &plen);
    luaL_argcheck(L, plen > 0 && strlen(path) == plen, 1, "a path without NUL");
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        remove_stale_temps(".", path);
    } else if (slash == path) {
        remove_stale_temps("/", slash + 1);
    } else {
        lua_pushlstring(L, path, (size_t)(slash - path));
        remove_stale_temps(lua_tostring(L, -1), slash + 1);
    }
    return 0;
}

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

    /* Never through a symlink (whoever made it chose the file we would
     * replace and chmod), never over a device, FIFO or socket. */
    mode_t mode = (mode_t)want;
    int existing = 0;
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return fail(L, "cannot replace", path, EISDIR);
        if (S_ISLNK(st.st_mode)) {
            lua_pushnil(L);
            lua_pushfstring(L, "cannot replace %s: it is a symbolic link", path);
            lua_pushliteral(L, "io");
            return 3;
        }
        if (!S_ISREG(st.st_mode)) {
            lua_pushnil(L);
            lua_pushfstring(L, "cannot replace %s: not a regular file", path);
            lua_pushliteral(L, "io");
            return 3;
        }
        existing = 1;
        /* Never grant more than the file already allowed. */
        mode &= st.st_mode & 07777;
    } else if (errno != ENOENT) {
        return fail(L, "cannot stat", path, errno);
    }

    size_t plen = strlen(path);
    if (path[plen - 1] == '/')
        return fail(L, "cannot replace", path, EISDIR);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dirlen = slash ? (size_t)(slash - path) : 0;

    /* "<dir>/.<base>.tmp-<16 hex>" and "<dir>" (or "." / "/"). */
    size_t cap = plen + 32;
    char *tmp = lua_newuserdatauv(L, cap, 0);          /* index 4 */
    char *dir = lua_newuserdatauv(L, dirlen + 2, 0);   /* index 5 */
    if (slash == NULL) {
        strcpy(dir, ".");
    } else if (dirlen == 0) {
        strcpy(dir, "/");
    } else {
        memcpy(dir, path, dirlen);
        dir[dirlen] = '\0';
    }
    remove_stale_temps(dir, base);

    int fd = -1;
    for (int i = 0; i < TEMP_TRIES && fd < 0; i++) {
        /* At most 200 bytes of the name, so the temporary name fits NAME_MAX. */
        snprintf(tmp, cap, "%.*s%s.%.200s.tmp-%016llx", (int)dirlen, path, slash ? "/" : "",
                 base, (unsigned long long)random_bits());
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0 && errno != EEXIST && errno != EINTR)
            return fail(L, "cannot create a temporary file beside", path, errno);
    }
    if (fd < 0)
        return fail(L, "cannot create a temporary file beside", path, EEXIST);
    /* Held until the rename: remove_stale_temps leaves a locked file alone. */
    (void)flock(fd, LOCK_EX | LOCK_NB);

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
    if (rename(tmp, path) != 0) {
        what = "cannot replace";
        goto fail_tmp;
    }
    /* fsync has reported any write-back error; closing now drops the lock. */
    close(fd);

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
    unlink(tmp);
    close(fd);
    return fail(L, what, path, err);
}
}

/* ------------------------------------------------------------ stat, open */

static int os_stat(lua_State *L)
{
    const char *path = check_path(L, 1);
    int follow = lua_toboolean(L, 2);
    struct stat st;
    if ((follow ? stat(path, &st) : lstat(path, &st)) != 0) {
        int err = errno;
        return fail_errno(L, path, strerror(err), err);
    }
    push_stat(L, &st);
    return 1;
}

/* A Lua file handle over a descriptor we opened (liolib's own is static). */
static int stream_close(lua_State *L)
{
    luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
    int rc = fclose(p->f);
    return luaL_fileresult(L, rc == 0, NULL);
}

/*
 * Opens a regular file for reading without following a symlink, without
 * blocking and without opening anything else: lstat first (a device is never
 * opened), then O_NOFOLLOW|O_NONBLOCK|O_NOCTTY, and the descriptor's fstat
 * must be the same regular file. Returns a Lua file handle and the fstat.
 */
static int os_open(lua_State *L)
{
    const char *path = check_path(L, 1);
    lua_settop(L, 1);
    struct stat st, fst;
    if (lstat(path, &st) != 0) {
        int err = errno;
        return fail_errno(L, path, strerror(err), err);
    }
    if (S_ISLNK(st.st_mode))
        return fail_errno(L, path, "is a symbolic link", ELOOP);
    if (!S_ISREG(st.st_mode))
        return fail_errno(L, path, "not a regular file", S_ISDIR(st.st_mode) ? EISDIR : EINVAL);
    /* The handle exists (closed) before the descriptor, so __gc covers every later exit. */
    luaL_Stream *p = (luaL_Stream *)lua_newuserdatauv(L, sizeof *p, 0);
    p->f = NULL;
    p->closef = NULL;
    luaL_setmetatable(L, LUA_FILEHANDLE);
    int fd;
    do {
        fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        int err = errno;
        return fail_errno(L, path, strerror(err), err);
    }
    if (fstat(fd, &fst) != 0 || !S_ISREG(fst.st_mode) || fst.st_dev != st.st_dev || fst.st_ino != st.st_ino) {
        close(fd);
        return fail_errno(L, path, "changed while being opened", EAGAIN);
    }
    p->f = fdopen(fd, "rb");
    if (p->f == NULL) {
        int err = errno;
        close(fd);
        return fail_errno(L, path, strerror(err), err);
    }
    p->closef = stream_close;
    push_stat(L, &fst);
    return 2;
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
        return fail(L, "cannot open lock file", path, errno);
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
            lua_pushliteral(L, "busy");
            return 3;
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
            lua_pushliteral(L, "io");
            return 3;
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

static int os_geteuid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)geteuid());
    return 1;
}

/* aap.os.no_core_dumps(): this process never writes a core file (RLIMIT_CORE 0, soft and
 * hard) and is not dumpable (no core, no ptrace attach by other processes of the user, its
 * /proc files root's). A crash of the CLI then leaves no copy of a password or token on disk.
 * Returns true, or nil and a message. */
static int os_no_core_dumps(lua_State *L)
{
    struct rlimit rl = { 0, 0 };
    if (setrlimit(RLIMIT_CORE, &rl) != 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, strerror(errno));
        lua_pushliteral(L, "io");
        return 3;
    }
    lua_pushboolean(L, 1);
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
        return fail_code(L, "spawn", "cannot run", argv[0], errno);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFL, O_NONBLOCK);

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
    posix_spawn_file_actions_adddup2(&fa, 2, 1);
    /* Nothing else of ours reaches the program: not the gateway's socket that libcurl keeps
     * alive, not an env file's lock, not a file Lua has open (none of which is CLOEXEC). */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#else
    for (int fd = 3; fd < 1024; fd++)
        if (fd != fds[0] && fcntl(fd, F_GETFD) >= 0)
            fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
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

/* ---------------------------------------------------------- read_password */

#define PASSWORD_MAX 1024

static volatile sig_atomic_t password_signal;

static void on_password_signal(int sig)
{
    password_signal = sig;
}

/* read_password(prompt) -> string | nil, msg, code
 * Reads one line from the controlling terminal (/dev/tty) with echo off: the prompt goes to
 * the terminal, never stdout. The terminal's settings are restored whatever happens; a signal
 * that arrives meanwhile (Ctrl-C, Ctrl-Z, a hang-up) is delivered again once they are, so
 * Ctrl-C still ends the command, with the echo back on. The line is wiped from C memory. */
static int os_read_password(lua_State *L)
{
    static const int sigs[] = { SIGINT, SIGHUP, SIGQUIT, SIGTERM, SIGTSTP, SIGTTIN, SIGTTOU };
    enum { NSIGS = sizeof sigs / sizeof sigs[0] };
    struct sigaction saved[NSIGS], sa;
    struct termios old, quiet;
    char buf[PASSWORD_MAX + 1];
    size_t len = 0;
    int too_long = 0, failed = 0, fd;
    size_t plen;
    const char *prompt = luaL_checklstring(L, 1, &plen);

    fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "no terminal to ask for the password: %s", strerror(errno));
        lua_pushliteral(L, "notty");
        return 3;
    }
    if (tcgetattr(fd, &old) != 0) {
        int e = errno;
        close(fd);
        lua_pushnil(L);
        lua_pushfstring(L, "no terminal to ask for the password: %s", strerror(e));
        lua_pushliteral(L, "notty");
        return 3;
    }
    password_signal = 0;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_password_signal;   /* no SA_RESTART: read() returns EINTR */
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < NSIGS; i++)
        sigaction(sigs[i], &sa, &saved[i]);
    quiet = old;
    quiet.c_lflag &= (tcflag_t)~(ECHO | ECHOE | ECHOK | ECHONL);
    /* Echo off, or no reading at all: a password typed where it shows is not asked for. */
    if (tcsetattr(fd, TCSAFLUSH, &quiet) != 0)
        failed = errno;
    else if (write(fd, prompt, plen) < 0)
        failed = errno;
    while (!failed && !password_signal) {
        char c;
        ssize_t n = read(fd, &c, 1);
        if (n < 0 && errno == EINTR)
            continue;                      /* the loop's test sees the signal */
        if (n < 0) {
            failed = errno;
            break;
        }
        if (n == 0 || c == '\n' || c == '\r')
            break;
        if (len < PASSWORD_MAX)
            buf[len++] = c;
        else
            too_long = 1;
    }
    tcsetattr(fd, TCSAFLUSH, &old);
    if (write(fd, "\n", 1) < 0) { /* the newline the user typed was not echoed; nothing to do */ }
    close(fd);
    for (int i = 0; i < NSIGS; i++)
        sigaction(sigs[i], &saved[i], NULL);
    if (password_signal) {
        int sig = password_signal;
        explicit_bzero(buf, sizeof buf);
        raise(sig);                        /* with the handler the process had */
        lua_pushnil(L);
        lua_pushliteral(L, "interrupted while asking for the password");
        lua_pushliteral(L, "interrupted");
        return 3;
    }
    if (failed || too_long) {
        explicit_bzero(buf, sizeof buf);
        lua_pushnil(L);
        if (failed)
            lua_pushfstring(L, "cannot read the password from the terminal: %s", strerror(failed));
        else
            lua_pushfstring(L, "the password is longer than %d bytes", PASSWORD_MAX);
        lua_pushliteral(L, "io");
        return 3;
    }
    lua_pushlstring(L, buf, len);
    explicit_bzero(buf, sizeof buf);
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
        { "stat", os_stat },
        { "open", os_open },
        { "lock", os_lock },
        { "geteuid", os_geteuid },
        { "catch_signals", os_catch_signals },
        { "caught", os_caught },
        { "isatty", os_isatty },
        { "read_password", os_read_password },
        { "getpid", os_getpid },
        { "no_core_dumps", os_no_core_dumps },
        { "remove_stale_temps", os_remove_stale_temps },
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
