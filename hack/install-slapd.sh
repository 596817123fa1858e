#!/usr/bin/env bash
# Placeholder replaced in this session by the LDAP work.
set -euo pipefail
command -v slapd >/dev/null 2>&1 || [[ -x /usr/sbin/slapd ]] || { echo "slapd missing" >&2; exit 1; }
