#!/usr/bin/env bash
# slapd (OpenLDAP server) and the LDAP client tools, for the LDAP tests (`make ldap`).
#
# Idempotent: when /usr/sbin/slapd and ldapadd are already there it only prints their versions.
# Otherwise it installs Debian's `slapd` and `ldap-utils` packages (as root, or through `sudo -n`),
# running `apt-get update` only when the first install attempt fails. The tests start their own
# slapd (druid_access.testing.ldap) on a private configuration, so a system service that the
# package may have started is stopped again.
set -euo pipefail

PACKAGES=(slapd ldap-utils)
started=$(date +%s.%N)

elapsed() {
    awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}

have_tools() {
    [[ -x /usr/sbin/slapd ]] && command -v ldapadd >/dev/null 2>&1 && command -v ldapmodify >/dev/null 2>&1
}

report() {
    echo "slapd:   $(/usr/sbin/slapd -VV 2>&1 | head -n 1 | sed 's/^@(#) \$OpenLDAP: //; s/ \$$//')"
    echo "ldapadd: $(ldapadd -VV 2>&1 | head -n 1 | sed 's/^ldapadd: @(#) \$OpenLDAP: //; s/ \$$//')"
}

if have_tools; then
    report
    echo "slapd and ldap-utils already installed (checked in $(elapsed) s)"
    exit 0
fi

if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    cat >&2 <<'EOF'
error: slapd and ldap-utils are missing and cannot be installed: this is not root and
`sudo -n` is not available (no sudo, or it asks for a password). Install them as root:
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slapd ldap-utils
EOF
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: apt-get not found; install OpenLDAP's slapd and client tools (ldapadd, ldapmodify) by hand" >&2
    exit 1
fi

install_packages() {
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${PACKAGES[@]}"
}

echo "installing ${PACKAGES[*]} from the Debian archive ..."
if ! install_packages; then
    echo "apt-get install failed; refreshing the package lists and trying once more" >&2
    "${as_root[@]}" apt-get update
    install_packages
fi

# The package's postinst may start the system slapd (where policy-rc.d allows it); the tests
# run their own, so leave none behind. Only the service is stopped, never a test's slapd.
if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    "${as_root[@]}" systemctl stop slapd >/dev/null 2>&1 || true
    "${as_root[@]}" systemctl disable slapd >/dev/null 2>&1 || true
elif [[ -x /etc/init.d/slapd ]]; then
    "${as_root[@]}" /etc/init.d/slapd stop >/dev/null 2>&1 || true
fi

if ! have_tools; then
    echo "error: the packages installed but /usr/sbin/slapd or ldapadd is still missing" >&2
    exit 1
fi
report
echo "installed ${PACKAGES[*]} in $(elapsed) s"
