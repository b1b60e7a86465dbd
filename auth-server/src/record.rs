//! What happens after a decision besides the answer: one log line (who, client id, groups, the
//! issuer that vouched, server, method, tool, result, status, reason, latency and the gateway's
//! request id; never a token or a body) and the metrics. Fed from one place, the authorizer's pipeline, for every
//! shell.

use std::time::Duration;

use crate::answer;
use crate::decision::{Decision, DenyReason};
use crate::metrics;
use crate::request::Body;
use crate::tools_list::context::FilterContext;
use crate::tools_list::{FilterError, Filtered, ToolCounts};

/// Records one decision: metrics, then the log line.
pub(crate) fn decision(
    decision: &Decision,
    issuer: Option<&str>,
    body: Body<'_>,
    request_id: Option<&str>,
    took: Duration,
) {
    if let Body::Complete(bytes) = body {
        metrics::observe_body(bytes.len());
    }
    let (result, reason) = match decision {
        Decision::Allow(_) => ("allow", "allowed"),
        Decision::Deny { reason, .. } => ("deny", answer::reason_code(reason)),
    };
    metrics::observe_decision(result, reason, took.as_secs_f64());
    // The joined lists below are built only when the line is written.
    if !tracing::enabled!(target: "decision", tracing::Level::INFO) {
        return;
    }
    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    let request_id = request_id.unwrap_or("");
    let issuer = issuer.unwrap_or("");
    match decision {
        Decision::Allow(allowed) => {
            let methods: Vec<&str> = allowed
                .calls
                .iter()
                .map(|call| call.method.as_str())
                .collect();
            let tools: Vec<&str> = allowed
                .calls
                .iter()
                .filter_map(|call| call.tool.as_deref())
                .collect();
            // Plain `&str` fields: recorded as strings, not through `Display` formatting.
            tracing::info!(
                target: "decision",
                result = "allow",
                status = 200,
                who = allowed.identity.subject.as_str(),
                client_id = allowed.identity.client_id.as_str(),
                groups = allowed.identity.groups.join(",").as_str(),
                issuer,
                server = allowed.server.as_str(),
                method = methods.join(",").as_str(),
                tool = tools.join(",").as_str(),
                reason = "allowed",
                micros,
                request_id,
            );
        }
        Decision::Deny {
            identity, reason, ..
        } => {
            let (server, method, tool) = match reason {
                DenyReason::Forbidden(forbidden) => (
                    forbidden.server.as_str(),
                    forbidden.call.method.as_str(),
                    forbidden.call.tool.as_deref().unwrap_or(""),
                ),
                _ => ("", "", ""),
            };
            tracing::info!(
                target: "decision",
                result = "deny",
                status = answer::status_of(reason).http,
                who = identity.as_ref().map(|id| id.subject.as_str()).unwrap_or(""),
                client_id = identity.as_ref().map(|id| id.client_id.as_str()).unwrap_or(""),
                groups = identity
                    .as_ref()
                    .map(|id| id.groups.join(","))
                    .unwrap_or_default()
                    .as_str(),
                issuer,
                server,
                method,
                tool,
                reason = answer::reason_code(reason),
                micros,
                request_id,
            );
        }
    }
}

/// What the filter did with one `tools/list` answer, for the log and the metrics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ToolsListOutcome {
    result: &'static str,
    reason: &'static str,
    counts: ToolCounts,
}

impl ToolsListOutcome {
    pub(crate) fn of(result: &Result<Filtered, FilterError>) -> Self {
        let (result, reason, counts) = match result {
            Ok(Filtered::Rewritten { tools, .. }) => ("filtered", "tools_list_filtered", *tools),
            Ok(Filtered::Unchanged) => ("unchanged", "no_tools_list_result", ToolCounts::default()),
            Err(error) => ("withheld", error.reason.code(), ToolCounts::default()),
        };
        ToolsListOutcome {
            result,
            reason,
            counts,
        }
    }
}

/// Records one upstream answer to a `tools/list` request: metrics, then one line of the
/// decision log (who, server, tools listed and hidden, result, reason; never a tool's name or
/// the body).
pub(crate) fn tools_list(
    context: &FilterContext,
    outcome: ToolsListOutcome,
    upstream_status: u16,
    client_status: u16,
    request_id: Option<&str>,
    took: Duration,
) {
    metrics::observe_tools_list(outcome.result, outcome.reason, took.as_secs_f64());
    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    tracing::info!(
        target: "decision",
        result = outcome.result,
        status = client_status,
        who = context.who.as_str(),
        server = context.server.as_str(),
        method = "tools/list",
        listed = outcome.counts.listed,
        hidden = outcome.counts.hidden,
        pages = outcome.counts.results,
        upstream_status,
        reason = outcome.reason,
        micros,
        request_id = request_id.unwrap_or(""),
    );
}
