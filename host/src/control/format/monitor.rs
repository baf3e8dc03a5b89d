//! `monitor`: once a second, what changed in the daemon's counters, under
//! smtpctl's two-line column header (repeated every
//! [`HEADER_EVERY`] rows, after a blank line, as smtpctl does).
//!
//! # Stats contract
//!
//! A row is computed from two snapshots of the stats side
//! (`BTreeMap<String, i64>`, a missing key counting as 0). All keys are
//! **cumulative counters since the daemon started**, never decremented:
//!
//! | key                           | counts                                   |
//! |-------------------------------|------------------------------------------|
//! | `smtp.session.connect`        | client connections accepted              |
//! | `smtp.session.disconnect`     | client connections closed                |
//! | `queue.envelope.enqueued`     | envelopes committed to the queue         |
//! | `queue.envelope.dequeued`     | envelopes removed from the queue, any way|
//! | `scheduler.delivery.ok`       | deliveries/relays that succeeded         |
//! | `scheduler.delivery.tempfail` | attempts that failed temporarily         |
//! | `scheduler.delivery.permfail` | attempts that failed permanently         |
//! | `scheduler.delivery.loop`     | envelopes failed as mail loops           |
//! | `scheduler.envelope.expired`  | envelopes that expired                   |
//! | `scheduler.envelope.removed`  | envelopes removed by the operator        |
//! | `queue.bounce`                | bounces generated                        |
//!
//! The two `curr` columns are derived (connect − disconnect, enqueued −
//! dequeued), as smtpctl derives them, so no gauge is needed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Stats keys this module reads; see the module docs.
pub mod keys {
    pub const SESSION_CONNECT: &str = "smtp.session.connect";
    pub const SESSION_DISCONNECT: &str = "smtp.session.disconnect";
    pub const ENVELOPE_ENQUEUED: &str = "queue.envelope.enqueued";
    pub const ENVELOPE_DEQUEUED: &str = "queue.envelope.dequeued";
    pub const DELIVERY_OK: &str = "scheduler.delivery.ok";
    pub const DELIVERY_TEMPFAIL: &str = "scheduler.delivery.tempfail";
    pub const DELIVERY_PERMFAIL: &str = "scheduler.delivery.permfail";
    pub const DELIVERY_LOOP: &str = "scheduler.delivery.loop";
    pub const ENVELOPE_EXPIRED: &str = "scheduler.envelope.expired";
    pub const ENVELOPE_REMOVED: &str = "scheduler.envelope.removed";
    pub const BOUNCE: &str = "queue.bounce";
    /// Levels, when the daemon has them.
    pub const SESSIONS: &str = "smtp.session";
    pub const ENVELOPES: &str = "scheduler.envelope";
}

/// smtpctl repeats the header every 25 rows.
pub const HEADER_EVERY: usize = 25;

/// One `monitor` row: two current levels and the rest changes since the
/// previous snapshot. `--json` prints this.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorRow {
    /// Client sessions open now.
    pub sessions: i64,
    pub connects: i64,
    pub disconnects: i64,
    /// Envelopes in the queue now.
    pub envelopes: i64,
    pub enqueued: i64,
    pub dequeued: i64,
    pub ok: i64,
    pub tempfail: i64,
    pub permfail: i64,
    pub loops: i64,
    pub expired: i64,
    pub removed: i64,
    pub bounces: i64,
}

impl MonitorRow {
    /// The row between snapshot `prev` and snapshot `cur`. For the first
    /// row pass an empty `prev`: deltas are then totals, as smtpctl shows.
    /// A counter lower than before means the daemon restarted: its
    /// delta is then its new value.
    pub fn from_snapshots(prev: &BTreeMap<String, i64>, cur: &BTreeMap<String, i64>) -> MonitorRow {
        let get = |m: &BTreeMap<String, i64>, k: &str| m.get(k).copied().unwrap_or(0);
        let delta = |k: &str| {
            let (p, c) = (get(prev, k), get(cur, k));
            if c >= p {
                c - p
            } else {
                c
            }
        };
        MonitorRow {
            sessions: cur.get(keys::SESSIONS).copied().unwrap_or_else(|| {
                get(cur, keys::SESSION_CONNECT) - get(cur, keys::SESSION_DISCONNECT)
            }),
            connects: delta(keys::SESSION_CONNECT),
            disconnects: delta(keys::SESSION_DISCONNECT),
            // The scheduler's count includes what was recovered at start.
            envelopes: cur.get(keys::ENVELOPES).copied().unwrap_or_else(|| {
                get(cur, keys::ENVELOPE_ENQUEUED) - get(cur, keys::ENVELOPE_DEQUEUED)
            }),
            enqueued: delta(keys::ENVELOPE_ENQUEUED),
            dequeued: delta(keys::ENVELOPE_DEQUEUED),
            ok: delta(keys::DELIVERY_OK),
            tempfail: delta(keys::DELIVERY_TEMPFAIL),
            permfail: delta(keys::DELIVERY_PERMFAIL),
            loops: delta(keys::DELIVERY_LOOP),
            expired: delta(keys::ENVELOPE_EXPIRED),
            removed: delta(keys::ENVELOPE_REMOVED),
            bounces: delta(keys::BOUNCE),
        }
    }
}

