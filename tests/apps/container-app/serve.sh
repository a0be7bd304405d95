# Runs as PID 1 of the container: a shell that ends busybox httpd on
# SIGTERM (PID 1 has no default signal actions: httpd alone would ignore
# `systemctl stop` until podman's stop timeout killed it).
echo "container app: serving /www on port $PORT"
/bin/busybox httpd -f -v -p "$PORT" -h /www &
trap 'kill $!; echo "container app: stopped"; exit 0' TERM
wait
