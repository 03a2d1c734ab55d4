# ceph.sh: a private single-host Ceph with an S3 endpoint (radosgw) for the
# s3:// tests (POSIX sh).  Source it after test-lib.sh:
#
#	. "$(dirname "$0")/../lib/test-lib.sh"
#	. "$TOP/tests/lib/ceph.sh"
#	ceph_start
#	ceph_bucket mybucket
#	"$MV" init "s3://mybucket/repo"
#
# ceph_start
#     One monitor, one OSD on memstore (everything in RAM: keep test data
#     small), radosgw on 127.0.0.1 and a free port; no cephx, no systemd,
#     every file under $CEPH_DIR.  Installs ceph-mon ceph-osd radosgw
#     ceph-common when they are missing and apt-get is there.  Creates an
#     S3 user and exports:
#       AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
#       CEPH_DIR  CEPH_RGW_PORT  CEPH_START_MS (how long the start took)
#     and unsets AWS_PROFILE, AWS_SESSION_TOKEN, AWS_ENDPOINT_URL_S3 and
#     points HOME at $CEPH_DIR/home (no ~/.aws of the real user).
# ceph_bucket NAME      create a bucket (PUT through curl --aws-sigv4)
# ceph_curl ARGS...     curl signed with the test user's keys
# ceph_stop             stop the daemons (also done at exit)
#
# Requires root.  What makes it start in a few seconds (issue 20):
# paxos propose interval 0.01, the OSD put into CRUSH by hand, one replica,
# tcp_nodelay on the beast frontend.

CEPH_PIDS=

