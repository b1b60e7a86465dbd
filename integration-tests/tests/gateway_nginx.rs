//! End to end through nginx: a real IdP (oidc-provider), the auth-server binary, nginx with
//! deploy/nginx, real rmcp MCP servers, and real MCP clients (rmcp; the official Python SDK).
//! The scenarios are shared with the Envoy suites: integration-tests/src/scenarios.rs.

integration_tests::gateway_scenarios!(integration_tests::stack::Front::Nginx);
