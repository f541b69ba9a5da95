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

case "$users_file" in
postgres://* | postgresql://*)
    # Accounts in PostgreSQL, shared by every instance: each one may try to add the first
    # user; all but the first find it there already, which is fine.
    if [ "$1" = serve ] && [ -n "${FERRY_INIT_USER:-}" ]; then
        password="${FERRY_INIT_PASSWORD:-}"
        if [ -n "${FERRY_INIT_PASSWORD_FILE:-}" ]; then
            password=$(head -n 1 "$FERRY_INIT_PASSWORD_FILE")
        fi
        if [ -n "$password" ]; then
            printf '%s\n' "$password" |
                ferry user add "$FERRY_INIT_USER" --password-stdin 2>/dev/null ||
                echo "ferry-entrypoint: $FERRY_INIT_USER not added (the account exists already, or the database is not reachable yet)" >&2
        fi
    fi
    users_file=""
    ;;
esac

if [ "$1" = serve ] && [ -n "$users_file" ] && [ ! -e "$users_file" ]; then
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
