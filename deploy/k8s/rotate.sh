#!/bin/sh
# The CronJob's command (deploy/k8s/cronjob.yaml; mounted at /etc/aap/rotate.sh). One run:
#   1. an env file in a private directory of the pod's memory-backed emptyDir, written from the
#      RHDH Secret's keys as mounted (one file per key): AAP_TOKEN, REFRESH_TOKEN, AAP_PAT;
#   2. the state of earlier runs, from the Secret aap-rotate-state, into the state file beside it
#      (aap-state-store load);
#   3. aap token rotate under /etc/aap/policy.lua, whose on_state_saved hook writes the state back
#      to that Secret at every save (aap-state-store save) and whose on_rotated hook applies the
#      new values to the RHDH Secret (kubectl apply --server-side) before the old token is revoked.
# Settings come from the aap-credentials Secret's files: AAP_HOSTNAME, AAP_USERNAME, ca.crt,
# and AAP_PASSWORD, which aap reads itself (AAP_PASSWORD_FILE) - no secret in the environment.
# The paths can be moved for a test (spec/deploy_spec.lua runs this against the emulator).
set -eu
umask 077
secret_dir=${RHDH_SECRET_DIR:-/var/run/rhdh-aap}
creds=${AAP_CREDENTIALS_DIR:-/var/run/aap-credentials}
work=${AAP_WORK_DIR:-/run/aap}/work
policy=${AAP_POLICY:-/etc/aap/policy.lua}
# aap-state-store sits beside this script (the ConfigMap); the policy's hook runs it by name.
PATH=$(dirname "$0"):$PATH
export PATH

setting() { # variable name: exported from the credentials file of that name, when present
  if [ -s "$creds/$1" ]; then
    eval "$1=\$(cat \"\$creds/\$1\")"
    # shellcheck disable=SC2163 # exports the variable named by $1
    export "$1"
  fi
}
setting AAP_HOSTNAME
setting AAP_USERNAME
[ -n "${AAP_HOSTNAME:-}" ] || { echo "rotate: no AAP_HOSTNAME in $creds" >&2; exit 1; }
[ -s "$creds/ca.crt" ] && export AAP_CA_FILE="$creds/ca.crt"
[ -s "$creds/AAP_PASSWORD" ] && export AAP_PASSWORD_FILE="$creds/AAP_PASSWORD"

# aap refuses an env file in a directory others can write to; an emptyDir is 0777.
# shellcheck disable=SC2174 # only the deepest directory needs 0700; its parent is the emptyDir
mkdir -p -m 700 "$work"
env_file=$work/.env
: > "$env_file"
for key in AAP_TOKEN REFRESH_TOKEN AAP_PAT; do
  # printf is the shell's own: the value is in no process's argv.
  if [ -s "$secret_dir/$key" ]; then printf '%s=%s\n' "$key" "$(cat "$secret_dir/$key")" >> "$env_file"; fi
done
if [ ! -s "$env_file" ]; then
  echo "rotate: the Secret mounted at $secret_dir holds no AAP_TOKEN or AAP_PAT: put the first token in (deploy/README.md)" >&2
  exit 1
fi
aap-state-store load "$env_file.aap-state.json"
exec aap token rotate --policy "$policy" --env-file "$env_file"
