#!/bin/sh
# Runs inside with rocker's --x11: what it mounted in /tmp is still there beside the inner daemon.
display=${DISPLAY#:}
[ -S "/tmp/.X11-unix/X${display%%.*}" ] && echo "x11-socket=ok"
[ -s "${XAUTHORITY:-}" ] && echo "xauthority=ok"
docker version --format '{{.Server.Version}}' >/dev/null && echo "inner-docker=ok"
