/*
 * timefmt.c - ISO-8601 date-times <-> epoch seconds.
 *
 * Own arithmetic (days from the civil date, H. Hinnant's algorithm) on int64_t:
 * no timegm, no time_t, so year 3026 works on every platform.
 */
#include "aap.h"

#include <stdio.h>
#include <string.h>

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int64_t *m, int64_t *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int64_t y, int64_t m)
{
    static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Reads exactly n digits at s[*i]. */
static int digits(const char *s, size_t len, size_t *i, int n, int64_t *out)
{
    int64_t v = 0;
    for (int k = 0; k < n; k++) {
        if (*i >= len || s[*i] < '0' || s[*i] > '9')
            return -1;
        v = v * 10 + (s[*i] - '0');
        (*i)++;
    }
    *out = v;
    return 0;
}

static int expect(const char *s, size_t len, size_t *i, char c)
{
    if (*i >= len || s[*i] != c)
        return -1;
    (*i)++;
    return 0;
}

int aap_parse_time(const char *s, size_t len, double *out)
{
    size_t i = 0;
    int64_t y, mo, d, h, mi, sec, oh = 0, om = 0;
    if (digits(s, len, &i, 4, &y) || expect(s, len, &i, '-') ||
        digits(s, len, &i, 2, &mo) || expect(s, len, &i, '-') ||
        digits(s, len, &i, 2, &d))
        return -1;
    if (i >= len || (s[i] != 'T' && s[i] != 't' && s[i] != ' '))
        return -1;
    i++;
    if (digits(s, len, &i, 2, &h) || expect(s, len, &i, ':') ||
        digits(s, len, &i, 2, &mi) || expect(s, len, &i, ':') ||
        digits(s, len, &i, 2, &sec))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo) || h > 23 || mi > 59 || sec > 60)
        return -1;
    double frac = 0, scale = 0.1;
    if (i < len && (s[i] == '.' || s[i] == ',')) {
        i++;
        size_t start = i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            frac += (s[i] - '0') * scale;
            scale /= 10;
            i++;
        }
        if (i == start)
            return -1;
    }
    if (i >= len)
        return -1;                      /* a zone is required: no guessing */
    int sign = 0;
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        sign = s[i] == '+' ? 1 : -1;
        i++;
        if (digits(s, len, &i, 2, &oh))
            return -1;
        if (i < len && s[i] == ':')
            i++;
        if (digits(s, len, &i, 2, &om) || oh > 23 || om > 59)
            return -1;
    } else {
        return -1;
    }
    if (i != len)
        return -1;
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    t -= sign * (oh * 3600 + om * 60);
    *out = (double)t + frac;
    return 0;
}

int aap_format_time(int64_t epoch, char out[32])
{
    /* Years 0000..9999 only: what ISO-8601's four digits can say. */
    if (epoch < -62167219200LL || epoch > 253402300799LL)
        return -1;
    int64_t days = epoch >= 0 ? epoch / 86400 : (epoch - 86399) / 86400;
    int64_t rem = epoch - days * 86400;
    int64_t y, m, d;
    civil_from_days(days, &y, &m, &d);
    unsigned yy = (unsigned)y % 10000u, mm = (unsigned)m % 100u, dd = (unsigned)d % 100u;
    unsigned hh = (unsigned)(rem / 3600) % 100u, mi = (unsigned)(rem / 60 % 60), ss = (unsigned)(rem % 60);
    snprintf(out, 32, "%04u-%02u-%02uT%02u:%02u:%02uZ", yy, mm, dd, hh, mi, ss);
    return 0;
}

/* aap.parse_time(iso) -> epoch seconds (float) | nil, err */
static int l_parse_time(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    double t;
    if (aap_parse_time(s, n, &t) != 0)
        return aap_fail(L, "invalid", 0, "not an ISO-8601 date-time with a zone", NULL, NULL);
    lua_pushnumber(L, t);
    return 1;
}

/* aap.parse_http_date(s) -> epoch seconds | nil: an HTTP date (the Date and Retry-After
 * headers), read by libcurl's own curl_getdate, as the transfer code reads them. */
static int l_parse_http_date(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    char tmp[65];
    if (n == 0 || n >= sizeof tmp || memchr(s, '\0', n)) {
        lua_pushnil(L);
        return 1;
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    time_t when = curl_getdate(tmp, NULL);
    if (when == (time_t)-1) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushinteger(L, (lua_Integer)when);
    return 1;
}

/* aap.format_time(epoch) -> "YYYY-MM-DDTHH:MM:SSZ" */
static int l_format_time(lua_State *L)
{
    lua_Number x = luaL_checknumber(L, 1);
    luaL_argcheck(L, x == x && x > -1e13 && x < 1e13, 1, "epoch seconds out of range");
    char buf[32];
    int64_t e = (int64_t)x;
    if ((lua_Number)e > x)
        e--;                            /* floor, for negative fractions */
    if (aap_format_time(e, buf) != 0)
        return luaL_argerror(L, 1, "epoch seconds out of range (years 0000 to 9999)");
    lua_pushstring(L, buf);
    return 1;
}

void aap_open_timefmt(lua_State *L)
{
    lua_pushcfunction(L, l_parse_time);
    lua_setfield(L, -2, "parse_time");
    lua_pushcfunction(L, l_format_time);
    lua_setfield(L, -2, "format_time");
    lua_pushcfunction(L, l_parse_http_date);
    lua_setfield(L, -2, "parse_http_date");
}
