#!/usr/bin/env bash
# Working as a team: every command of docs/team.md, which shows this
# file as it is; tests/test_team.py runs it against real servers, so the two cannot drift.
#
#   tools/team.sh server          the team's MLflow server (on one machine, left running)
#   tools/team.sh remote          the repository's DVC remote (once; then commit .dvc/config)
#   tools/team.sh share [EXP...]  after a run: commits, outputs, run-cache, experiments
#   tools/team.sh sync [EXP...]   in any clone, on any machine: every output of the
#                                 checkout, the team's run-cache and the named experiments,
#                                 without training
#
# Settings come from the environment:
#   TEAM_DATABASE   the server's database, e.g. postgresql://mlflow@db.example:5432/mlflow
#   TEAM_ARTIFACTS  where the server keeps artifacts, e.g. s3://team-bucket/mlflow
#   TEAM_REMOTE     the DVC remote, e.g. s3://team-bucket/dvc
#   S3_ENDPOINT     endpoint URL of S3-compatible storage that isn't AWS (optional)
#   HOST, PORT      where the server listens (default 127.0.0.1:5000)
# The server and DVC need storage credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY,
# or ~/.aws); MLflow's clients need none, only MLFLOW_TRACKING_URI=http://<server>:<port>.
set -euo pipefail

case "${1:-}" in
server)
    if [ -n "${S3_ENDPOINT:-}" ]; then export MLFLOW_S3_ENDPOINT_URL="$S3_ENDPOINT"; fi
    # --artifacts-destination: the server proxies artifacts, so clients need no credentials
    exec mlflow server --backend-store-uri "$TEAM_DATABASE" \
        --artifacts-destination "$TEAM_ARTIFACTS" \
        --host "${HOST:-127.0.0.1}" --port "${PORT:-5000}"
    ;;
remote)
    dvc remote add --default --force team "$TEAM_REMOTE"
    if [ -n "${S3_ENDPOINT:-}" ]; then dvc remote modify team endpointurl "$S3_ENDPOINT"; fi
    ;;
share)
    shift
    git push origin HEAD
    dvc push --run-cache  # --run-cache: teammates' `dvc repro --pull` skips what ran here
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
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
