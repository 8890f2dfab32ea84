#!/bin/sh
# Renders the ${STACK_...} placeholders of /pbx-config/*.conf (pbx-config/asterisk, mounted
# read-only) into $STACK_CONF_DIR, then runs Asterisk in the foreground.
# Ports and the AMI secret come from the environment (see docker-compose.yml).
set -eu

: "${STACK_NAME:=docker}"
: "${STACK_CONF_DIR:=/etc/dialer}"
: "${STACK_AMI_PORT:=5038}"
: "${STACK_AMI_USER:=dialer}"
: "${STACK_AMI_SECRET:?set DIALER_AMI_SECRET for docker-compose}"
: "${STACK_SIP_PORT:=5060}"
: "${STACK_SIPP_PORT:=5070}"
: "${STACK_DEAD_PORT:=5099}"
: "${STACK_HTTP_PORT:=8088}"
: "${STACK_RTP_START:=10000}"
: "${STACK_RTP_END:=10399}"
STACK_MOD_DIR=$(ls -d /usr/lib/*/asterisk/modules | head -n 1)
STACK_VARLIB_DIR=/var/lib/dialer/lib
STACK_SPOOL_DIR=/var/lib/dialer/spool
STACK_RUN_DIR=/var/lib/dialer/run
STACK_LOG_DIR=/var/lib/dialer/log
export STACK_NAME STACK_CONF_DIR STACK_AMI_PORT STACK_AMI_USER STACK_AMI_SECRET STACK_SIP_PORT \
  STACK_SIPP_PORT STACK_DEAD_PORT STACK_HTTP_PORT STACK_RTP_START STACK_RTP_END STACK_MOD_DIR \
  STACK_VARLIB_DIR STACK_SPOOL_DIR STACK_RUN_DIR STACK_LOG_DIR

mkdir -p "$STACK_CONF_DIR" "$STACK_VARLIB_DIR/cache" "$STACK_SPOOL_DIR" "$STACK_RUN_DIR" \
  "$STACK_LOG_DIR"
names=$(env | sed -n 's/^\(STACK_[A-Z0-9_]*\)=.*/${\1}/p' | tr '\n' ' ')
for f in /pbx-config/*.conf; do
  envsubst "$names" < "$f" > "$STACK_CONF_DIR/$(basename "$f")"
done
if grep -lE '\$\{STACK_[A-Z0-9_]+\}' "$STACK_CONF_DIR"/*.conf; then
  echo "unrendered \${STACK_...} placeholders in the files above" >&2
  exit 1
fi
exec asterisk -f -C "$STACK_CONF_DIR/asterisk.conf" "$@"
