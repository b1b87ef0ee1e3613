# Convenience recipes; each calls the script README documents.

# Install and start what CodeBeaker needs, build images (idempotent); e.g. --languages all
setup *ARGS:
    scripts/setup.sh {{ARGS}}

# Set up, build and run a node on 127.0.0.1:8000
serve *ARGS:
    scripts/serve.sh {{ARGS}}

# The whole test suite against real Docker
test *ARGS:
    scripts/test.sh {{ARGS}}

# Latency against a running node, beside docker run --rm and a bare process
bench *ARGS:
    cargo run --release -- bench {{ARGS}}
