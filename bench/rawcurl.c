/* rawcurl: the floor for the per-call client cost benchmark. It does what aap does on the
 * wire for GET calls (one easy handle, one kept-alive connection, the same Basic
 * Authorization and Accept headers) and nothing else: the body is appended to a buffer and
 * dropped, with no JSON decoding.
 *
 * usage: rawcurl N URL [URL...]   (N rounds over the URLs; the password comes from the
 * environment variable BENCH_PASSWORD, never from argv). Exits non-zero if any response is
 * not 200 or if more than one connection was opened.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

struct sink {
  char *data;
  size_t len, cap;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
  struct sink *s = userdata;
  size_t n = size * nmemb;
  if (s->len + n > s->cap) {
    size_t cap = s->cap ? s->cap : 16384;
    while (cap < s->len + n) cap *= 2;
    char *p = realloc(s->data, cap);
    if (!p) return 0;
    s->data = p;
    s->cap = cap;
  }
  memcpy(s->data + s->len, ptr, n);
  s->len += n;
  return n;
}

int main(int argc, char **argv)
{
  if (argc < 3) {
    fprintf(stderr, "usage: rawcurl N URL [URL...]\n");
    return 2;
  }
  long rounds = strtol(argv[1], NULL, 10);
  const char *password = getenv("BENCH_PASSWORD");
  if (rounds <= 0 || !password) {
    fprintf(stderr, "rawcurl: N must be positive and BENCH_PASSWORD set\n");
    return 2;
  }
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 1;
  CURL *h = curl_easy_init();
  if (!h) return 1;
  struct sink body = {0};
  struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/json");
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_USERNAME, "admin");
  curl_easy_setopt(h, CURLOPT_PASSWORD, password);
  curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  int rc = 0;
  size_t bytes = 0;
  for (long r = 0; r < rounds && rc == 0; r++) {
    for (int u = 2; u < argc; u++) {
      body.len = 0;
      curl_easy_setopt(h, CURLOPT_URL, argv[u]);
      CURLcode cc = curl_easy_perform(h);
      long status = 0;
      curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
      if (cc != CURLE_OK || status != 200) {
        fprintf(stderr, "rawcurl: %s: %s (HTTP %ld)\n", argv[u], curl_easy_strerror(cc), status);
        rc = 1;
        break;
      }
      bytes += body.len;
    }
  }
  long connects = 0;
  curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &connects);
  /* NUM_CONNECTS counts the connections made by the last transfer only: 0 means reused. */
  if (rc == 0 && rounds * (argc - 2) > 1 && connects != 0) {
    fprintf(stderr, "rawcurl: the last transfer opened a new connection\n");
    rc = 1;
  }
  printf("%zu\n", bytes);
  curl_slist_free_all(headers);
  curl_easy_cleanup(h);
  curl_global_cleanup();
  free(body.data);
  return rc;
}
