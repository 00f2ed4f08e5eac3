/*
 * buffer.c - growable byte buffers that wipe what they held, secret strings,
 * and the small clock/sleep helpers the transfer loop needs.
 */
#include "aap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int aap_buf_add(aap_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (n > SIZE_MAX - b->len - 1)
        return -1;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            if (cap > SIZE_MAX / 2)
                return -1;
            cap *= 2;
        }
        /* Not realloc: the old block may hold a secret and must be wiped. */
        char *d = malloc(cap);
        if (!d)
            return -1;
        if (b->data) {
            memcpy(d, b->data, b->len);
            explicit_bzero(b->data, b->cap);
            free(b->data);
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int aap_buf_adds(aap_buf *b, const char *s)
{
    return aap_buf_add(b, s, strlen(s));
}

void aap_buf_clear(aap_buf *b)
{
    if (b->data) {
        explicit_bzero(b->data, b->len + 1 <= b->cap ? b->len + 1 : b->cap);
        b->data[0] = '\0';
    }
    b->len = 0;
}

void aap_buf_free(aap_buf *b)
{
    if (b->data) {
        explicit_bzero(b->data, b->cap);
        free(b->data);
    }
    b->data = NULL;
    b->len = b->cap = 0;
}

char *aap_strdup_secret(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

void aap_free_secret(char **s)
{
    if (*s) {
        explicit_bzero(*s, strlen(*s));
        free(*s);
        *s = NULL;
    }
}

int aap_has_crlf(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || s[i] == '\r' || s[i] == '\n')
            return 1;
    return 0;
}

double aap_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int aap_sleep(double seconds)
{
    if (!(seconds > 0))
        return 0;
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    /* A caught signal (aap.os.catch_signals) ends the wait: the caller then
     * gives up retrying instead of keeping a terminating process busy. */
    return nanosleep(&ts, NULL) == 0 ? 0 : -1;
}
