#!/usr/bin/env node
// A real OAuth 2.0 authorization server (panva's certified `oidc-provider`) on
// loopback, for auth-server's end-to-end tests. It issues client-credentials
// access tokens as RS256 JWTs (with `kid`), shaped like a generic OIDC
// provider's (RFC 9068) or like Amazon Cognito's. For credentials-provider's
// tests it also runs the authorization-code flow (PKCE S256 required, refresh
// tokens) with oidc-provider's development login and consent pages. See
// README.md.
//
// stdout carries exactly one line, the JSON "ready" line; everything else goes
// to stderr.

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

// oidc-provider prints its development notices with console.info (stdout).
// Keep stdout for the ready line only.
console.info = console.error;
console.log = console.error;

// ---------------------------------------------------------------------------
// Command line

function die(message) {
  process.stderr.write(`idp: ${message}\n`);
  process.exit(2);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      issuer: { type: 'string' },
      profile: { type: 'string', default: 'oidc' },
      audience: { type: 'string', default: 'mcp-gateway' },
      keys: { type: 'string' },
      ttl: { type: 'string', default: '3600' },
      // Where auth-server's browser sign-in is reached (the gateway): its callback and
      // post-logout URLs are registered exactly for each of these origins.
      'ui-origin': { type: 'string', default: 'http://127.0.0.1:8080,http://localhost:8080' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  }));
} catch (err) {
  die(`${err.message} (see --help)`);
}

if (args.help) {
  process.stderr.write(`usage: node idp.mjs [--port N] [--host ADDR] [--issuer URL]
       [--profile oidc|cognito] [--audience STR] [--keys FILE] [--ttl SECONDS]
       [--ui-origin ORIGIN[,ORIGIN...]]
  --issuer may contain {port}, replaced by the port actually bound.
  --ui-origin: the gateway's origins for auth-server's browser sign-in client.
`);
  process.exit(0);
}

const port = Number(args.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) die(`--port: not a port: ${args.port}`);
const ttl = Number(args.ttl);
if (!Number.isSafeInteger(ttl) || ttl <= 0) die(`--ttl: not a positive integer: ${args.ttl}`);
if (!['oidc', 'cognito'].includes(args.profile)) die(`--profile: must be oidc or cognito, not ${args.profile}`);
const { profile, audience } = args;
if (!audience) die('--audience: must not be empty');
if (args.issuer !== undefined && !URL.canParse(args.issuer.replaceAll('{port}', '1'))) {
  die(`--issuer: not a URL: ${args.issuer}`);
}

// ---------------------------------------------------------------------------
// Clients and scopes

// Scope names of mcp-gateway-registry's scopes.yml; a client may only request
// the ones in its `scopes` list.
const MCP_SCOPES = [
  'mcp-servers-restricted/read',
  'mcp-servers-restricted/execute',
  'mcp-servers-unrestricted/read',
  'mcp-servers-unrestricted/execute',
];

// groups: undefined = the token carries no groups claim at all.
// ttl: access token lifetime in seconds, default --ttl.
// code: an authorization-code client (PKCE S256 required, refresh tokens),
//   `public`: no secret (token_endpoint_auth_method none).
const CLIENTS = [
  { id: 'admin-agent', groups: ['mcp-registry-admin'] },
  { id: 'readonly-agent', groups: ['mcp-registry-user'] },
  { id: 'operator-agent', groups: ['mcp-registry-operator'] },
  { id: 'nogroup-agent' },
  { id: 'scoped-agent', scopes: MCP_SCOPES },
  { id: 'shortlived-agent', groups: ['mcp-registry-admin'], ttl: 2 },
  // Cognito profile only: an "access" token whose token_use says "id".
  { id: 'idtoken-agent', groups: ['mcp-registry-admin'], tokenUse: 'id', profiles: ['cognito'] },
  // Authorization code + PKCE, for credentials-provider's egress (3-legged) flow.
  { id: 'pkce-agent', code: true, scopes: MCP_SCOPES },
  { id: 'pkce-public-agent', code: true, public: true, scopes: MCP_SCOPES },
  // credentials-provider: an AgentCore gateway's authorizer client (client credentials),
  // and a client whose tokens live 8 s, for the watcher that renews them.
  { id: 'agentcore-agent', groups: ['mcp-registry-admin'], scopes: MCP_SCOPES },
  { id: 'watch-agent', groups: ['mcp-registry-admin'], ttl: 8 },
].filter((c) => !c.profiles || c.profiles.includes(profile));

