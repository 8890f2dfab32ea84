#!/bin/sh
# Renders ops/redis/users.acl (mounted read-only at /ops-redis) with the SHA-256 digests of
# $DIALER_REDIS_PASSWORD (the dialer user) and $DIALER_REDIS_ADMIN_PASSWORD (admin), drops its
# comments (Redis reads none in an ACL file), then runs the image's own entrypoint with the
# ACL file and the arguments given (see docker-compose.yml). No password is written in clear.
set -eu
: "${DIALER_REDIS_PASSWORD:?set DIALER_REDIS_PASSWORD}"
: "${DIALER_REDIS_ADMIN_PASSWORD:?set DIALER_REDIS_ADMIN_PASSWORD}"
digest() { printf %s "$1" | sha256sum | cut -d' ' -f1; }
acl=/tmp/users.acl
umask 077
grep -v -e '^#' -e '^[[:space:]]*$' /ops-redis/users.acl \
  | sed -e "s/\${STACK_REDIS_DIALER_SHA256}/$(digest "$DIALER_REDIS_PASSWORD")/" \
        -e "s/\${STACK_REDIS_ADMIN_SHA256}/$(digest "$DIALER_REDIS_ADMIN_PASSWORD")/" > "$acl"
if grep -q '\${STACK_' "$acl"; then
  echo "unrendered \${STACK_...} placeholders in $acl" >&2
  exit 1
fi
# the image's entrypoint runs redis-server as the redis user: it must read the file
chown redis "$acl" 2>/dev/null || chmod 644 "$acl"
exec docker-entrypoint.sh redis-server --aclfile "$acl" "$@"
