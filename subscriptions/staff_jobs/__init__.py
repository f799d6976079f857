"""Staff work too big for a web request: exports and bulk actions, run by workers in bounded batches."""
