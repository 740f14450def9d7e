"""The high-throughput executor: an interchange process feeding worker pools over ZeroMQ."""
