/*
 * oauth.c - the OAuth2 endpoints (/o/ on a gateway, /api/o/ on a 2.4
 * controller): refresh and revoke, with form bodies built in C memory that is
 * wiped after use, and client authentication by Basic with URL-encoded parts.
 */
#include "aap.h"

#include <string.h>

struct client {
    char *user, *pass;   /* URL-encoded client id and secret (wiped) */
};

static void client_free(struct client *c)
{
    aap_free_secret(&c->user);
    aap_free_secret(&c->pass);
}

static const char *opt_secret(lua_State *L, int idx, const char *fn, const char *key, int required)
{
    int t = lua_getfield(L, idx, key);
    if (t == LUA_TNIL && !required) {
        lua_pop(L, 1);
        return NULL;
    }
    if (t != LUA_TSTRING)
        luaL_error(L, "%s: option '%s' must be a string", fn, key);
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    if (n == 0 || memchr(s, '\0', n))
        luaL_error(L, "%s: option '%s' must be a non-empty string without NUL", fn, key);
    lua_pop(L, 1);
    return s;
}

/* POSTs the form in S->form to the OAuth endpoint `what` ("token/" or
 * "revoke_token/"); pushes the decoded 2xx body (true when empty) or nil, err. */
static int oauth_post(lua_State *L, aap_session *S, const char *what, const char *client_id,
                      const char *client_secret, const char *const *secrets)
{
    /* Before anything else, flavor detection included: nothing is sent. */
    if (!S->clear_ok) {
        aap_buf_clear(&S->form);
        lua_pushfstring(L, "%s%s", aap_oauth_prefix(S), what);
        return aap_fail(L, "insecure", 0, client_secret
                        ? "refusing to send a token and a client secret over plain http:// to a host that "
                          "is not loopback (use https://, or allow_plain_http = true)"
                        : "refusing to send a token over plain http:// to a host that is not loopback "
                          "(use https://, or allow_plain_http = true)", "POST", lua_tostring(L, -1));
    }
    int n;
    lua_pushfstring(L, "%s%s", aap_oauth_prefix(S), what);
    lua_pushfstring(L, "%s%s", S->base, lua_tostring(L, -1));
    aap_req r = { "POST", lua_tostring(L, -1), lua_tostring(L, -2), S->form.data ? S->form.data : "",
                  S->form.len, "application/x-www-form-urlencoded", AAP_AUTH_NONE, NULL, NULL, 1, 0 };
    struct client c = { NULL, NULL };
    if (client_secret) {
        /* Basic with both parts URL-encoded: DOT URL-decodes them. */
        c.user = aap_urlencode(client_id, strlen(client_id));
        c.pass = aap_urlencode(client_secret, strlen(client_secret));
        if (!c.user || !c.pass) {
            client_free(&c);
            aap_buf_clear(&S->form);
            return luaL_error(L, "not enough memory");
        }
        r.auth = AAP_AUTH_CLIENT;
        r.client_user = c.user;
        r.client_pass = c.pass;
    }
    aap_xfer *x = &S->xfers[0];
    int rc = aap_http_call(L, S, x, &r);
    client_free(&c);
    aap_buf_clear(&S->form);
    if (rc == 2)
        return 2;
    if (rc != 0)
        return aap_push_transport_error(L, x, &r);
    if (x->status < 200 || x->status > 299) {
        n = aap_push_response_error(L, S, x, &r, secrets);
        aap_buf_clear(&x->body);
        return n;
    }
    if (x->body.len == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    int ok = aap_json_decode(L, x->body.data, x->body.len);
    aap_buf_clear(&x->body);
    if (!ok)
        return aap_bad_response(L, x, &r, "the answer is not JSON");
    return 1;
}

static void form_add_or_die(lua_State *L, aap_session *S, const char *k, const char *v)
{
    if (v && aap_form_add(&S->form, k, v, strlen(v)) != 0) {
        aap_buf_clear(&S->form);
        luaL_error(L, "not enough memory");
    }
}

static int s_refresh(lua_State *L)
{
    aap_session *S = aap_check_session(L, 1);
    static const char *const keys[] = { "refresh_token", "client_id", "client_secret", "scope", NULL };
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    aap_check_keys(L, 2, "refresh", keys);
    const char *rt = opt_secret(L, 2, "refresh", "refresh_token", 1);
    const char *cid = opt_secret(L, 2, "refresh", "client_id", 1);
    const char *csec = opt_secret(L, 2, "refresh", "client_secret", 0);
    const char *scope = opt_secret(L, 2, "refresh", "scope", 0);
    aap_buf_clear(&S->form);
    form_add_or_die(L, S, "grant_type", "refresh_token");
    form_add_or_die(L, S, "refresh_token", rt);
    if (scope)
        form_add_or_die(L, S, "scope", scope);
    if (!csec)
        form_add_or_die(L, S, "client_id", cid);     /* a public client */
    const char *secrets[] = { rt, csec, NULL };
    double now = aap_now();
    int n = oauth_post(L, S, "token/", cid, csec, secrets);
    if (n != 1)
        return n;
    if (lua_type(L, -1) != LUA_TTABLE || !aap_has_field(L, -1, "access_token")) {
        lua_pushfstring(L, "%stoken/", aap_oauth_prefix(S));
        return aap_fail(L, "bad_response", 0, "the token endpoint answered without an access_token",
                        "POST", lua_tostring(L, -1));
    }
    aap_make_oauth_token(L, now);
    return 1;
}

static int s_revoke(lua_State *L)
{
    aap_session *S = aap_check_session(L, 1);
    static const char *const keys[] = { "token", "client_id", "client_secret", "token_type_hint", NULL };
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    aap_check_keys(L, 2, "revoke", keys);
    const char *tok = opt_secret(L, 2, "revoke", "token", 1);
    const char *cid = opt_secret(L, 2, "revoke", "client_id", 1);
    const char *csec = opt_secret(L, 2, "revoke", "client_secret", 0);
    const char *hint = opt_secret(L, 2, "revoke", "token_type_hint", 0);
    aap_buf_clear(&S->form);
    form_add_or_die(L, S, "token", tok);
    if (hint)
        form_add_or_die(L, S, "token_type_hint", hint);
    if (!csec)
        form_add_or_die(L, S, "client_id", cid);
    const char *secrets[] = { tok, csec, NULL };
    int n = oauth_post(L, S, "revoke_token/", cid, csec, secrets);
    if (n != 1)
        return n;
    lua_pushboolean(L, 1);
    return 1;
}

const luaL_Reg aap_oauth_methods[] = {
    { "refresh", s_refresh },
    { "revoke", s_revoke },
    { NULL, NULL }
};
