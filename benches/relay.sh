#!/usr/bin/env bash
# Relay throughput: smtp-source sends N messages (1 KiB, concurrency 20)
# into an MTA that relays everything to Postfix's smtp-sink on loopback
# (a smarthost `relay host smtp://…`, connections reused). The same load
# goes through a private Postfix (relayhost = the same sink) in the same
# run. A case ends when the sink has written every message.
#
# Usage: benches/relay.sh [MESSAGES]   (default 2000)
#        BENCH_SIZES="1024" BENCH_CONCS="20" BENCH_REPEAT=3
# Needs: postfix (smtp-source, smtp-sink), built wasmtpd.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
BIN=${WASMTPD_BIN:-target/release/wasmtpd}
cargo build -q --release --bin wasmtpd
command -v smtp-sink >/dev/null || { echo "smtp-sink missing: apt-get install postfix"; exit 1; }

WORK=$(mktemp -d /tmp/wasmtpd-rbench.XXXXXX)
chmod 755 "$WORK"
WPORT=22545
PPORT=22546
SINK_W=22547
SINK_P=22548
trap 'kill ${PIDS:-} 2>/dev/null || true; postfix -c "$WORK/postfix" stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

# One sink per MTA, each writing one file per delivered message.
mkdir -p "$WORK/sink-w" "$WORK/sink-p"
chown nobody "$WORK/sink-w" "$WORK/sink-p"
smtp-sink -u nobody -d "$WORK/sink-w/%M." "127.0.0.1:$SINK_W" 256 &
PIDS="$!"
smtp-sink -u nobody -d "$WORK/sink-p/%M." "127.0.0.1:$SINK_P" 256 &
PIDS="$PIDS $!"

# --- wasmtpd -----------------------------------------------------------------
mkdir -p "$WORK/w"
cat > "$WORK/w/smtpd.conf" <<CONF
listen on 127.0.0.1 port $WPORT
action "out" relay host "smtp+notls://127.0.0.1:$SINK_W"
match from any for any action "out"
CONF
"$BIN" -d -f "$WORK/w/smtpd.conf" --spool "$WORK/w/spool" 2>"$WORK/w/log" &
PIDS="$PIDS $!"

# --- Postfix -------------------------------------------------------------------
P="$WORK/postfix"
mkdir -p "$P/queue" "$P/data"
chown postfix "$P/data"
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
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:$SINK_P
smtp_tls_security_level = none
CONF
sed -e "s/^smtp      inet.*/$PPORT      inet  n       -       n       -       -       smtpd/" \
    -e 's/^\([a-z]*  *\(unix\|inet\|fifo\|pass\|unix-dgram\)  *[-yn]  *[-yn]  *\)[-yn]/\1n/' \
    /etc/postfix/master.cf > "$P/master.cf"
script -qc "postfix -c $P start" /dev/null >"$WORK/postfix-start.log" 2>&1 || true

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 100); do up $WPORT && up $PPORT && up $SINK_W && up $SINK_P && break; sleep 0.1; done
up $WPORT || { echo "wasmtpd did not start:"; cat "$WORK/w/log"; exit 1; }
up $PPORT || { echo "postfix did not start:"; cat "$WORK/postfix-start.log"; exit 1; }

count() { find "$1" -type f | wc -l; }
run_load() { # PORT SIZE CONC SINKDIR -> msgs/s
    local before; before=$(count "$4")
    local t0; t0=$(date +%s.%N)
    smtp-source -l "$2" -m "$N" -s "$3" -f bench@example.org -t user@example.net "127.0.0.1:$1"
    while [ "$(count "$4")" -lt $((before + N)) ]; do sleep 0.05; done
    echo "$N / ($(date +%s.%N) - $t0)" | bc -l
}
sessions() { grep -c "smtp-out: Connecting" "$WORK/w/log" || true; }

echo "== relay throughput to smtp-sink, $N messages per case (msgs/s) =="
printf "%-8s %-6s %12s %12s %8s %18s\n" size conc wasmtpd postfix ratio "msgs/new conns"
for size in ${BENCH_SIZES:-1024}; do
  for conc in ${BENCH_CONCS:-20}; do
    for _ in $(seq "${BENCH_REPEAT:-1}"); do
      s0=$(sessions)
      w=$(run_load $WPORT "$size" "$conc" "$WORK/sink-w")
      s1=$(sessions)
      p=$(run_load $PPORT "$size" "$conc" "$WORK/sink-p")
      # New connections this case (earlier ones may still be reused).
      conns=$((s1 - s0))
      printf "%-8s %-6s %12.0f %12.0f %8.2f %18s\n" "$size" "$conc" "$w" "$p" \
          "$(echo "$w / $p" | bc -l)" "$N/$conns"
    done
  done
done
