/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "link-list.h"

void link_list_add(LinkList *l, LinkEntry *entry, Varlink *link) {
        *entry = (LinkEntry) { .link = varlink_ref(link), .next = l->first };
        if (entry->next)
                entry->next->prev = entry;
        l->first = entry;
        l->n++;
}

void link_list_remove(LinkList *l, LinkEntry *entry) {
        if (entry->prev)
                entry->prev->next = entry->next;
        else
                l->first = entry->next;
        if (entry->next)
                entry->next->prev = entry->prev;
        l->n--;
        entry->link = varlink_unref(entry->link);
        entry->next = entry->prev = NULL;
}

void link_list_drop(LinkList *l, Varlink *link, LinkEntryDone done) {
        for (LinkEntry *e = l ? l->first : NULL, *next; e; e = next) {
                next = e->next;
                if (!link || e->link == link)
                        done(e);
        }
}
