#!/bin/sh
# The Azure Functions custom handler: the Functions host starts this with
# FUNCTIONS_CUSTOMHANDLER_PORT set and forwards each HTTP request, path and
# headers unchanged (enableForwardingHttpRequest), to that port on
# localhost. `llmsec` is the release binary deployed beside host.json.
# Configuration comes from the app settings (LLMSEC_ADMIN_KEY,
# LLMSEC_DATABASE_URL, ...); without a database URL the store is SQLite
# under /tmp, which lasts as long as the instance.
set -eu
: "${FUNCTIONS_CUSTOMHANDLER_PORT:?the Functions host sets it}"
exec ./llmsec serve --listen "127.0.0.1:${FUNCTIONS_CUSTOMHANDLER_PORT}" --data-dir "${LLMSEC_DATA_DIR:-/tmp/llmsec}"
