"""Producing an answer: the session over one kv-cache, sampling, streamed text, stop strings."""
