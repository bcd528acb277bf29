#!/bin/sh
# Exits with the status given as its argument, after checking the inner daemon answers.
docker version --format 'inner daemon {{.Server.Version}}' || exit 99
exit "$1"
