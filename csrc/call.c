/*
 * call.c - what every aap.Session method shares (session.c, tokens.c,
 * applications.c, oauth.c, paging.c): the session check, argument helpers,
 * the call itself (aap_http_call: flavor detection per the API doc 12.1 and a
 * call re-aimed at a controller's route), and JSON calls whose 2xx answer is
 * decoded or turned into nil, err.
 *
 * It knows no method of its own: the methods call it, never the reverse.
 */
#include "aap.h"

#include <stdlib.h>
#include <string.h>

aap_session *aap_check_session(lua_State *L, int idx)
{
    aap_session *S = luaL_checkudata(L, idx, AAP_SESSION_MT);
    if (S->closed)
        luaL_error(L, "attempt to use a closed aap.Session");
    return S;
}

/* ---- arguments ----------------------------------------------------------- */

/* Raises on keys of the table at idx that are not in `allowed`. */
void aap_check_keys(lua_State *L, int idx, const char *fn, const char *const *allowed)
{
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        int ok = 0;
        if (lua_type(L, -1) == LUA_TSTRING)
            for (int i = 0; allowed[i]; i++)
                if (strcmp(lua_tostring(L, -1), allowed[i]) == 0)
                    ok = 1;
        if (!ok)
            luaL_error(L, "%s: unknown option '%s'", fn, luaL_tolstring(L, -1, NULL));
    }
}

/* Copies opts[key] into the JSON body at dst when it has the right type. */
void aap_copy_opt(lua_State *L, int src, int dst, const char *fn, const char *key, int type)
{
    int t = lua_getfield(L, src, key);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    if (t != type && !(type == LUA_TNUMBER && aap_json_isnull(L, -1)))
        luaL_error(L, "%s: option '%s' must be a %s", fn, key, lua_typename(L, type));
    if (type == LUA_TNUMBER && t == LUA_TNUMBER) {
        int isnum;
        lua_Integer id = lua_tointegerx(L, -1, &isnum);   /* 3.0 from a JSON decoder is 3 */
        if (!isnum)
            luaL_error(L, "%s: option '%s' must be an integer id", fn, key);
        lua_pop(L, 1);
        lua_pushinteger(L, id);
    }
    lua_setfield(L, dst, key);
}

void aap_push_id_path(lua_State *L, const char *what, lua_Integer id)
{
    lua_pushfstring(L, "%s/%I/", what, (LUAI_UACINT)id);
}

const char *aap_list_path(lua_State *L, int fidx, const char *def)
{
    if (!lua_istable(L, fidx))
        return def;
    int t = lua_getfield(L, fidx, "path");
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return def;
    }
    size_t n;
    const char *p = lua_tolstring(L, -1, &n);  /* kept alive by the filters table */
    if (t != LUA_TSTRING || aap_has_crlf(p, n))
        luaL_error(L, "filter 'path' must be a string without NUL, CR or LF");
    lua_pop(L, 1);
    return p;
}

int aap_has_field(lua_State *L, int idx, const char *f)
{
    if (lua_type(L, idx) != LUA_TTABLE)
        return 0;
    int t = lua_getfield(L, idx, f);
    lua_pop(L, 1);
    return t != LUA_TNIL;
}

/* ---- flavor detection and the call --------------------------------------- */

/* GET an absolute path for detection: pushes the decoded body (or nil) and
 * returns the status; -1 after pushing nil, err on a transport failure. */
static long probe(lua_State *L, aap_session *S, const char *path)
{
    lua_pushstring(L, path);
    lua_pushfstring(L, "%s%s", S->base, path);
    aap_req r = { "GET", lua_tostring(L, -1), lua_tostring(L, -2), NULL, 0, NULL,
                  AAP_AUTH_SESSION, NULL, NULL, 0, 0 };
    aap_xfer *x = &S->xfers[0];
    if (aap_http_run(S, x, &r) != 0) {
        aap_push_transport_error(L, x, &r);
        lua_remove(L, -3);
        lua_remove(L, -3);                /* leaves just nil, err */
        return -1;
    }
    lua_pop(L, 2);
    if (x->body.len == 0)
        lua_pushnil(L);
    else
        aap_json_decode(L, x->body.data, x->body.len);   /* nil when not JSON */
    aap_buf_clear(&x->body);
    return x->status;
}

/* Detection failed: one error naming every URL tried with its status. When one
 * of them answered 5xx the gateway is there but failing: code "server" with that
 * status (an outage is not a wrong URL); else "bad_response". */
