-- mcp_auth.lua: the access-phase check of every MCP request against auth-server.
--
-- Loaded once by `init_by_lua_block` (nginx.conf.template), so a syntax error stops nginx at
-- start instead of failing requests; called by `access_by_lua_block` in the MCP location.
--
-- Flow (see README.md):
--   1. read the whole client body (memory, or nginx's temp file when it spilled; bounded);
--   2. POST it as the body of an internal subrequest to /_mcp_auth, which proxies to
--      auth-server's /validate with the client headers plus X-Original-URI/-Method;
--   3. 200: copy the identity headers of the answer into nginx variables that the MCP location
--      sets on the upstream request, and decide whether `Authorization` may pass;
--      4xx, and 302 to sign-in for a browser: relay status, WWW-Authenticate, Location,
--      Content-Type and body to the client;
--      anything else (5xx, auth-server down or slow, odd answer): 503 JSON.
-- Every error path ends the request here: the proxy_pass content phase only runs after
-- `return` from check() on an allow. A Lua runtime error is a 500 (fail closed).

local _M = {}

local ngx = ngx
local str_format = string.format
local str_lower = string.lower
local str_match = string.match

-- The internal location that proxies to auth-server's /validate (nginx.conf.template).
local AUTH_LOCATION = "/_mcp_auth"

-- Largest body inspected; set from ${MAX_BODY} by configure(). nginx's client_max_body_size
-- already refuses larger bodies with 413; this bound guards the temp-file read.
local max_body_bytes = 1048576

-- Identity headers of auth-server's allow answer -> nginx variables (declared with `set` in
-- nginx.conf.template). The MCP location sets each on the upstream request with
-- `proxy_set_header`, which also drops any client-sent copy; an empty value sends none.
local IDENTITY = {
    { "x-user",        "mcp_x_user" },
    { "x-username",    "mcp_x_username" },
    { "x-client-id",   "mcp_x_client_id" },
    { "x-scopes",      "mcp_x_scopes" },
    { "x-auth-method", "mcp_x_auth_method" },
    { "x-server-name", "mcp_x_server_name" },
    { "x-method",      "mcp_x_method" },
    { "x-tool-name",   "mcp_x_tool_name" },
}

-- Parses an nginx size ("1048576", "1024k", "1m") into bytes; `setting` names it in the error.
-- Shared with mcp_tools_list.lua.
function _M.parse_size(setting, text)
    local digits, unit = str_match(tostring(text), "^%s*(%d+)%s*([kKmMgG]?)%s*$")
    if not digits then
        error("mcp gateway: " .. setting .. " is not an nginx size (e.g. 1m, 1024k, 1048576): "
              .. tostring(text))
    end
    local multiplier = ({ [""] = 1, k = 1024, m = 1048576, g = 1073741824 })[str_lower(unit)]
    return tonumber(digits) * multiplier
end

--- Called once from init_by_lua_block with the rendered settings.
function _M.configure(opts)
    max_body_bytes = _M.parse_size("MAX_BODY", opts.max_body)
end

