"""Monitoring from captured predictions: read SageMaker Data Capture files, compare the served
inputs with the bundle's training reference, join labels that arrived later, and write one
self-contained HTML report (``mlship report``)."""
