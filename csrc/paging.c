/*
 * paging.c - lists: every page, following `next` links resolved against the
 * session's base. When page 1 says how many items there are (`count`), the
 * remaining pages are fetched concurrently on the session's multi handle
 * (at most `concurrency` at a time); otherwise one after the other. Items are
 * de-duplicated by id, since a list may shift while it is being read.
 */
#include "aap.h"

#include <stdlib.h>
#include <string.h>

#define MAX_PAGES 100000

/* The bodies of concurrently fetched pages (may hold secrets): freed after each list,
 * and, should a list end early (an error raised half-way), by the session's release
 * through S->free_pages - the session knows the hook, not this file. */
static void pages_free(aap_session *S)
{
    for (int i = 0; i < S->npages; i++)
        aap_buf_free(&S->pages[i].body);
    free(S->pages);
    S->pages = NULL;
    S->npages = 0;
}

static int pages_reserve(aap_session *S, int n)
{
    pages_free(S);
    S->free_pages = pages_free;
    S->pages = calloc((size_t)n, sizeof *S->pages);
    if (!S->pages)
        return -1;
    S->npages = n;
    return 0;
}

/* Appends the items of the decoded page at pidx to the array at out, skipping
 * ids already in seen. Returns -1 when the page has no `results` array. */
static int append_items(lua_State *L, int pidx, int out, int seen, void (*conv)(lua_State *L))
{
    if (lua_type(L, pidx) != LUA_TTABLE || lua_getfield(L, pidx, "results") != LUA_TTABLE) {
        if (lua_type(L, pidx) == LUA_TTABLE)
            lua_pop(L, 1);
        return -1;
    }
    int res = lua_gettop(L);
    lua_Integer n = (lua_Integer)lua_rawlen(L, out);
    for (lua_Integer i = 1; lua_rawgeti(L, res, i) != LUA_TNIL; i++) {
        if (lua_type(L, -1) == LUA_TTABLE) {
            if (lua_getfield(L, -1, "id") != LUA_TNIL) {
                lua_pushvalue(L, -1);
                if (lua_rawget(L, seen) != LUA_TNIL) {
                    lua_pop(L, 3);         /* flag, id, item: a duplicate */
                    continue;
                }
                lua_pop(L, 1);
                lua_pushboolean(L, 1);
                lua_rawset(L, seen);
            } else {
                lua_pop(L, 1);
            }
        }
        if (conv)
            conv(L);
        lua_rawseti(L, out, ++n);
    }
    lua_pop(L, 2);                         /* nil, results */
    return 0;
}

/* For a next link "...?page=2&..." pushes the text before and after the
 * 2; returns 0 when the link does not carry page=2. */
static int page_template(lua_State *L, const char *url)
{
    const char *q = strchr(url, '?');
    for (const char *p = q; p; p = strchr(p + 1, '&')) {
        if (strncmp(p + 1, "page=2", 6) == 0 && (p[7] == '&' || p[7] == '\0')) {
            lua_pushlstring(L, url, (size_t)(p + 6 - url));
            lua_pushstring(L, p + 7);
            return 1;
        }
    }
    return 0;
}

/* Fetches url (the value at uidx) with retries; pushes the decoded page, or
 * nil, err (returns 2). */
static int fetch_page(lua_State *L, aap_session *S, int uidx)
{
    const char *url = lua_tostring(L, uidx);
    const char *path = url + strlen(S->origin);
    const char *q = strchr(path, '?');
    lua_pushlstring(L, path, q ? (size_t)(q - path) : strlen(path));
    aap_req r = { "GET", url, lua_tostring(L, -1), NULL, 0, NULL, AAP_AUTH_SESSION, NULL, NULL, 0, 0 };
    aap_xfer *x = &S->xfers[0];
    int rc = aap_http_call(L, S, x, &r);
    if (rc != 0) {
        if (rc != 2)
            aap_push_transport_error(L, x, &r);
        lua_remove(L, -3);
        return 2;
    }
    if (x->status != 200) {
        aap_push_response_error(L, S, x, &r, NULL);
        lua_remove(L, -3);
        return 2;
    }
    int ok = aap_json_decode(L, x->body.data ? x->body.data : "", x->body.len);
    aap_buf_clear(&x->body);
    if (!ok || lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 1);
        aap_bad_response(L, x, &r, "a list page that is not a JSON object");
        lua_remove(L, -3);
        return 2;
    }
    lua_remove(L, -2);
    return 1;
}

