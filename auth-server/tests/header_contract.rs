//! The header contract lives in one Rust list (`auth_server::headers`); the gateways this
//! project ships repeat it in their own languages. These tests read deploy/nginx (template and
//! Lua) and both Envoy configs and fail when one of them sets, strips or allows another list:
//! a header added in one file and forgotten in another cannot ship.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use auth_server::headers::{
    BROWSER_HEADERS, HEADERS_TO_REMOVE, IDENTITY_HEADERS, INGRESS_HEADERS, TOOLS_LIST_HEADER,
    TOOLS_LIST_UPSTREAM_HEADERS, filter_endpoint,
};
use serde_norway::Value;

fn repository() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repository().join(path)).unwrap_or_else(|err| panic!("{path}: {err}"))
}

fn set<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    names.into_iter().map(str::to_ascii_lowercase).collect()
}

/// The headers an allow sets, as a set.
fn identity() -> BTreeSet<String> {
    set(IDENTITY_HEADERS)
}

/// Every value under a key named `key`, anywhere in the document.
fn values_of<'v>(value: &'v Value, key: &str, found: &mut Vec<&'v Value>) {
    match value {
        Value::Mapping(mapping) => {
            for (name, child) in mapping {
                if name.as_str() == Some(key) {
                    found.push(child);
                }
                values_of(child, key, found);
            }
        }
        Value::Sequence(items) => {
            for item in items {
                values_of(item, key, found);
            }
        }
        Value::Tagged(tagged) => values_of(&tagged.value, key, found),
        _ => {}
    }
}

/// The `exact` header names of the string matchers under `key`.
fn exact_patterns(config: &Value, key: &str) -> BTreeSet<String> {
    let mut lists = Vec::new();
    values_of(config, key, &mut lists);
    assert_eq!(lists.len(), 1, "one `{key}` in the config");
    let mut patterns = Vec::new();
    values_of(lists[0], "exact", &mut patterns);
    set(patterns
        .iter()
        .map(|value| value.as_str().expect("a header name")))
}

/// The headers Envoy's `header_mutation` removes from the client's request.
fn removed_before_check(config: &Value) -> BTreeSet<String> {
    let mut mutations = Vec::new();
    values_of(config, "request_mutations", &mut mutations);
    assert_eq!(mutations.len(), 1, "one header_mutation filter");
    let mut removed = Vec::new();
    values_of(mutations[0], "remove", &mut removed);
    set(removed
        .iter()
        .map(|value| value.as_str().expect("a header name")))
}

