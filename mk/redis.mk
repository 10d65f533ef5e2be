# Redis engine: its tests start their own redis-server / redis-cli processes
# (standalone and a 6-node cluster on loopback ports). Debian's redis-server
# package carries both; install it when missing (idempotent).
PREREQS += redis-prereqs

redis-prereqs:
	@if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; \
	fi
	@redis-server --version | grep -Eq 'v=([7-9]|[1-9][0-9])\.' || { echo "redis-server >= 7 required: $$(redis-server --version)"; exit 1; }
