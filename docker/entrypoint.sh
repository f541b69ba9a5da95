#!/bin/sh
# Entrypoint of the Ferry image: runs `ferry ARGS...` (default `ferry serve`). Before the
# first `serve` with no users file, it creates the first account from FERRY_INIT_USER and
# FERRY_INIT_PASSWORD (or FERRY_INIT_PASSWORD_FILE, e.g. a Docker secret), so that the image
# never needs a published password. An existing users file is never touched.
set -eu

# Ferry's own exit status for a configuration error.
EXIT_CONFIG=2

[ "$#" -gt 0 ] || set -- serve
users_file="${FERRY_USERS:-/etc/ferry/users.toml}"

if [ "$1" = serve ] && [ ! -e "$users_file" ]; then
    password="${FERRY_INIT_PASSWORD:-}"
    if [ -n "${FERRY_INIT_PASSWORD_FILE:-}" ]; then
        password=$(head -n 1 "$FERRY_INIT_PASSWORD_FILE")
    fi
    if [ -z "${FERRY_INIT_USER:-}" ] || [ -z "$password" ]; then
        echo "ferry-entrypoint: there is no users file at $users_file." >&2
        echo "ferry-entrypoint: set FERRY_INIT_USER and FERRY_INIT_PASSWORD (or FERRY_INIT_PASSWORD_FILE) to create the first user, or mount a users file there." >&2
        exit "$EXIT_CONFIG"
    fi
    printf '%s\n' "$password" |
        ferry user add "$FERRY_INIT_USER" --users "$users_file" --password-stdin
fi

# The server has no use for the initial password: keep it out of its environment.
unset FERRY_INIT_PASSWORD FERRY_INIT_PASSWORD_FILE
exec ferry "$@"
