//! Counters and gauges of the daemon (smtpctl show stats, Prometheus).
