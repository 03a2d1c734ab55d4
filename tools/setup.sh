#!/bin/sh
# setup.sh: the README's two commands, for a fresh Debian 12 machine (root).
#
#   sh tools/setup.sh demo   install the build packages, build, and run the
#                            main job on the embedded default (tools/demo.sh)
#   sh tools/setup.sh ci     install the test packages and run `make ci`:
#                            lint, unit and integration tests, then all of
#                            it again under ASan+UBSan (what .ci/run runs);
#                            every test must run: a skip fails (docs/CI.md)
#
# Only Debian packages are installed (tools/install-deps.sh); nothing else
# is fetched.
set -eu
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
what=${1:-}
case $what in
demo) sh tools/install-deps.sh build ;;
ci) sh tools/install-deps.sh test ;;
*)
	echo "usage: sh tools/setup.sh demo|ci" >&2
	exit 2
	;;
esac
case $what in
demo)
	make -j"$(nproc)" all </dev/null
	exec sh tools/demo.sh </dev/null
	;;
ci) exec make ci </dev/null ;;
esac
