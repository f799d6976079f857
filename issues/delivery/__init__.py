"""The delivery engine: the ledger, claims, batches, the MIME built for each reader, the rate limit, the transports."""
