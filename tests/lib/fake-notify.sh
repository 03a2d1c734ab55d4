# fake-notify.sh: stand-ins for where `mailvault run` reports to, for the
# tests of jobs and their alert units (t0050, t0051).  Source it after
# test-lib.sh:
#
#	. "$TOP/tests/lib/fake-notify.sh"
#	hc_start
#	fake_sendmail
#
#   hc_start        start tests/lib/hc_server.py, a healthchecks.io
#                   stand-in: every request as "METHOD PATH" in
#                   $T/hc/requests, its body in $T/hc/body.K (K: the lines
#                   of requests before it); sets URL=http://127.0.0.1:PORT
#   fake_sendmail   a sendmail first on PATH ($T/bin) that appends the
#                   line "sendmail ARGS" and then the message to $T/mail

hc_start()
{
	require_cmd python3
	mkdir -p "$T/hc"
	: >"$T/hc/requests"
	bg python3 "$TOP/tests/lib/hc_server.py" "$T/hc"
	_fn_i=0
	while [ ! -f "$T/hc/port" ] && [ "$_fn_i" -lt 100 ]; do
		sleep 0.1
		_fn_i=$((_fn_i + 1))
	done
	[ -f "$T/hc/port" ] || die "the healthcheck stand-in did not start"
	URL=http://127.0.0.1:$(cat "$T/hc/port")
}

fake_sendmail()
{
	mkdir -p "$T/bin"
	cat >"$T/bin/sendmail" <<EOF_SENDMAIL
#!/bin/sh
echo "sendmail \$*" >>"$T/mail"
cat >>"$T/mail"
EOF_SENDMAIL
	chmod +x "$T/bin/sendmail"
	case :$PATH: in
	*:"$T/bin":*) ;;
	*) PATH=$T/bin:$PATH ;;
	esac
	export PATH
}
