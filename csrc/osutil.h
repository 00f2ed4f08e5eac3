/*
 * osutil.h - the parts of aap.os (docs/design.md, "osutil"): what each part
 * gives osutil.c, which assembles the table, and what oscommon.c gives them all.
 *
 * Which file calls which: osutil.c -> the parts' tables; lock.c -> process.c
 * (the caught signal); files.c, lock.c, process.c -> oscommon.c; process.c ->
 * buffer.c (aap_sleep). oscommon.c, sandbox.c and prompt.c call none of them,
 * and no part calls osutil.c.
 *
 * Wrong argument types raise; failures of the environment return nil, a
 * message and a short stable code (as luv), the message naming the path and
 * strerror(errno), never the data written.
 */
#ifndef AAP_OSUTIL_H
#define AAP_OSUTIL_H

#include "aap.h"

#define AAP_LOCK_MT "aap.Lock"

/* ---- the parts' functions, assembled into aap.os by osutil.c ------------ */

extern const luaL_Reg aap_os_files_funcs[];   /* files.c: write_atomic, remove_stale_temps, stat, open, mode */
extern const luaL_Reg aap_os_lock_funcs[];    /* lock.c: lock */
extern const luaL_Reg aap_os_lock_methods[];  /* lock.c: aap.Lock's unlock, held, path */
extern const luaL_Reg aap_os_lock_meta[];     /* lock.c: aap.Lock's __gc, __close, __tostring */
extern const luaL_Reg aap_os_process_funcs[]; /* process.c: catch_signals, caught, spawn, isatty,
                                                 geteuid, getpid, no_core_dumps, now */
extern const luaL_Reg aap_os_sandbox_funcs[]; /* sandbox.c: resume, heap_hit */
extern const luaL_Reg aap_os_prompt_funcs[];  /* prompt.c: read_password */

/* ---- process.c ------------------------------------------------------------ */

/* The first SIGTERM/SIGINT caught since aap.os.catch_signals(), or 0. */
int aap_os_caught_signal(void);

/* ---- oscommon.c: what the parts share ------------------------------------- */

/* A path argument: a non-empty string without NUL bytes (raises otherwise). */
const char *aap_os_check_path(lua_State *L, int arg);
/* Pushes nil, "<what> <path>: <strerror(err)>", code; returns 3. */
int aap_os_fail_code(lua_State *L, const char *code, const char *what, const char *path, int err);
/* aap_os_fail_code with the code "io". */
int aap_os_fail(lua_State *L, const char *what, const char *path, int err);

#endif
