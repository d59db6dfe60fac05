#!/usr/bin/env bash
# initdb.sh -- the compose demo's database setup.  The postgres image runs it once,
# when its data volume is empty, against the temporary server it starts for
# initialisation (which gets the same -c options as the real one, so wal_level is
# already logical and sql/002 creates the slot).
#
#   1. applies the repository's sql/*.sql in order (mounted at /opt/outbox-relay/sql):
#      the outbox table, the publication and the slot, the least-privilege role
#      outbox_relay, polling mode's index and trigger, the relay's state table;
#   2. gives outbox_relay the password of the relay's DSN (the compose secret
#      relay_dsn), so that the password lives in one file only.
set -euo pipefail

# The paths may be overridden for a test outside the container.
sql_dir=${OUTBOX_SQL_DIR:-/opt/outbox-relay/sql}
dsn_file=${RELAY_DSN_FILE:-/run/secrets/relay_dsn}
psql_app=(psql -X -q -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}"
          --dbname "${POSTGRES_DB:-app}")

shopt -s nullglob
files=("$sql_dir"/*.sql)
if [ ${#files[@]} -eq 0 ]; then
    echo "initdb.sh: no SQL files in $sql_dir: is the repository's sql/ mounted?" >&2
    exit 1
fi
for f in "${files[@]}"; do
    echo "initdb.sh: applying $(basename "$f")"
    "${psql_app[@]}" -f "$f"
done

# The DSN is libpq's key=value form; its password must be one word without quotes.
dsn=$(cat "$dsn_file")
password=$(printf '%s\n' "$dsn" | sed -n 's/^\(.*[[:space:]]\)\{0,1\}password=\([^[:space:]]*\).*$/\2/p')
if [ -z "$password" ]; then
    echo "initdb.sh: no password=... in $dsn_file: the relay could not log in" >&2
    exit 1
fi
# psql interpolates :'pw' as a quoted literal, so the password needs no escaping here.
"${psql_app[@]}" -v pw="$password" <<'SQL'
ALTER ROLE outbox_relay PASSWORD :'pw';
SQL
echo "initdb.sh: role outbox_relay has the password of the relay's DSN"
