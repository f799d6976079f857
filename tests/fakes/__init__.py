"""Loopback servers that speak SMTP and each provider's API, for the tests and the benchmarks."""
