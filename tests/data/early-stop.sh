#!/bin/sh
# Stops its own process group at once, as `docker stop` would before the inner daemon has
# answered, and cleans up with docker in its handler, as `docker compose down` would.
trap 'docker version --format "clean-up reached daemon {{.Server.Version}}"; exit 0' TERM
kill -TERM 0
sleep 30
