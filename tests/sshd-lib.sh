# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# A real sshd (Debian's openssh-server) for integration tests that push
# with git over ssh. Source it after tests/integration/lib.sh and call it
# inside the sandbox (nap_sandbox_enter): it bind-mounts over /etc/passwd,
# which only the sandbox's private mount namespace sees.
#
#   . tests/sshd-lib.sh
#   sshd_start "$NAP_TEST_DIR/sshd" [NAME=VALUE...]
#   ssh_keygen_user alice            # $SSHD_DIR/keys/alice{,.pub}
#   napctl keys add alice <"$SSHD_DIR/keys/alice.pub"
#   sshd_git_env alice               # exports GIT_SSH_COMMAND
#   git push "$(sshd_url myapp)" main   # nap@127.0.0.1:myapp
#   sshd_ssh alice ARGS...           # one ssh command as alice's key
#   sshd_stop                        # also run by the sandbox's exit
#
# The account. sshd logs in the account $SSHD_USER (default "nap"). It is
# not created with useradd: sshd_start bind-mounts a copy of /etc/passwd
# with one more line over the real file, in the sandbox's mount namespace
# only, so the host's /etc/passwd is never written and nothing needs
# removing, however the test ends. The account has uid 0, home
# $SSHD_HOME and shell /bin/sh:
#  - uid 0, because the sandbox's systemd user manager and its bus belong
#    to root, and the post-receive hook (nap-receive) must reach them as
#    on a real host the nap account reaches its own manager;
#  - with PermitRootLogin forced-commands-only, sshd then accepts only keys
#    whose line has a command= option, i.e. the lines napctl keys writes:
#    a key line without it cannot log in at all (a second guard);
#  - its own name, home and /bin/sh (not root's /root and bash, which
#    Debian makes read ~/.bashrc under sshd): git and the hook see a clean
#    HOME, and nothing of the host's root account leaks in.
#
# StrictModes stays on (the default), as on a real host: sshd refuses an
# authorized_keys file (or a directory above it) that is group- or
# world-writable or owned by someone other than root or the account, so
# the tests see what napctl keys' modes and owners do to real logins.
#
# The environment of the forced command is sshd's (USER, HOME, PATH,
# SSH_*), plus SetEnv lines: NAP_CONFIG, XDG_RUNTIME_DIR and
# DBUS_SESSION_BUS_ADDRESS as the test has them (when set), plus each
# NAME=VALUE given to sshd_start (e.g. NAP_RECEIVE_BINARY=/bin/true).
#
# Inputs (optional): SSHD_USER, SSHD_HOME (default DIR/home),
# SSHD_AUTHORIZED_KEYS (default $SSHD_HOME/.ssh/authorized_keys; point
# AuthorizedKeys= in nap.conf there).
# Outputs: SSHD_DIR, SSHD_PORT, SSHD_PID, SSHD_USER, SSHD_HOME,
# SSHD_AUTHORIZED_KEYS, SSHD_LOG (sshd's own log, shown by sshd_log).

SSHD_BIN=${SSHD_BIN:-/usr/sbin/sshd}

# A TCP port on 127.0.0.1 that nothing listens on now (not a reservation:
# sshd_start retries when sshd cannot bind it).
sshd__pick_port() {
        local port listening
        listening=$(ss -Htln 2>/dev/null | awk '{ n = split($4, a, ":"); print a[n] }')
        for _ in $(seq 100); do
                port=$((30000 + $(od -An -N2 -tu2 /dev/urandom) % 30000))
                printf '%s\n' "$listening" | grep -qx "$port" || { echo "$port"; return 0; }
        done
        return 1
}