fn envoy(path: &str) -> Value {
    serde_norway::from_str(&read(path)).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// X-Client-Id is a Cognito input the check reads; the allow overwrites it, so it is not
/// removed before the check like the other identity headers. The removal list and the
/// tools/list mark are auth-server's to make.
fn identity_removed_before_check() -> BTreeSet<String> {
    let mut names = identity();
    names.remove("x-client-id");
    names.extend(set([
        "x-original-uri",
        "x-original-url",
        "x-original-method",
        HEADERS_TO_REMOVE,
        TOOLS_LIST_HEADER,
    ]));
    names
}

/// What an allow may set on the upstream request: the identity headers, and for a request
/// holding tools/list calls `accept-encoding: identity`.
fn set_upstream_on_allow() -> BTreeSet<String> {
    let mut names = identity();
    names.extend(set(TOOLS_LIST_UPSTREAM_HEADERS.map(|(name, _)| name)));
    names
}

/// What the check reads besides the body, and so what Envoy must send it.
fn read_by_the_check() -> BTreeSet<String> {
    let mut names = set(INGRESS_HEADERS);
    names.remove("authorization"); // Envoy always sends it in HTTP mode
    names.extend(set(["x-client-id", "mcp-method", "mcp-name"]));
    names.extend(set(BROWSER_HEADERS));
    names
}

#[test]
fn envoy_http_mode_passes_exactly_the_identity_headers_upstream() {
    let config = envoy("deploy/envoy/envoy.yaml");
    assert_eq!(
        exact_patterns(&config, "allowed_upstream_headers"),
        set_upstream_on_allow()
    );
    // The tools/list mark becomes dynamic metadata, never an upstream or a client header.
    assert_eq!(
        exact_patterns(&config, "dynamic_metadata_from_headers"),
        set([TOOLS_LIST_HEADER])
    );
    assert!(!exact_patterns(&config, "allowed_client_headers").contains(TOOLS_LIST_HEADER));
    assert_eq!(
        removed_before_check(&config),
        identity_removed_before_check()
    );
    let sent = exact_patterns(&config, "allowed_headers");
    assert!(
        sent.is_superset(&read_by_the_check()),
        "the check would not see {:?}",
        read_by_the_check().difference(&sent).collect::<Vec<_>>()
    );
    // Every header a denial sets reaches the client.
    let to_client = exact_patterns(&config, "allowed_client_headers");
    for header in [
        "www-authenticate",
        "content-type",
        "allow",
        "retry-after",
        "location",
    ] {
        assert!(
            to_client.contains(header),
            "{header} not passed to the client"
        );
    }
}

#[test]
fn envoy_grpc_mode_removes_and_reads_the_same_headers() {
    let config = envoy("deploy/envoy/envoy-grpc.yaml");
    assert_eq!(
        removed_before_check(&config),
        identity_removed_before_check()
    );
    let sent = exact_patterns(&config, "allowed_headers");
    let mut needed = read_by_the_check();
    needed.insert("authorization".to_owned());
    assert!(
        sent.is_superset(&needed),
        "the check would not see {:?}",
        needed.difference(&sent).collect::<Vec<_>>()
    );
}

/// `proxy_set_header <Name> <value>;` lines of the template's MCP location.
fn nginx_mcp_location_headers(template: &str) -> Vec<(String, String)> {
    nginx_location_headers(template, "location ~ ^/(?<mcp_server>")
}

/// The Lua table of identity headers: `{ "x-user", "mcp_x_user" },` lines.
fn lua_identity_table(lua: &str) -> Vec<(String, String)> {
    let start = lua.find("local IDENTITY = {").expect("the IDENTITY table");
    let end = start + lua[start..].find("\n}").expect("its end");
    lua[start..end]
        .lines()
        .filter_map(|line| {
            let quoted: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
            (quoted.len() == 2).then(|| (quoted[0].to_owned(), quoted[1].to_owned()))
        })
        .collect()
}

#[test]
fn nginx_sets_each_identity_header_from_the_variable_the_lua_check_fills() {
    let template = read("deploy/nginx/nginx.conf.template");
    let lua = read("deploy/nginx/mcp_auth.lua");
    let table = lua_identity_table(&lua);
    assert_eq!(
        set(table.iter().map(|(header, _)| header.as_str())),
        identity(),
        "mcp_auth.lua's IDENTITY table"
    );
    let set_upstream = nginx_mcp_location_headers(&template);
    for (header, variable) in &table {
        let value = set_upstream
            .iter()
            .find(|(name, _)| name == header)
            .map(|(_, value)| value.as_str());
        assert_eq!(
            value,
            Some(format!("${variable}").as_str()),
            "the MCP location must set {header} from ${variable}"
        );
        assert!(
            template.contains(&format!("set ${variable} ")),
            "${variable} is not reset for every request"
        );
    }
    let from_variables: BTreeSet<String> = set_upstream
        .iter()
        .filter(|(_, value)| value.starts_with("$mcp_x_"))
        .map(|(name, _)| name.clone())
        .collect();
    assert_eq!(
        from_variables,
        identity(),
        "headers set from $mcp_x_* variables"
    );
}

#[test]
fn nginx_never_passes_an_ingress_header_or_a_removal_list_upstream() {
    let template = read("deploy/nginx/nginx.conf.template");
    let set_upstream = nginx_mcp_location_headers(&template);
    for header in INGRESS_HEADERS.into_iter().chain([HEADERS_TO_REMOVE]) {
        let value = set_upstream
            .iter()
            .find(|(name, _)| name == header)
            .map(|(_, value)| value.as_str());
        let expected = if header == "authorization" {
            // Only the egress token, decided by mcp_auth.lua from the check's answer.
            "$mcp_upstream_authorization"
        } else {
            "\"\""
        };
        assert_eq!(value, Some(expected), "{header} in the MCP location");
    }
}

/// The routes of the shipped Envoy config: (match, route or redirect, whether the check runs,
/// request headers the route removes).
fn envoy_routes(config: &Value) -> Vec<(Value, bool, BTreeSet<String>)> {
    let mut route_lists = Vec::new();
    values_of(config, "routes", &mut route_lists);
    assert_eq!(route_lists.len(), 1, "one route list");
    route_lists[0]
        .as_sequence()
        .expect("a list of routes")
        .iter()
        .map(|route| {
            let mut disabled = Vec::new();
            values_of(route, "disabled", &mut disabled);
            let checked = !disabled.iter().any(|value| value.as_bool() == Some(true));
            let removed = route
                .get("request_headers_to_remove")
                .and_then(Value::as_sequence)
                .map(|names| set(names.iter().filter_map(Value::as_str)))
                .unwrap_or_default();
            (route["match"].clone(), checked, removed)
        })
        .collect()
}

/// The metadata keys the Envoy configs read ext_authz's tools/list mark under: the composite
/// filter's input and the local reply mappers. Each must be the mark's name.
fn tools_list_metadata_keys(config: &Value) -> Vec<String> {
    let mut paths = Vec::new();
    values_of(config, "path", &mut paths);
    let mut keys = Vec::new();
    for path in paths {
        let mut found = Vec::new();
        values_of(path, "key", &mut found);
        keys.extend(
            found
                .iter()
                .filter_map(|key| key.as_str())
                .map(str::to_owned),
        );
    }
    keys
}

#[test]
fn both_envoy_modes_run_the_answer_filter_on_the_mark_auth_server_sets() {
    for file in ["deploy/envoy/envoy.yaml", "deploy/envoy/envoy-grpc.yaml"] {
        let config = envoy(file);
        let keys = tools_list_metadata_keys(&config);
        assert_eq!(
            keys.len(),
            3,
            "{file}: composite input and two mappers: {keys:?}"
        );
        assert!(
            keys.iter().all(|key| key == TOOLS_LIST_HEADER),
            "{file}: {keys:?}"
        );
        let mut namespaces = Vec::new();
        values_of(&config, "untyped", &mut namespaces);
        assert_eq!(
            namespaces,
            [&Value::Sequence(vec![
                "envoy.filters.http.ext_authz".into()
            ])],
            "{file}: ext_proc gets ext_authz's metadata"
        );
        let mut modes = Vec::new();
        values_of(&config, "response_body_mode", &mut modes);
        assert_eq!(modes, [&Value::from("BUFFERED")], "{file}");
    }
}

/// The `proxy_set_header` lines of the nginx location that starts with `start`.
fn nginx_location_headers(template: &str, start: &str) -> Vec<(String, String)> {
    let at = template.find(start).unwrap_or_else(|| panic!("no {start}"));
    let location = &template[at..];
    let end = location
        .find("\n        }\n")
        .expect("the end of the location");
    location[..end]
        .lines()
        .filter_map(|line| line.trim().strip_prefix("proxy_set_header "))
        .map(|rest| {
            let (name, value) = rest.split_once(char::is_whitespace).expect("name value");
            (
                name.to_ascii_lowercase(),
                value.trim().trim_end_matches(';').to_owned(),
            )
        })
        .collect()
}

#[test]
fn envoy_routes_strip_the_session_cookie_after_the_check_and_sign_in_goes_unchecked() {
    for path in ["deploy/envoy/envoy.yaml", "deploy/envoy/envoy-grpc.yaml"] {
        let config = envoy(path);
        let routes = envoy_routes(&config);
        let mut mcp_routes = 0;
        for (matcher, checked, removed) in &routes {
            let prefix = matcher.get("prefix").and_then(Value::as_str).unwrap_or("");
            if *checked {
                // An MCP route: the check sees the cookie, the router removes it upstream.
                mcp_routes += 1;
                assert!(
                    removed.contains("cookie"),
                    "{path}: the route {prefix} passes the session cookie upstream"
                );
            }
            if prefix == "/oauth2/" || prefix == "/ui/" {
                assert!(
                    !*checked,
                    "{path}: {prefix} must reach auth-server without a check"
                );
                assert!(
                    removed.contains("authorization") && removed.contains("x-authorization"),
                    "{path}: agents' tokens travel to {prefix}"
                );
            }
        }
        assert!(mcp_routes > 0, "{path}: no checked route found");
        for prefix in ["/oauth2/", "/ui/"] {
            assert!(
                routes.iter().any(
                    |(matcher, _, _)| matcher.get("prefix").and_then(Value::as_str) == Some(prefix)
                ),
                "{path}: no route for {prefix}"
            );
        }
    }
}

#[test]
fn nginx_routes_sign_in_to_auth_server_and_relays_only_its_redirect() {
    let template = read("deploy/nginx/nginx.conf.template");
    for location in ["location ^~ /oauth2/ {", "location ^~ /ui/ {"] {
        let start = template
            .find(location)
            .unwrap_or_else(|| panic!("{location} missing"));
        let block =
            &template[start..start + template[start..].find("\n        }\n").expect("its end")];
        assert!(
            block.contains("proxy_pass http://mcp_auth;"),
            "{location} goes to auth-server"
        );
        assert!(
            !block.contains("access_by_lua"),
            "{location} is not checked"
        );
        assert!(
            block.contains("proxy_set_header X-Authorization \"\";"),
            "{location} drops tokens"
        );
    }
    let lua = read("deploy/nginx/mcp_auth.lua");
    assert!(
        lua.contains(r#"str_match(location, "^/oauth2/start%?")"#),
        "the Lua check relays a Location only when it leads to sign-in on this gateway"
    );
}

#[test]
fn nginx_captures_a_tools_list_answer_with_the_headers_of_the_mcp_location() {
    let template = read("deploy/nginx/nginx.conf.template");
    let mcp = nginx_mcp_location_headers(&template);
    let list = nginx_location_headers(&template, "location ~ ^/_mcp_list/");
    // The same upstream request, but uncompressed.
    let mut expected = mcp.clone();
    expected.extend(
        TOOLS_LIST_UPSTREAM_HEADERS.map(|(name, value)| (name.to_owned(), value.to_owned())),
    );
    let sorted = |mut headers: Vec<(String, String)>| {
        headers.sort();
        headers
    };
    assert_eq!(sorted(list), sorted(expected));
    // A client-sent mark never reaches the upstream.
    assert!(mcp.contains(&(TOOLS_LIST_HEADER.to_owned(), "\"\"".to_owned())));
}

#[test]
fn nginx_calls_the_filter_endpoint_with_the_names_auth_server_reads() {
    let template = read("deploy/nginx/nginx.conf.template");
    let filter = nginx_location_headers(&template, "location = /_mcp_tools_list_filter");
    let names: BTreeSet<String> = filter.iter().map(|(name, _)| name.clone()).collect();
    for header in [
        filter_endpoint::CONTEXT,
        filter_endpoint::UPSTREAM_STATUS,
        filter_endpoint::UPSTREAM_CONTENT_TYPE,
        filter_endpoint::UPSTREAM_CONTENT_ENCODING,
    ] {
        assert!(names.contains(header), "{header} not sent to the filter");
    }
    assert!(
        template.contains(&format!(
            "proxy_pass http://mcp_auth{};",
            filter_endpoint::PATH
        )),
        "the filter location proxies to {}",
        filter_endpoint::PATH
    );
    let check = read("deploy/nginx/mcp_auth.lua");
    assert!(check.contains(&format!("headers[\"{TOOLS_LIST_HEADER}\"]")));
    let lua = read("deploy/nginx/mcp_tools_list.lua");
    assert!(lua.contains(&format!("STATUS_HEADER = \"{}\"", filter_endpoint::STATUS)));
}
