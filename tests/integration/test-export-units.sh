#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# napctl export-units (issue 15, item 6): an app's instances as whole unit
# files for fleet, which submits unit files and carries no drop-ins. Real
# napctl, nap-managerd, user manager, journald and generator (lib.sh), a
# real etcd (Debian's, started here) for the sidecars, the sample app.
# The proof that the exported units are self-contained: nap forgets the
# instances entirely (remove-instance: manifests, instance trees, runtime
# units and drop-ins gone; a daemon-reload drops the generator's output),
# the exported files are installed as plain units of the user manager
# (~/.config/systemd/user), started with systemctl, and the app answers on
# each port while each sidecar publishes its endpoint in etcd without a
# manifest to read. fleet itself is not in Debian 12 (apt-cache show
# fleet: no packages found), so `fleetctl submit` is not run: its input is
# these files, and systemd-analyze verify checks them.
#
#   NAPCTL=build/cli/napctl NAP_GENERATOR=build/generators/nap-generator \
#   NAP_DISCOVERY=build/helpers/nap-discovery tests/integration/test-export-units.sh
# Needs root; exits 77 otherwise.

. "$(dirname "$0")/lib.sh"

NAP_DISCOVERY=${NAP_DISCOVERY:-}
if [ -z "${NAP_SANDBOX_INSIDE:-}" ]; then
        [ -x "$NAP_DISCOVERY" ] || { echo "Bail out! set NAP_DISCOVERY to the built nap-discovery (got '$NAP_DISCOVERY')"; exit 1; }
        [ -x /usr/bin/etcd ] && command -v etcdctl >/dev/null || skip_all "etcd and etcdctl (etcd-server, etcd-client) are needed"
        # The manager's environment reaches nap-managerd: sidecars run
        # this build's nap-discovery.
        NAP_DISCOVERY=$(realpath "$NAP_DISCOVERY")
        export NAP_DISCOVERY NAP_DISCOVERY_BINARY=$NAP_DISCOVERY
fi
nap_napctl_env
SRC=$NAP_SOURCE_ROOT
nap_sandbox_enter "$@"
nap_sandbox_start
nap_need jq git curl etcdctl
. "$(dirname "$0")/napctl-lib.sh"
. "$SRC/tests/etcd-lib.sh"

SVC=alice_hello
TREE=$NAP_ROOT/services/alice/$SVC      # the deployed tree the exports run from
OUTDIR=$NAP_TEST_DIR/exported
UNITS=$NAP_TEST_DIR/home/.config/systemd/user  # the user manager's own unit dir (HOME is the sandbox's)

