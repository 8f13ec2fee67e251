"""The trader's dashboard: pages at /, the read-only endpoints they need beyond the REST API, nothing else."""