const clientsById = new Map(CLIENTS.map((c) => [c.id, c]));

// ---------------------------------------------------------------------------
// People: auth-server's browser sign-in (issue 15)

// The demo people, who sign in with a password on this IdP's own login page
// (only for the client below; the other code clients keep the development
// pages). Their groups go into the ID token (`groups`).
const PEOPLE = [
  {
    username: 'alice',
    password: 'alice-demo-password',
    name: 'Alice Operator',
    email: 'alice@example.test',
    groups: ['mcp-registry-operator'],
  },
];
const peopleByName = new Map(PEOPLE.map((p) => [p.username, p]));

// auth-server's client for people's sign-in: a confidential web client,
// authorization code + PKCE, refresh tokens, RP-initiated logout back to /ui/.
const UI_CLIENT_ID = 'auth-server-ui';
const uiOrigins = args['ui-origin'].split(',').map((o) => o.trim()).filter(Boolean);
for (const origin of uiOrigins) {
  if (!URL.canParse(origin) || new URL(origin).origin !== origin) die(`--ui-origin: not an origin: ${origin}`);
}
const uiClientMetadata = {
  client_id: UI_CLIENT_ID,
  client_secret: `${UI_CLIENT_ID}-secret`,
  token_endpoint_auth_method: 'client_secret_basic',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  redirect_uris: uiOrigins.map((o) => `${o}/oauth2/callback`),
  post_logout_redirect_uris: uiOrigins.map((o) => `${o}/ui/`),
  scope: 'openid profile email groups offline_access',
};

// Redirect URIs of the authorization-code clients. They are "native"
// clients (RFC 8252): any port is accepted on these loopback URIs (§7.3), so
// a test's callback server may listen on a free port.
const LOOPBACK_REDIRECT_URIS = ['http://127.0.0.1/callback', 'http://localhost/callback'];

function codeClientMetadata(c) {
  return {
    client_id: c.id,
    ...(c.public ? { token_endpoint_auth_method: 'none' } : {
      client_secret: `${c.id}-secret`,
      token_endpoint_auth_method: 'client_secret_basic',
    }),
    application_type: 'native',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: LOOPBACK_REDIRECT_URIS,
    scope: ['openid', 'offline_access', ...(c.scopes ?? [])].join(' '),
  };
}

const clientMetadata = [uiClientMetadata, ...CLIENTS.map((c) => (c.code ? codeClientMetadata(c) : {
  client_id: c.id,
  client_secret: `${c.id}-secret`,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  // oidc-provider accepts client_secret_post too for a client registered
  // with client_secret_basic (both are "a client secret").
  token_endpoint_auth_method: 'client_secret_basic',
  // oidc-provider lets a client without `scope` metadata request any scope,
  // so every client gets at least 'openid' (which never reaches a token here:
  // tokens only carry the resource server's scopes).
  scope: ['openid', ...(c.scopes ?? [])].join(' '),
}))];

// ---------------------------------------------------------------------------
// Keys: private JWKs, the first one signs, all are published.

function thumbprint(jwk) {
  // RFC 7638 JWK thumbprint of an RSA key, used as its kid.
  const canonical = JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n });
  return crypto.createHash('sha256').update(canonical).digest('base64url');
}

function generateKey() {
  // The JWK straight from the generator. Node 20 can deadlock on
  // generateKeyPairSync(...).privateKey.export({ format: 'jwk' }): a garbage
  // collection during the export runs the finished key generation job's
  // destructor, which waits for the mutex the export holds (seen as an IdP that
  // never printed its ready line, about 1 start in 20 on a busy machine).
  const { privateKey: jwk } = crypto.generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'jwk' },
    privateKeyEncoding: { type: 'pkcs8', format: 'jwk' },
  });
  return { ...jwk, kid: thumbprint(jwk), alg: 'RS256', use: 'sig' };
}

