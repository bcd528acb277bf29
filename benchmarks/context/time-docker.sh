#!/bin/sh
# Time `docker run --rm` of a small image and a `docker build --no-cache`, against whichever
# daemon the docker command reaches: the inner daemon under --docker-in-docker, or the host's
# engine through its mounted socket. run.py runs it both ways, with the same CLI in the same
# image so that only the daemon differs, one sample at a time, alternating between the two.
#
#   time-docker.sh prepare TAG   print "daemon VERSION DRIVER BUILDER"; build TAG-probe, and
#                                run and build once untimed (a daemon's first ones are slower)
#   time-docker.sh sample TAG    print "run START END" and "build START END", in seconds since
#                                the epoch
#   time-docker.sh clean TAG     remove TAG-probe and TAG-build
#
# The build context is /bench.
set -eu
action=$1 tag=$2
cd /bench

case "$action" in
    prepare)
        if docker buildx version >/dev/null 2>&1; then builder=buildkit; else builder=classic; fi
        echo "daemon $(docker version -f '{{.Server.Version}}') $(docker info -f '{{.Driver}}')" \
            "$builder"
        docker build -q -t "$tag-probe" . >/dev/null
        docker run --rm "$tag-probe" true
        docker build -q --no-cache -t "$tag-build" -f build.Dockerfile . >/dev/null
        ;;
    sample)
        start=$(date +%s.%N)
        docker run --rm "$tag-probe" true
        echo "run $start $(date +%s.%N)"

        start=$(date +%s.%N)
        docker build -q --no-cache -t "$tag-build" -f build.Dockerfile . >/dev/null
        echo "build $start $(date +%s.%N)"
        ;;
    clean)
        docker rmi "$tag-probe" "$tag-build" >/dev/null
        ;;
    *)
        echo "usage: time-docker.sh prepare|sample|clean TAG" >&2
        exit 2
        ;;
esac
