"""What the tests share: tiny models, command-line runs, bad inputs, W&B records."""
