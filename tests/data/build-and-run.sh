#!/bin/sh
# Builds the inner probe image and runs it; prints the storage driver the daemon reports.
cd /work || exit 1
docker build -q -t build-and-run-probe . >/dev/null
echo "inner-run=$(docker run --rm build-and-run-probe echo ok)"
echo "driver=$(docker info --format '{{.Driver}}')"