-- The variables the upstream request's headers come from: what a tools/list answer's capture
-- (mcp_tools_list.lua) needs back.
local UPSTREAM_VARIABLES = { "mcp_upstream_authorization" }
for _, pair in ipairs(IDENTITY) do UPSTREAM_VARIABLES[#UPSTREAM_VARIABLES + 1] = pair[2] end

local function json_escape(text)
    return (tostring(text):gsub('[%c"\\]', function(c)
        return str_format("\\u%04x", c:byte())
    end))
end

-- Ends the request with our own JSON answer (never reaches the upstream).
local function reply_json(status, error_code, description)
    local body = str_format('{"error":"%s","error_description":"%s"}\n',
                            error_code, json_escape(description))
    ngx.var.mcp_auth_status = tostring(status)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Content-Length"] = #body
    ngx.header["Cache-Control"] = "no-store"
    ngx.print(body)
    return ngx.exit(ngx.HTTP_OK)  -- with a status already sent: finish the whole request
end

-- Reads the body nginx wrote to its temp file (bodies above client_body_buffer_size).
-- The read is blocking but bounded by max_body_bytes, from a file nginx has just written
-- (page cache); a body that cannot be read completely is refused, never waved through.
local function read_spilled_body(path)
    local file, err = io.open(path, "rb")
    if not file then
        return nil, "cannot open request body file: " .. tostring(err)
    end
    local size = file:seek("end")
    if not size then
        file:close()
        return nil, "cannot size request body file"
    end
    if size > max_body_bytes then
        file:close()
        return nil, "too_large"
    end
    if size == 0 then
        file:close()
        return ""
    end
    file:seek("set", 0)
    local data = file:read(size)
    file:close()
    if not data or #data ~= size then
        return nil, "short read of request body file"
    end
    return data
end

-- The client body, byte for byte, or nil plus an error reply already sent.
local function client_body()
    -- Without read_body() the body looks empty: it must be read before the check.
    -- A chunked body over client_max_body_size makes read_body() end the request with 413
    -- (our JSON error_page); it never returns here.
    ngx.req.read_body()

    local body = ngx.req.get_body_data()  -- nil when empty or when it went to a file
    if body == nil then
        local path = ngx.req.get_body_file()
        if path then
            local data, err = read_spilled_body(path)
            if not data then
                if err == "too_large" then
                    return nil, reply_json(413, "request_too_large",
                                           "request body exceeds " .. max_body_bytes .. " bytes")
                end
                ngx.log(ngx.ERR, "mcp_auth: ", err)
                return nil, reply_json(500, "body_unreadable",
                                       "the request body could not be inspected")
            end
            body = data
        else
            body = ""
        end
    end

    if #body > max_body_bytes then
        return nil, reply_json(413, "request_too_large",
                               "request body exceeds " .. max_body_bytes .. " bytes")
    end
    -- What auth-server inspects must be what the upstream gets: a Content-Length that does
    -- not match the bytes we hold means we are not looking at the whole body.
    local declared = ngx.var.http_content_length
    if declared and tonumber(declared) ~= #body then
        ngx.log(ngx.ERR, "mcp_auth: body length ", #body, " differs from Content-Length ",
                declared)
        return nil, reply_json(500, "body_unreadable", "the request body could not be inspected")
    end
    return body
end

-- Header table of the subrequest's answer, keyed by lower-case name (nginx keeps the case
-- the auth service sent; hyper sends lower case, others do not). A repeated header becomes
-- a Lua table.
local function lower_headers(headers)
    local out = {}
    for name, value in pairs(headers) do
        local key = str_lower(name)
        local seen = out[key]
        if seen == nil then
            out[key] = value
        else
            if type(seen) ~= "table" then seen = { seen } end
            if type(value) == "table" then
                for _, v in ipairs(value) do seen[#seen + 1] = v end
            else
                seen[#seen + 1] = value
            end
            out[key] = seen
        end
    end
    return out
end

-- The answer's headers by lower-case name. auth-server sends lower-case names (its allow
-- answer always carries x-server-name): used as they are. Any other answer is normalised.
local function answer_headers(headers)
    if headers == nil then return {} end
    if headers["x-server-name"] ~= nil then return headers end
    return lower_headers(headers)
end

local function is_json(content_type)
    return type(content_type) == "string"
        and str_match(str_lower(content_type), "^%s*application/[%w.+-]*json") ~= nil
end

-- Read-only sets for auth-server's usual `x-envoy-auth-headers-to-remove` values.
local REMOVE_AUTHORIZATION = { ["authorization"] = true }
local REMOVE_X_AUTHORIZATION = { ["x-authorization"] = true }

-- Names listed in `x-envoy-auth-headers-to-remove` (comma-separated, possibly repeated).
local function removal_set(value)
    -- auth-server's usual answers, without a pattern match.
    if value == "x-authorization" then return REMOVE_X_AUTHORIZATION end
    if value == "authorization" then return REMOVE_AUTHORIZATION end
    local set = {}
    if value == nil then return set end
    local values = type(value) == "table" and value or { value }
    for _, v in ipairs(values) do
        for name in tostring(v):gmatch("[^,%s]+") do
            set[str_lower(name)] = true
        end
    end
    return set
end

-- The deny path: the client gets auth-server's status, WWW-Authenticate, Retry-After,
-- Content-Type and JSON body. Nothing else from the answer is relayed.
local function relay_deny(res, headers)
    ngx.var.mcp_auth_status = tostring(res.status)
    local body = res.body or ""
    local content_type = headers["content-type"]
    if type(content_type) == "table" then content_type = content_type[1] end
    if not is_json(content_type) or body == "" then
        -- Not an answer auth-server wrote (e.g. an nginx error page): keep the status,
        -- give the client JSON anyway.
        return reply_json(res.status, "access_denied", "request refused by the gateway")
    end
    ngx.status = res.status
    local challenge = headers["www-authenticate"]
    if challenge ~= nil then
        ngx.header["WWW-Authenticate"] = challenge
    end
    -- 503 busy (too many large bodies at once): when to try again.
    local retry_after = headers["retry-after"]
    if retry_after ~= nil then
        ngx.header["Retry-After"] = retry_after
    end
    -- 302: a browser without a session is sent to sign-in on this gateway.
    local location = headers["location"]
    if res.status == ngx.HTTP_MOVED_TEMPORARILY and type(location) == "string"
            and str_match(location, "^/oauth2/start%?") then
        ngx.header["Location"] = location
    end
    ngx.header["Content-Type"] = content_type
    ngx.header["Content-Length"] = #body
    ngx.header["Cache-Control"] = "no-store"
    ngx.print(body)
    return ngx.exit(ngx.HTTP_OK)
end

--- The access-phase check. Returns normally only when auth-server allowed the request.
function _M.check()
    local body, replied = client_body()
    if body == nil then return replied end

    -- Body-carrying subrequest. Always POST with an explicit body (also "" for a body-less
    -- GET/DELETE): without `body`, a POST subrequest would inherit the parent's body and a
    -- GET one would get none. The original method travels in X-Original-Method.
    local res = ngx.location.capture(AUTH_LOCATION, { method = ngx.HTTP_POST, body = body })
    local headers = answer_headers(res.header)

    if res.truncated then
        ngx.log(ngx.ERR, "mcp_auth: auth-server answer truncated (status ", res.status, ")")
        return reply_json(503, "auth_unavailable", "the authorization service did not answer")
    end

    if res.status == ngx.HTTP_OK then
        -- Allow. The identity headers come from the answer only; a repeated one is a broken
        -- answer, refused rather than guessed.
        for _, pair in ipairs(IDENTITY) do
            local value = headers[pair[1]]
            if type(value) == "table" then
                ngx.log(ngx.ERR, "mcp_auth: auth-server answer repeats ", pair[1])
                return reply_json(503, "auth_unavailable",
                                  "the authorization service gave an invalid answer")
            end
            ngx.var[pair[2]] = value or ""
        end

        -- Defense in depth: the decision must be about the server nginx routes to. nginx
        -- normalises the path ($uri: percent-decoded, dot segments resolved, slashes merged)
        -- while auth-server reads the raw X-Original-URI; they must name the same server.
        local routed = ngx.var.mcp_server
        if headers["x-server-name"] ~= routed then
            ngx.log(ngx.WARN, "mcp_auth: allow was for server '",
                    tostring(headers["x-server-name"]), "', request routes to '", routed, "'")
            return reply_json(400, "invalid_request",
                              "the request path is not in canonical form")
        end

        -- The ingress token never reaches the upstream. When X-Authorization is absent the
        -- token came in Authorization (auth-server then lists `authorization` in
        -- x-envoy-auth-headers-to-remove): send no Authorization. When X-Authorization was
        -- present, Authorization is the egress token and passes untouched. Either signal is
        -- enough to strip it.
        local remove = removal_set(headers["x-envoy-auth-headers-to-remove"])
        local x_authorization = ngx.var.http_x_authorization
        if remove["authorization"] or x_authorization == nil or x_authorization == "" then
            ngx.var.mcp_upstream_authorization = ""
        else
            ngx.var.mcp_upstream_authorization = ngx.var.http_authorization or ""
        end

        ngx.var.mcp_auth_status = "200"
        -- A request holding tools/list calls: its answer is filtered before the client sees it.
        local tools_list = headers["x-mcp-tools-list"]
        if tools_list ~= nil then
            return require("mcp_tools_list").serve(body, tools_list, UPSTREAM_VARIABLES)
        end
        return  -- continue to the content phase: proxy_pass to the MCP server
    end

    if (res.status >= 400 and res.status < 500) or res.status == ngx.HTTP_MOVED_TEMPORARILY then
        return relay_deny(res, headers)
    end

    if res.status >= 500 and is_json(headers["content-type"]) and (res.body or "") ~= "" then
        -- auth-server's own 5xx (e.g. 503: no usable key set): relay it as it is.
        return relay_deny(res, headers)
    end

    -- nginx could not get an answer (502 refused/reset, 504 timeout) or the answer is not one
    -- auth-server gives (1xx/2xx other than 200/3xx): no decision, no upstream call.
    ngx.log(ngx.ERR, "mcp_auth: no decision from auth-server, subrequest status ", res.status)
    return reply_json(503, "auth_unavailable", "the authorization service is unavailable")
end

return _M
