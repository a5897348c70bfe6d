#!/bin/sh
# The container's entrypoint. SageMaker starts inference containers as `docker run IMAGE serve`
# and training containers as `docker run IMAGE train`; the scheduled batch pipeline checks
# its input with `docker run IMAGE check-input ...` (a processing job); anything else runs as
# given.
set -eu
cmd="${1:-serve}"
[ "$#" -gt 0 ] && shift
# Inside a SageMaker training job (input files under /opt/ml/input/data), a bare `train` runs
# SageMaker's file contract: data channel in, bundle out to /opt/ml/model.
if [ "$cmd" = train ] && [ "$#" -eq 0 ] && [ -d /opt/ml/input/data ]; then
  set -- --sagemaker /opt/ml --params /opt/mlship/params.yaml
fi
case "$cmd" in
  serve | train | check-input) exec python -m cli "$cmd" "$@" ;;
  *) exec "$cmd" "$@" ;;
esac
