"""kfm-gitops: Git-native, fail-closed backfills for data pipelines."""

__version__ = "0.1.0"
