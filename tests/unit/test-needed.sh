#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# libgit2 and libcurl are dlopen()ed on first use (lib/base/dlopen.h), never
# linked: each binary given must list neither as DT_NEEDED, or every start
# of it pays ~5 ms to load them and the ~40 libraries they pull in.
# Usage: test-needed.sh BINARY...
set -eu

command -v readelf >/dev/null || { echo "readelf not found"; exit 77; }
[ $# -gt 0 ] || { echo "usage: $0 BINARY..." >&2; exit 2; }

fail=0
for bin in "$@"; do
        # Fails (set -e) on a missing or non-ELF file rather than passing.
        dyn=$(readelf -d -W "$bin")
        printf '%s\n' "$dyn" | grep -q '(NEEDED)' || { echo "FAIL: $bin: no NEEDED entries at all?"; fail=1; continue; }
        bad=$(printf '%s\n' "$dyn" | grep '(NEEDED)' | grep -E '\[lib(git2|curl)[^]]*\]' || true)
        if [ -n "$bad" ]; then
                echo "FAIL: $bin links what it should dlopen():"
                printf '%s\n' "$bad"
                fail=1
        else
                echo "ok: $bin"
        fi
done
exit $fail
