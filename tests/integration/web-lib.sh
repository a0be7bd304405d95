# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# nap-web in the sandbox of lib.sh (source after napctl-lib.sh, which
# installs nap-managerd): the built nap-web.socket/.service in the user
# manager, the binary copied into the sandbox, as nap_managerd_install does.
#
#   nap_web_install [LISTEN [ARGS...]]  LISTEN: a ListenStream= (default:
#                                       the unit's Unix socket); ARGS: nap-web's
#   web METHOD PATH [BODY [CURL-ARGS...]]  one request; sets STATUS, BODY,
#                                       HEADERS (lower-cased names)
# WEB_URL and WEB_CURL (curl's arguments to reach it) are set by the install.

nap_web_install() {
        local listen=${1:-} dir=$XDG_RUNTIME_DIR/systemd/user
        shift || :
        timeout 30 systemctl --user stop nap-web.socket nap-web.service 2>/dev/null
        mkdir -p "$NAP_TEST_DIR/bin" "$dir/nap-web.service.d" "$dir/nap-web.socket.d" || return 1
        cp "$NAP_BUILD_ROOT/helpers/nap-web" "$NAP_TEST_DIR/bin/nap-web" || return 1
        cp "$NAP_BUILD_ROOT/units/nap-web.socket" "$NAP_BUILD_ROOT/units/nap-web.service" "$dir/" || return 1
        printf '[Unit]\nStartLimitIntervalSec=0\n[Service]\nExecStart=\nExecStart=%s %s\n' \
                "$NAP_TEST_DIR/bin/nap-web" "$*" >"$dir/nap-web.service.d/50-test.conf"
        rm -f "$dir/nap-web.socket.d/50-test.conf"
        WEB_CURL=(--unix-socket "$XDG_RUNTIME_DIR/nap/web.sock")
        WEB_URL=http://nap
        if [ -n "$listen" ]; then
                printf '[Socket]\nListenStream=\nListenStream=%s\n' "$listen" >"$dir/nap-web.socket.d/50-test.conf"
                WEB_CURL=()
                WEB_URL=http://$listen
        fi
        timeout 30 systemctl --user daemon-reload && timeout 30 systemctl --user start nap-web.socket
}

web() {
        local method=$1 path=$2 body=${3-} out=$NAP_TEST_DIR/web.out hdr=$NAP_TEST_DIR/web.hdr
        shift 3 2>/dev/null || shift $#
        local data=()
        [ -n "$body" ] && data=(--data-binary "$body" -H 'Content-Type: application/json')
        STATUS=$(curl -sS --max-time 60 "${WEB_CURL[@]}" -X "$method" -o "$out" -D "$hdr" -w '%{http_code}' \
                "${data[@]}" "$@" "$WEB_URL$path" 2>"$NAP_TEST_DIR/web.err") || STATUS=000
        BODY=$(cat "$out" 2>/dev/null)
        HEADERS=$(tr -d '\r' <"$hdr" 2>/dev/null | tr 'A-Z' 'a-z')
}

# web_as COOKIE CSRF METHOD PATH [BODY [CURL-ARGS...]]: web with a session.
web_as() {
        local cookie=$1 csrf=$2
        shift 2
        local method=$1 path=$2 body=${3-}
        shift 3 2>/dev/null || shift $#
        web "$method" "$path" "$body" -H "Cookie: nap_session=$cookie" ${csrf:+-H "X-CSRF-Token: $csrf"} "$@"
}

# web_signin TOKEN: signs in; sets COOKIE and CSRF (empty on failure).
web_signin() {
        web POST /api/signin "{\"token\":\"$1\"}"
        COOKIE=$(printf '%s\n' "$HEADERS" | sed -n 's/^set-cookie: nap_session=\([^;]*\);.*/\1/p')
        # the header's case was folded above; the value is lower-case hex and names anyway
        CSRF=$(printf '%s' "$BODY" | jq -r '.csrf // empty' 2>/dev/null)
}
