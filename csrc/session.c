/* session.c - placeholder until the libcurl core lands. */
#include "aap.h"

void aap_open_session(lua_State *L) { (void)L; }