/* Pushes the resolved `next` of the page at pidx, or nil. */
static void push_next(lua_State *L, aap_session *S, int pidx)
{
    if (lua_getfield(L, pidx, "next") == LUA_TSTRING && lua_rawlen(L, -1) > 0) {
        aap_push_resolved(L, S, lua_tostring(L, -1));
        lua_remove(L, -2);
    } else {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
}

/* Pages 2..total fetched concurrently; on return the stack holds the `next`
 * of the last page (or nil), or nil, err with 2 returned. */
static int fetch_rest_concurrently(lua_State *L, aap_session *S, int out, int seen,
                                   void (*conv)(lua_State *L), int before, int after, int total)
{
    int m = total - 1;
    lua_createtable(L, m, 0);
    int urls = lua_gettop(L);
    const char **cu = NULL;
    for (int k = 2; k <= total; k++) {
        lua_pushvalue(L, before);
        lua_pushinteger(L, k);
        lua_pushvalue(L, after);
        lua_concat(L, 3);
        lua_rawseti(L, urls, k - 1);
    }
    cu = malloc((size_t)m * sizeof *cu);
    if (!cu || pages_reserve(S, m) != 0) {
        free(cu);
        return luaL_error(L, "not enough memory");
    }
    for (int i = 0; i < m; i++) {
        lua_rawgeti(L, urls, i + 1);
        cu[i] = lua_tostring(L, -1);       /* kept alive by the urls table */
        lua_pop(L, 1);
    }
    aap_http_fetch_many(S, cu, S->pages, m);
    free(cu);
    lua_pushnil(L);                        /* the last page's next */
    int nxt = lua_gettop(L);
    for (int i = 0; i < m; i++) {
        aap_page *p = &S->pages[i];
        int got = 0;
        if (p->result == CURLE_OK && p->status == 200) {
            got = aap_json_decode(L, p->body.data ? p->body.data : "", p->body.len) &&
                  lua_type(L, -1) == LUA_TTABLE;
            if (!got)
                lua_pop(L, 1);
        } else if (p->result == CURLE_OK && p->status == 404 && i > 0) {
            aap_buf_clear(&p->body);
            continue;                      /* the list shrank meanwhile */
        }
        aap_buf_clear(&p->body);
        if (!got) {
            /* Once more, alone and with the retry policy; its error stands. */
            lua_rawgeti(L, urls, i + 1);
            int n = fetch_page(L, S, lua_gettop(L));
            if (n == 2)
                return 2;
            lua_remove(L, -2);
        }
        int pg = lua_gettop(L);
        if (append_items(L, pg, out, seen, conv) != 0) {
            lua_rawgeti(L, urls, i + 1);
            return aap_fail(L, "bad_response", 200, "a list page without a results array", "GET",
                            lua_tostring(L, -1));
        }
        if (i == m - 1) {
            push_next(L, S, pg);
            lua_replace(L, nxt);
        }
        lua_settop(L, pg - 1);
    }
    pages_free(S);
    lua_replace(L, urls);
    lua_settop(L, urls);
    return 1;
}

int aap_list_all(lua_State *L, aap_session *S, const char *path, int qidx,
                 void (*conv)(lua_State *L))
{
    if (qidx)
        qidx = lua_absindex(L, qidx);
    lua_newtable(L);
    int out = lua_gettop(L);
    lua_newtable(L);
    int seen = out + 1;
    aap_push_url(L, S, path, qidx, "path");
    lua_remove(L, -2);                      /* the url only */
    int n = fetch_page(L, S, -1);
    if (n == 2)
        return 2;
    int page = lua_gettop(L);
    lua_Integer per = 0, count = -1;
    if (lua_getfield(L, page, "results") == LUA_TTABLE)
        per = (lua_Integer)lua_rawlen(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, page, "count") == LUA_TNUMBER && lua_isinteger(L, -1))
        count = lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (append_items(L, page, out, seen, conv) != 0)
        return aap_fail(L, "bad_response", 200, "a list page without a results array", "GET", path);
    push_next(L, S, page);
    int next = lua_gettop(L);

    if (!lua_isnil(L, next) && count > per && per > 0 && S->concurrency > 1 &&
        page_template(L, lua_tostring(L, next))) {
        lua_Integer total = (count + per - 1) / per;
        if (total > MAX_PAGES)
            total = MAX_PAGES;
        n = fetch_rest_concurrently(L, S, out, seen, conv, next + 1, next + 2, (int)total);
        if (n == 2)
            return 2;
        lua_replace(L, next);              /* continue from the last page's next */
        lua_settop(L, next);
    }
    for (int pages = 1; !lua_isnil(L, next); pages++) {
        if (pages > MAX_PAGES)
            return aap_fail(L, "bad_response", 200, "the list does not end", "GET", path);
        n = fetch_page(L, S, next);
        if (n == 2)
            return 2;
        int pg = lua_gettop(L);
        if (append_items(L, pg, out, seen, conv) != 0)
            return aap_fail(L, "bad_response", 200, "a list page without a results array", "GET", path);
        push_next(L, S, pg);
        if (lua_rawequal(L, -1, next))
            return aap_fail(L, "bad_response", 200, "a next link that points to itself", "GET", path);
        lua_replace(L, next);
        lua_settop(L, next);
    }
    lua_settop(L, out);
    return 1;
}

