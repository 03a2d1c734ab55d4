#!/bin/sh
# t0054-install: `make install DESTDIR=...` puts the binary, its formats
# plugin, the mount helper, the man pages and the systemd units of the
# jobs (mailvault@, mailvault-check@ and their timers, mailvault-alert@)
# where they belong under PREFIX - the units in PREFIX/lib/systemd/system,
# which systemd searches - and nothing else; the installed units pass
# `systemd-analyze verify` from there, the installed binary runs, and the
# installed plugin is one it can load.  The mount unit, which names one
# site's paths, is not installed.  The build is not remade (make -o).
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv
require_cmd make systemd-analyze

ROOT=$T/root
U=$ROOT/usr/local/lib/systemd/system
make -s -C "$TOP" BUILD="$MV_BUILD_DIR" -o "$MV_BUILD_DIR/mailvault" \
	-o "$MV_BUILD_DIR/mailvault-formats.so" install DESTDIR="$ROOT" \
	PREFIX=/usr/local >"$T/install.out" 2>&1 ||
	die "make install failed: $(cat "$T/install.out")"

say "the installed files"
(cd "$ROOT" && find . -type f | sort) >"$T/files"
cat >"$T/want" <<'LIST'
./sbin/mount.fuse.mailvault
./usr/local/bin/mailvault
./usr/local/lib/mailvault/mailvault-formats.so
./usr/local/lib/systemd/system/mailvault-alert@.service
./usr/local/lib/systemd/system/mailvault-check@.service
./usr/local/lib/systemd/system/mailvault-check@.timer
./usr/local/lib/systemd/system/mailvault@.service
./usr/local/lib/systemd/system/mailvault@.timer
./usr/local/share/man/man1/mailvault-mount.1
./usr/local/share/man/man1/mailvault.1
./usr/local/share/man/man5/mailvault-format.5
./usr/local/share/man/man5/mailvault-job.5
LIST
diff "$T/want" "$T/files" || die "make install wrote other files than these"
for u in "$U"/*; do
	cmp "$u" "$TOP/contrib/${u##*/}" || die "${u##*/} differs from contrib/"
	[ "$(stat -c %a "$u")" = 644 ] || die "${u##*/} is not mode 644"
done
[ "$(stat -c %a "$ROOT/usr/local/bin/mailvault")" = 755 ] ||
	die "the binary is not mode 755"

say "the installed binary runs, with the installed plugin"
"$ROOT/usr/local/bin/mailvault" --version >"$T/version" ||
	die "the installed binary does not run"
mkdir -p "$T/src/d"
echo "one file" >"$T/src/d/f"
tar -cf "$T/src.tar" -C "$T/src" .
assert_ok "$MV" init "$T/repo" >/dev/null
MAILVAULT_PLUGIN=$ROOT/usr/local/lib/mailvault/mailvault-formats.so \
	assert_ok "$ROOT/usr/local/bin/mailvault" backup "$T/repo" --name t \
	--quiet tar=- <"$T/src.tar"
assert_ok "$MV" cat "$T/repo" t/latest:tar/d/f >"$T/f"
cmp "$T/f" "$T/src/d/f" || die "the backup through the installed plugin differs"

say "the installed units verify where they were installed"
# systemd-analyze --root looks for units in the root's search path, and
# for ExecStart= programs in the root: /bin/sh and the boot targets too
mkdir -p "$ROOT/bin" "$ROOT/usr/lib/systemd/system"
cp "$(command -v sh)" "$ROOT/bin/sh"
for d in /usr/lib/systemd/system /lib/systemd/system; do
	[ -d "$d" ] || continue
	cp "$d"/*.target "$d"/*.slice "$ROOT/usr/lib/systemd/system/" \
		2>/dev/null || true
done
[ -f "$ROOT/usr/lib/systemd/system/timers.target" ] ||
	die "no timers.target to verify the units against"
for inst in mailvault@stalwart.service mailvault@stalwart.timer \
	mailvault-check@stalwart.service mailvault-check@stalwart.timer \
	mailvault-alert@mailvault@stalwart.service.service; do
	set +e
	systemd-analyze verify --root="$ROOT" --man=no "$inst" \
		multi-user.target timers.target >"$T/verify.out" 2>&1
	rc=$?
	set -e
	[ "$rc" = 0 ] && [ ! -s "$T/verify.out" ] ||
		die "systemd-analyze verify $inst: $(cat "$T/verify.out")"
done
ok