ectl() {
        ETCDCTL_API=3 timeout 5 etcdctl --endpoints="$ETCD_URL" --dial-timeout=1s --command-timeout=2s "$@"
}
key_present() {
        local v
        v=$(ectl get --print-value-only "$1") && [ -n "$v" ]
}
# absent means etcd answered without it (an unreachable etcd is not "absent")
key_absent() {
        local v
        v=$(ectl get --print-value-only "$1") && [ -z "$v" ]
}
unit_prop() { # UNIT PROPERTY
        timeout 30 systemctl --user show -P "$2" "$1" 2>&1
}
answers() { # PORT
        curl -sf --max-time 2 -o /dev/null "http://127.0.0.1:$1/health"
}
# the fields of an ini section: section_of FILE SECTION
section_of() {
        awk -v s="[$2]" '/^\[/ { in_s = ($0 == s); next } in_s && NF' "$1"
}
mtimes() {
        stat -c '%n %i %Y' "$OUTDIR"/* 2>/dev/null
}

# ==================================================================== set-up
etcd_start "$NAP_TEST_DIR/etcd-run" || { echo "Bail out! etcd did not start"; exit 1; }
printf 'Etcd=%s\nDiscoveryTTL=3\n' "$ETCD_URL" >>"$NAP_CONFIG"
timeout 60 systemctl --user daemon-reload
# nap-managerd read nap.conf at its start: the next call starts it again
timeout 30 systemctl --user stop nap-managerd.service 2>/dev/null

REPO=$NAP_TEST_DIR/repos/hello
make_repo "$REPO" "$SRC/tests/apps/hello/server.py" "$SRC/tests/apps/hello/profile" ||
        { echo "Bail out! cannot make the app's repository"; exit 1; }
nap deploy-app $SVC "file://$REPO"
[ "$RC" -eq 0 ] || { nap_diag deploy-app; echo "Bail out! deploy-app failed"; exit 1; }

# =============================================================== bad input
log "bad input: named errors, nothing written"
mkdir -p "$OUTDIR"
nap export-units alice_nosuch "$OUTDIR"
assert_eq "an app that is not deployed: exit 4" 4 "$RC"
assert_contains "... and it says so" "$ERR" "No app alice_nosuch is deployed"
nap --json export-units alice_nosuch "$OUTDIR"
assert_contains "... named NoSuchService with --json" "$ERR" '"error":"io.nap.Manager.NoSuchService"'
nap export-units $SVC "$NAP_TEST_DIR/nowhere"
assert_eq "DIR missing: exit 2" 2 "$RC"
assert_contains "... and it says why" "$ERR" "No such file or directory"
nap export-units $SVC "$NAP_CONFIG"
assert_eq "DIR a file: exit 2" 2 "$RC"
assert_contains "... not a directory" "$ERR" "not a directory"
nap export-units 'alice_bad/../x' "$OUTDIR"
assert_eq "a bad app name: exit 2" 2 "$RC"
nap --help
assert_contains "--help lists export-units" "$OUT" "export-units"
nap export-units $SVC
assert_eq "DIR missing from the command line: usage, exit 2" 2 "$RC"
nap export-units $SVC "$OUTDIR"
assert_eq "an app without instances: exit 0" 0 "$RC"
assert_contains "... says there is nothing" "$OUT" "has no instances"
assert_eq "... and writes nothing" "" "$(ls -A "$OUTDIR")"

# =============================================================== two instances
log "two instances, exported"
start_instance $SVC greeting=one || { nap_diag start-common; echo "Bail out! start-common failed"; exit 1; }
I1=$INST N1=$NUM P1=$PORT
start_instance $SVC greeting=two || { nap_diag start-common; echo "Bail out! start-common failed"; exit 1; }
I2=$INST N2=$NUM P2=$PORT
U1=${SVC}_common@$N1.service U2=${SVC}_common@$N2.service
D1=${SVC}_discovery@$N1.service D2=${SVC}_discovery@$N2.service

nap --json export-units $SVC "$OUTDIR"
assert_eq "export-units --json: exit 0" 0 "$RC"
assert_eq "... four files: each instance's unit and sidecar, in order" \
        "$U1 $D1 $U2 $D2" "$(jq -r '[.units[].unit] | join(" ")' <<<"$OUT")"
assert_eq "... each new (changed)" "true true true true" "$(jq -r '[.units[].changed] | map(tostring) | join(" ")' <<<"$OUT")"
assert_eq "... each of its instance" "$I1 $I1 $I2 $I2" "$(jq -r '[.units[].instance] | join(" ")' <<<"$OUT")"
assert_eq "... written into DIR" "$U1 $U2 $D1 $D2" "$(cd "$OUTDIR" && ls | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')"

F1=$OUTDIR/$U1 S1=$OUTDIR/$D1
svc1=$(section_of "$F1" Service) unit1=$(section_of "$F1" Unit)
assert_contains "the unit runs the instance's command (python3 server.py)" "$svc1" "ExecStart=\"python3\" \"server.py\" \"--port\" \"$P1\" \"--greeting\" \"one\""
assert_contains "... from the deployed tree" "$svc1" "WorkingDirectory=$TREE"
assert_contains "... with its PORT" "$svc1" "Environment=PORT=$P1"
assert_contains "... sandboxed as nap's template (NoNewPrivileges=)" "$svc1" "NoNewPrivileges=yes"
assert_contains "... (SystemCallFilter=)" "$svc1" "SystemCallFilter=@system-service"
assert_contains "... with the template's restart policy" "$svc1" "Restart=on-failure"
assert_contains "... and Wants= its sidecar" "$unit1" "Wants=${SVC}_discovery@%i.service"
assert_not_contains "... no SourcePath= (the manifest is not on another host)" "$(cat "$F1")" "SourcePath="
assert_not_contains "... no path of Instances=" "$(cat "$F1" "$S1")" "$NAP_INSTANCES"
assert_not_contains "... no instance tree" "$(cat "$F1" "$S1")" "$NAP_ROOT/apps/"
assert_not_contains "... the tree is not writable to it (no ReadWritePaths=)" "$svc1" "ReadWritePaths="
assert_eq "... one [Unit] and one [Service] section (merged)" "1 1" \
        "$(grep -c '^\[Unit\]$' "$F1") $(grep -c '^\[Service\]$' "$F1")"
assert_eq "... [Install] WantedBy=default.target" "WantedBy=default.target" "$(section_of "$F1" Install)"
assert_eq "the sidecar's [X-Fleet]: MachineOf= its instance's unit" "MachineOf=$U1" "$(section_of "$S1" X-Fleet)"
assert_eq "... the other sidecar's too" "MachineOf=$U2" "$(section_of "$OUTDIR/$D2" X-Fleet)"
assert_contains "the sidecar is given the port (reads no manifest)" "$(section_of "$S1" Service)" \
        "ExecStart=\"$NAP_DISCOVERY\" --port=$P1 \"${SVC}_common@%i\""
assert_contains "... and is bound to its instance" "$(section_of "$S1" Unit)" "BindsTo=${SVC}_common@%i.service"

# =============================================================== idempotent
log "idempotent; a different file is refused without --force"
before=$(mtimes)
nap export-units $SVC "$OUTDIR"
assert_eq "export again: exit 0" 0 "$RC"
assert_eq "... every file unchanged" 4 "$(grep -c '^unchanged ' <<<"$OUT")"
assert_eq "... not rewritten (inode, mtime)" "$before" "$(mtimes)"

nap --no-helper export-units $SVC "$OUTDIR"
assert_eq "the same export in napctl's own process (--no-helper): every file unchanged" 4 \
        "$(grep -c '^unchanged ' <<<"$OUT")"

echo '# an operator edited this' >>"$S1"
rm -f "$OUTDIR/$D2"
edited=$(cat "$S1")
nap export-units $SVC "$OUTDIR"
assert_eq "a file with other contents: exit 2" 2 "$RC"
assert_contains "... named with what to do" "$ERR" "$S1 exists with other contents: nothing was written (--force replaces it)"
assert_eq "... the edited file kept" "$edited" "$(cat "$S1")"
check "... and nothing written (the removed sidecar not made again)" test ! -e "$OUTDIR/$D2"
nap --json export-units --force $SVC "$OUTDIR"
assert_eq "--force: exit 0" 0 "$RC"
assert_eq "... rewrote exactly the edited and the missing file" "$D1 $D2" \
        "$(jq -r '[.units[] | select(.changed) | .unit] | join(" ")' <<<"$OUT")"
assert_not_contains "... the edit is gone" "$(cat "$S1")" "an operator edited this"

# =============================================== self-contained: nap forgets
log "nap forgets the instances; the exported units run alone"
for i in "$I1" "$I2"; do
        nap remove-instance "$i"
        [ "$RC" -eq 0 ] || { fail "remove-instance $i"; nap_diag remove-instance "$i"; }
done
timeout 60 systemctl --user daemon-reload
check "no manifest of the app is left" test -z "$(find "$NAP_INSTANCES" -maxdepth 1 -name "${SVC}_*")"
check "no instance tree is left" test ! -e "$NAP_ROOT/apps/alice/${SVC}_$N1"
check "no runtime unit or drop-in of the app is left" \
        test -z "$(find "$XDG_RUNTIME_DIR/systemd/user" "$XDG_RUNTIME_DIR/systemd/generator" -maxdepth 1 -name "${SVC}_*" 2>/dev/null)"
check "... nothing answers on the ports" eval "! answers $P1 && ! answers $P2"
check "... and their endpoints are gone from etcd" wait_until 10 \
        eval "key_absent /services/$SVC/127.0.0.1:$P1 && key_absent /services/$SVC/127.0.0.1:$P2"

# systemd-analyze verify: the files as the manager would load them (now
# that nap's drop-ins are gone: a host where nap runs the same instance
# would add its drop-in to the exported unit)
verify=$(cd "$OUTDIR" && timeout 60 systemd-analyze --user verify "$OUTDIR"/*.service 2>&1)
vrc=$?
if [ "$vrc" -eq 0 ] && [ -z "$verify" ]; then
        ok "systemd-analyze verify: clean"
else
        fail "systemd-analyze verify: clean"
        diag "rc=$vrc" "$verify"
fi

mkdir -p "$UNITS" && cp "$OUTDIR"/*.service "$UNITS/"
timeout 60 systemctl --user daemon-reload
if timeout 60 systemctl --user start "$U1" "$U2"; then
        ok "systemctl start of the exported units"
else
        fail "systemctl start of the exported units"
        diag "$(timeout 10 systemctl --user status "$U1" "$U2" 2>&1 | tail -20)"
fi
check "instance $N1 answers on its port" wait_until 30 answers "$P1"
check "instance $N2 answers on its port" wait_until 30 answers "$P2"
assert_eq "... with its own greeting" "one from $SVC on port $P1" "$(http_get "http://127.0.0.1:$P1/")"
assert_eq "systemd loaded the exported file" "$UNITS/$U1" "$(unit_prop "$U1" FragmentPath)"
assert_eq "... with no drop-in" "" "$(unit_prop "$U1" DropInPaths)"
check "its sidecar publishes the endpoint in etcd (Wants=, no manifest)" \
        wait_until 30 key_present "/services/$SVC/127.0.0.1:$P1"
check "... the other one's too" wait_until 30 key_present "/services/$SVC/127.0.0.1:$P2"
assert_eq "... the sidecar is the exported file" "$UNITS/$D1" "$(unit_prop "$D1" FragmentPath)"

timeout 60 systemctl --user stop "$U1"
check "stopping an instance stops its sidecar (BindsTo=)" wait_until 30 \
        eval "[ \"\$(timeout 10 systemctl --user is-active $D1)\" != active ]"

etcd_stop
nap_summary
