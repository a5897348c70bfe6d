#!/bin/sh
# The container's entrypoint. SageMaker starts inference containers as `docker run IMAGE serve`
# and training containers as `docker run IMAGE train`; anything else runs as given.
set -eu
cmd="${1:-serve}"
[ "$#" -gt 0 ] && shift
case "$cmd" in
  serve | train) exec python -m pipelines.cli "$cmd" "$@" ;;
  *) exec "$cmd" "$@" ;;
esac
