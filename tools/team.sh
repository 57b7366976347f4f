#!/usr/bin/env bash
# Working as a team: every command of docs/team.md, which shows this
# file as it is; tests/test_team.py runs it against real servers, so the two cannot drift.
#
#   tools/team.sh server          the team's MLflow server (on one machine, left running)
#   tools/team.sh add-user [--reader] [--reset-password] NAME
#                                 a teammate (runs, model versions, aliases) or a reader;
#                                 again for one who exists: grants what is missing
#   tools/team.sh remote          the repository's DVC remote (once; then commit .dvc/config)
#   tools/team.sh share [EXP...]  after a run: commits, outputs, run-cache, experiments
#   tools/team.sh sync [EXP...]   in any clone, on any machine: every output of the
#                                 checkout, the team's run-cache and the named experiments,
#                                 without training
#
# Settings come from the environment; no password ever goes on a command line or in a file:
#   TEAM_DATABASE       the server's database, e.g. postgresql://mlflow@db.example:5432/mlflow
#   TEAM_AUTH_DATABASE  its users and permissions, e.g. postgresql://mlflow@db.example/mlflow_auth
#                       (their password: PGPASSWORD or ~/.pgpass, never in the URIs)
#   MLFLOW_AUTH_ADMIN_PASSWORD  the first admin's password (user "admin"), on the first start
#   TEAM_ARTIFACTS      where the server keeps artifacts, e.g. s3://team-bucket/mlflow
#   TEAM_TLS_CERT, TEAM_TLS_KEY  the server's certificate and key: HTTPS only
#   TEAM_HOST, TEAM_PORT   where it listens (default 127.0.0.1 and 5000); without a
#                       certificate, only on this machine (for a reverse proxy here)
#   TEAM_ALLOWED_HOSTS  the names clients use for it, comma-separated (default TEAM_HOST)
#   TEAM_USER_PASSWORD  add-user: the new user's password, or the new one (run as an admin)
#   TEAM_REMOTE         the DVC remote, e.g. s3://team-bucket/dvc
#   S3_ENDPOINT         endpoint URL of S3-compatible storage that isn't AWS (optional)
# The server and DVC need storage credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY,
# or ~/.aws); MLflow's clients need MLFLOW_TRACKING_URI=https://<name>:<port> and a login
# (MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or ~/.mlflow/credentials).
set -euo pipefail

case "${1:-}" in
server)
    host=${TEAM_HOST:-127.0.0.1} port=${TEAM_PORT:-5000}
    # what `mlflow server` would take and run unsafely, or fail to start and exit 0: a
    # password in a database URI, no TLS off this machine, a port it cannot listen on
    python -m keras_exercises.tracking.team_server_checks "$host" "$port"
    # through MLflow's environment variables: a command line is there for anyone's `ps`
    export MLFLOW_BACKEND_STORE_URI="$TEAM_DATABASE"
    export MLFLOW_ARTIFACTS_DESTINATION="$TEAM_ARTIFACTS"  # proxied: clients need no keys
    if [ -n "${S3_ENDPOINT:-}" ]; then export MLFLOW_S3_ENDPOINT_URL="$S3_ENDPOINT"; fi
    # CSRF protection of the UI's forms; any random key will do for one server
    if [ -z "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ]; then
        MLFLOW_FLASK_SERVER_SECRET_KEY=$(python -c "import secrets; print(secrets.token_hex(32))")
        export MLFLOW_FLASK_SERVER_SECRET_KEY
    fi
    # MLflow's job runner (seven processes, each importing MLflow) serves its GenAI features
    # (LLM judges, trace archival): nothing this project logs uses it
    export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
    # auth_cache_ttl_seconds: each worker checks a login's password (a slow hash, by
    # design) once a minute, not on every request (docs/team.md). The file lives as long as
    # the server (the trap); ConfigParser reads % as the start of a reference: each doubled
    auth_dir=$(mktemp -d)
    trap 'rm -rf "$auth_dir"' EXIT
    export MLFLOW_AUTH_CONFIG_PATH=$auth_dir/basic_auth.ini
    cat >"$MLFLOW_AUTH_CONFIG_PATH" <<INI
[mlflow]
default_permission = NO_PERMISSIONS
database_uri = ${TEAM_AUTH_DATABASE//%/%%}
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = 60
INI
    # stopped, it gives open requests 10 s: an idle client's kept-alive connection (a
    # browser's, an MLflow client's pool) held the stop past 30 s otherwise
    scheme=http uvicorn="--timeout-graceful-shutdown 10"
    if [ -n "${TEAM_TLS_CERT:-}" ]; then
        scheme=https uvicorn+=" --ssl-certfile $TEAM_TLS_CERT --ssl-keyfile $TEAM_TLS_KEY"
    fi
    # MLflow matches the Host header exactly, port included: each name with and without it
    allowed="" origins=""
    IFS=, read -ra names <<<"${TEAM_ALLOWED_HOSTS:-$host}"
    for name in "${names[@]}"; do
        allowed+="$name,$name:$port," origins+="$scheme://$name:$port,"
    done
    # team-auth: MLflow's basic-auth app, and only admins rename or delete the team's
    # experiment and models (keras_exercises/tracking/team_app.py). Not exec'd: this shell
    # stays to remove the auth file once the server ends; stopping it stops the server first
    mlflow server --app-name team-auth --host "$host" --port "$port" \
        --allowed-hosts "${allowed%,}" --cors-allowed-origins "${origins%,}" \
        --uvicorn-opts "$uvicorn" &
    server=$!
    trap 'kill -TERM "$server" 2>/dev/null' TERM INT HUP
    status=0
    wait "$server" || status=$?
    while kill -0 "$server" 2>/dev/null; do wait "$server" || status=$?; done
    exit "$status"
    ;;
add-user)
    shift
    exec python -m keras_exercises.tracking.team_users "$@"
    ;;
remote)
    dvc remote add --default --force team "$TEAM_REMOTE"
    if [ -n "${S3_ENDPOINT:-}" ]; then dvc remote modify team endpointurl "$S3_ENDPOINT"; fi
    ;;
share)
    shift
    git push origin HEAD
    # the outputs, then the run-cache (teammates' `dvc repro --pull` skips what ran here):
    # DVC's --run-cache sends its entries first, and a push stopped midway would leave
    # entries whose outputs never arrived
    dvc push
    dvc push --run-cache
    for experiment in "$@"; do
        pushed=$(dvc exp push --run-cache origin "$experiment" 2>&1) || { echo "$pushed" >&2; exit 1; }
        echo "$pushed"
        # DVC prints this and exits 0: a teammate shared another experiment of that name
        if grep -q "has diverged" <<<"$pushed"; then
            echo "Nothing shared for '$experiment': rename yours (dvc exp rename) and share again." >&2
            exit 1
        fi
    done
    ;;
sync)
    shift
    dvc pull --run-cache  # then `dvc repro --pull` restores what a teammate already ran
    for experiment in "$@"; do dvc exp pull origin "$experiment"; done
    ;;
*)
    sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
