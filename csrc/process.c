/*
 * process.c - aap.os's process: signal flags, spawning a program, and the
 * small facts of this process.
 *
 *   catch_signals()                   -> true | nil, msg, "io"
 *       SIGTERM/SIGINT handlers that only record the signal, without SA_RESTART.
 *   caught()                          -> signal number | nil
 *   spawn(argv, env [, stdin [, timeout]])
 *                                     -> exit status | nil, msg, "timeout"|"spawn"|"interrupted"
 *       argv[1] found on PATH with exactly env, no shell, in a new process group
 *       killed at the timeout (default 60 s) or once a signal was caught.
 *   isatty(fd | file)                 -> boolean
 *   geteuid()                         -> integer
 *   getpid()                          -> integer
 *   no_core_dumps()                   -> true | nil, msg, "io"
 *   now()                             -> float seconds (CLOCK_REALTIME)
 */
#define _GNU_SOURCE   /* posix_spawn_file_actions_addclosefrom_np (glibc 2.34+) */
#include "osutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- signals */

/* The first SIGTERM/SIGINT caught since catch_signals; read by spawn here and
 * by lock's wait (aap_os_caught_signal). */
static volatile sig_atomic_t caught_signal = 0;

int aap_os_caught_signal(void)
{
    return caught_signal;
}

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
        return aap_os_fail_code(L, "spawn", "cannot run", argv[0], errno);
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

const luaL_Reg aap_os_process_funcs[] = {
    { "geteuid", os_geteuid },
    { "catch_signals", os_catch_signals },
    { "caught", os_caught },
    { "isatty", os_isatty },
    { "getpid", os_getpid },
    { "no_core_dumps", os_no_core_dumps },
    { "now", os_now },
    { "spawn", os_spawn },
    { NULL, NULL },
};
