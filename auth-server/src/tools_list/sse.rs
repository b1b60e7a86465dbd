//! A `text/event-stream` body: its events read as the WHATWG HTML standard's event-stream
//! parser reads them (§9.2.6), each event's `data` given to the JSON rewriter.
//!
//! Lines end with CRLF, LF or CR; a leading BOM is skipped; a line starting with `:` is a
//! comment; `field:value` loses one space after the colon; a line without a colon is a field with
//! an empty value; `data` lines of one event join with LF; a blank line ends the event. Where a
//! lenient client could see more than the standard, the filter reads as much: the last event of
//! the body is filtered even without its closing blank line (the standard discards it; some
//! client parsers dispatch it), and every event type is read, not only `message`.
//!
//! Events the filter does not rewrite pass byte for byte. A rewritten event is written again
//! with LF line ends: its lines in order, the `data` lines replaced by the new data at the place
//! of the first one, then the blank line. LF everywhere inside it means no CR it writes can pair
//! with an LF that follows into one line end and swallow a blank line.

use std::borrow::Cow;
use std::ops::Range;

use super::{ListRequest, Reason, ToolCounts, ToolVisibility, json};

const BOM: char = '\u{feff}';

/// The stream with the tools/list results in its events filtered; `None` when it holds none.
pub(super) fn rewrite(
    text: &str,
    request: &ListRequest,
    visible: &impl ToolVisibility,
) -> Result<Option<(String, ToolCounts)>, Reason> {
    let mut out = String::new();
    let mut copied = 0;
    let mut counts = ToolCounts::default();
    for event in events(text) {
        let Some(data) = event.data() else {
            continue;
        };
        if data.trim().is_empty() {
            continue;
        }
        let Some((new_data, event_counts)) = json::rewrite(&data, request, visible)? else {
            continue;
        };
        if out.is_empty() {
            out.reserve(text.len() + 64);
        }
        out.push_str(&text[copied..event.range.start]);
        event.write_with_data(&new_data, &mut out);
        copied = event.range.end;
        counts.results += event_counts.results;
        counts.listed += event_counts.listed;
        counts.hidden += event_counts.hidden;
    }
    if counts.results == 0 {
        return Ok(None);
    }
    out.push_str(&text[copied..]);
    Ok(Some((out, counts)))
}

/// Whether an event's data carries a response with `result.tools`.
pub(super) fn lists_tools(text: &str) -> Result<bool, Reason> {
    for event in events(text) {
        if let Some(data) = event.data()
            && !data.trim().is_empty()
            && json::lists_tools(&data)?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// One event: its lines (none blank) and the bytes it spans, closing blank line included.
struct Event<'a> {
    lines: Vec<&'a str>,
    range: Range<usize>,
    /// Ended by a blank line (not by the end of the body).
    closed: bool,
}

/// A line's field name and value; `None` for a comment.
fn field(line: &str) -> Option<(&str, &str)> {
    if line.starts_with(':') {
        return None;
    }
    Some(match line.split_once(':') {
        Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
        None => (line, ""),
    })
}

fn data_value(line: &str) -> Option<&str> {
    field(line).and_then(|(name, value)| (name == "data").then_some(value))
}

impl<'a> Event<'a> {
    /// The event's data: its `data` values joined by LF; `None` without a `data` line (the
    /// standard dispatches no event then).
    fn data(&self) -> Option<Cow<'a, str>> {
        let mut values = self.lines.iter().filter_map(|line| data_value(line));
        let first = values.next()?;
        let Some(second) = values.next() else {
            return Some(Cow::Borrowed(first));
        };
        let mut data = String::from(first);
        for value in std::iter::once(second).chain(values) {
            data.push('\n');
            data.push_str(value);
        }
        Some(Cow::Owned(data))
    }

    /// Writes the event with `data` in place of its data lines, every line ended by LF.
    fn write_with_data(&self, data: &str, out: &mut String) {
        let mut data_written = false;
        for line in &self.lines {
            if data_value(line).is_none() {
                out.push_str(line);
                out.push('\n');
            } else if !data_written {
                data_written = true;
                for data_line in data.split('\n') {
                    out.push_str("data: ");
                    out.push_str(data_line);
                    out.push('\n');
                }
            }
        }
        if self.closed {
            out.push('\n');
        }
    }
}

/// The events of a stream, in order; bytes between them are blank lines only.
fn events(text: &str) -> impl Iterator<Item = Event<'_>> {
    let start = if text.starts_with(BOM) {
        BOM.len_utf8()
    } else {
        0
    };
    let mut lines = Lines { text, at: start };
    std::iter::from_fn(move || {
        // Blank lines between events dispatch nothing: skip them.
        let mut line = lines.next()?;
        while line.content.is_empty() {
            line = lines.next()?;
        }
        let mut event = Event {
            lines: vec![line.content],
            range: line.range.start..line.range.end,
            closed: false,
        };
        for line in lines.by_ref() {
            event.range.end = line.range.end;
            if line.content.is_empty() {
                event.closed = true;
                break;
            }
            event.lines.push(line.content);
        }
        Some(event)
    })
}

struct Line<'a> {
    /// The line without its end.
    content: &'a str,
    /// The line and its end (CRLF, LF, CR, or none at the end of the body).
    range: Range<usize>,
}

struct Lines<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        let rest = &self.text[self.at..];
        if rest.is_empty() {
            return None;
        }
        let start = self.at;
        let (content_len, end_len) = match rest.bytes().position(|b| b == b'\r' || b == b'\n') {
            None => (rest.len(), 0),
            Some(at) if rest[at..].starts_with("\r\n") => (at, 2),
            Some(at) => (at, 1),
        };
        self.at = start + content_len + end_len;
        Some(Line {
            content: &rest[..content_len],
            range: start..self.at,
        })
    }
}