# The account, only in this mount namespace (see above): the user database
# as it is, without any line for $SSHD_USER (a real nap account on this
# machine stays untouched), plus ours.
sshd__account() {
        local passwd=$SSHD_DIR/passwd
        grep -v "^$SSHD_USER:" /etc/passwd >"$passwd.new" || return 1
        printf '%s:x:0:0:nap test account:%s:/bin/sh\n' "$SSHD_USER" "$SSHD_HOME" >>"$passwd.new"
        mv "$passwd.new" "$passwd" && chmod 0644 "$passwd" || return 1
        mount --bind "$passwd" /etc/passwd || return 1
        [ "$(getent passwd "$SSHD_USER" | cut -d: -f3,6)" = "0:$SSHD_HOME" ] || {
                echo "sshd_start: the account $SSHD_USER did not appear in the user database" >&2
                return 1
        }
}

# sshd_config for port $1; extra SetEnv entries from "$@" after it.
sshd__config() {
        local port=$1 v
        shift
        {
                echo "# written by tests/sshd-lib.sh"
                echo "ListenAddress 127.0.0.1:$port"
                echo "HostKey $SSHD_DIR/host_ed25519_key"
                echo "PidFile $SSHD_DIR/sshd.pid"
                echo "AuthorizedKeysFile $SSHD_AUTHORIZED_KEYS"
                echo "AuthenticationMethods publickey"
                echo "PasswordAuthentication no"
                echo "KbdInteractiveAuthentication no"
                echo "UsePAM no"
                echo "PermitRootLogin forced-commands-only"
                echo "AllowUsers $SSHD_USER"
                echo "StrictModes yes"
                echo "PermitUserEnvironment no"
                echo "PrintMotd no"
                echo "UseDNS no"
                echo "X11Forwarding no"
                echo "AllowTcpForwarding no"
                echo "AllowAgentForwarding no"
                echo "MaxStartups 100"
                echo "LogLevel VERBOSE"
                # One SetEnv line: sshd takes the first line of a keyword only.
                if [ $# -gt 0 ]; then
                        printf 'SetEnv'
                        for v in "$@"; do
                                case $v in
                                *'"'* | *[[:cntrl:]]* | [!A-Za-z_]*) echo "sshd_start: bad SetEnv '$v'" >&2; return 1 ;;
                                [A-Za-z_]*=*) printf ' "%s"' "$v" ;;
                                *) echo "sshd_start: expected NAME=VALUE, got '$v'" >&2; return 1 ;;
                                esac
                        done
                        echo
                fi
        } >"$SSHD_DIR/sshd_config"
}

sshd__client_config() {
        cat >"$SSHD_DIR/ssh_config" <<EOF
# written by tests/sshd-lib.sh
Host *
        HostName 127.0.0.1
        Port $SSHD_PORT
        User $SSHD_USER
        IdentitiesOnly yes
        UserKnownHostsFile $SSHD_DIR/known_hosts
        GlobalKnownHostsFile /dev/null
        StrictHostKeyChecking yes
        BatchMode yes
        ConnectTimeout 10
        LogLevel ERROR
EOF
        printf '[127.0.0.1]:%s %s\n' "$SSHD_PORT" "$(cut -d' ' -f1,2 "$SSHD_DIR/host_ed25519_key.pub")" \
                >"$SSHD_DIR/known_hosts"
}

sshd__listening() {
        ss -Htln "sport = :$1" 2>/dev/null | grep -q .
}

