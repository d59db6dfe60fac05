/*
 * test_sink.c -- unit tests for the sink registry and the destination-name rules a
 * sink's capabilities declare (relay/sink.c): Kafka's topic names, and a sink that
 * takes any printable name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include <string.h>

#include "sink_impl.h"

static void test_registry(void **state)
{
    size_t n = 0;
    const struct sink_type *const *all = sink_types(&n);

    (void)state;
    assert_true(n >= 2);
    /* The first row is the default sink. */
    assert_string_equal(all[0]->name, "kafka");
    assert_ptr_equal(sink_type_find("kafka"), all[0]);
    assert_non_null(sink_type_find("stdout"));
    assert_null(sink_type_find("carrier-pigeon"));
    for (size_t i = 0; i < n; i++) {
        /* Every row is complete: a name, a constructor, the words messages use. */
        assert_non_null(all[i]->name);
        assert_non_null(all[i]->create);
        assert_non_null(all[i]->caps.destination_word);
        assert_non_null(all[i]->caps.unreachable);
        for (size_t j = 0; j < i; j++)
            assert_true(strcmp(all[i]->name, all[j]->name) != 0);
    }
    assert_true(sink_type_find("kafka")->caps.keeps_key_order);
}

static void test_kafka_names(void **state)
{
    static const char *const bad[] = {
        "or der", "order/x", "\xc3\xb6rder", "a:b", "a*b", "a\tb", "a#b", "{x}", "bad topic!",
    };
    const struct sink_type *k = sink_type_find("kafka");
    char err[256], name[300];

    (void)state;
    assert_int_equal(sink_destination_check(k, "outbox.event.order", err, sizeof(err)), 0);
    assert_int_equal(sink_destination_check(k, "AZaz09._-", err, sizeof(err)), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(sink_destination_check(k, bad[i], err, sizeof(err)), -EDESTADDRREQ);
        assert_non_null(strstr(err, "character"));
        assert_non_null(strstr(err, "topic"));
    }
    assert_int_equal(sink_destination_check(k, "", err, sizeof(err)), -EDESTADDRREQ);
    assert_non_null(strstr(err, "empty"));
    assert_int_equal(sink_destination_check(k, ".", err, sizeof(err)), -EDESTADDRREQ);
    assert_int_equal(sink_destination_check(k, "..", err, sizeof(err)), -EDESTADDRREQ);
    assert_int_equal(sink_destination_check(k, "...", err, sizeof(err)), 0);
    /* 249 bytes is the longest topic Kafka takes. */
    memset(name, 'a', 249);
    name[249] = '\0';
    assert_int_equal(sink_destination_check(k, name, err, sizeof(err)), 0);
    name[249] = 'a';
    name[250] = '\0';
    assert_int_equal(sink_destination_check(k, name, err, sizeof(err)), -EDESTADDRREQ);
    assert_non_null(strstr(err, "249"));
}

/* A held message whose id is n's text, tagged n. */
static struct sink_held *held(uint64_t n)
{
    char id[24];
    struct out_msg m;
    int len = snprintf(id, sizeof(id), "%llu", (unsigned long long)n);

    memset(&m, 0, sizeof(m));
    strcpy(m.topic, "t");
    m.id = id;
    m.id_len = (size_t)len;
    return sink_hold(&m, n);
}

/* The held-message queue: order kept across growth and compaction; unpush; clear. */
static void test_fifo(void **state)
{
    struct sink_fifo q = {0};
    struct sink_held *h;
    struct out_msg m;
    uint64_t next = 0;

    (void)state;
    assert_null(sink_fifo_pop(&q));
    assert_null(sink_fifo_peek(&q));
    for (uint64_t i = 0; i < 3000; i++) {
        assert_int_equal(sink_fifo_push(&q, held(i)), 0);
        if (i % 3 == 2) { /* take one now and then: the head moves, the array compacts */
            h = sink_fifo_pop(&q);
            assert_int_equal(h->tag, next++);
            free(h);
        }
    }
    assert_int_equal(sink_fifo_len(&q), 2000);
    h = sink_fifo_unpush(&q);
    assert_int_equal(h->tag, 2999);
    free(h);
    assert_int_equal(sink_fifo_peek(&q)->tag, next);
    for (; (h = sink_fifo_pop(&q)); next++) {
        assert_int_equal(h->tag, next);
        sink_held_view(h, &m);
        assert_int_equal(strtoull(m.id, NULL, 10), next);
        free(h);
    }
    assert_int_equal(next, 2999);
    assert_int_equal(sink_fifo_push(&q, held(1)), 0);
    assert_int_equal(sink_fifo_push(&q, held(2)), 0);
    sink_fifo_clear(&q); /* frees them: ASan's leak check holds it to that */
    assert_int_equal(sink_fifo_len(&q), 0);
    sink_fifo_free(&q);
    assert_null(q.v);
}

