#!/usr/bin/env bash
# Installs, as root, the Debian packages the test suite needs beyond Node and a C compiler:
#   libsystemd-dev          the C harnesses that compare sd-activate with libsystemd's own functions
#   systemd                 the real user manager the end-to-end tests start (not as PID 1)
#   socat                   talks to the sockets the end-to-end tests pass
#   gcc-aarch64-linux-gnu   cross-compiles the linux-arm64 prebuilt binary
#   musl-tools              musl-gcc, for the linux-x64 musl prebuilt binary
#   file, binutils          file(1) and readelf(1) check the prebuilt binaries
#   qemu-user, libstdc++6-arm64-cross   run Node.js for arm64 on the arm64 binary
# and the programs the conformance suite (test/conformance) runs under both managers:
#   dbus                    dbus-daemon --address=systemd: and dbus-send
#   redis-server            redis-server --supervised systemd
#   python3-gunicorn        gunicorn, Type=notify on a passed socket
#   python3-systemd         systemd.daemon, as python services use it
#   lighttpd                server.systemd-socket-activation
#   openssh-server          sshd -i, inetd style (Accept=yes, StandardInput=socket)
#   unbound                 use-systemd: yes (LISTEN_FDS only when sd_booted())
#   knot-resolver           kresd, Type=notify with a watchdog
#   php-fpm                 Type=notify with periodic STATUS=
# Packages already installed are left alone; nothing is fetched when all are there. The daemons'
# packages must not start or enable them on the machine that runs the tests: a policy-rc.d that
# refuses every action (exit 101) is in place while apt-get installs, unless one is there already.
set -euo pipefail
need=()
for pkg in libsystemd-dev systemd socat gcc-aarch64-linux-gnu musl-tools file binutils qemu-user libstdc++6-arm64-cross dbus redis-server python3-gunicorn python3-systemd lighttpd openssh-server unbound knot-resolver php-fpm; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# Left by scripts/debian-test-deps.sh while it installs: no daemon is started.\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
