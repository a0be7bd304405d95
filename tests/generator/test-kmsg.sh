#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# nap-generator logs to /dev/kmsg as "nap-generator[PID]: …" (with a
# syslog priority prefix) and falls back to stderr when /dev/kmsg cannot be
# written. Checked in a private mount namespace where /dev/kmsg is a plain
# file (then a read-only one), so the machine's kernel log is not touched.
set -eu
GEN=$1
if [ "$(id -u)" != 0 ] || ! unshare -m true 2>/dev/null; then
        echo "needs root and unshare -m"; exit 77
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/instances" "$T/out1" "$T/out2"
printf '[Nap]\nInstances=%s\n' "$T/instances" >"$T/nap.conf"
echo '{"version":' >"$T/instances/alice_web_common@1.json"
: >"$T/kmsg"; : >"$T/kmsg-ro"

export GEN T
unshare -m --propagation private bash -c '
        set -u
        mount --bind "$T/kmsg" /dev/kmsg
        NAP_CONFIG=$T/nap.conf "$GEN" "$T/out1" "$T/out1" "$T/out1" 2>"$T/stderr1"; echo $? >"$T/rc1"
        umount /dev/kmsg
        mount --bind "$T/kmsg-ro" /dev/kmsg && mount -o remount,bind,ro /dev/kmsg
        NAP_CONFIG=$T/nap.conf "$GEN" "$T/out2" "$T/out2" "$T/out2" 2>"$T/stderr2"; echo $? >"$T/rc2"
'
fail=0
grep -Eq '^<3>nap-generator\[[0-9]+\]: .*alice_web_common@1\.json: Not valid JSON.*, skipping\.$' "$T/kmsg" ||
        { echo "FAIL: no kmsg record:"; cat "$T/kmsg"; fail=1; }
[ ! -s "$T/stderr1" ] || { echo "FAIL: stderr used although kmsg was writable:"; cat "$T/stderr1"; fail=1; }
grep -q '^nap-generator: .*alice_web_common@1\.json: Not valid JSON' "$T/stderr2" ||
        { echo "FAIL: no stderr fallback:"; cat "$T/stderr2"; fail=1; }
[ "$(cat "$T/rc1")" = 1 ] && [ "$(cat "$T/rc2")" = 1 ] || { echo "FAIL: exit status not 1"; fail=1; }
[ $fail = 0 ] && echo PASS
exit $fail
