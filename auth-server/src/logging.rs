//! Log output: `RUST_LOG` filtering, text for people, or one JSON object per line for
//! collectors (`AUTH_LOG_FORMAT=json`).
//!
//! The JSON lines are written by [`JsonLines`] rather than tracing-subscriber's JSON format,
//! which passes every fragment through `fmt::Write` with a UTF-8 check each: it cost 26,000
//! instructions per decision line, more than a third of a whole check. The lines are the same
//! objects: `timestamp`, `level`, `target`, then the event's fields (with `message`) at the top
//! level.

use std::cell::RefCell;
use std::fmt;
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// Installs the global subscriber: `RUST_LOG` (default `info`) to stdout in `format`.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: escape codes would end up in files, pipes and log collectors.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stdout())
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stdout);
    match format {
        LogFormat::Json => builder.event_format(JsonLines).init(),
        LogFormat::Text => builder.init(),
    }
}

/// One JSON object per event, built in a reused per-thread buffer and written in one piece.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JsonLines;

thread_local! {
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        LINE.with_borrow_mut(|line| {
            line.clear();
            json_line(line, event)?;
            let text = std::str::from_utf8(line).map_err(|_| fmt::Error)?;
            writer.write_str(text)
        })
    }
}

/// Appends the event as one JSON object and a newline.
fn json_line(line: &mut Vec<u8>, event: &Event<'_>) -> fmt::Result {
    let mut timestamp = String::with_capacity(32);
    SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
    let metadata = event.metadata();
    line.extend_from_slice(b"{\"timestamp\":");
    string(line, &timestamp)?;
    line.extend_from_slice(b",\"level\":");
    string(line, metadata.level().as_str())?;
    line.extend_from_slice(b",\"target\":");
    string(line, metadata.target())?;
    let mut fields = Fields {
        line,
        scratch: String::new(),
        failed: false,
    };
    event.record(&mut fields);
    if fields.failed {
        return Err(fmt::Error);
    }
    line.extend_from_slice(b"}\n");
    Ok(())
}

/// A JSON string: quoted and escaped by serde_json.
fn string(line: &mut Vec<u8>, value: &str) -> fmt::Result {
    serde_json::to_writer(line, value).map_err(|_| fmt::Error)
}

/// Writes each field as `,"name":value`.
struct Fields<'l> {
    line: &'l mut Vec<u8>,
    scratch: String,
    failed: bool,
}

impl Fields<'_> {
    fn key(&mut self, field: &Field) {
        self.line.push(b',');
        self.failed |= string(self.line, field.name()).is_err();
        self.line.push(b':');
    }

    fn number(&mut self, field: &Field, value: impl fmt::Display) {
        self.key(field);
        self.failed |= write!(self.line, "{value}").is_err();
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        self.failed |= string(self.line, value).is_err();
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.number(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.number(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.number(field, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.number(field, value);
        } else {
            // JSON has no NaN or infinity.
            self.record_str(field, &value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        use std::fmt::Write as _;
        self.scratch.clear();
        self.failed |= write!(self.scratch, "{value:?}").is_err();
        self.key(field);
        self.failed |= string(self.line, &self.scratch).is_err();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Captures what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines_of(emit: impl FnOnce()) -> Vec<serde_json::Value> {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
            .collect()
    }

    #[test]
    fn json_lines_carry_level_target_message_and_every_field_at_the_top_level() {
        let lines = lines_of(|| {
            tracing::info!(
                target: "decision",
                result = "deny",
                status = 403,
                micros = 4_u64,
                ok = false,
                who = %"agent \"one\"\n",
                key_source = ?Some("x"),
                ratio = 0.5,
                "decided"
            );
        });
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["target"], "decision");
        assert_eq!(line["message"], "decided");
        assert_eq!(line["result"], "deny");
        assert_eq!(line["status"], 403);
        assert_eq!(line["micros"], 4);
        assert_eq!(line["ok"], false);
        assert_eq!(line["who"], "agent \"one\"\n");
        assert_eq!(line["key_source"], "Some(\"x\")");
        assert_eq!(line["ratio"], 0.5);
        let timestamp = line["timestamp"].as_str().unwrap();
        assert!(
            timestamp.len() >= 20 && timestamp.ends_with('Z'),
            "{timestamp}"
        );
    }

    #[test]
    fn values_json_cannot_carry_are_written_as_strings() {
        let lines = lines_of(|| tracing::warn!(value = f64::NAN, "odd"));
        assert_eq!(lines[0]["value"], "NaN");
        assert_eq!(lines[0]["level"], "WARN");
    }
}
