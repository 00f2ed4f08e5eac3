/*
 * files.c - aap.os's files: the atomic write, stat, open and mode.
 *
 *   write_atomic(path, data [, mode]) -> true | nil, msg, "io"
 *       a temporary file beside path, written, synced and renamed over it; never
 *       through a symlink or over a device, FIFO or socket; the mode never wider
 *       than the existing file's. First removes the temporary files a killed
 *       writer left (remove_stale_temps).
 *   remove_stale_temps(path)          -> nothing
 *       what write_atomic does first, for a run that holds a file without writing it.
 *   stat(path [, follow])             -> table | nil, msg, errno
 *       {type =, mode =, uid =, gid =, nlink =, size =}, lstat (stat with follow).
 *   open(path)                        -> file, table | nil, msg, errno
 *       a regular file for reading (never a symlink, device or FIFO) and its fstat.
 *   mode(path)                        -> integer | nil, msg, "io"
 *       the permission bits (stat).
 *
 * stat and open return the errno number instead of a code: their callers
 * tell a missing file (2) from the rest.
 */
#include "osutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TEMP_TRIES 16

/* ---------------------------------------------------------------- helpers */

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
    const char *path = aap_os_check_path(L, 1);
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
            return aap_os_fail(L, "cannot replace", path, EISDIR);
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
        return aap_os_fail(L, "cannot stat", path, errno);
    }

    size_t plen = strlen(path);
    if (path[plen - 1] == '/')
        return aap_os_fail(L, "cannot replace", path, EISDIR);
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
            return aap_os_fail(L, "cannot create a temporary file beside", path, errno);
    }
    if (fd < 0)
        return aap_os_fail(L, "cannot create a temporary file beside", path, EEXIST);
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
    return aap_os_fail(L, what, path, err);
}
}

/* ------------------------------------------------------------ stat, open */

static int os_stat(lua_State *L)
{
    const char *path = aap_os_check_path(L, 1);
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
    const char *path = aap_os_check_path(L, 1);
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
    const char *path = aap_os_check_path(L, 1);
    struct stat st;
    if (stat(path, &st) != 0)
        return aap_os_fail(L, "cannot stat", path, errno);
    lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
    return 1;
}

const luaL_Reg aap_os_files_funcs[] = {
    { "write_atomic", os_write_atomic },
    { "mode", os_mode },
    { "stat", os_stat },
    { "open", os_open },
    { "remove_stale_temps", os_remove_stale_temps },
    { NULL, NULL },
};
