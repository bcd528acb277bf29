#!/bin/sh
# Runs inside beside rocker's other extensions: what they set is there, and Docker works.
cd /work || exit 1
echo "hostname=$(hostname)"
echo "spaced=$SPACED_VALUE"
echo "inner-name=$(docker info --format '{{.Name}}')"
docker run --rm "$PROBE_IMAGE" true 2>/dev/null || docker build -q -t "$PROBE_IMAGE" . >/dev/null
echo "inner-run=$(docker run --rm "$PROBE_IMAGE" echo ok)"
