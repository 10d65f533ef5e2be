# Audit trail (PostgreSQL): its tests (tests/tests/audit_*.rs, part of
# `cargo test --workspace`) start an ephemeral PostgreSQL with initdb as the
# `postgres` user, and a redis-server. Debian's postgresql package carries
# initdb/pg_ctl under /usr/lib/postgresql/<v>/bin and creates that user;
# install it when missing (idempotent).
#   make bench-audit   release benchmarks: ≥10k events/s with steady lag < 1 s,
#                      Redis outbox throughput, PostgreSQL down 30 s under load.

# Keep whatever default goal the main Makefile chooses (this file is included
# before its first target).
_audit_default_goal := $(.DEFAULT_GOAL)

PREREQS += audit-prereqs

.PHONY: audit-prereqs bench-audit

audit-prereqs:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! id postgres >/dev/null 2>&1; then \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	fi

bench-audit: audit-prereqs
	$(CARGO) test --release -p synckairos-tests --test audit_bench -- --ignored --nocapture --test-threads=1

.DEFAULT_GOAL := $(_audit_default_goal)