function loadKeys(file) {
  let parsed;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    die(`--keys ${file}: ${err.message}`);
  }
  const keys = Array.isArray(parsed) ? parsed : parsed?.keys;
  if (!Array.isArray(keys) || keys.length === 0) die(`--keys ${file}: no keys in it`);
  for (const k of keys) {
    if (k.kty !== 'RSA' || !k.d) die(`--keys ${file}: only private RSA JWKs are supported`);
    k.kid ??= thumbprint(k);
    k.alg ??= 'RS256';
  }
  console.error(`idp: loaded ${keys.length} key(s) from ${file}`);
  return keys;
}

function loadOrCreateKeys(file) {
  if (!file) return [generateKey()];
  if (fs.existsSync(file)) return loadKeys(file);
  // Two IdPs may be started at once with the same new file: write to a
  // private name, then link it into place, which fails if the other won.
  const keys = [generateKey()];
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify({ keys }, null, 2)}\n`, { mode: 0o600 });
  try {
    fs.linkSync(tmp, file);
  } catch (err) {
    if (err.code !== 'EEXIST') die(`--keys ${file}: ${err.message}`);
    return loadKeys(file);
  } finally {
    fs.unlinkSync(tmp);
  }
  console.error(`idp: wrote a new key to ${file}`);
  return keys;
}

// ---------------------------------------------------------------------------
// The provider

// Resource indicator (RFC 8707) used when a client sends none. Resource
// indicators must be absolute URIs, an audience like "mcp-gateway" is not.
const DEFAULT_RESOURCE = URL.canParse(audience) ? audience : `urn:test-idp:resource:${audience}`;

// Claims added to every access token, by profile.
function extraTokenClaims(_ctx, token) {
  const client = clientsById.get(token.clientId);
  if (!client) return {}; // auth-server's sign-in client: its access tokens are its own
  if (profile === 'cognito') {
    return {
      token_use: client.tokenUse ?? 'access',
      auth_time: Math.floor(Date.now() / 1000),
      version: 2,
      ...(client.groups && { 'cognito:groups': client.groups }),
    };
  }
  return {
    azp: client.id,
    ...(client.groups && { groups: client.groups }),
  };
}

// Cognito's JWT header has no `typ` (oidc-provider writes "at+jwt", RFC 9068).
function customizeJwt(_ctx, _token, jwt) {
  if (profile === 'cognito') jwt.header = { typ: undefined };
}

// A person's claims (by scope, see `claims` below); any other account is just
// its `sub`, as before.
async function findAccount(_ctx, sub) {
  const person = peopleByName.get(sub);
  return {
    accountId: sub,
    async claims() {
      if (!person) return { sub };
      return {
        sub,
        name: person.name,
        preferred_username: person.username,
        email: person.email,
        email_verified: true,
        groups: person.groups,
      };
    },
  };
}

// Pages without external assets (the defaults load web fonts).
function page(title, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title>`
    + '<meta name="viewport" content="width=device-width, initial-scale=1"><style>'
    + 'body{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem}'
    + 'label{display:block;margin:.6rem 0 .2rem}input{font:inherit;width:100%;padding:.3rem}'
    + 'button{font:inherit;margin-top:1rem;padding:.4rem 1rem}.error{color:#a4000f}</style>'
    + `</head><body><main><h1>${title}</h1>${body}</main></body></html>`;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function logoutSource(ctx, form) {
  ctx.body = page('Sign out', `<p>Sign out of the test identity provider?</p>${form}`
    + '<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout" id="logout-yes">Yes, sign me out</button> '
    + '<button type="submit" form="op.logoutForm" id="logout-no">No, stay signed in</button>');
}

async function postLogoutSuccessSource(ctx) {
  ctx.body = page('Signed out', '<p>You are signed out of the test identity provider.</p>');
}

