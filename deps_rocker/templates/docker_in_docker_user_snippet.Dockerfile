@[if restore_user]@
# The base image's own user, which rocker's USER root replaced for the root snippets.
USER @(restore_user)
@[end if]@
