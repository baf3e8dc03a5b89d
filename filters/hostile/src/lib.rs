//! hostile: a misbehaving filter for the host's sandbox tests. It does
//! one bad (or, for baselines, harmless) thing in one place.
//!
//! Configuration:
//! - `mode` — what it does:
//!   - `loop`: spins forever;
//!   - `memory`: allocates 1 MiB chunks of non-zero bytes forever, keeping
//!     them;
//!   - `recurse`: unbounded non-tail recursion (stack exhaustion);
//!   - `trap`: executes `unreachable` on every on-phase, on-data-lines and
//!     on-report call (init works, so it can subscribe);
//!   - `huge`: in a phase, rejects with a 16 MiB text; in data lines,
//!     replaces the batch with 200 000 lines of 1000 bytes;
//!   - `dns-flood`: looks up `n0.flood.test` … `n9999.flood.test` (A),
//!     ignoring the answers, then proceeds;
//!   - `file`: reads /etc/passwd; rejects `550 <first line>` if that
//!     worked, else `550 file: ERR <error>` (without WASI the read
//!     traps instead);
//!   - `socket`: connects over TCP to `target` (default 127.0.0.1:9);
//!     rejects `550 socket: connected` or `550 socket: ERR <error>`
//!     (without WASI the connect traps instead);
//!   - `proceed` (default): does nothing, the well-behaved baseline;
//!   - `reject`: rejects `550 5.7.1 hostile says no`.
//! - `phase` — where: a phase name (default `mail-from`), or `data-lines`
//!   for inside on-data-lines. Only that is subscribed. In data lines the
//!   decisions of `file`, `socket` and `reject` cannot be sent: they are
//!   logged and the lines pass unchanged.
//! - `target` — the `socket` mode's address.

use std::hint::black_box;
use wasmtpd_filter::{
    config, dns, log, Decision, Filter, Lines, LinesOut, Phase, Report, Session, Subscriptions,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Mode {
    Loop,
    Memory,
    Recurse,
    Trap,
    Huge,
    DnsFlood,
    File,
    Socket,
    #[default]
    Proceed,
    Reject,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        Some(match s.trim() {
            "loop" => Mode::Loop,
            "memory" => Mode::Memory,
            "recurse" => Mode::Recurse,
            "trap" => Mode::Trap,
            "huge" => Mode::Huge,
            "dns-flood" => Mode::DnsFlood,
            "file" => Mode::File,
            "socket" => Mode::Socket,
            "proceed" => Mode::Proceed,
            "reject" => Mode::Reject,
            _ => return None,
        })
    }
}

/// Where the filter acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Phase(Phase),
    DataLines,
}

fn parse_place(s: Option<&str>) -> Option<Place> {
    match s.map(str::trim) {
        None => Some(Place::Phase(Phase::MailFrom)),
        Some("data-lines") | Some("data-line") => Some(Place::DataLines),
        Some(name) => Phase::from_name(name).map(Place::Phase),
    }
}

fn subscriptions(place: Place) -> Subscriptions {
    match place {
        Place::Phase(p) => Subscriptions {
            phases: vec![p],
            data_lines: false,
            reports: false,
            reusable: true,
            per_message: false,
            guards: Vec::new(),
        },
        Place::DataLines => Subscriptions {
            phases: Vec::new(),
            data_lines: true,
            reports: false,
            reusable: true,
            per_message: false,
            guards: Vec::new(),
        },
    }
}

#[derive(Default, Clone)]
struct Hostile {
    mode: Mode,
    place: Option<Place>,
    target: String,
    hoard: Vec<Vec<u8>>,
}

fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

fn spin() -> ! {
    let mut n = 0u64;
    loop {
        n = black_box(black_box(n).wrapping_add(1));
    }
}

/// Not a tail call: the xor needs the frame after the call returns, and
/// `black_box` keeps LLVM from proving anything about it. Frames are
/// small, so the engine's wasm stack limit (a stack-overflow trap) comes
/// before the guest's own 1 MiB data stack runs out.
#[allow(unconditional_recursion)] // the point: it only ends in a trap
fn recurse(depth: u64) -> u64 {
    recurse(black_box(depth).wrapping_add(1)) ^ black_box(depth)
}

fn huge_text() -> String {
    "x".repeat(16 << 20)
}

/// 200 000 lines of 1000 bytes: about 200 MB.
fn huge_lines() -> LinesOut {
    let mut line = vec![b'y'; 1000];
    line.extend_from_slice(b"\r\n");
    LinesOut::Replace(line.repeat(200_000))
}

impl Hostile {
    fn hoard_forever(&mut self) -> ! {
        loop {
            let chunk = vec![0xa5u8; 1 << 20];
            self.hoard.push(black_box(chunk));
        }
    }

