#!/bin/sh
# Install the Debian 12 packages mailvault needs to build, test and benchmark.
# Usage: tools/install-deps.sh [build|test|bench]   (each includes the ones before)
set -eu
what=${1:-test}
build="build-essential make python3 pkg-config libfuse3-dev fuse3 libarchive-dev libssh2-1-dev
	libsqlite3-dev sqlite3 libxxhash-dev libzstd-dev libssl-dev liblz4-dev libacl1-dev libjansson-dev
	libgmime-3.0-dev libglib2.0-dev libisal-dev libsodium-dev libinih-dev
	libcurl4-gnutls-dev libetpan-dev"
# Everything the tests call that a new machine (Debian's essential packages
# and apt) may lack: tzdata for the policy tests' Europe/Berlin, mount for
# tmpfs and bind mounts, passwd for the sftp-only user (useradd), openssl
# and dovecot-core for mail_crypt, util-linux for mountpoint and setpriv,
# procps for pgrep (docs/CI.md).
test="libcmocka-dev python3 openssh-server openssh-client attr acl rsync
	zstd xz-utils bzip2 gzip lz4 dovecot-core valgrind cppcheck clang-format
	libclang-rt-14-dev clang file psmisc borgbackup b3sum tzdata mount passwd
	openssl util-linux procps dovecot-imapd systemd curl
	ceph-mon ceph-osd radosgw ceph-common"
bench="borgbackup python3-pyfuse3 restic archivemount gnuplot-nox hyperfine time isal"
pkgs=$build
case $what in
build) ;;
test) pkgs="$pkgs $test" ;;
bench) pkgs="$pkgs $test $bench" ;;
*) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac
missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages:$missing (run as root)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
