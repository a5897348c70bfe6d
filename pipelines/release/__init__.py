"""Releasing a bundle: publish it to S3, reach a deployed endpoint, gate it after deploy."""
