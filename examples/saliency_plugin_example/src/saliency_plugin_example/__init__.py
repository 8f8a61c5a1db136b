"""An example plugin of the saliency benchmark (see its README, "Evaluate your own method")."""
