# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
#
# The seed's discovery sidecar (shared/seeds/002: a unit BindsTo= and
# After= the app's, `while true; do appport=$(docker inspect …); etcdctl
# set /services/$APP/%H '{"host": …, "port": …}' --ttl 60; sleep 45;
# done`, ExecStop= `etcdctl rm`), for bench/discovery to measure beside
# nap's. etcd v3 has no `set --ttl`: a lease grant and a put. The port
# comes from the manager running the instance, as the seed's came from
# docker's.
#
#   sh seed-discovery.sh ETCD_URL KEY TTL PERIOD UNIT        the loop
#   sh seed-discovery.sh ETCD_URL KEY TTL PERIOD UNIT stop   its ExecStop

export ETCDCTL_API=3
url=$1 key=$2 ttl=$3 period=$4 unit=$5
if [ "${6:-}" = stop ]; then
        exec etcdctl --endpoints="$url" del "$key"
fi
while true; do
        port=$(systemctl --user show -P Environment "$unit" | tr ' ' '\n' | sed -n 's/^PORT=//p')
        lease=$(etcdctl --endpoints="$url" lease grant "$ttl" | cut -d' ' -f2)
        etcdctl --endpoints="$url" put --lease="$lease" "$key" "{\"host\": \"$(hostname)\", \"port\": $port}" >/dev/null
        sleep "$period"
done