# sshd_start DIR [NAME=VALUE...]: sshd on a free loopback port, its files
# in DIR (made if missing). Registers nothing: sshd_stop, or the sandbox's
# end (PID namespace), stops it.
sshd_start() {
        [ -n "${NAP_SANDBOX_INSIDE:-}" ] || { echo "sshd_start: call it inside the sandbox (lib.sh)" >&2; return 1; }
        [ -x "$SSHD_BIN" ] || { echo "sshd_start: $SSHD_BIN not found (openssh-server)" >&2; return 1; }
        SSHD_DIR=$1
        shift
        SSHD_USER=${SSHD_USER:-nap}
        SSHD_HOME=${SSHD_HOME:-$SSHD_DIR/home}
        SSHD_AUTHORIZED_KEYS=${SSHD_AUTHORIZED_KEYS:-$SSHD_HOME/.ssh/authorized_keys}
        SSHD_LOG=$SSHD_DIR/sshd.log
        export SSHD_DIR SSHD_USER SSHD_HOME SSHD_AUTHORIZED_KEYS SSHD_LOG
        mkdir -p "$SSHD_DIR/keys" "$SSHD_HOME" /run/sshd && chmod 0755 "$SSHD_DIR" "$SSHD_HOME" || return 1
        sshd__account || return 1
        [ -f "$SSHD_DIR/host_ed25519_key" ] ||
                ssh-keygen -q -t ed25519 -N '' -C nap-test-host -f "$SSHD_DIR/host_ed25519_key" || return 1

        local env=() v
        for v in NAP_CONFIG XDG_RUNTIME_DIR DBUS_SESSION_BUS_ADDRESS; do
                [ -n "${!v:-}" ] && env+=("$v=${!v}")
        done
        local attempt port
        for attempt in 1 2 3 4 5; do
                port=$(sshd__pick_port) || return 1
                sshd__config "$port" "${env[@]}" "$@" || return 1
                "$SSHD_BIN" -t -f "$SSHD_DIR/sshd_config" || return 1
                # -D: stay in the foreground (our child); -e -E: log to a file.
                "$SSHD_BIN" -D -E "$SSHD_LOG" -f "$SSHD_DIR/sshd_config" </dev/null &
                SSHD_PID=$!
                if wait_until 10 sshd__listening "$port" && kill -0 "$SSHD_PID" 2>/dev/null; then
                        SSHD_PORT=$port
                        export SSHD_PORT SSHD_PID
                        sshd__client_config
                        log "sshd $SSHD_PID on 127.0.0.1:$SSHD_PORT for $SSHD_USER (home $SSHD_HOME)"
                        return 0
                fi
                kill "$SSHD_PID" 2>/dev/null
                wait "$SSHD_PID" 2>/dev/null
                log "sshd did not come up on port $port (attempt $attempt)"
        done
        sshd_log 30
        return 1
}

sshd_stop() {
        [ -n "${SSHD_PID:-}" ] || return 0
        kill -TERM "$SSHD_PID" 2>/dev/null
        wait "$SSHD_PID" 2>/dev/null
        SSHD_PID=
}

# Shows the end of sshd's log as TAP comments (for a failure's diagnosis).
sshd_log() {
        [ -s "${SSHD_LOG:-}" ] || return 0
        echo "# --- sshd log (last ${1:-30} lines) ---"
        tail -n "${1:-30}" "$SSHD_LOG" | sed 's/^/#   /'
}

# ssh_keygen_user NAME: an ed25519 key pair $SSHD_DIR/keys/NAME{,.pub}
# (comment NAME@nap-test); kept if it exists. Call after sshd_start.
ssh_keygen_user() {
        local key=$SSHD_DIR/keys/$1
        [ -f "$key" ] || ssh-keygen -q -t ed25519 -N '' -C "$1@nap-test" -f "$key"
}

# The ssh command line for NAME's key (no agent, no other identity).
sshd_ssh_command() {
        printf 'ssh -F %q -i %q -o IdentityAgent=none' "$SSHD_DIR/ssh_config" "$SSHD_DIR/keys/$1"
}

# sshd_git_env NAME: git talks to our sshd with NAME's key.
sshd_git_env() {
        GIT_SSH_COMMAND=$(sshd_ssh_command "$1")
        export GIT_SSH_COMMAND GIT_SSH_VARIANT=ssh
}

# sshd_url APP: the remote as people write it (nap@HOST:APP); the port
# comes from the client config in GIT_SSH_COMMAND.
sshd_url() {
        printf '%s@127.0.0.1:%s' "$SSHD_USER" "$1"
}

# sshd_ssh NAME ARGS...: ssh as NAME's key, bounded to 60 s. stdin is
# passed on (use </dev/null when there is none).
sshd_ssh() {
        local name=$1
        shift
        timeout 60 ssh -F "$SSHD_DIR/ssh_config" -i "$SSHD_DIR/keys/$name" -o IdentityAgent=none \
                "$SSHD_USER@127.0.0.1" "$@"
}