/* ---- each_token: one page in memory at a time --------------------------- */
/* upvalues: 1 session, 2 current page (array of converted items), 3 position,
 *           4 next url (nil at the end), 5 pending error, 6 ids seen,
 *           7 the converter (light userdata: the caller's static aap_conv), or nil */

static int iter_step(lua_State *L)
{
    aap_session *S = aap_check_session(L, lua_upvalueindex(1));
    if (!lua_isnil(L, lua_upvalueindex(5))) {
        lua_pushboolean(L, 0);
        lua_pushvalue(L, lua_upvalueindex(5));
        lua_pushnil(L);
        lua_replace(L, lua_upvalueindex(5));
        lua_pushnil(L);
        lua_replace(L, lua_upvalueindex(4));
        return 2;
    }
    for (;;) {
        lua_Integer pos = lua_tointeger(L, lua_upvalueindex(3));
        if (lua_rawgeti(L, lua_upvalueindex(2), pos) != LUA_TNIL) {
            lua_pushinteger(L, pos + 1);
            lua_replace(L, lua_upvalueindex(3));
            return 1;
        }
        lua_pop(L, 1);
        if (lua_isnil(L, lua_upvalueindex(4)))
            return 0;
        lua_pushvalue(L, lua_upvalueindex(4));
        int u = lua_gettop(L);
        if (fetch_page(L, S, u) == 2) {
            lua_pushnil(L);
            lua_replace(L, lua_upvalueindex(4));
            lua_pushboolean(L, 0);
            lua_insert(L, -2);
            return 2;                       /* false, err; then the end */
        }
        int pg = lua_gettop(L);
        lua_newtable(L);
        int out = pg + 1;
        const aap_conv *conv = lua_touserdata(L, lua_upvalueindex(7));
        if (append_items(L, pg, out, lua_upvalueindex(6), conv ? conv->fn : NULL) != 0) {
            lua_pushnil(L);
            lua_replace(L, lua_upvalueindex(4));
            lua_pushboolean(L, 0);
            aap_fail(L, "bad_response", 200, "a list page without a results array", "GET", NULL);
            lua_remove(L, -2);
            return 2;
        }
        lua_replace(L, lua_upvalueindex(2));
        lua_pushinteger(L, 1);
        lua_replace(L, lua_upvalueindex(3));
        push_next(L, S, pg);
        if (lua_rawequal(L, -1, u)) {
            lua_pop(L, 1);
            lua_pushnil(L);
        }
        lua_replace(L, lua_upvalueindex(4));
        lua_settop(L, u - 1);
    }
}

int aap_list_iter(lua_State *L, aap_session *S, int sidx, const char *path, int qidx,
                  const aap_conv *conv)
{
    sidx = lua_absindex(L, sidx);
    if (qidx)
        qidx = lua_absindex(L, qidx);
    lua_pushvalue(L, sidx);                  /* 1 session */
    lua_newtable(L);                         /* 2 page */
    lua_pushinteger(L, 1);                   /* 3 position */
    aap_push_url(L, S, path, qidx, "path");
    lua_remove(L, -2);                       /* 4 first url */
    lua_pushnil(L);                          /* 5 no error */
    lua_newtable(L);                         /* 6 seen */
    if (conv)
        lua_pushlightuserdata(L, (void *)conv);  /* 7 conv */
    else
        lua_pushnil(L);
    lua_pushcclosure(L, iter_step, 7);
    return 1;
}

int aap_list_method(lua_State *L, const char *resource, void (*conv)(lua_State *L))
{
    aap_session *S = aap_check_session(L, 1);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    return aap_list_all(L, S, aap_list_path(L, 2, resource), lua_istable(L, 2) ? 2 : 0, conv);
}
