"""SageMaker jobs: request builders, launchers with bounded waits, and the training-job
file contract run inside the container."""
