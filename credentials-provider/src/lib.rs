//! credentials-provider: the tokens an agent needs to reach MCP servers through the gateway,
//! and the MCP client configurations that carry them.
//!
//! - [`ingress`]: the gateway's own token, an OAuth2 client-credentials grant (2-legged) against
//!   Amazon Cognito, Keycloak, Entra ID or any OIDC provider.
//! - [`egress`]: tokens of external providers (Atlassian, Google, GitHub, Microsoft, Slack, …)
//!   for servers that act on a user's behalf: authorization code with PKCE (3-legged), a
//!   one-shot loopback [`egress::callback`] server, and refresh tokens.
//! - [`agentcore`]: client-credentials tokens for Amazon Bedrock AgentCore gateways described
//!   in a YAML file.
//! - [`oauth`]: the token endpoint through the `oauth2` crate (client authentication, the
//!   grants, GitHub's and Slack's answers); [`grant`] and [`reuse`]: what a token file holds
//!   and when a stored token is used again.
//! - [`store`]: the token directory (`.oauth-tokens/`, 0700), every file 0600 and written
//!   atomically.
//! - [`configs`]: VS Code and Roocode MCP configurations built from the stored tokens, and
//!   merged into the user's own files without touching their other servers.
//! - [`mcp`]: a small MCP client (ping, list, call) that checks a connection through the gateway.
//!
//! [`settings`] reads the `.env`-style file and the environment; [`run`] ties it together for
//! the binary (one module per command, `refresh --watch` included), writing through a
//! [`run::Console`] so that every command runs without a terminal. The library's API is
//! [`cli`] and [`run`]; everything else is the crate's own.

#![forbid(unsafe_code)]

pub(crate) mod agentcore;
pub mod cli;
pub(crate) mod configs;
pub(crate) mod egress;
pub(crate) mod grant;
pub(crate) mod ingress;
pub(crate) mod mcp;
pub(crate) mod oauth;
pub(crate) mod reuse;
pub mod run;
pub(crate) mod secret;
pub(crate) mod settings;
pub(crate) mod store;
pub(crate) mod time;
