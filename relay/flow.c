/*
 * flow.c -- the pipeline's timing and flow rules (see flow.h for each reason).
 */
#include "flow.h"

bool flow_backpressured(int64_t max_events, int64_t max_bytes, uint64_t tracker_events,
                        uint64_t sink_events, int64_t bytes)
{
    return tracker_events >= (uint64_t)max_events || sink_events >= (uint64_t)max_events ||
           bytes >= max_bytes;
}

lsn_t flow_confirmable(const struct flow_confirm *c)
{
    if (!c->history_check || c->acked <= c->recorded)
        return c->acked;
    if (c->reply_due && c->server_stopping && c->idle)
        return c->acked;
    return c->recorded;
}

int64_t flow_status_period(int64_t status_interval_ms, bool reading)
{
    return !reading && status_interval_ms > FLOW_STATUS_BACKPRESSURE_MS
               ? FLOW_STATUS_BACKPRESSURE_MS
               : status_interval_ms;
}

int64_t flow_status_min_interval(bool caught_up)
{
    return caught_up ? FLOW_STATUS_CAUGHT_UP_MS : FLOW_STATUS_MIN_INTERVAL_MS;
}

bool flow_status_due(bool force, bool reply_due, bool moved, int64_t since_last_ms,
                     int64_t min_interval_ms, int64_t period_ms)
{
    return force || reply_due || (moved && since_last_ms >= min_interval_ms) ||
           since_last_ms >= period_ms;
}

int64_t flow_state_interval(bool delivering, bool caught_up, uint64_t ahead_bytes,
                            bool reply_due, int64_t status_interval_ms)
{
    if (delivering && caught_up)
        return FLOW_STATUS_CAUGHT_UP_MS;
    if (delivering || ahead_bytes >= FLOW_STATE_EAGER_BYTES || reply_due)
        return FLOW_STATE_EAGER_MS;
    return status_interval_ms;
}

int64_t flow_backoff_next(struct flow_backoff *b, unsigned rnd)
{
    int64_t delay = b->next_ms > 0 ? b->next_ms : b->min_ms;
    int64_t jitter = delay / 5;

    b->next_ms = delay * 2 > b->max_ms ? b->max_ms : delay * 2;
    if (b->next_ms < b->min_ms)
        b->next_ms = b->min_ms;
    if (jitter > 0)
        delay += (int64_t)(rnd % (unsigned)(2 * jitter + 1)) - jitter;
    return delay;
}

void flow_backoff_reset(struct flow_backoff *b)
{
    b->next_ms = 0;
}
