#!/bin/sh
# t1006-deterministic-threads: the same input gives the same stored
# objects whatever the number of worker threads and their timing (issue
# 15).  Copies of one empty repository (same secret: same cut points and
# ids) take the same two days of small messages with 1, 3 and 16
# threads, two of them at once on a busy machine; every record - id,
# kind, compression, pack offset, stored size - and the dictionary are
# the same in all.  (A pack's bytes are not: its name is random and is
# bound into its records' sealing.)  The first day trains the zstd
# dictionary in the middle of the stream, while up to 63 chunks are with
# the workers: whether those use it must not depend on which thread was
# quicker.
. "$(dirname "$0")/../lib/test-lib.sh"
require_mv
require_cmd sqlite3

# about 12 MiB of small messages a day: the dictionary is trained after
# the first 8 MiB of them, well before the end of day 1
gen --profile realmail --messages 2400 --days 2 --tar --out "$T/fx"
"$MV" init "$T/empty" >/dev/null
for r in t1 t3 t16; do
	cp -a "$T/empty" "$T/$r"
done

# day D into repository R with N threads
day()
{
	"$MV" backup "$T/$1" --name mail --quiet --threads "$2" --json \
		--time "2024-06-0${3}T03:00:00Z" volume="$T/fx/day$3.tar.gz" \
		>"$T/$1.day$3.json"
}

# the stored objects: the index's records, the dictionaries
objects()
{
	sqlite3 "$T/$1/index.db" "SELECT hex(id), type, comp, offset,
		stored_size, raw_size FROM chunks ORDER BY id" >"$T/$1.list"
	sqlite3 "$T/$1/index.db" "SELECT dict_id, hex(chunk) FROM dicts
		ORDER BY dict_id" >"$T/$1.dicts"
}

for d in 1 2; do
	day t1 1 "$d"
	# two at once: each other's load shifts the threads' timing
	day t3 3 "$d" &
	p3=$!
	day t16 16 "$d" || die "day $d with 16 threads failed"
	wait "$p3" || die "day $d with 3 threads failed"
done
for r in t1 t3 t16; do
	objects "$r"
done
[ -s "$T/t1.dicts" ] || die "day 1 trained no dictionary"
n=$(sqlite3 "$T/t1/index.db" "SELECT count(*) FROM chunks WHERE comp = 2")
say "$(wc -l <"$T/t1.list") records, $n compressed with the dictionary"
[ "$n" -gt 0 ] || die "no record was compressed with the dictionary"
for r in t3 t16; do
	cmp "$T/t1.list" "$T/$r.list" ||
		die "1 and ${r#t} threads stored different records"
	cmp "$T/t1.dicts" "$T/$r.dicts" ||
		die "1 and ${r#t} threads trained different dictionaries"
done
ok