function buildProvider(issuer, keys) {
  const provider = new Provider(issuer, {
    clients: clientMetadata,
    jwks: { keys },
    findAccount,
    // People's claims by scope; they go into the ID token too (not only
    // userinfo), so auth-server reads the groups from there.
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    conformIdTokenClaims: false,
    // offline_access: the code clients may ask for it (refresh tokens are
    // issued to them anyway, see issueRefreshToken).
    scopes: ['openid', 'offline_access', 'profile', 'email', 'groups', ...MCP_SCOPES],
    features: {
      // oidc-provider's development login and consent pages, for the
      // authorization-code clients: any login name is accepted (no password
      // check), and it becomes the token's `sub`. A test drives them with
      // plain HTTP requests and a cookie jar, see README.md.
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
      // RFC 7009: auth-server revokes a person's refresh token at sign-out.
      revocation: { enabled: true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => DEFAULT_RESOURCE,
        // The default resource gets aud = --audience. Any other absolute URI
        // a client asks for (`resource=...`) becomes the token's aud as is:
        // handy for "wrong audience" tests.
        async getResourceServerInfo(_ctx, resource) {
          return {
            audience: resource === DEFAULT_RESOURCE ? audience : resource,
            scope: MCP_SCOPES.join(' '),
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    extraTokenClaims,
    // PKCE is required on every authorization request; oidc-provider only
    // implements S256, so `plain` is refused.
    pkce: { required: () => true },
    // A refresh token for every code client, without the OIDC ceremony of
    // `offline_access` + `prompt=consent` that oidc-provider asks by default.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    formats: { customizers: { jwt: customizeJwt } },
    ttl: {
      ClientCredentials: (_ctx, token) => clientsById.get(token.clientId)?.ttl ?? ttl,
      AccessToken: ttl,
    },
    routes: {
      // Where Cognito publishes its key set, relative to the issuer.
      jwks: profile === 'cognito' ? '/.well-known/jwks.json' : '/jwks',
    },
    clientBasedCORS: () => false,
    // Cookies carry the login session and interaction state of the
    // authorization-code flow (signed with this per-process key).
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  });
  provider.on('server_error', (_ctx, err) => console.error('idp: server error:', err));
  provider.on('grant.error', (ctx, err) => {
    console.error(`idp: token refused: client=${ctx.oidc.client?.clientId ?? '?'} ${err.error}: ${err.error_description}`);
  });
  return provider;
}

// ---------------------------------------------------------------------------
// HTTP server: admin endpoints, then the current provider.

// ---------------------------------------------------------------------------
// The login page of auth-server's sign-in client: a username and a password,
// checked against PEOPLE. Consent is implied (auth-server is the gateway's own
// client). Interactions of every other client go on to the development pages.

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > 16384) reject(new Error('form too large'));
    });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

function loginPage(res, uid, message, status = 200) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(page('Sign in to the MCP gateway', `${message ? `<p class="error" role="alert">${escapeHtml(message)}</p>` : ''}`
    + `<form method="post" action="/interaction/${escapeHtml(uid)}" autocomplete="off">`
    + '<label for="username">Username</label><input id="username" name="username" required autofocus>'
    + '<label for="password">Password</label><input id="password" name="password" type="password" required>'
    + '<button type="submit" id="sign-in">Sign in</button></form>'));
}

// Handles /interaction/<uid> for the sign-in client; false for anything else.
async function peopleInteraction(req, res, url) {
  const match = /^\/interaction\/([^/]+)$/.exec(url.pathname);
  if (!match) return false;
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch {
    return false; // no interaction cookie: let oidc-provider answer
  }
  if (details.params.client_id !== UI_CLIENT_ID) return false;
  const { uid, prompt, params } = details;
  if (prompt.name === 'login') {
    if (req.method === 'GET') {
      loginPage(res, uid);
      return true;
    }
    const form = await readForm(req);
    const person = peopleByName.get(form.get('username') ?? '');
    if (!person || person.password !== form.get('password')) {
      console.error('idp: sign-in refused: wrong username or password');
      loginPage(res, uid, 'Wrong username or password.', 401);
      return true;
    }
    await provider.interactionFinished(req, res, { login: { accountId: person.username } }, { mergeWithLastSubmission: false });
    return true;
  }
  if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [resource, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(resource, scopes.join(' '));
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return true;
  }
  return false;
}

