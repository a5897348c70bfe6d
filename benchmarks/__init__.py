"""`make bench`: serving and batch-scoring figures side by side with a naive baseline."""
