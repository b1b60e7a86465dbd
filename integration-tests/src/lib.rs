//! Test support for auth-server's end-to-end tests: two real MCP servers (rmcp, streamable
//! HTTP) that record what reaches them, a stand-in server for the shapes of `tools/list`
//! answers (list_lab), and an MCP client whose errors keep the HTTP status the gateway
//! answered.

pub mod envoy;
pub mod list_lab;
pub mod mcp_client;
pub mod mcp_servers;
pub mod people;
pub mod scenarios;
pub mod stack;
