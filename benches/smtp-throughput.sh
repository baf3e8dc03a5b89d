#!/usr/bin/env bash
# End-to-end SMTP throughput: smtp-source (Postfix's load generator) sends
# N messages at concurrency C with 1 KiB and 100 KiB bodies; a run ends
# when every message is a file in the maildir's new/. The same load goes
# to a private Postfix instance delivering to maildir through virtual(8),
# set up beside it, so every figure is a ratio from one run.
#
# Both sides fsync before the 250 (Postfix: each queue file; wasmtpd:
# group commit). Prints one line per case: msgs/s for each and the ratio.
#
# Usage: benches/smtp-throughput.sh [MESSAGES]   (default 2000)
#        BENCH_SIZES="1024" BENCH_CONCS="20" to run fewer cases;
#        BENCH_REPEAT=3 to run each case several times (alternating).
# Needs: postfix (smtp-source), built wasmtpd (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
# Both MTAs deliver as this user (Postfix's virtual(8) refuses root).
BENCH_USER=${BENCH_USER:-nobody}
BUID=$(id -u "$BENCH_USER"); BGID=$(id -g "$BENCH_USER")
BIN=${WASMTPD_BIN:-target/release/wasmtpd}
[ -x "$BIN" ] || cargo build --release --bin wasmtpd
command -v smtp-source >/dev/null || { echo "smtp-source missing: apt-get install postfix"; exit 1; }

WORK=$(mktemp -d /tmp/wasmtpd-bench.XXXXXX)
trap 'stop_all' EXIT
WPORT=22525
PPORT=22526

stop_all() {
    [ -n "${WPID:-}" ] && kill "$WPID" 2>/dev/null || true
    postfix -c "$WORK/postfix" stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}

count_new() { find "$1" -path '*/new/*' -type f 2>/dev/null | wc -l; }

# Sends N messages of SIZE bytes at concurrency C to PORT and waits until
# N more files exist under DIR; prints messages per second.
run_load() {
    local port=$1 size=$2 conc=$3 dir=$4
    local before; before=$(count_new "$dir")
    local start; start=$(date +%s.%N)
    smtp-source -l "$size" -m "$N" -s "$conc" -f bench@example.org -t user@example.org "127.0.0.1:$port"
    local want=$((before + N))
    while [ "$(count_new "$dir")" -lt "$want" ]; do sleep 0.05; done
    local end; end=$(date +%s.%N)
    echo "$N / ($end - $start)" | bc -l
}

# --- wasmtpd ---------------------------------------------------------------
mkdir -p "$WORK/w/mail"
chmod 755 "$WORK"
chown "$BUID:$BGID" "$WORK/w/mail"
cat > "$WORK/w/smtpd.conf" <<CONF
table users { "@" = "$BENCH_USER" }
listen on 127.0.0.1 port $WPORT
action "md" maildir "$WORK/w/mail/%{dest.user}/Maildir" virtual <users>
match from any for domain "example.org" action "md"
CONF
"$BIN" -d -f "$WORK/w/smtpd.conf" --spool "$WORK/w/spool" 2>"$WORK/w/log" &
WPID=$!

# --- Postfix -----------------------------------------------------------------
P="$WORK/postfix"
mkdir -p "$P/conf" "$P/queue" "$P/data" "$P/mail"
chown postfix "$P/data"
chown -R "$BUID:$BGID" "$P/mail"
cat > "$P/main.cf" <<CONF
compatibility_level = 3.6
config_directory = $P
queue_directory = $P/queue
data_directory = $P/data
maillog_file = $P/maillog
maillog_file_prefixes = $P
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
myhostname = bench.localdomain
mynetworks = 127.0.0.0/8
in_flow_delay = 0
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
virtual_mailbox_domains = example.org
virtual_mailbox_base = $P/mail
virtual_mailbox_maps = static:example.org/Maildir/
virtual_uid_maps = static:$BUID
virtual_gid_maps = static:$BGID
smtpd_relay_restrictions = permit_mynetworks, reject
CONF
sed -e "s/^smtp      inet.*/$PPORT      inet  n       -       n       -       -       smtpd/" \
    -e 's/^\([a-z]*  *\(unix\|inet\|fifo\|pass\|unix-dgram\)  *[-yn]  *[-yn]  *\)[-yn]/\1n/' \
    /etc/postfix/master.cf > "$P/master.cf"
# postfix(1) reports start-up errors only to a terminal or syslog.
script -qc "postfix -c $P start" /dev/null >"$WORK/postfix-start.log" 2>&1 || true

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for i in $(seq 100); do
    up $WPORT && up $PPORT && break
    sleep 0.1
done
up $WPORT || { echo "wasmtpd did not start:"; cat "$WORK/w/log"; exit 1; }
up $PPORT || { echo "postfix did not start:"; cat "$WORK/postfix-start.log" "$P/maillog"; exit 1; }

printf "%-8s %-6s %12s %12s %8s\n" size conc wasmtpd/s postfix/s ratio
for size in ${BENCH_SIZES:-1024 102400}; do
    for conc in ${BENCH_CONCS:-1 20 100}; do
      for _ in $(seq "${BENCH_REPEAT:-1}"); do
        w=$(run_load $WPORT $size $conc "$WORK/w/mail")
        p=$(run_load $PPORT $size $conc "$P/mail")
        printf "%-8s %-6s %12.0f %12.0f %8.2f\n" "$size" "$conc" "$w" "$p" "$(echo "$w / $p" | bc -l)"
      done
    done
done
