/*
 * lsn.h -- PostgreSQL write-ahead-log positions.
 *
 * An LSN is a 64-bit byte position in the WAL stream.  PostgreSQL prints it as two
 * 32-bit hexadecimal halves, "16/B374D848"; every log line, error message and header
 * of the relay uses the same form so that positions can be grepped and compared
 * against pg_replication_slots without conversion.
 */
#ifndef RELAY_LSN_H
#define RELAY_LSN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef uint64_t lsn_t;

#define LSN_INVALID ((lsn_t)0)

/* printf("%X/%X", LSN_ARGS(l)) */
#define LSN_FMT "%X/%X"
#define LSN_ARGS(l) (unsigned)((uint64_t)(l) >> 32), (unsigned)((uint64_t)(l)&0xFFFFFFFFu)

/* Longest text form: "FFFFFFFF/FFFFFFFF" plus NUL. */
#define LSN_STRLEN 18

/*
 * Parse "X/X" into *out.  Returns false (and leaves *out untouched) on anything
 * that is not exactly two hexadecimal numbers of at most 8 digits separated by '/'.
 */
static inline bool lsn_parse(const char *s, lsn_t *out)
{
    uint64_t hi = 0, lo = 0;
    int nhi = 0, nlo = 0;
    const char *p = s;

    for (; *p && *p != '/'; p++, nhi++) {
        int c = *p;
        int v = (c >= '0' && c <= '9')   ? c - '0'
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                                         : -1;
        if (v < 0 || nhi >= 8)
            return false;
        hi = hi * 16 + (uint64_t)v;
    }
    if (*p != '/' || nhi == 0)
        return false;
    for (p++; *p; p++, nlo++) {
        int c = *p;
        int v = (c >= '0' && c <= '9')   ? c - '0'
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                                         : -1;
        if (v < 0 || nlo >= 8)
            return false;
        lo = lo * 16 + (uint64_t)v;
    }
    if (nlo == 0)
        return false;
    *out = (hi << 32) | lo;
    return true;
}

/* Format l into buf (at least LSN_STRLEN bytes); returns buf. */
static inline char *lsn_format(lsn_t l, char *buf)
{
    snprintf(buf, LSN_STRLEN, LSN_FMT, LSN_ARGS(l));
    return buf;
}

#endif /* RELAY_LSN_H */
