//! Runs the two demo MCP servers for the local stack:
//!
//! ```text
//! demo-mcp-servers --currenttime 127.0.0.1:8481 --fininfo 127.0.0.1:8482
//! ```
//!
//! Prints one line per server, `<name> http://<addr>/mcp`, once it listens, and stops
//! cleanly on Ctrl-C or SIGTERM.

use std::{net::SocketAddr, process::ExitCode};

use clap::Parser;
use integration_tests::mcp_servers::{RunningServer, ServerKind, spawn_server};
use tokio::net::TcpListener;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Demo MCP servers (currenttime, fininfo) for the auth-server stack"
)]
struct Args {
    /// Listen address of the `currenttime` server.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8481")]
    currenttime: SocketAddr,
    /// Listen address of the `fininfo` server.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8482")]
    fininfo: SocketAddr,
}

async fn start(kind: ServerKind, addr: SocketAddr) -> Result<RunningServer, String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("{kind}: cannot listen on {addr}: {e}"))?;
    let server = spawn_server(kind, listener).await;
    println!("{kind} {}", server.url());
    Ok(server)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut servers = Vec::new();
    for (kind, addr) in [
        (ServerKind::CurrentTime, args.currenttime),
        (ServerKind::FinInfo, args.fininfo),
    ] {
        match start(kind, addr).await {
            Ok(server) => servers.push(server),
            Err(error) => {
                eprintln!("demo-mcp-servers: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    shutdown_signal().await;
    for server in servers {
        server.shutdown().await;
    }
    ExitCode::SUCCESS
}
