#!/bin/sh
# Behaves like an interactive shell towards `docker stop`: it moves to a process group of its
# own and ignores SIGTERM; a hang-up ends it.
exec setsid sh -c 'trap "" TERM; sleep 1000 & wait'
