#!/bin/sh
# First start: make the node home from the environment. Later starts reuse it.
set -eu
if [ ! -f "$VRM_HOME/config.toml" ]; then
    vrm init --home "$VRM_HOME" \
        --name "${VRM_NAME:-vrm node}" \
        --role "${VRM_ROLE:-person}" \
        --listen "0.0.0.0:7400" \
        --admin-port 7401 \
        --public-url "${VRM_PUBLIC_URL:-http://localhost:7400}" \
        ${VRM_CATEGORY:+--category "$VRM_CATEGORY"}
fi
exec "$@"
