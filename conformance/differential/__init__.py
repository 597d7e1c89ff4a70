"""Differential tests: the same command streams to redis-server and the server under test, replies compared."""
