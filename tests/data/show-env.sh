#!/bin/sh
# Prints what the base image's entrypoint set, and whether the inner daemon answers.
echo "base-entrypoint-var=${BASE_ENTRYPOINT_VAR:-unset}"
echo "inner-containers=$(docker ps -q | wc -l)"
