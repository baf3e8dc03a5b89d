//! Inbound SMTP: the sans-IO protocol state machine (`proto`) and, on top
//! of it, the tokio driver that owns the sockets.

pub mod proto;