static int detection_failed(lua_State *L, aap_session *S, const char *const *paths,
                            const long *status, int n)
{
    long outage = 0;
    int last = n - 1;
    for (int i = 0; i < n; i++)
        if (status[i] >= 500 && status[i] <= 599) {
            outage = status[i];
            last = i;
        }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (outage)
        lua_pushfstring(L, "the gateway at %s is failing (HTTP %d), so its API could not be told apart: ",
                        S->base, (int)outage);
    else
        lua_pushfstring(L, "no AAP gateway or controller API found at %s: ", S->base);
    luaL_addvalue(&b);
    for (int i = 0; i < n; i++) {
        lua_pushfstring(L, "%sGET %s -> %d", i ? ", " : "", paths[i], (int)status[i]);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    aap_fail(L, outage ? "server" : "bad_response", outage, lua_tostring(L, -1), "GET", paths[last]);
    lua_remove(L, -3);
    return 2;
}

int aap_detect_flavor(lua_State *L, aap_session *S)
{
    static const char *const paths[] = { "/api/gateway/v1/ping/", "/api/v2/ping/", "/api/",
                                         "/api/gateway/v1/me/" };
    long status[4] = { 0, 0, 0, 0 };
    if (S->flavor != AAP_FLAVOR_UNKNOWN)
        return 0;
    int top = lua_gettop(L);
    long st = status[0] = probe(L, S, paths[0]);
    if (st < 0)
        return 2;
    /* A gateway: 200 with pong/status; or a JSON 401/403 when ping needs auth. */
    if ((st == 200 && (aap_has_field(L, -1, "pong") || aap_has_field(L, -1, "status"))) ||
        ((st == 401 || st == 403) && aap_has_field(L, -1, "detail"))) {
        S->flavor = AAP_FLAVOR_GATEWAY;
        lua_settop(L, top);
        return 0;
    }
    lua_settop(L, top);
    st = status[1] = probe(L, S, paths[1]);
    if (st < 0)
        return 2;
    if (st == 200 && (aap_has_field(L, -1, "ha") || aap_has_field(L, -1, "active_node") ||
                      aap_has_field(L, -1, "install_uuid") || aap_has_field(L, -1, "instances"))) {
        S->flavor = AAP_FLAVOR_CONTROLLER;
        lua_settop(L, top);
        return 0;
    }
    lua_settop(L, top);
    st = status[2] = probe(L, S, paths[2]);
    if (st < 0)
        return 2;
    if (st == 200 && aap_has_field(L, -1, "apis")) {
        S->flavor = AAP_FLAVOR_GATEWAY;
    } else if (st == 200 && lua_type(L, -1) == LUA_TTABLE &&
               lua_getfield(L, -1, "current_version") == LUA_TSTRING &&
               strstr(lua_tostring(L, -1), "/api/v2/")) {
        S->flavor = AAP_FLAVOR_CONTROLLER;
    }
    lua_settop(L, top);
    if (S->flavor != AAP_FLAVOR_UNKNOWN)
        return 0;
    /* A gateway without ping/ (or behind a proxy that hides it): me/ is DRF's, JSON
     * with `results`, or a JSON 401/403 with `detail`. */
    st = status[3] = probe(L, S, paths[3]);
    if (st < 0)
        return 2;
    if ((st == 200 && aap_has_field(L, -1, "results")) ||
        ((st == 401 || st == 403) && aap_has_field(L, -1, "detail")))
        S->flavor = AAP_FLAVOR_GATEWAY;
    lua_settop(L, top);
    if (S->flavor == AAP_FLAVOR_UNKNOWN)
        return detection_failed(L, S, paths, status, 4);
    return 0;
}

/* r's URL (built with the gateway's prefix) aimed at the controller's route
 * instead: S->alt_url and S->alt_path, which r then points to. 0, or -1 when r
 * is not a gateway URL of this session (or no memory). */
static int reaim(aap_session *S, aap_req *r)
{
    static const char *const from[] = { "/api/gateway/v1/", "/o/" };
    static const char *const to[] = { "/api/v2/", "/api/o/" };
    size_t bl = strlen(S->base), ol = strlen(S->origin);
    if (strncmp(r->url, S->base, bl) != 0)
        return -1;
    const char *rest = r->url + bl;
    for (int i = 0; i < 2; i++) {
        size_t fl = strlen(from[i]);
        if (strncmp(rest, from[i], fl) != 0)
            continue;
        size_t n = bl + strlen(to[i]) + strlen(rest + fl) + 1;
        char *url = malloc(n);
        if (!url)
            return -1;
        snprintf(url, n, "%s%s%s", S->base, to[i], rest + fl);
        const char *p = url + ol;
        size_t pl = strcspn(p, "?");
        char *path = malloc(pl + 1);
        if (!path) {
            free(url);
            return -1;
        }
        memcpy(path, p, pl);
        path[pl] = '\0';
        free(S->alt_url);
        free(S->alt_path);
        S->alt_url = url;
        S->alt_path = path;
        r->url = url;
        r->path = path;
        return 0;
    }
    return -1;
}

/* Whether an answer's body reads as JSON (or is empty): its first byte. */
static int looks_json(const aap_xfer *x)
{
    for (size_t i = 0; i < x->body.len; i++) {
        char c = x->body.data[i];
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
            return c == '{' || c == '[';
    }
    return 1;
}

int aap_http_call(lua_State *L, aap_session *S, aap_xfer *x, aap_req *r)
{
    int rc = aap_http_run(S, x, r);
    if (S->flavor != AAP_FLAVOR_UNKNOWN || rc != 0)
        return rc;
    if (x->status != 404 && looks_json(x)) {
        S->flavor = AAP_FLAVOR_GATEWAY;    /* the gateway's route answered */
        return 0;
    }
    /* A 404 or a page that is not the API's: which API is this? The answer
     * is kept aside while the probes use the handle. */
    int was_json = looks_json(x);
    aap_buf body = x->body, head = x->head;
    long status = x->status;
    memset(&x->body, 0, sizeof x->body);
    memset(&x->head, 0, sizeof x->head);
    int n = aap_detect_flavor(L, S);
    aap_buf_free(&x->body);
    aap_buf_free(&x->head);
    x->body = body;
    x->head = head;
    x->status = status;
    x->result = CURLE_OK;
    x->refused = NULL;
    if (n)
        return 2;
    /* On a controller the gateway's route is no API (a 404, or a page some
     * front end serves for any path): the call did nothing there. Send it
     * where it goes - a request that is not idempotent only after a 404 or an
     * error page, never after a 2xx, which a misdetection could make a second
     * create. */
    int redo = status == 404 || (!was_json && (aap_idempotent(r->method) || status < 200 || status > 299));
    if (S->flavor == AAP_FLAVOR_CONTROLLER && redo && reaim(S, r) == 0)
        return aap_http_run(S, x, r);
    return 0;
}

/* ---- JSON calls ---------------------------------------------------------- */

int aap_bad_response(lua_State *L, const aap_xfer *x, const aap_req *r, const char *what)
{
    return aap_fail(L, "bad_response", x->status, what, r->method, r->path);
}

/* The request at the top two slots (path, url) sent; pushes the decoded
 * 2xx body, or nil, err. */
static int send_json(lua_State *L, aap_session *S, aap_req *r)
{
    aap_xfer *x = &S->xfers[0];
    int rc = aap_http_call(L, S, x, r);
    if (rc == 2)
        return 2;
    if (rc != 0)
        return aap_push_transport_error(L, x, r);
    if (x->status < 200 || x->status > 299)
        return aap_push_response_error(L, S, x, r, NULL);
    if (x->body.len == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    int ok = aap_json_decode(L, x->body.data, x->body.len);
    aap_buf_clear(&x->body);             /* may hold a plaintext token */
    if (!ok)
        return aap_bad_response(L, x, r, "the answer is not JSON");
    return 1;
}

static int call_json(lua_State *L, aap_session *S, const char *method, const char *path,
                     int qidx, int jidx, int resend_safe)
{
    if (qidx)
        qidx = lua_absindex(L, qidx);
    if (jidx)
        jidx = lua_absindex(L, jidx);
    aap_push_url(L, S, path, qidx, NULL);
    aap_req r = { method, lua_tostring(L, -1), lua_tostring(L, -2), NULL, 0, NULL,
                  AAP_AUTH_SESSION, NULL, NULL, 0, resend_safe };
    if (jidx) {
        aap_json_encode(L, jidx);
        r.body = lua_tolstring(L, -1, &r.body_len);
        r.content_type = "application/json";
    }
    return send_json(L, S, &r);
}

int aap_call_json(lua_State *L, aap_session *S, const char *method, const char *path,
                  int qidx, int jidx)
{
    return call_json(L, S, method, path, qidx, jidx, 0);
}

int aap_call_json_marked(lua_State *L, aap_session *S, const char *method, const char *path,
                         int qidx, int jidx)
{
    return call_json(L, S, method, path, qidx, jidx, 1);
}
