// The gateway's page for people: who is signed in, their groups, and per MCP server the tools
// they may use, asked through the gateway (the session cookie is the credential). No
// framework, no build step, no external assets.
'use strict';

const $ = (id) => document.getElementById(id);

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

class McpError extends Error {
  constructor(status, detail) {
    super(detail ? `${status}: ${detail}` : `HTTP ${status}`);
    this.status = status;
  }
}

// A streamable-HTTP MCP session with one server, through the gateway.
class McpSession {
  constructor(server) {
    this.url = `/${encodeURIComponent(server)}/mcp`;
    this.nextId = 1;
    this.sessionId = null;
  }

  async start() {
    await this.request('initialize', {
      protocolVersion: '2025-06-18',
      capabilities: {},
      clientInfo: { name: 'mcp-gateway-ui', version: '1' },
    });
    await this.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  }

  async request(method, params) {
    const id = this.nextId++;
    const answer = await this.send({ jsonrpc: '2.0', id, method, params });
    if (answer.error) throw new McpError('JSON-RPC', answer.error.message);
    return answer.result;
  }

  // One message; a 401 (the session's window ended) is answered by refreshing the session
  // with the IdP once (through /oauth2/userinfo), then sending again.
  async send(message) {
    let response = await this.post(message);
    if (response.status === 401 && await refreshSession()) response = await this.post(message);
    return this.read(response, message);
  }

  async post(message) {
    const headers = {
      'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream',
    };
    if (this.sessionId) headers['Mcp-Session-Id'] = this.sessionId;
    return fetch(this.url, {
      method: 'POST',
      credentials: 'same-origin',
      headers,
      body: JSON.stringify(message),
    });
  }

  async read(response, message) {
    const sessionId = response.headers.get('Mcp-Session-Id');
    if (sessionId) this.sessionId = sessionId;
    if (response.status === 401) {
      signIn();
      throw new McpError(401, 'signed out');
    }
    if (!response.ok) {
      let detail = '';
      try {
        const body = await response.json();
        detail = body.error_description || (body.error && body.error.message) || '';
      } catch (_) { /* not JSON */ }
      throw new McpError(response.status, detail);
    }
    if (!('id' in message)) return null;
    const text = await response.text();
    const type = response.headers.get('Content-Type') || '';
    return type.includes('text/event-stream') ? answerInEvents(text, message.id) : JSON.parse(text);
  }
}

// The JSON-RPC answer with `id` among the events of a text/event-stream body.
function answerInEvents(text, id) {
  for (const event of text.split(/\r?\n\r?\n/)) {
    const data = event.split(/\r?\n/)
      .filter((line) => line.startsWith('data:'))
      .map((line) => line.slice(5).replace(/^ /, ''))
      .join('\n');
    if (!data) continue;
    const message = JSON.parse(data);
    if (message.id === id) return message;
  }
  throw new McpError('JSON-RPC', 'no answer in the event stream');
}

// Asks who is signed in, which refreshes a session that is due; true when still signed in.
async function refreshSession() {
  const response = await fetch('/oauth2/userinfo', {
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
  });
  return response.ok;
}

function signIn() {
  window.location.assign(`/oauth2/start?rd=${encodeURIComponent('/ui/')}`);
}

// Arguments to start from: each required property with an empty value of its type.
function exampleArguments(schema) {
  const example = {};
  const properties = (schema && schema.properties) || {};
  for (const name of (schema && schema.required) || []) {
    const property = properties[name] || {};
    const empty = { string: '', number: 0, integer: 0, boolean: false, array: [], object: {} };
    example[name] = 'default' in property ? property.default : (empty[property.type] ?? null);
  }
  return JSON.stringify(example);
}

function showResult(text, isError) {
  const result = $('result');
  result.textContent = text;
  result.classList.toggle('error', Boolean(isError));
  result.scrollIntoView({ block: 'nearest' });
}

async function callTool(session, server, tool, argumentsField) {
  let args;
  try {
    args = JSON.parse(argumentsField.value || '{}');
  } catch (err) {
    showResult(`The arguments of ${tool} are not JSON: ${err.message}`, true);
    return;
  }
  showResult(`Calling ${server}/${tool}\u2026`, false);
  try {
    const result = await session.request('tools/call', { name: tool, arguments: args });
    const text = (result.content || [])
      .map((part) => (part.type === 'text' ? part.text : JSON.stringify(part)))
      .join('\n');
    showResult(`${server}/${tool}${result.isError ? ' (tool error)' : ''}:\n${text}`, result.isError);
  } catch (err) {
    showResult(`${server}/${tool} refused: ${err.message}`, true);
  }
}

function toolItem(session, server, tool) {
  const fieldId = `args-${server}-${tool.name}`;
  const field = element('textarea', { id: fieldId, rows: '2', spellcheck: 'false' });
  field.value = exampleArguments(tool.inputSchema);
  const button = element('button', { type: 'button', 'data-call': `${server}/${tool.name}` },
    `Call ${tool.name}`);
  button.addEventListener('click', () => callTool(session, server, tool.name, field));
  return element('li', { class: 'tool', 'data-tool': tool.name },
    element('span', { class: 'tool-name' }, tool.name),
    element('p', {}, tool.description || ''),
    element('label', { for: fieldId }, `Arguments of ${tool.name} (JSON)`),
    field,
    button);
}

async function showServer(server) {
  const list = element('ul', { class: 'tools', 'aria-label': `Tools of ${server}` });
  const status = element('p', { class: 'status' }, 'Asking the server\u2026');
  const section = element('section', { class: 'server', 'data-server': server, 'aria-labelledby': `server-${server}` },
    element('h3', { id: `server-${server}` }, server), status, list);
  $('servers').append(section);
  const session = new McpSession(server);
  try {
    await session.start();
    const tools = [];
    let cursor;
    do {
      const page = await session.request('tools/list', cursor ? { cursor } : {});
      tools.push(...(page.tools || []));
      cursor = page.nextCursor;
    } while (cursor);
    status.textContent = tools.length ? `${tools.length} tool(s)` : 'No tools for you here.';
    for (const tool of tools) list.append(toolItem(session, server, tool));
  } catch (err) {
    status.textContent = `Not available to you: ${err.message}`;
    status.classList.add('error');
  }
}

async function main() {
  const response = await fetch('/oauth2/userinfo', {
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
  });
  if (response.status === 401) {
    signIn();
    return;
  }
  if (!response.ok) {
    $('who').textContent = `Cannot tell who is signed in (HTTP ${response.status}).`;
    return;
  }
  const me = await response.json();
  $('who').replaceChildren('Signed in as ',
    element('strong', { id: 'user-name' }, me.preferredUsername || me.user));
  $('groups').replaceChildren(...(me.groups.length
    ? me.groups.map((group) => element('li', {}, group))
    : [element('li', {}, 'No groups: the policy grants you nothing.')]));
  if (!me.servers.length) {
    $('servers').append(element('p', {}, 'The policy names no MCP server for your groups.'));
  }
  await Promise.all(me.servers.map(showServer));
  $('servers').setAttribute('aria-busy', 'false');
  document.body.dataset.ready = 'true';
}

main().catch((err) => {
  $('who').textContent = `The page could not load: ${err.message}`;
});
