/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* How napctl shows replies of io.nap.Manager (napctl(1) "OUTPUT"): for
 * people, or as JSON with --json. The JSON of a verb is the reply's data
 * with its keys in the order napctl(1) lists them. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/macro.h"

/* Prints j (taken; NULL is -ENOMEM): indented on a terminal, one line
 * otherwise. */
int output_json(json_t *j);
/* One compact line, flushed: for a stream of objects (get-journal -f). */
int output_json_line(json_t *j);
/* A copy of the object o with keys first, in that order (those o has),
 * then o's other keys. NULL-terminated; NULL if out of memory. */
json_t *json_ordered(json_t *o, ...) _sentinel_;

/* The key's string in o, "" if absent or null. */
const char *json_str(json_t *o, const char *key);
/* The key's integer in o, 0 if absent. */
json_int_t json_int(json_t *o, const char *key);

/* "2026-11-24 10:00:00", local time, of µs since the epoch; "-" for 0. */
const char *output_time(uint64_t usec, char buf[static 32]);
/* "2026-11-24T10:00:00+00:00 IDENT[PID]: MESSAGE" for a JournalEntry. */
void output_journal_entry(json_t *entry);
/* The first 12 characters of a commit. */
const char *short_commit(const char *commit, char buf[static 13]);
/* A publish to etcd that did not happen yet (reply field "etcd" is
 * "pending", "etcdError" says why), said on stderr. */
void output_warn_pending(json_t *reply, const char *what);
/* s with opts inserted after every "napctl " that starts a command (the
 * next word is one is_command accepts): a command napctl suggests then
 * reaches the same manager as the one the user typed ("--user",
 * "--address=…"). A new string; NULL if out of memory. */
char *output_with_options(const char *s, const char *opts, bool (*is_command)(const char *word, size_t n));
/* The connection options as a shell takes them again ("--user
 * --address='/a b'"; "" if none), into buf of size bytes; NULL if they do
 * not fit. */
const char *output_connection_options(bool user, bool system, bool local, const char *address, char *buf,
                                      size_t size);
