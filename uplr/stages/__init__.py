"""One module per DVC stage (the training rows: one per entry point of the experiment grid)."""
