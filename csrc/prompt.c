/*
 * prompt.c - aap.os.read_password: a password from the terminal.
 *
 *   read_password(prompt)             -> string | nil, msg, "notty"|"interrupted"|"io"
 *       one line from /dev/tty with echo off, the prompt on the terminal; the
 *       terminal restored and a signal that came meanwhile delivered again.
 *
 * The signals are caught here, for the read alone, and then raised again with
 * the handlers the process had (catch_signals' in process.c, or the default).
 */
#include "osutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define PASSWORD_MAX 1024

static volatile sig_atomic_t password_signal;

static void on_password_signal(int sig)
{
    password_signal = sig;
}

/* read_password(prompt) -> string | nil, msg, code
 * Reads one line from the controlling terminal (/dev/tty) with echo off: the prompt goes to
 * the terminal, never stdout. The terminal's settings are restored whatever happens; a signal
 * that arrives meanwhile (Ctrl-C, a hang-up) is delivered again once they are, so Ctrl-C still
 * ends the command, with the echo back on. Ctrl-Z suspends with the echo back on, and the
 * password is asked for again when the command is resumed. The line is wiped from C memory. */
static int os_read_password(lua_State *L)
{
    static const int sigs[] = { SIGINT, SIGHUP, SIGQUIT, SIGTERM, SIGTSTP, SIGTTIN, SIGTTOU };
    enum { NSIGS = sizeof sigs / sizeof sigs[0], TSTP = 4 /* sigs[TSTP] == SIGTSTP */ };
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
    while (!failed) {
        if (password_signal == SIGTSTP) {
            /* Ctrl-Z: the echo back on, then stop as the process would have; once it goes on
             * (fg), echo off again and ask again from the start (the suspend flushed the line). */
            tcsetattr(fd, TCSAFLUSH, &old);
            if (write(fd, "\n", 1) < 0) { /* nothing to do */ }
            sigaction(SIGTSTP, &saved[TSTP], NULL);
            raise(SIGTSTP);
            sigaction(SIGTSTP, &sa, NULL);
            password_signal = 0;
            explicit_bzero(buf, sizeof buf);
            len = 0;
            too_long = 0;
            if (tcsetattr(fd, TCSAFLUSH, &quiet) != 0 || write(fd, prompt, plen) < 0)
                failed = errno;
            continue;
        }
        if (password_signal)
            break;
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

const luaL_Reg aap_os_prompt_funcs[] = {
    { "read_password", os_read_password },
    { NULL, NULL },
};
