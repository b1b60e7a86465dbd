//! Policy reload without restart: on SIGHUP, and when the file's modification time or size
//! changes (polled, which also sees a Kubernetes ConfigMap's symlink swap). A bad file keeps the
//! policy in force and says why.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::authorizer::Authorizer;

/// Reloads on SIGHUP until the process ends.
pub async fn on_sighup(authorizer: Arc<Authorizer>) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::warn!("cannot listen for SIGHUP; the policy reloads only when its file changes");
        return;
    };
    while hangups.recv().await.is_some() {
        reload(&authorizer, "SIGHUP");
    }
}

/// Reloads when the policy file changes, checking every `period`.
pub async fn on_file_change(authorizer: Arc<Authorizer>, period: Duration) {
    let mut last_seen = stamp(&authorizer);
    loop {
        tokio::time::sleep(period).await;
        let current = stamp(&authorizer);
        if current != last_seen {
            last_seen = current;
            reload(&authorizer, "file change");
        }
    }
}

fn reload(authorizer: &Authorizer, cause: &str) {
    if let Err(err) = authorizer.reload_policy() {
        tracing::error!(cause, error = %err, "policy reload refused; the previous policy stays in force");
    }
}

/// What identifies a version of the file: modification time and size (None when unreadable).
fn stamp(authorizer: &Authorizer) -> Option<(SystemTime, u64)> {
    let metadata = std::fs::metadata(authorizer.policy_file()).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}