    /// Does the bad thing; the decision is for a phase.
    fn act(&mut self) -> Decision {
        match self.mode {
            Mode::Loop => spin(),
            Mode::Memory => self.hoard_forever(),
            Mode::Recurse => {
                black_box(recurse(0));
                Decision::Proceed
            }
            Mode::Trap => trap(),
            Mode::Huge => Decision::reject(550, "5.7.1", huge_text()),
            Mode::DnsFlood => {
                for i in 0..10_000 {
                    let _ = dns::a(&format!("n{i}.flood.test"));
                }
                Decision::Proceed
            }
            Mode::File => match std::fs::read_to_string("/etc/passwd") {
                Ok(text) => {
                    Decision::reject(550, "", text.lines().next().unwrap_or("").to_string())
                }
                Err(e) => Decision::reject(550, "", format!("file: ERR {e}")),
            },
            Mode::Socket => match std::net::TcpStream::connect(self.target.as_str()) {
                Ok(_) => Decision::reject(550, "", "socket: connected"),
                Err(e) => Decision::reject(550, "", format!("socket: ERR {e}")),
            },
            Mode::Proceed => Decision::Proceed,
            Mode::Reject => Decision::reject(550, "5.7.1", "hostile says no"),
        }
    }
}

impl Filter for Hostile {
    fn init(&mut self) -> Subscriptions {
        let mode = config::get("mode");
        self.mode = match mode.as_deref().map(Mode::parse) {
            None => Mode::Proceed,
            Some(Some(m)) => m,
            Some(None) => {
                log::error(&format!("unknown mode {mode:?}, proceeding"));
                Mode::Proceed
            }
        };
        let place = parse_place(config::get("phase").as_deref()).unwrap_or_else(|| {
            log::error("unknown phase, using mail-from");
            Place::Phase(Phase::MailFrom)
        });
        self.place = Some(place);
        self.target = config::get("target").unwrap_or_else(|| "127.0.0.1:9".to_string());
        subscriptions(place)
    }

    fn on_phase(&mut self, _: &Session, phase: Phase, _: &str) -> Decision {
        if self.mode == Mode::Trap {
            trap();
        }
        if self.place == Some(Place::Phase(phase)) {
            self.act()
        } else {
            Decision::Proceed
        }
    }

    fn on_data_lines(&mut self, _: &Session, _: Lines, _: bool) -> LinesOut {
        match self.mode {
            Mode::Trap => trap(),
            _ if self.place != Some(Place::DataLines) => LinesOut::Pass,
            Mode::Huge => huge_lines(),
            _ => {
                let decision = self.act();
                if decision != Decision::Proceed {
                    log::info(&format!("in data lines: {decision:?}"));
                }
                LinesOut::Pass
            }
        }
    }

    fn on_report(&mut self, _: &Session, _: &Report) {
        if self.mode == Mode::Trap {
            trap();
        }
    }
}

wasmtpd_filter::export_filter!(Hostile);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_places_parse() {
        assert_eq!(Mode::parse("dns-flood"), Some(Mode::DnsFlood));
        assert_eq!(Mode::parse("nope"), None);
        assert_eq!(parse_place(None), Some(Place::Phase(Phase::MailFrom)));
        assert_eq!(
            parse_place(Some("rcpt-to")),
            Some(Place::Phase(Phase::RcptTo))
        );
        assert_eq!(parse_place(Some("data-lines")), Some(Place::DataLines));
        assert_eq!(parse_place(Some("elsewhere")), None);
    }

    #[test]
    fn it_subscribes_where_it_acts() {
        let s = subscriptions(Place::Phase(Phase::Connect));
        assert_eq!((s.phases, s.data_lines), (vec![Phase::Connect], false));
        let s = subscriptions(Place::DataLines);
        assert_eq!((s.phases, s.data_lines), (vec![], true));
    }

    #[test]
    fn baselines_behave() {
        let mut h = Hostile {
            mode: Mode::Reject,
            ..Hostile::default()
        };
        assert_eq!(h.act(), Decision::reject(550, "5.7.1", "hostile says no"));
        h.mode = Mode::Proceed;
        assert_eq!(h.act(), Decision::Proceed);
    }

    #[test]
    fn huge_outputs_are_huge() {
        assert_eq!(huge_text().len(), 16 << 20);
        let LinesOut::Replace(bytes) = huge_lines() else {
            panic!("huge lines pass")
        };
        let lines: Vec<&[u8]> = wasmtpd_filter::lines::iter(&bytes).collect();
        assert_eq!((lines.len(), lines[0].len()), (200_000, 1000));
    }
}
