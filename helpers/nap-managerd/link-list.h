/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the varlink front keeps per client link beyond a call (a follow, a
 * forwarded call): a list whose entries go when their link does. An
 * entry is the first member of its owner's struct, so done() may cast. */

#include "protocol/varlink.h"

typedef struct LinkEntry LinkEntry;

struct LinkEntry {
        LinkEntry *next, *prev;
        Varlink *link; /* referenced while listed */
};

typedef struct LinkList {
        LinkEntry *first;
        unsigned n;
} LinkList;

/* done(entry) frees an entry; it must call link_list_remove() first. */
typedef void (*LinkEntryDone)(LinkEntry *entry);

void link_list_add(LinkList *l, LinkEntry *entry, Varlink *link);
void link_list_remove(LinkList *l, LinkEntry *entry);
/* done() for every entry of link (all of them for NULL). */
void link_list_drop(LinkList *l, Varlink *link, LinkEntryDone done);
