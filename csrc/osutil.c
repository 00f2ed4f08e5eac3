/* osutil.c - placeholder until the OS helpers land. */
#include "aap.h"

void aap_open_osutil(lua_State *L) { (void)L; }
