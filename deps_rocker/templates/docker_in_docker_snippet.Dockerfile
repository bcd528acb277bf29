# Docker-in-Docker (deps_rocker): Docker from @(packages_mode) packages, and an entrypoint that
# starts the container's own daemon before the command.
COPY docker_in_docker/install-docker /usr/local/lib/deps-rocker/install-docker
RUN sh /usr/local/lib/deps-rocker/install-docker @(install_args)
COPY docker_in_docker/dind-daemon docker_in_docker/entrypoint /usr/local/lib/deps-rocker/
COPY docker_in_docker/sudoers /etc/sudoers.d/deps-rocker-docker-in-docker
RUN chmod 0755 /usr/local/lib/deps-rocker/dind-daemon /usr/local/lib/deps-rocker/entrypoint \
    && chmod 0440 /etc/sudoers.d/deps-rocker-docker-in-docker
@[if docker_group_user]@
RUN if id -nu @(docker_group_user) >/dev/null 2>&1; then \
        usermod -aG docker "$(id -nu @(docker_group_user))"; \
    else \
        echo "docker-in-docker: WARNING: the base image's user @(docker_group_user) has no" \
            "account in the image, so sudo cannot start the inner daemon for it: give it an" \
            "account in the base image, or use rocker's --user"; \
    fi
@[end if]@
# rocker's settings for the inner daemon, merged at start with /etc/docker/daemon.json: late in
# the Dockerfile, so that changing them rebuilds only what follows.
COPY docker_in_docker/daemon.json @(inner_config)
RUN /usr/local/lib/deps-rocker/dind-daemon check-config
# The inner daemon, whatever a mounted ~/.docker (contexts, DOCKER_HOST in its config) says.
ENV DOCKER_HOST=unix://@(inner_socket)
ENTRYPOINT @(entrypoint)
@[if cmd]@
CMD @(cmd)
@[end if]@
