/*
 * checkpoint.h -- which WAL position is safe to confirm to PostgreSQL.
 *
 * The replication slot's confirmed position is the relay's only durable state: on
 * restart PostgreSQL replays every transaction that commits after it.  So the relay
 * may confirm a position only when every event at or before it has been
 * acknowledged by the sink.  Delivery reports arrive out of order (different
 * partitions, retries), so "the LSN of the last acknowledgement" is wrong; the
 * right answer is the end LSN of the longest commit-ordered prefix of
 * transactions that are complete (their Commit was received) and fully
 * acknowledged.
 *
 * The tracker keeps a ring of in-flight transactions in commit order.  Each
 * transaction gets a sequence number that is never reused, even across
 * ckpt_reset(), so a late delivery report from a discarded pipeline is recognised
 * and ignored.  This module is pure: no I/O, no logging, no clock.
 */
#ifndef RELAY_CHECKPOINT_H
#define RELAY_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsn.h"

typedef struct ckpt_tracker ckpt_tracker;

/*
 * Create a tracker whose confirmed position starts at confirmed (the slot's
 * confirmed_flush_lsn).  Returns NULL when out of memory.
 */
ckpt_tracker *ckpt_new(lsn_t confirmed);

/* Free the tracker.  ckpt_free(NULL) is a no-op. */
void ckpt_free(ckpt_tracker *t);

/*
 * A transaction begins (pgoutput Begin).  Its sequence number is stored in *seq.
 * Returns 0, -EBUSY when a transaction is already open (the caller missed a
 * Commit), or -ENOMEM.
 */
int ckpt_begin(ckpt_tracker *t, uint64_t *seq);

/*
 * Remember the open transaction's commit time (microseconds since the Unix epoch),
 * for the relay's latency metrics; ignored when no transaction is open.
 */
void ckpt_set_commit_time(ckpt_tracker *t, int64_t commit_time_us);

/* Whether the tracker holds transaction seq (false for one from before ckpt_reset()). */
bool ckpt_holds(ckpt_tracker *t, uint64_t seq);

/* The commit time of transaction seq, or 0 when the tracker does not hold it. */
int64_t ckpt_commit_time(ckpt_tracker *t, uint64_t seq);

/* One more event of the open transaction was handed to the sink.  -EINVAL if none is open. */
int ckpt_add_event(ckpt_tracker *t);

/*
 * The open transaction committed; end_lsn is the end of its commit record.
 * Returns 0, or -EINVAL when no transaction is open.
 */
int ckpt_commit(ckpt_tracker *t, lsn_t end_lsn);

/*
 * The sink acknowledged one event of transaction seq (delivered, or dead-lettered).
 * Returns 0, or -ENOENT for a sequence number the tracker does not hold (a report
 * from before ckpt_reset(), which the caller should ignore), or -ERANGE when the
 * transaction has no unacknowledged event left (a bug in the caller).
 */
int ckpt_ack(ckpt_tracker *t, uint64_t seq);

/*
 * An event of transaction seq failed.  The position will never advance past that
 * transaction; the caller must rebuild the pipeline (ckpt_reset() and replay).
 * Returns 0 or -ENOENT as ckpt_ack().
 */
int ckpt_fail(ckpt_tracker *t, uint64_t seq);

/*
 * A keepalive reported that the server has sent everything up to wal_end.  When
 * nothing is in flight (no open transaction, none unacknowledged) that position is
 * safe to confirm: an idle relay must not pin WAL.  Otherwise ignored.
 */
void ckpt_keepalive(ckpt_tracker *t, lsn_t wal_end);

/*
 * The position that is safe to confirm now.  Never decreases.  Releases the ring
 * slots of the transactions it passed.
 */
lsn_t ckpt_confirmed(ckpt_tracker *t);

/* True when some event failed and the pipeline must be rebuilt. */
bool ckpt_failed(const ckpt_tracker *t);

/* Events handed to the sink and not yet acknowledged. */
uint64_t ckpt_inflight_events(const ckpt_tracker *t);

/* Transactions begun and not yet confirmed (including the open one). */
size_t ckpt_inflight_txns(const ckpt_tracker *t);

/*
 * Forget every in-flight transaction (the pipeline is being rebuilt and will
 * replay them); the confirmed position stays where it was.  Sequence numbers
 * continue, so late reports for the forgotten transactions get -ENOENT.
 */
void ckpt_reset(ckpt_tracker *t);

/*
 * Like ckpt_reset(), and also set the confirmed position to confirmed, even if that
 * is lower.  Only for a changed server history (failover to another timeline,
 * restore), where positions of the old history mean nothing.
 */
void ckpt_restart(ckpt_tracker *t, lsn_t confirmed);

#endif /* RELAY_CHECKPOINT_H */