/// smtpctl's two header lines (group names, then column names), each
/// ending with a newline.
pub fn monitor_header() -> String {
    "--- client ---  -- envelope --   ---- relay/delivery --- ------- misc -------\n\
     curr conn disc  curr  enq  deq   ok tmpfail prmfail loop expire remove bounce\n"
        .to_string()
}

/// One row, right-aligned under the header's column names, without a
/// trailing newline. Numbers wider than their column push the rest right,
/// as printf does.
pub fn monitor_line(r: &MonitorRow) -> String {
    format!(
        "{:>4} {:>4} {:>4}  {:>4} {:>4} {:>4} {:>4} {:>7} {:>7} {:>4} {:>6} {:>6} {:>6}",
        r.sessions,
        r.connects,
        r.disconnects,
        r.envelopes,
        r.enqueued,
        r.dequeued,
        r.ok,
        r.tempfail,
        r.permfail,
        r.loops,
        r.expired,
        r.removed,
        r.bounces,
    )
}

/// Keeps the row count so the header comes back every [`HEADER_EVERY`]
/// rows, preceded by a blank line after the first time.
#[derive(Debug, Default)]
pub struct MonitorPrinter {
    rows: usize,
}

impl MonitorPrinter {
    pub fn new() -> MonitorPrinter {
        MonitorPrinter::default()
    }

    /// The text to print for `row`: the header when due, then the line;
    /// ends with a newline.
    pub fn render(&mut self, row: &MonitorRow) -> String {
        let mut out = String::new();
        if self.rows.is_multiple_of(HEADER_EVERY) {
            if self.rows != 0 {
                out.push('\n');
            }
            out.push_str(&monitor_header());
        }
        self.rows += 1;
        out.push_str(&monitor_line(row));
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn row_from_two_snapshots() {
        let prev = snap(&[
            (keys::SESSION_CONNECT, 10),
            (keys::SESSION_DISCONNECT, 8),
            (keys::ENVELOPE_ENQUEUED, 100),
            (keys::ENVELOPE_DEQUEUED, 90),
            (keys::DELIVERY_OK, 50),
        ]);
        let cur = snap(&[
            (keys::SESSION_CONNECT, 13),
            (keys::SESSION_DISCONNECT, 9),
            (keys::ENVELOPE_ENQUEUED, 105),
            (keys::ENVELOPE_DEQUEUED, 92),
            (keys::DELIVERY_OK, 52),
            (keys::DELIVERY_TEMPFAIL, 1),
            (keys::BOUNCE, 1),
        ]);
        let row = MonitorRow::from_snapshots(&prev, &cur);
        assert_eq!(
            row,
            MonitorRow {
                sessions: 4,
                connects: 3,
                disconnects: 1,
                envelopes: 13,
                enqueued: 5,
                dequeued: 2,
                ok: 2,
                tempfail: 1,
                bounces: 1,
                ..MonitorRow::default()
            }
        );
        assert_eq!(
            monitor_line(&row),
            "   4    3    1    13    5    2    2       1       0    0      0      0      1"
        );
    }

    #[test]
    fn restart_shows_new_value_not_a_negative() {
        let prev = snap(&[(keys::DELIVERY_OK, 500)]);
        let cur = snap(&[(keys::DELIVERY_OK, 3)]);
        assert_eq!(MonitorRow::from_snapshots(&prev, &cur).ok, 3);
    }

    #[test]
    fn columns_line_up_under_the_header() {
        let header = monitor_header();
        let names = header.lines().nth(1).unwrap();
        let line = monitor_line(&MonitorRow {
            sessions: 1,
            connects: 2,
            disconnects: 3,
            envelopes: 4,
            enqueued: 5,
            dequeued: 6,
            ok: 7,
            tempfail: 8,
            permfail: 9,
            loops: 10,
            expired: 11,
            removed: 12,
            bounces: 13,
        });
        assert_eq!(line.len(), names.len());
        // Each number ends where its column name ends.
        let word_ends = |s: &str| -> Vec<usize> {
            s.char_indices()
                .filter(|&(i, c)| c != ' ' && (s[i + 1..].starts_with(' ') || i + 1 == s.len()))
                .map(|(i, _)| i)
                .collect()
        };
        assert_eq!(word_ends(names), word_ends(&line));
        assert_eq!(header.lines().next().unwrap().len(), names.len());
    }

    #[test]
    fn header_repeats_every_25_rows_after_a_blank_line() {
        let mut p = MonitorPrinter::new();
        let out: String = (0..51).map(|_| p.render(&MonitorRow::default())).collect();
        let lines: Vec<_> = out.lines().collect();
        let headers: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.starts_with("curr conn"))
            .map(|(i, _)| i)
            .collect();
        // 2 header lines + 25 rows, then a blank line and the header again.
        assert_eq!(headers, [1, 29, 57]);
        assert_eq!(lines[27], "");
        assert_eq!(lines.len(), 51 + 3 * 2 + 2);
    }

    #[test]
    fn json_round_trip() {
        let row = MonitorRow {
            ok: 7,
            ..MonitorRow::default()
        };
        let json = serde_json::to_value(row).unwrap();
        assert_eq!(json["ok"], 7);
        assert!(json.get("tempfail").is_some() && json.get("bounces").is_some());
        assert_eq!(serde_json::from_value::<MonitorRow>(json).unwrap(), row);
    }
}
