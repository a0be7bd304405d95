# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Sourced (bash) by tests/integration/test-container.sh and
# bench/container-push: real podman in the integration tests' sandbox
# (tests/integration/lib.sh), leaving nothing of it on the host.
#
#   podman_netns_enter "$@"   outside the sandbox, as root: re-runs "$0"
#                    "$@" in a network namespace of its own (loopback
#                    only); returns when already in it. Call it before
#                    nap_sandbox_enter.
#   podman_store_mount        inside the sandbox, before nap_sandbox_start:
#                    podman's store and CNI state on tmpfs; 1 on failure.

# podman's port forwarding is iptables rules and a bridge in the network
# namespace it runs in: a sandbox killed before its containers were
# removed would leave them behind, forwarding a port to nowhere. In a
# network namespace of their own they go when its last process ends.
podman_netns_enter() {
        [ -z "${NAP_SANDBOX_INSIDE:-}" ] && [ -z "${NAP_PODMAN_NETNS:-}" ] && [ "$(id -u)" -eq 0 ] || return 0
        export NAP_PODMAN_NETNS=1
        # shellcheck disable=SC2016
        exec unshare --net -- bash -c 'ip link set lo up && exec bash "$0" "$@"' "$0" "$@"
}

# The sandbox's mount namespace has them: they go with it.
podman_store_mount() {
        mkdir -p /var/lib/containers /var/lib/cni &&
                mount -t tmpfs -o mode=0700 tmpfs /var/lib/containers &&
                mount -t tmpfs -o mode=0755 tmpfs /var/lib/cni
}
