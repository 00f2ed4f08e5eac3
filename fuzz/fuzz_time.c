/*
 * fuzz_time.c - aap_parse_time (csrc/timefmt.c) on arbitrary bytes: no crash, no
 * undefined behaviour, and what it accepts formats back to a time that parses to
 * the same second. aap_format_time on arbitrary 64-bit seconds round-trips.
 */
#include "fuzz_common.h"

#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    double t;
    if (aap_parse_time((const char *)data, size, &t) == 0) {
        FUZZ_CHECK(isfinite(t), "parse_time gave a non-finite time");
        char out[32];
        int64_t secs = (int64_t)floor(t);
        if (aap_format_time(secs, out) == 0) {
            double back;
            FUZZ_CHECK(aap_parse_time(out, strlen(out), &back) == 0, "format_time output does not parse");
            FUZZ_CHECK((int64_t)back == secs, "format/parse round trip changed the second");
        }
    }
    if (size >= 8) {
        int64_t v;
        memcpy(&v, data, sizeof v);
        char out[32];
        if (aap_format_time(v, out) == 0) {
            FUZZ_CHECK(strlen(out) == 20, "format_time output is not YYYY-MM-DDTHH:MM:SSZ");
            double back;
            FUZZ_CHECK(aap_parse_time(out, strlen(out), &back) == 0, "format_time output does not parse");
            FUZZ_CHECK((int64_t)back == v, "format/parse round trip changed the second");
        }
    }
    return 0;
}
