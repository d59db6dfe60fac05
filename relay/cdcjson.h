/*
 * cdcjson.h -- a replicated row as JSON, typed by the columns' PostgreSQL types.
 *
 * Table change-data-capture events carry the row (and its key) as a JSON object.
 * pgoutput sends every column in its type's text output format, so all values
 * arrive as strings; this module uses each column's type OID, from the Relation
 * message, to give them back a JSON type: integers, numeric and floats become
 * numbers (numeric digits copied, never through a double, so nothing is rounded),
 * booleans become true/false, json and jsonb are embedded as JSON, arrays of those
 * become JSON arrays, and everything else (text, uuid, timestamps, bytea's \x hex,
 * money, intervals, ...) becomes a JSON string holding PostgreSQL's text.
 *
 * Pure: no I/O, no logging, no allocation beyond growing the caller's buffers.
 * Only built-in types are recognised by OID: they are the same in every database.
 * A user-defined type (a domain, an enum, a composite) has a database-specific OID
 * and is rendered as a string.
 *
 * Error contract of every function: returns 0, or a negative errno with a one-line,
 * lowercase description in errstr (errstr may be NULL or errstr_size 0 to skip it).
 * On error, the buffers are cut back to their length at entry, so the caller can
 * carry on with what it had.  -ENOMEM means a buffer's oom flag is set (see
 * jsonbuf.h); the text is then incomplete.
 */
#ifndef RELAY_CDCJSON_H
#define RELAY_CDCJSON_H

#include <stddef.h>

#include "event.h"
#include "jsonbuf.h"
#include "pgoutput.h"

/*
 * Append the JSON rendering of one column value of type type_oid to b.
 *
 *   int2, int4, int8, oid               the text as a JSON number
 *   numeric                             a JSON number with every digit kept;
 *                                       NaN, Infinity, -Infinity as JSON strings
 *   float4, float8                      a JSON number; NaN, Infinity, -Infinity, or
 *                                       any text that is not a JSON number, as a string
 *   bool                                true / false
 *   json, jsonb                         embedded as sent, once json_valid() accepts it
 *   arrays of the types here (and of    a JSON array, nested for more than one
 *   text, varchar, uuid, timestamps,    dimension; a "[lb:ub]=" dimension prefix is
 *   ...; see cdcjson.c for the list)    dropped; NULL elements become null; elements
 *                                       typed by the rules above
 *   any other type, arrays included     a JSON string of the text
 *   SQL NULL (PGO_VALUE_NULL)           null
 *   PGO_VALUE_BINARY                    a JSON string: the bytes in base64 (RFC 4648,
 *                                       padded), whatever the type
 *
 * Errors: -ENODATA for PGO_VALUE_UNCHANGED_TOAST (the value was not sent; the caller
 * must say so, never render null for it); -EILSEQ when a text value is not valid
 * UTF-8; -EINVAL when a json/jsonb value is not valid JSON, or a value of a number,
 * bool or array type is not in that type's output format (a corrupt stream: the
 * server never sends such text); -ENOMEM when b->oom is set.  Nothing is appended
 * on error.
 *
 * Ownership: v is only read; its data need not be NUL-terminated.
 */
int cdc_value_to_json(struct jbuf *b, pgo_oid_t type_oid, const struct pgo_value *v, char *errstr,
                      size_t errstr_size);

/*
 * Append the row t of relation rel as a JSON object to b: {"col": value, ...} with
 * the columns in the relation's order and names JSON-escaped.
 *
 * Columns sent as unchanged TOAST (an UPDATE that did not touch a large value) are
 * left out of the object.  If unchanged is not NULL, a JSON array of their names
 * is appended to it, ["big_col","other"], or [] when there are none; the caller
 * usually resets it first.
 *
 * Errors: -EINVAL when t->ncols differs from rel->ncols, or for a value as in
 * cdc_value_to_json(); -EILSEQ likewise; -ENOMEM when b or unchanged ran out of
 * memory.  errstr names the column ("column \"payload\": invalid json value: ...").
 * On error neither buffer is changed.
 *
 * Ownership: rel and t are only read.
 */
int cdc_row_to_json(struct jbuf *b, const struct rel_desc *rel, const struct pgo_tuple *t,
                    struct jbuf *unchanged, char *errstr, size_t errstr_size);

/*
 * Append the replica identity key of row t as a JSON object to b: the columns whose
 * rel->cols[i].flags has bit 1 set (pgoutput's "part of the key" flag), in column
 * order.  With REPLICA IDENTITY FULL pgoutput flags every column, so the key is the
 * whole row.  When no column is flagged (REPLICA IDENTITY NOTHING, or a table with
 * no primary key) the literal null is appended.
 *
 * t may be a new tuple or an old key tuple ('K': non-key columns arrive as NULL and
 * are not read).  Errors: -ENODATA when a key column was sent as unchanged TOAST;
 * otherwise as cdc_row_to_json().  On error b is not changed.
 *
 * Ownership: rel and t are only read.
 */
int cdc_key_to_json(struct jbuf *b, const struct rel_desc *rel, const struct pgo_tuple *t,
                    char *errstr, size_t errstr_size);

#endif /* RELAY_CDCJSON_H */
