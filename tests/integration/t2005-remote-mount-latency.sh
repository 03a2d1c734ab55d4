#!/bin/sh
# t2005-remote-mount-latency: rsync -a from a mount of an sftp://
# repository over a link with 20 ms round trips reproduces the tree that
# was backed up, with the pack range read-ahead (on by default for remote
# repositories), without it (-o pack_ahead=0) and with a small one.  Times
# are printed, not asserted (docs/MOUNT.md has the figures).
. "$(dirname "$0")/../lib/test-lib.sh"
. "$TOP/tests/lib/sshd.sh"

require_fuse
require_cmd rsync
sshd_start
sshd_trust
H=root@127.0.0.1:$SSHD_PORT
R=sftp://$H$T/repo
gen --small --days 2 --out "$T/fx"

assert_ok "$MV" init -i "$SSH_KEY" "$R"
assert_ok "$MV" backup -i "$SSH_KEY" "$R" --name mx --quiet \
	--time 2024-05-01T03:00:00Z vol="$T/fx/day2"

# 10 ms each way: 20 ms per round trip.  The kernels of these machines
# have no netem, so a proxy in front of sshd holds every block of bytes
# for 10 ms in each direction (pipelined: throughput is not limited, only
# latency is added).
cat >"$T/delay.py" <<'EOF2'
import asyncio, socket, sys, time
DELAY = float(sys.argv[3]) / 1000

async def pipe(r, w):
    q = asyncio.Queue()
    async def send():
        while True:
            due, data = await q.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            w.write(data)
            await w.drain()
        w.close()
    task = asyncio.ensure_future(send())
    while True:
        data = await r.read(65536)
        q.put_nowait((time.monotonic() + DELAY, data or None))
        if not data:
            break
    await task

async def client(r, w):
    try:
        ur, uw = await asyncio.open_connection("127.0.0.1", int(sys.argv[2]))
        await asyncio.gather(pipe(r, uw), pipe(ur, w))
    except Exception:
        w.close()

async def main():
    srv = await asyncio.start_server(client, "127.0.0.1", int(sys.argv[1]))
    async with srv:
        await srv.serve_forever()

asyncio.run(main())
EOF2
PPORT=$(_sshd_free_port)
python3 "$T/delay.py" "$PPORT" "$SSHD_PORT" 10 &
echo $! >>"$T/.tl-pids"
printf '[127.0.0.1]:%s %s\n' "$PPORT" \
	"$(cut -d' ' -f1,2 "$SSHD_HOST_PUB")" >>"$MAILVAULT_KNOWN_HOSTS"
R=sftp://root@127.0.0.1:$PPORT$T/repo
n=50
until rtt=$(python3 -c "import socket, time
s = socket.create_connection(('127.0.0.1', $PPORT))
s.recv(100)
t = time.perf_counter()
s.sendall(b'SSH-2.0-probe\r\n')
s.recv(4096)
print(int((time.perf_counter() - t) * 1000))" 2>/dev/null); do
	n=$((n - 1))
	[ "$n" -gt 0 ] || die "the delay proxy does not answer"
	sleep 0.1
done
say "round trip to sshd through the proxy: $rtt ms"
[ "$rtt" -ge 15 ] || die "no delay in effect (round trip $rtt ms)"

copy()
{
	rm -rf "$XDG_CACHE_HOME/mailvault"/*/chunks "$T/rsync" 2>/dev/null || true
	mount_mv "$R" "$T/mnt" -i "$SSH_KEY" "$@"
	t0=$(date +%s%N)
	rsync -aHAX --numeric-ids "$T/mnt/mx/latest/vol/" "$T/rsync/" ||
		die "rsync from the mount failed ($*)"
	t1=$(date +%s%N)
	unmount_mv "$T/mnt"
	say "rsync ${*:-(default)}: $(((t1 - t0) / 1000000)) ms"
	assert_same_tree "$T/fx/day2" "$T/rsync"
	(cd "$T/fx/day2" && find . -type f) | while read -r f; do
		cmp -s "$T/fx/day2/$f" "$T/rsync/$f" || die "$f differs"
	done
}

say "with the pack range read-ahead (default)"
copy
say "without it"
copy -o pack_ahead=0
say "with a small range"
copy -o pack_ahead=1
ok
