//! How `wasmtpctl` prints an answer: smtpctl's text, or JSON with
//! `--json` (one object per line for lists, so scripts can stream them).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::format::{envelope_text, EnvelopeDoc, QueueEntry};
use super::protocol::Request;
use super::views::{self, DestinationReport, Done, FilterView, IdleReport, MessageView, Status};
use crate::envelope::Envelope;

#[derive(Debug, thiserror::Error)]
#[error("unexpected answer from the daemon: {0}")]
pub struct RenderError(String);

/// What to write to standard output for `req`'s answer `data`.
pub fn render(req: &Request, data: Value, json: bool) -> Result<Vec<u8>, RenderError> {
    let text = match req {
        Request::ShowQueue => {
            let entries: Vec<QueueEntry> = parse(data)?;
            lines(&entries, json, QueueEntry::line)
        }
        Request::ShowEnvelope { .. } => {
            let env: Envelope = parse(data)?;
            if json {
                json_line(&EnvelopeDoc::new(&env))
            } else {
                envelope_text(&env)
            }
        }
        Request::ShowMessage { .. } => {
            let msg: MessageView = parse(data)?;
            if json {
                json_line(&msg)
            } else {
                return base64::engine::general_purpose::STANDARD
                    .decode(&msg.content_b64)
                    .map_err(|e| RenderError(e.to_string()));
            }
        }
        Request::ShowStats => {
            if json {
                json_line(&data)
            } else {
                stats_text(&data)
            }
        }
        Request::ShowStatus => {
            let status: Status = parse(data)?;
            if json {
                json_line(&status)
            } else {
                status.text()
            }
        }
        Request::ShowFilters => {
            let filters: Vec<FilterView> = parse(data)?;
            lines(&filters, json, FilterView::line)
        }
        Request::ShowRelays => {
            let dests: Vec<DestinationReport> = parse(data)?;
            lines(&dests, json, views::destination_line)
        }
        Request::ShowRoutes => {
            let routes: Vec<IdleReport> = parse(data)?;
            lines(&routes, json, views::route_line)
        }
        Request::ShowHosts => {
            let routes: Vec<IdleReport> = parse(data)?;
            if json {
                lines(&routes, true, views::route_line)
            } else {
                views::host_lines(&routes)
            }
        }
        _ => {
            if data.is_null() {
                String::new()
            } else {
                let done: Done = parse(data)?;
                if json {
                    json_line(&done)
                } else {
                    format!("{}\n", done.message)
                }
            }
        }
    };
    Ok(text.into_bytes())
}

/// `key=value` lines, sorted, as `smtpctl show stats` prints them.
pub fn stats_text(data: &Value) -> String {
    let Some(map) = data.as_object() else {
        return String::new();
    };
    let sorted: BTreeMap<&String, &Value> = map.iter().collect();
    sorted
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}\n"),
            other => format!("{k}={other}\n"),
        })
        .collect()
}

/// The statistics as whole numbers, for `monitor`.
pub fn stats_numbers(data: &Value) -> BTreeMap<String, i64> {
    data.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    let n = v.as_i64().or_else(|| v.as_u64().map(|u| u as i64))?;
                    Some((k.clone(), n))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn parse<T: DeserializeOwned>(data: Value) -> Result<T, RenderError> {
    serde_json::from_value(data).map_err(|e| RenderError(e.to_string()))
}

fn json_line(v: &impl serde::Serialize) -> String {
    let mut s = serde_json::to_string(v).unwrap_or_default();
    s.push('\n');
    s
}

fn lines<T: serde::Serialize>(items: &[T], json: bool, text: impl Fn(&T) -> String) -> String {
    items
        .iter()
        .map(|i| {
            if json {
                json_line(i)
            } else {
                format!("{}\n", text(i))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_print_as_sorted_key_value_lines() {
        let data = serde_json::json!({"uptime.human": "1m0s", "smtp.session": 2, "a.sum": 1.5});
        assert_eq!(
            stats_text(&data),
            "a.sum=1.5\nsmtp.session=2\nuptime.human=1m0s\n"
        );
        let nums = stats_numbers(&data);
        assert_eq!(nums.get("smtp.session"), Some(&2));
        assert!(!nums.contains_key("uptime.human"));
    }

    #[test]
    fn steering_answers_print_their_message() {
        let data = serde_json::to_value(Done::counted(2, "2 envelope(s) removed")).unwrap();
        let out = render(&Request::Remove { id: "all".into() }, data.clone(), false).unwrap();
        assert_eq!(out, b"2 envelope(s) removed\n");
        let out = render(&Request::Remove { id: "all".into() }, data, true).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"message\":\"2 envelope(s) removed\",\"count\":2}\n"
        );
    }
}
