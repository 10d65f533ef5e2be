# Load benchmark (docs/bench.md). `make bench` builds the server and the load
# generator in release, starts a fresh server on a free loopback port, runs every
# scenario (~10 s each on 2 cores) and stops the server. Not part of `make test`.
# BENCH_REDIS_URL=redis://127.0.0.1:6379 runs it against the Redis engine instead.

# Keep whatever default goal the main Makefile chooses: this file is included
# before its first target, so a target here must not become the default.
_bench_default_goal := $(.DEFAULT_GOAL)

bench:
	CARGO="$(CARGO)" BENCH_TARGET_DIR="$(TARGET_DIR)" bash bench/run.sh

.DEFAULT_GOAL := $(_bench_default_goal)
