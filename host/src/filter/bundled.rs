//! The filters built into wasmtpd: the workspace build compiles
//! `filters/` to wasm32-wasip2 (see host/build.rs) and the components are
//! embedded here, so `filter NAME dnsbl …` needs no file.

static DNSBL: &[u8] = include_bytes!(concat!(env!("WASMTPD_FILTERS_DIR"), "/dnsbl.wasm"));
static REGEX: &[u8] = include_bytes!(concat!(env!("WASMTPD_FILTERS_DIR"), "/regex.wasm"));
static SPAMSCORE: &[u8] = include_bytes!(concat!(env!("WASMTPD_FILTERS_DIR"), "/spamscore.wasm"));

/// A bundled component's bytes by name.
pub fn bytes(name: &str) -> Option<&'static [u8]> {
    match name {
        "dnsbl" => Some(DNSBL),
        "regex" => Some(REGEX),
        "spamscore" => Some(SPAMSCORE),
        _ => None,
    }
}
