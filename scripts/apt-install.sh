#!/usr/bin/env bash
# apt-install.sh <package>...: installs Debian packages for the tests (as root), without letting
# their services start: a package such as nginx or redis-server would otherwise start a
# system-wide server (port 80, 6379) that nothing here stops. The tests start their own, on
# free loopback ports, and stop them by PID. (policy-rc.d returning 101 is Debian's way of
# saying "do not start services now"; it is removed again when it was not there before.)
set -euo pipefail
[[ $(id -u) == 0 ]] && command -v apt-get >/dev/null || { echo "apt-install: needs root and apt-get" >&2; exit 1; }
policy=/usr/sbin/policy-rc.d
made=0
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    made=1
fi
trap '[[ $made == 1 ]] && rm -f "$policy"' EXIT
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
