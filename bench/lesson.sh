#!/usr/bin/env bash
# The lesson's way, as a script: the curl + jq commands of the Red Hat Developer learning path
# "Integrate Red Hat Developer Hub with Red Hat Ansible Automation Platform" (lesson "Generate
# personal access tokens") to look the OAuth application up by name, create an application
# token for it and append both values to .env. This is the baseline of bench/run.sh's lesson
# benchmarks, kept as the lesson writes it (curl -sk, the password in curl's argv, one page of
# applications, `>> .env`): it is measured, not recommended. It only ever runs against the
# throwaway emulator that bench/run.sh starts, with a throwaway password.
# With --with-pat it first does the lesson's other step, a personal access token (scope write)
# appended as AAP_PAT: the whole lesson, 3 requests (the "remote" benchmark); without it, the
# application token only (the "lesson" benchmark).
# Environment: AAP_URL, AAP_PASSWORD; $1: the env file.
set -u
if [ "${1:-}" = "--with-pat" ]; then
  WITH_PAT=1
  shift
fi
ENV_FILE=${1:-.env}

if [ -n "${WITH_PAT:-}" ]; then
  AAP_PAT=$(curl -sk -X POST \
    "${AAP_URL}/api/gateway/v1/tokens/" \
    -u "admin:${AAP_PASSWORD}" \
    -H "Content-Type: application/json" \
    -d '{"description": "RHDH PAT", "scope": "write"}' | jq -r '.token')

  echo "AAP_PAT=${AAP_PAT}" >> "$ENV_FILE"
fi

APP_ID=$(curl -sk \
  "${AAP_URL}/api/gateway/v1/applications/?name=RHDH%20Integration" \
  -u "admin:${AAP_PASSWORD}" | jq -r '.results[0].id')

TOKEN_RESPONSE=$(curl -sk -X POST \
  "${AAP_URL}/api/gateway/v1/tokens/" \
  -u "admin:${AAP_PASSWORD}" \
  -H "Content-Type: application/json" \
  -d "{\"description\": \"RHDH Integration\", \"application\": ${APP_ID}, \"scope\": \"write\"}")

AAP_TOKEN=$(echo "$TOKEN_RESPONSE" | jq -r '.token')
REFRESH_TOKEN=$(echo "$TOKEN_RESPONSE" | jq -r '.refresh_token')

echo "AAP_TOKEN=${AAP_TOKEN}" >> "$ENV_FILE"
echo "REFRESH_TOKEN=${REFRESH_TOKEN}" >> "$ENV_FILE"
