//! Egress tokens: tokens of external providers for MCP servers that act on a user's behalf,
//! obtained with the authorization-code grant (3-legged), PKCE S256 and a checked `state`,
//! and kept fresh with refresh tokens.
//!
//! Provider sets are numbered (`_1`, `_2`, …):
//!
//! | variable | meaning |
//! |---|---|
//! | `EGRESS_PROVIDER_NAME_N` | a provider of the catalogue ([`providers`]), e.g. `atlassian` (required) |
//! | `EGRESS_OAUTH_CLIENT_ID_N` | the OAuth app's client id (required) |
//! | `EGRESS_OAUTH_CLIENT_SECRET_N` | its secret; unset for a public client |
//! | `EGRESS_OAUTH_REDIRECT_URI_N` | loopback redirect URI registered with the provider; default `http://localhost:8080/callback` |
//! | `EGRESS_OAUTH_SCOPE_N` | scopes, replacing the provider's defaults |
//! | `EGRESS_MCP_SERVER_NAME_N` | the gateway's MCP server that gets this token; default the provider name |
//! | `EGRESS_OAUTH_CLOUD_ID_N` | Atlassian: the site's cloud id, when the token reaches several sites |
//! | `EGRESS_OAUTH_<VAR>_N` | a template variable of the provider's URLs, e.g. `EGRESS_OAUTH_TENANT_N` |

pub mod atlassian;
pub mod callback;
pub mod flow;
pub mod providers;
pub mod settings;
pub mod token;

pub use flow::{FlowOptions, Outcome, obtain, refresh};
pub use settings::{EgressSet, check_server_name, sets_from_settings};
pub use token::{EgressToken, token_file_name};
