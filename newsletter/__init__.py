"""newsletter: curate resources, assemble numbered issues, and send them to subscribers, tracked."""

__version__ = "0.1.0"