/* What the notes' reports delivered, for test_notes. */
struct seen {
    uint64_t tags[8];
    enum sink_outcome outcomes[8];
    char errs[8][64];
    char dests[8][32];
    bool had_msg[8];
    int n;
};

static void on_report(void *opaque, const struct sink_report *r)
{
    struct seen *v = opaque;

    if (v->n < 8) {
        v->tags[v->n] = r->tag;
        v->outcomes[v->n] = r->outcome;
        snprintf(v->errs[v->n], sizeof(v->errs[v->n]), "%s", r->err);
        snprintf(v->dests[v->n], sizeof(v->dests[v->n]), "%s", r->destination);
        v->had_msg[v->n] = r->msg != NULL;
    }
    v->n++;
}

struct poster {
    sink *s;
    struct sink_notes *notes;
};

/* Another thread, as a sink's worker: two reports, a warning, a refusal. */
static void *post(void *opaque)
{
    struct poster *p = opaque;

    sink_note_report(p->s, p->notes, held(7), SINK_DELIVERED, false, "", "");
    sink_note_log(p->s, p->notes, "warning %d", 1);
    sink_note_report(p->s, p->notes, held(8), SINK_UNDELIVERABLE, true, "size", "too big");
    sink_note_refuse(p->s, p->notes, "refused %s", "for good");
    sink_note_refuse(p->s, p->notes, "a later refusal");
    return NULL;
}

/* Reports cross threads in order, with their outcome and error; the first refusal wins. */
static void test_notes(void **state)
{
    struct sink_ops ops = {0};
    struct sink base;
    struct sink_notes notes;
    struct seen v = {0};
    struct poster p = {&base, &notes};
    pthread_t t;
    char err[128];

    (void)state;
    assert_int_equal(sink_base_init(&base, sink_type_find("stdout"), &ops, on_report, &v, err,
                                    sizeof(err)),
                     0);
    sink_notes_init(&notes);
    base.outstanding = 3;
    assert_int_equal(pthread_create(&t, NULL, post, &p), 0);
    pthread_join(t, NULL);
    assert_null(sink_refused(&base));
    assert_int_equal(sink_notes_serve(&base, &notes, NULL), 2);
    assert_int_equal(v.n, 2);
    assert_int_equal(v.tags[0], 7);
    assert_int_equal(v.outcomes[0], SINK_DELIVERED);
    assert_false(v.had_msg[0]);
    assert_int_equal(v.tags[1], 8);
    assert_int_equal(v.outcomes[1], SINK_UNDELIVERABLE);
    assert_string_equal(v.errs[1], "too big");
    assert_string_equal(v.dests[1], "t");
    assert_true(v.had_msg[1]);
    assert_string_equal(sink_refused(&base), "refused for good");
    assert_int_equal(base.outstanding, 1);
    /* A destination for all; then what is abandoned is freed (ASan's leak check). */
    sink_note_report(&base, &notes, held(9), SINK_RETRY, false, "x", "again");
    assert_int_equal(sink_notes_serve(&base, &notes, "webhook"), 1);
    assert_string_equal(v.dests[2], "webhook");
    sink_note_report(&base, &notes, held(10), SINK_RETRY, false, "x", "abandoned");
    sink_note_log(&base, &notes, "abandoned too");
    sink_notes_clear(&notes);
    assert_int_equal(sink_notes_serve(&base, &notes, NULL), 0);
    sink_notes_destroy(&notes);
    close(base.pipefd[0]);
    close(base.pipefd[1]);
}

static void test_stdout_names(void **state)
{
    const struct sink_type *s = sink_type_find("stdout");
    char err[256];

    (void)state;
    /* Any printable name, UTF-8 included; no control characters, not empty. */
    assert_int_equal(sink_destination_check(s, "bad topic!", err, sizeof(err)), 0);
    assert_int_equal(sink_destination_check(s, "\xc3\xb6rder", err, sizeof(err)), 0);
    assert_int_equal(sink_destination_check(s, "a\nb", err, sizeof(err)), -EDESTADDRREQ);
    assert_int_equal(sink_destination_check(s, "", err, sizeof(err)), -EDESTADDRREQ);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_kafka_names),
        cmocka_unit_test(test_stdout_names),
        cmocka_unit_test(test_fifo),
        cmocka_unit_test(test_notes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
