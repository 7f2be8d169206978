#!/bin/bash
unshare --user --map-user=101 --map-group=104 id
cat /proc/self/uid_map
D=$TEST_TMPDIR/pg; S=$(mktemp -d /tmp/pgsock-XXXXXX)
time unshare --user --map-user=101 --map-group=104 /usr/lib/postgresql/15/bin/initdb -D $D -U postgres -A trust --no-sync -E UTF8 --locale=C > $TEST_TMPDIR/initdb.log 2>&1 ; echo initdb rc=$?; tail -3 $TEST_TMPDIR/initdb.log
unshare --user --map-user=101 --map-group=104 /usr/lib/postgresql/15/bin/postgres -D $D -k $S -c listen_addresses= -c fsync=off > $TEST_TMPDIR/pg.log 2>&1 &
P=$!
for i in $(seq 50); do pg_isready -h $S -q && break; sleep 0.1; done; echo waited $i
psql -h $S -U postgres -c 'select current_user, version()' postgres
kill -INT $P; wait $P; echo stopped rc=$?; cat $TEST_TMPDIR/pg.log | tail -5; du -sh $D; rm -rf $S
