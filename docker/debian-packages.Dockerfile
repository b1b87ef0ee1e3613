# A language image that is only Debian packages on the shared runtime base. The packages are
# the language's docker/runtimes/<language>/packages file (names separated by spaces or lines);
# scripts/setup.sh builds with this file for every language directory without a Dockerfile of
# its own (those need more: environment, files, another source).
ARG BASE=codebeaker/runtime-base:latest
FROM ${BASE}
COPY packages /tmp/packages
RUN apt-get update \
 && xargs --arg-file=/tmp/packages env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/packages
USER 10001:10001
