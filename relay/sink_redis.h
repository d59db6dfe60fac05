/*
 * sink_redis.h -- what the Redis sink's file offers the inbox's Redis source: a
 * blocking client of the server the redis section configures, over the sink's own
 * connection code (redis:// and rediss://, the certificate verified as the sink does,
 * AUTH and SELECT from redis.url), so that both sides connect and complain alike.
 */
#ifndef RELAY_SINK_REDIS_H
#define RELAY_SINK_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "config.h"

struct sink_redis_client;

/*
 * Connect, authenticate and select the database, waiting at most timeout_ms.  Returns
 * the client (close it with sink_redis_client_close()), or NULL with errstr set and
 * *refused true when no retry cures it (a bad redis.url, a refused password, a
 * certificate that does not verify).
 */
struct sink_redis_client *sink_redis_client_open(const struct relay_config *cfg, int timeout_ms,
                                                 char *errstr, size_t errstr_size,
                                                 bool *refused);

/*
 * Send one command (argc arguments, binary-safe) and wait at most timeout_ms for its
 * reply.  Returns the reply (the caller frees it with freeReplyObject(); an error reply
 * is a reply), or NULL with why set: the connection failed or the server did not answer
 * in time -- the client is then unusable: close it.
 */
redisReply *sink_redis_client_command(struct sink_redis_client *cl, int timeout_ms, char *why,
                                      size_t size, int argc, const char **argv,
                                      const size_t *lens);

/* Close cl; NULL is a no-op. */
void sink_redis_client_close(struct sink_redis_client *cl);

#endif /* RELAY_SINK_REDIS_H */
