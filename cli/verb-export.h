/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* napctl export-units USER_APP DIR (napctl(1)): the method ExportUnits of
 * io.nap.Manager gives the app's instances as whole unit files; napctl
 * writes them into DIR itself, as the user who typed it, each atomically.
 * DIR must be a directory. A file there with other text is replaced only
 * with force, and before anything is written every file is checked, so a
 * refused export changes nothing; a file with the same text is left as it
 * is (an export repeated changes nothing). Prints what was written (JSON
 * with json); errors go into e. */

#include <stdbool.h>

#include "napctl-call.h"

int verb_export_units(Caller *c, char **args, bool json, bool force, NapError *e);
