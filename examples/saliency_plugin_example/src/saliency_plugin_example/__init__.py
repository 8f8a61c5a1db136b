"""An example plugin of the saliency benchmark (see the benchmark's docs/extending.md)."""
