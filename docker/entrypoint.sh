#!/bin/sh
# Container entrypoint (README "Deployment with Docker").
#   entrypoint.sh            migrate once, then serve with Granian (the image's default)
#   entrypoint.sh CMD ARGS…  migrate once, then run CMD (e.g. `litestar --app-dir src db backup`)
# Several containers or workers may start at once on the same ./db: `flock` on
# db/.migrate.lock lets exactly one run `alembic upgrade head` at a time; the others wait, then
# find the schema at head and do nothing. A failed migration stops the container (exit != 0)
# before anything serves. SKIP_MIGRATIONS=1 skips the step.
# Without DATABASE_URL, docker/database_url.py picks PostgreSQL when compose's `postgres` profile
# runs (POSTGRES_HOST resolves), else SQLite in $DB_DIR, and logs which.
set -eu

APP_HOME=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
cd "$APP_HOME"
DB_DIR=${DB_DIR:-$APP_HOME/db}
mkdir -p "$DB_DIR"
export DB_DIR
DATABASE_URL=$(python "$APP_HOME/docker/database_url.py")
export DATABASE_URL

# The app has glibc hand blocks of 1 MiB or more back to the OS when freed (an image being
# decoded, say; shared/security/passwords.py). Transparent huge pages for malloc's mmapped
# blocks make re-mapping them cheap (glibc >= 2.35; other C libraries ignore the variable).
export GLIBC_TUNABLES="${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}"

if [ "${SKIP_MIGRATIONS:-0}" != "1" ]; then
  flock --timeout "${MIGRATE_LOCK_TIMEOUT:-300}" "$DB_DIR/.migrate.lock" alembic upgrade head
fi

# Workers run with -OO: no docstrings or assert statements in memory (about 5.5 MiB less per
# worker; the app's checks never rely on assert). The image holds their bytecode precompiled.
if [ "$#" -eq 0 ] || [ "$1" = "serve" ]; then
  cd "$APP_HOME/src"
  exec python -OO -m granian --interface asgi --factory app:create_app --host "${HOST:-0.0.0.0}" --port "${PORT:-8000}" --workers "${WEB_CONCURRENCY:-2}" --workers-kill-timeout "${GRACEFUL_TIMEOUT:-20}" --respawn-failed-workers
fi
exec "$@"
