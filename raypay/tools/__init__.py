"""Operator tools: the embedded stack, `raypay up` and the CLI, the load tool, the benchmark."""
