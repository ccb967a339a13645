"""Benchmarks and the peer baseline. Nothing outside the commands imports them."""
