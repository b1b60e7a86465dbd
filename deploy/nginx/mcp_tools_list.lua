-- mcp_tools_list.lua: the answer of a request that holds tools/list calls, filtered by
-- auth-server before the client sees it (each caller sees only the tools it may use).
--
-- Loaded once by `init_by_lua_block` (nginx.conf.template); mcp_auth.lua hands a request here
-- after an allow whose answer carries the x-mcp-tools-list mark (its value, the filter's
-- context, comes from auth-server only). Every other request never gets here: it goes on to
-- the MCP location's proxy_pass and streams as before.
--
-- Flow (see README.md):
--   1. capture the upstream's whole answer through the internal location /_mcp_list/<server>/
--      (the same upstream request as the MCP location's, asking for Accept-Encoding: identity),
--      keeping at most the answer bound plus one byte (bound(): more is never held);
--   2. POST it to auth-server's filter endpoint through /_mcp_tools_list_filter, with the
--      context and the upstream's status, Content-Type and Content-Encoding;
--   3. 204: send the upstream's answer as it came; 200: send the filter's body, Content-Type
--      and status (x-mcp-status) with the upstream's other headers (Mcp-Session-Id, ...);
--      anything else: 502 with a JSON-RPC error, never the unread answer.
-- Server-level `set` runs again in each subrequest and clears the variables the locations
-- read: the values travel in ngx.ctx (shared with the captures) and are put back by each
-- internal location's rewrite_by_lua.

local _M = {}

local ngx = ngx
local str_format = string.format
local str_lower = string.lower
local str_sub = string.sub

-- The internal locations (nginx.conf.template).
local LIST_LOCATION = "/_mcp_list/"
local FILTER_LOCATION = "/_mcp_tools_list_filter"

-- Largest answer the filter reads; set from ${MAX_LIST_ANSWER} by configure(). Keep equal to
-- auth-server's AUTH_MAX_LIST_ANSWER_BYTES: one byte more is kept, so that auth-server sees an
-- answer over its bound and refuses it with the request's ids.
local max_answer_bytes = 16777216

-- The filter endpoint's answer header naming the status to send (auth_server::headers).
local STATUS_HEADER = "x-mcp-status"

-- Upstream answer headers that describe the body this module replaces, or the connection:
-- never relayed. Everything else (Mcp-Session-Id, Cache-Control, ...) reaches the client.
local NOT_RELAYED = {
    ["content-type"] = true, ["content-length"] = true, ["content-encoding"] = true,
    ["transfer-encoding"] = true, ["connection"] = true, ["keep-alive"] = true,
}

-- Filter inputs -> nginx variables of /_mcp_tools_list_filter (declared with `set`).
local FILTER_INPUTS = {
    "mcp_list_context", "mcp_list_upstream_status", "mcp_list_upstream_type",
    "mcp_list_upstream_encoding",
}

--- Called once from init_by_lua_block with the rendered settings.
function _M.configure(opts)
    max_answer_bytes = require("mcp_auth").parse_size("MAX_LIST_ANSWER", opts.max_answer)
end

-- The first value of header `name` (lower case) in a capture's answer, whatever the case its
-- sender used; a repeated header gives its first value.
local function header(res, name)
    for key, value in pairs(res.header) do
        if str_lower(key) == name then
            if type(value) == "table" then return value[1] end
            return value
        end
    end
    return nil
end

-- Ends the request with a JSON-RPC error: the answer could not be filtered, so none is sent.
local function withheld(status, reason, description)
    ngx.log(ngx.ERR, "mcp_tools_list: answer withheld: ", description)
    local body = str_format('{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":'
                            .. '"tools/list answer withheld by the gateway: %s","data":'
                            .. '{"reason":"%s"}}}', description, reason)
    ngx.var.mcp_auth_status = "200"
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Content-Length"] = #body
    ngx.header["Cache-Control"] = "no-store"
    ngx.print(body)
    return ngx.exit(ngx.HTTP_OK)
end

--- rewrite_by_lua of /_mcp_list/: the variables the upstream request's headers come from, as
--- the check set them in the parent request.
function _M.restore_upstream()
    for name, value in pairs(ngx.ctx.mcp_upstream or {}) do
        ngx.var[name] = value
    end
end

--- body_filter_by_lua of /_mcp_list/: keeps at most the bound plus one byte of the answer.
function _M.bound()
    local ctx = ngx.ctx
    local chunk = ngx.arg[1]
    local seen = (ctx.mcp_list_seen or 0) + #chunk
    ctx.mcp_list_seen = seen
    local room = max_answer_bytes + 1 - (seen - #chunk)
    if #chunk > room then
        ngx.arg[1] = room > 0 and str_sub(chunk, 1, room) or ""
    end
end

--- rewrite_by_lua of /_mcp_tools_list_filter: the filter's inputs.
function _M.restore_filter_inputs()
    local inputs = ngx.ctx.mcp_list_inputs or {}
    for _, name in ipairs(FILTER_INPUTS) do
        ngx.var[name] = inputs[name] or ""
    end
end

--- Serves a request the check allowed and marked: `body` is the client's request body,
--- `context` the mark's value, `variables` the names of the nginx variables the upstream
--- request's headers come from (identity, Authorization). Ends the request.
function _M.serve(body, context, variables)
    if type(context) ~= "string" or context == "" then
        -- A repeated or empty mark is not an answer auth-server gives.
        return withheld(502, "filter_unavailable", "the check's answer is not readable")
    end
    local ctx = ngx.ctx
    local upstream = {}
    for _, name in ipairs(variables) do
        upstream[name] = ngx.var[name]
    end
    ctx.mcp_upstream = upstream

    local list = ngx.location.capture(LIST_LOCATION .. ngx.var.mcp_server .. ngx.var.uri, {
        method = ngx.HTTP_POST, body = body, args = ngx.var.args, ctx = ctx,
    })
    if list.truncated then
        return withheld(502, "upstream_incomplete", "the MCP server's answer was cut off")
    end
    local answer = list.body or ""
    ctx.mcp_list_inputs = {
        mcp_list_context = context,
        mcp_list_upstream_status = tostring(list.status),
        mcp_list_upstream_type = header(list, "content-type") or "",
        mcp_list_upstream_encoding = header(list, "content-encoding") or "",
    }
    local filtered = ngx.location.capture(FILTER_LOCATION, {
        method = ngx.HTTP_POST, body = answer, ctx = ctx,
    })

    local status, content_type, out
    local cut = (ctx.mcp_list_seen or 0) > #answer
    if filtered.status == ngx.HTTP_NO_CONTENT and not cut then
        status, content_type, out = list.status, header(list, "content-type"), answer
    elseif filtered.status == ngx.HTTP_OK and not filtered.truncated then
        status = tonumber(header(filtered, STATUS_HEADER) or "")
        content_type, out = header(filtered, "content-type"), filtered.body or ""
    end
    if not status then
        ngx.log(ngx.ERR, "mcp_tools_list: filter answered ", filtered.status)
        return withheld(502, "filter_unavailable", "the filter did not answer")
    end

    ngx.var.mcp_auth_status = "200"
    ngx.status = status
    for name, value in pairs(list.header) do
        if not NOT_RELAYED[str_lower(name)] then
            ngx.header[name] = value
        end
    end
    ngx.header["Content-Type"] = content_type
    ngx.header["Content-Length"] = #out
    ngx.print(out)
    return ngx.exit(ngx.HTTP_OK)
end

return _M
