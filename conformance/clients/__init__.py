"""Real-client workloads (redis-cli, redis-benchmark, redis-py, node-redis, ruby-redis, hiredis)."""
