#!/bin/sh
# Cloud Run and Cloud Functions (2nd gen) send requests to $PORT on every
# interface of the container. Configuration comes from the environment
# (LLMSEC_ADMIN_KEY from Secret Manager, LLMSEC_DATABASE_URL for Cloud SQL);
# without a database URL the store is SQLite in the container's in-memory
# file system, which lasts as long as the instance.
set -eu
exec llmsec serve --listen "0.0.0.0:${PORT:-8080}" --data-dir "${LLMSEC_DATA_DIR:-/tmp/llmsec}"
