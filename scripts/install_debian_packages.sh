#!/usr/bin/env bash
# install_debian_packages.sh PACKAGE... — installs those of the given Debian packages that are
# missing (apt-get, through sudo when not root); does nothing when all are there or without dpkg.
# Shared by setup.sh and fuzz.sh.
set -euo pipefail
command -v dpkg >/dev/null || exit 0
missing=()
for p in "$@"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
((${#missing[@]})) || exit 0
printf '[setup] installing Debian packages: %s\n' "${missing[*]}"
SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
