#!/usr/bin/env bash
# The main job: the lesson end to end through the `aap` command — a PAT, the application
# looked up by name, an application token, a refresh, a revocation — against the built-in
# gateway emulator (or a real gateway: GATEWAY=https://host make demo, with AAP_PASSWORD,
# AAP_CLIENT_ID and AAP_CLIENT_SECRET in the environment). Shows the .env with values redacted.
set -euo pipefail
cd "$(dirname "$0")/.."
aap() { lua5.4 bin/aap "$@"; }
work=$(mktemp -d /tmp/aap-demo.XXXXXX)
sim_pid=""
cleanup() {
  if [ -n "$sim_pid" ]; then kill -TERM "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ aap %s\n' "$*"; aap "$@"; }

if [ -n "${GATEWAY:-}" ]; then
  export AAP_HOSTNAME="$GATEWAY"
  : "${AAP_PASSWORD:?set AAP_PASSWORD for the real gateway}"
else
  say "starting the gateway emulator (aap sim) on loopback"
  AAP_SIM_ADMIN_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
  export AAP_SIM_ADMIN_PASSWORD
  mkfifo "$work/url"
  lua5.4 bin/aap sim --port 0 >"$work/url" 2>"$work/sim.log" &
  sim_pid=$!
  read -r AAP_HOSTNAME <"$work/url"
  export AAP_HOSTNAME
  echo "emulator at $AAP_HOSTNAME (pid $sim_pid)"
  export AAP_PASSWORD="$AAP_SIM_ADMIN_PASSWORD"
  # The emulator prints the seeded application's client credentials on its log (stderr).
  AAP_CLIENT_ID=$(sed -n 's/^.*"RHDH Integration".*client_id=\([A-Za-z0-9]*\).*$/\1/p' "$work/sim.log" | head -n 1)
  AAP_CLIENT_SECRET=$(sed -n 's/^.*"RHDH Integration".*client_secret=\([A-Za-z0-9]*\).*$/\1/p' "$work/sim.log" | head -n 1)
  export AAP_CLIENT_ID AAP_CLIENT_SECRET
fi
export AAP_USERNAME=${AAP_USERNAME:-admin}
env_file="$work/.env"
printf '# RHDH settings\nRHDH_BASE_URL=https://rhdh.example.com\n' > "$env_file"

say "1. is the gateway there, and who are we?"
show ping
show whoami

say "2. a personal access token (the lesson's first curl), verified, saved as AAP_PAT"
show token create --description "RHDH PAT" --scope write --env-file "$env_file"

say "3. look the OAuth application up by name (every page, not just the first)"
show app show "RHDH Integration"

say "4. an application token for it, saved as AAP_TOKEN and REFRESH_TOKEN"
show token create --application "RHDH Integration" --description "RHDH integration" --env-file "$env_file"

say "5. refresh it: the gateway replaces both values; the file is rewritten in place"
show token refresh --env-file "$env_file"

say "6. the tokens on the gateway (values are never shown)"
show token list

say "7. revoke the PAT and drop it from the file"
show token revoke --env-file "$env_file" --key AAP_PAT

say "the resulting .env (values redacted; mode $(stat -c %a "$env_file"))"
lua5.4 -e 'package.path = "lua/?.lua;" .. package.path
  io.write(require("aap.export").redacted_env(io.read("a")))' <"$env_file"

if [ -n "${GATEWAY:-}" ]; then
  # On a real gateway, leave nothing behind: the demo's .env goes away with its directory.
  say "8. clean up: revoke the application token too (a real gateway keeps it otherwise)"
  show token revoke --env-file "$env_file"
fi

say "done"
