/*
 * redact.h -- keep passwords and other secrets out of everything the relay prints.
 *
 * Two tools.  The first masks a value where the relay knows it is printing a
 * secret-bearing setting: a libpq connection string (redact_dsn(), both the
 * "key=value" form and the postgresql:// URI) or a librdkafka property
 * (redact_property()).  The second is a net under everything else: a set of the
 * secret values themselves (redact_set), collected once from the configuration,
 * with which the log scrubs every line before writing it -- so a password that
 * reaches a message some other way (quoted back by libpq in an error about a
 * malformed connection string, say) is masked all the same.
 *
 * When a connection string cannot be parsed, everything from the point where
 * parsing failed to its end is masked: a secret must never be shown because the
 * text around it was unexpected.
 *
 * Pure: no I/O, no logging.
 */
#ifndef RELAY_REDACT_H
#define RELAY_REDACT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* What a secret is replaced with: always the same, so its length is not revealed. */
#define REDACT_MASK "********"

/*
 * Secrets shorter than this are not scrubbed from free text by a redact_set (they
 * would mask every "a" or "ab" in a log line); they are still masked where the
 * relay prints a DSN or a property.
 */
#define REDACT_MIN_SCRUB 4

/*
 * True when the setting named key holds a secret: a name containing "password",
 * "passwd", "secret", "passphrase" or "private.key" (any case), or one of
 * ssl.key.pem and sasl.oauthbearer.config.  Works for libpq keywords
 * (password, sslpassword) and librdkafka properties (sasl.password,
 * ssl.key.password, sasl.oauthbearer.client.secret) alike.
 */
bool redact_is_secret_key(const char *key);

/* value, or REDACT_MASK when key names a secret (redact_is_secret_key()). */
const char *redact_property(const char *key, const char *value);

/*
 * Write dsn into out with every secret value replaced by REDACT_MASK: in the
 * key=value form the value of each secret keyword (quoted or not, escapes and
 * all); in a postgresql:// or postgres:// URI the password of the user part and
 * the value of each secret query parameter (names percent-decoded).  Anything
 * after a point where the text stops following libpq's syntax is masked too.
 *
 * Like snprintf(): out (when size > 0) is always NUL-terminated, clipped when too
 * small, and the return value is the length the whole masked text needs.
 */
size_t redact_dsn(const char *dsn, char *out, size_t size);

/* A set of secret values to scrub from free text.  Opaque. */
typedef struct redact_set redact_set;

/* A new, empty set; NULL when out of memory.  Free with redact_set_free(). */
redact_set *redact_set_new(void);

/* Free the set and its copies of the secrets.  redact_set_free(NULL) is a no-op. */
void redact_set_free(redact_set *set);

/*
 * Add a copy of secret[0..len).  Secrets shorter than REDACT_MIN_SCRUB, and one
 * already in the set, are ignored.  Returns 0, or -ENOMEM (the set is unchanged).
 */
int redact_set_add(redact_set *set, const char *secret, size_t len);

/*
 * Add every secret value of a connection string, as written and as libpq reads it
 * (quotes and escapes removed, percent-decoded in a URI), and, when part of it
 * cannot be parsed, that unparsed rest.  Returns 0 or -ENOMEM.
 */
int redact_set_add_dsn(redact_set *set, const char *dsn);

/*
 * Add the secrets of a configuration: those of postgres.dsn and the values of
 * the kafka.properties that redact_is_secret_key() names.  Returns 0 or -ENOMEM.
 */
int redact_set_add_config(redact_set *set, const struct relay_config *cfg);

/* Number of secrets in the set (for tests). */
size_t redact_set_count(const redact_set *set);

/*
 * Copy in[0..len) into out replacing every occurrence of a secret of the set (the
 * longest first where they overlap) with REDACT_MASK.  set may be NULL: a plain
 * copy.  snprintf()-like: out NUL-terminated when size > 0, clipped when too
 * small, and returns the length the whole result needs.  A secret cut by the end
 * of in (its first bytes at the very end) is masked too: a clipped message must not
 * show the start of a password.
 */
size_t redact_set_scrub(const redact_set *set, const char *in, size_t len, char *out, size_t size);

#endif /* RELAY_REDACT_H */
