"""Speed measurements of the benchmark against the model's own limit (``python -m perf``)."""
