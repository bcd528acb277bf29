#!/bin/sh
# Runs inside the rocker container: exercises the inner daemon and prints key=value lines
# for the tests to read. PROBE_IMAGE names the inner image, HOST_ONLY_IMAGE an image that
# exists only on the host.
set -eu
cd /work

echo "inner-daemon-id=$(docker info --format '{{.ID}}')"

docker build -q -t "$PROBE_IMAGE" . >/dev/null
echo "inner-run=$(docker run --rm "$PROBE_IMAGE")"

docker compose --ansi never -p probe up --abort-on-container-exit --no-color 2>&1 | sed 's/^/compose: /'
docker compose -p probe down >/dev/null 2>&1

docker buildx build -q --load -t "$PROBE_IMAGE-buildx" . >/dev/null
echo "buildx-run=$(docker run --rm "$PROBE_IMAGE-buildx" echo built by buildx)"

if docker run --rm "$PROBE_IMAGE" \
    wget -q -O /dev/null http://deb.debian.org/debian/dists/trixie/Release; then
    echo "inner-network=ok"
else
    echo "inner-network=failed"
fi

if docker image inspect "$HOST_ONLY_IMAGE" >/dev/null 2>&1; then
    echo "host-image-inside=visible"
else
    echo "host-image-inside=absent"
fi

echo "inner-images=$(docker images --format '{{.Repository}}:{{.Tag}}' | sort | tr '\n' ' ')"
