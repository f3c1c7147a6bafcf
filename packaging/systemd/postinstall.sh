#!/bin/sh
# Package post-install script (deb and rpm, through nfpm): create the xfer
# user and /srv/xfer, and make systemd see the new units. Starting or
# enabling a service is left to the administrator.
set -e
if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers xfer.conf
fi
if command -v systemd-tmpfiles >/dev/null 2>&1; then
	systemd-tmpfiles --create xfer.conf
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload
fi