_ceph_free_port()
{
	# Debian's python3 without site packages starts in 50 ms; a pyenv
	# shim first in PATH takes 700
	_ceph_py=python3
	[ -x /usr/bin/python3 ] && _ceph_py=/usr/bin/python3
	"$_ceph_py" -S -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

_ceph_now_ms()
{
	date +%s%3N
}

# _ceph_mark PHASE: when PHASE ended, in ms since the start, to start.times
_ceph_mark()
{
	echo "$1 $(($(_ceph_now_ms) - _ceph_t0))" >>"$CEPH_DIR/log/start.times"
}

_ceph_install()
{
	for _p in ceph-mon ceph-osd radosgw ceph-common; do
		dpkg-query -W -f='${Status}' "$_p" 2>/dev/null |
			grep -q 'ok installed' && continue
		command -v apt-get >/dev/null ||
			skip "no $_p and no apt-get to install it"
		say "installing $_p"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			ceph-mon ceph-osd radosgw ceph-common >/dev/null ||
			die "cannot install the ceph packages"
		break
	done
}

_ceph()
{
	ceph -c "$CEPH_CONF" --connect-timeout 20 "$@"
}

ceph_start()
{
	[ "$(id -u)" = 0 ] || skip "the ceph tests need root"
	_ceph_install
	command -v curl >/dev/null || die "no curl"
	_ceph_t0=$(_ceph_now_ms)
	CEPH_DIR=$T/ceph
	CEPH_CONF=$CEPH_DIR/ceph.conf
	mkdir -p "$CEPH_DIR/mon" "$CEPH_DIR/osd/0" "$CEPH_DIR/run" \
		"$CEPH_DIR/log" "$CEPH_DIR/rgw" "$CEPH_DIR/home"
	_ceph_fsid=$(cat /proc/sys/kernel/random/uuid)
	_ceph_mon_port=$(_ceph_free_port)
	CEPH_RGW_PORT=$(_ceph_free_port)
	cat >"$CEPH_CONF" <<EOF
[global]
fsid = $_ceph_fsid
mon host = [v2:127.0.0.1:$_ceph_mon_port]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
public network = 127.0.0.0/8
cluster network = 127.0.0.0/8
ms bind ipv4 = true
ms bind ipv6 = false
mon data avail warn = 1
mon data avail crit = 0
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
ms client mode = crc
ms cluster mode = crc
ms service mode = crc
ms mon service mode = crc
ms mon cluster mode = crc
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
paxos propose interval = 0.01
run dir = $CEPH_DIR/run
admin socket = $CEPH_DIR/run/\$name.asok
log file = $CEPH_DIR/log/\$name.log
pid file = $CEPH_DIR/run/\$name.pid
keyring = /dev/null
[mon]
mon data = $CEPH_DIR/mon/\$id
mon cluster log file = $CEPH_DIR/log/cluster.log
[osd]
osd data = $CEPH_DIR/osd/\$id
osd objectstore = memstore
memstore device bytes = 1073741824
osd crush update on start = false
osd max object name len = 460
osd max object namespace len = 64
[client.rgw.test]
rgw frontends = beast endpoint=127.0.0.1:$CEPH_RGW_PORT tcp_nodelay=1
rgw data = $CEPH_DIR/rgw
rgw dns name = 127.0.0.1
rgw thread pool size = 32
rgw multipart min part size = 65536
EOF
	monmaptool --create --clobber --fsid "$_ceph_fsid" \
		--addv a "[v2:127.0.0.1:$_ceph_mon_port]" "$CEPH_DIR/monmap" \
		>/dev/null || die "monmaptool failed"
	ceph-mon -c "$CEPH_CONF" --mkfs -i a --monmap "$CEPH_DIR/monmap" \
		>"$CEPH_DIR/log/mkfs-mon.out" 2>&1 ||
		die "ceph-mon --mkfs failed: $(cat "$CEPH_DIR/log/mkfs-mon.out")"
	ceph-mon -c "$CEPH_CONF" -i a -f >"$CEPH_DIR/log/mon.out" 2>&1 &
	CEPH_PIDS="$CEPH_PIDS $!"
	at_exit 'ceph_stop'
	_ceph_mark mon-started
	# the OSD's store is made while one run of the (slow to start, Python)
	# ceph command line creates osd.0 and puts it into CRUSH
	_ceph_osd=0
	ceph-osd -c "$CEPH_CONF" -i "$_ceph_osd" --mkfs \
		>"$CEPH_DIR/log/mkfs-osd.out" 2>&1 &
	_ceph_mkfs=$!
	printf 'osd create\nosd crush add osd.0 1.0 root=default\n' |
		_ceph >"$CEPH_DIR/log/osd-create.out" 2>&1 ||
		die "ceph osd create failed: $(cat "$CEPH_DIR/log/osd-create.out")"
	_ceph_mark osd-created
	wait "$_ceph_mkfs" ||
		die "ceph-osd --mkfs failed: $(tail -5 "$CEPH_DIR/log/mkfs-osd.out")"
	_ceph_mark osd-mkfs
	ceph-osd -c "$CEPH_CONF" -i "$_ceph_osd" -f \
		>"$CEPH_DIR/log/osd.out" 2>&1 &
	CEPH_PIDS="$CEPH_PIDS $!"
	_ceph_mark osd-started
	radosgw -c "$CEPH_CONF" -n client.rgw.test -f \
		>"$CEPH_DIR/log/rgw.out" 2>&1 &
	CEPH_PIDS="$CEPH_PIDS $!"
	AWS_ENDPOINT_URL=http://127.0.0.1:$CEPH_RGW_PORT
	AWS_ACCESS_KEY_ID=MVTESTACCESSKEY0001
	AWS_SECRET_ACCESS_KEY=mvtestsecretkey000000000000000000000001
	AWS_REGION=default
	HOME=$CEPH_DIR/home
	unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL_S3 \
		AWS_DEFAULT_REGION AWS_SHARED_CREDENTIALS_FILE || true
	export AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY \
		AWS_REGION HOME CEPH_DIR CEPH_RGW_PORT
	# radosgw-admin waits for the OSD; the user exists once it returns
	_ceph_i=0
	until radosgw-admin -c "$CEPH_CONF" -n client.rgw.test user create \
		--uid=mvtest --display-name=mvtest \
		--access-key="$AWS_ACCESS_KEY_ID" \
		--secret="$AWS_SECRET_ACCESS_KEY" \
		>"$CEPH_DIR/log/user.out" 2>&1; do
		_ceph_i=$((_ceph_i + 1))
		[ $_ceph_i -lt 60 ] ||
			die "radosgw-admin user create failed: $(tail -5 "$CEPH_DIR/log/user.out")"
		sleep 0.5
	done
	_ceph_mark user-created
	_ceph_i=0
	until [ "$(curl -s -o /dev/null -w '%{http_code}' \
		"$AWS_ENDPOINT_URL/" 2>/dev/null)" = 200 ]; do
		_ceph_i=$((_ceph_i + 1))
		[ $_ceph_i -lt 300 ] ||
			die "radosgw did not answer on $AWS_ENDPOINT_URL: $(tail -5 "$CEPH_DIR/log/rgw.out")"
		sleep 0.1
	done
	_ceph_mark rgw-answers
	CEPH_START_MS=$(($(_ceph_now_ms) - _ceph_t0))
	export CEPH_START_MS
	say "ceph up on $AWS_ENDPOINT_URL in $CEPH_START_MS ms"
}

ceph_curl()
{
	curl -sS --aws-sigv4 "aws:amz:$AWS_REGION:s3" \
		--user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
		-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"
}

ceph_bucket()
{
	_ceph_code=$(ceph_curl -o "$CEPH_DIR/log/bucket.out" \
		-w '%{http_code}' -X PUT "$AWS_ENDPOINT_URL/$1")
	[ "$_ceph_code" = 200 ] ||
		die "cannot create bucket $1: HTTP $_ceph_code $(cat "$CEPH_DIR/log/bucket.out")"
}

ceph_stop()
{
	[ -n "$CEPH_PIDS" ] || return 0
	# radosgw first, then the OSD, then the monitor
	for _ceph_p in $(echo $CEPH_PIDS | tr ' ' '\n' | sed -n '1!G;h;$p'); do
		kill "$_ceph_p" 2>/dev/null || true
	done
	for _ceph_p in $CEPH_PIDS; do
		_ceph_i=0
		while kill -0 "$_ceph_p" 2>/dev/null && [ $_ceph_i -lt 50 ]; do
			sleep 0.1
			_ceph_i=$((_ceph_i + 1))
		done
		kill -9 "$_ceph_p" 2>/dev/null || true
	done
	CEPH_PIDS=
}