let keys = loadOrCreateKeys(args.keys);
let issuer; // known once the port is bound
let issuerPath; // the issuer's path without trailing slash, '' for none
let provider;
let handler; // provider.callback() of the current provider

// Tokens are stateless JWTs and clients are static, so replacing the whole
// provider (oidc-provider takes its keys at construction) loses nothing.
function install(newKeys) {
  keys = newKeys;
  provider = buildProvider(issuer, keys);
  handler = provider.callback();
}

function sendJson(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(`${JSON.stringify(body)}\n`);
}

function admin(req, res, url) {
  if (url.pathname === '/__admin/health') {
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendJson(res, 405, { error: 'method not allowed' });
    return sendJson(res, 200, { ok: true, kid: keys[0].kid });
  }
  if (url.pathname === '/__admin/rotate') {
    if (req.method !== 'POST') return sendJson(res, 405, { error: 'method not allowed' });
    const dropOld = ['1', 'true', 'yes'].includes(url.searchParams.get('drop_old') ?? '');
    const key = generateKey();
    install(dropOld ? [key] : [key, ...keys]);
    const kids = keys.map((k) => k.kid);
    console.error(`idp: rotated, signing with ${key.kid}, publishing ${kids.join(', ')}`);
    return sendJson(res, 200, { kid: key.kid, kids });
  }
  return sendJson(res, 404, { error: 'not found' });
}

const server = http.createServer((req, res) => {
  res.on('finish', () => console.error(`idp: ${req.method} ${req.url} ${res.statusCode}`));
  const url = new URL(req.url, 'http://loopback');
  if (url.pathname.startsWith('/__admin/')) return admin(req, res, url);
  if (url.pathname.startsWith('/interaction/')) {
    peopleInteraction(req, res, url).then((handled) => {
      if (!handled) handler(req, res);
    }).catch((err) => {
      console.error('idp: interaction failed:', err);
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
    });
    return undefined;
  }

  // oidc-provider's routes answer at the root of whatever it is mounted on.
  // Requests under the issuer's path (e.g. /us-east-1_TestPool/.well-known/jwks.json)
  // are mounted there: strip the prefix and keep it in originalUrl, from which
  // oidc-provider derives the URLs it advertises in discovery.
  if (issuerPath && (req.url === issuerPath || req.url.startsWith(`${issuerPath}/`) || req.url.startsWith(`${issuerPath}?`))) {
    req.originalUrl = req.url;
    req.url = req.url.slice(issuerPath.length) || '/';
    if (req.url.startsWith('?')) req.url = `/${req.url}`;
  }
  return handler(req, res);
});

server.on('error', (err) => die(`listen on ${args.host}:${port}: ${err.message}`));

server.listen(port, args.host, () => {
  const bound = server.address().port;
  issuer = (args.issuer ?? 'http://127.0.0.1:{port}').replaceAll('{port}', String(bound));
  try {
    issuerPath = new URL(issuer).pathname.replace(/\/+$/, '');
    install(keys);
  } catch (err) {
    die(`--issuer ${issuer}: ${err.message}`);
  }
  const hostPart = args.host.includes(':') ? `[${args.host}]` : args.host;
  const base = `http://${hostPart}:${bound}`;
  const ready = {
    ready: true,
    port: bound,
    issuer,
    profile,
    audience,
    kid: keys[0].kid,
    discovery: `${base}/.well-known/openid-configuration`,
    jwks_uri: base + provider.pathFor('jwks', { mountPath: '' }),
    token_endpoint: base + provider.pathFor('token', { mountPath: '' }),
  };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
});

function shutdown(signal) {
  console.error(`idp: ${signal}, stopping`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
