#!/bin/sh
# Runs inside as a non-root user: the inner daemon must serve them without sudo.
set -eu
cd /work
echo "whoami=$(id -un) uid=$(id -u)"
echo "groups=$(id -Gn)"
docker ps -q >/dev/null && echo "docker-ps=ok"
docker build -q -t userprobe . >/dev/null && echo "docker-build=ok"
PROBE_IMAGE=userprobe docker compose --ansi never -p userprobe up --abort-on-container-exit \
    --no-color 2>&1 | grep -q 'hello from a compose service' && echo "compose=ok"
touch /work/created-inside
if sudo -n true 2>/dev/null; then echo "blanket-sudo=yes"; else echo "blanket-sudo=no"; fi
