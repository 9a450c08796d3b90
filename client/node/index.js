'use strict';
// Node client for twilio-broker.
//
//   const { BrokerClient, BrokerCredentialProvider } = require('twilio-broker');
//   const client = require('twilio')();
//   client.setCredentialProvider(new BrokerCredentialProvider('unix:/run/twilio-broker/broker.sock', 'prod-oauth'));
//   client.setAccountSid('AC...');            // setCredentialProvider clears it
//
// twilio-node asks its provider for a fresh auth strategy on every request, so
// without a cache it would fetch a token per API call; this provider's cache
// keeps one token until shortly before it expires.

const net = require('net');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.join(__dirname, 'proto');
const definition = protoLoader.loadSync(
  ['twilio/broker/v1/broker.proto', 'twilio/broker/v1/admin.proto'],
  { includeDirs: [PROTO_ROOT], keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true },
);
const v1 = grpc.loadPackageDefinition(definition).twilio.broker.v1;

/** The `google.rpc.ErrorInfo.domain` of errors the broker sends. */
const ERROR_DOMAIN = 'twilio-broker';
/** The reason GetBearer gives when `min_ttl_seconds` cannot be met. */
const MIN_TTL_UNREACHABLE = 'MIN_TTL_UNREACHABLE';
const ERROR_INFO_TYPE = 'type.googleapis.com/google.rpc.ErrorInfo';
const RETRY_INFO_TYPE = 'type.googleapis.com/google.rpc.RetryInfo';

/**
 * The fields of one protobuf message: a Map from field number to the list of
 * its values (a Buffer for length-delimited fields, a BigInt for varints).
 * Enough of the wire format for google.rpc.Status and its details, so the
 * client needs no protobuf runtime of its own.
 */
function protoFields(buf) {
  const fields = new Map();
  let at = 0;
  const varint = () => {
    let value = 0n;
    for (let shift = 0n; at < buf.length; shift += 7n) {
      const byte = buf[at++];
      value |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return value;
    }
    throw new Error('truncated varint');
  };
  while (at < buf.length) {
    const key = varint();
    const number = Number(key >> 3n);
    let value;
    switch (Number(key & 7n)) {
      case 0: value = varint(); break;
      case 1: value = buf.subarray(at, at + 8); at += 8; break;
      case 2: { const len = Number(varint()); value = buf.subarray(at, at + len); at += len; break; }
      case 5: value = buf.subarray(at, at + 4); at += 4; break;
      default: throw new Error('unsupported wire type');
    }
    if (at > buf.length) throw new Error('truncated field');
    if (!fields.has(number)) fields.set(number, []);
    fields.get(number).push(value);
  }
  return fields;
}

const text = (fields, n) => (fields.get(n) || []).map((b) => b.toString('utf8')).pop() || '';

/**
 * The broker's reason, metadata and retry delay from a grpc-js error's
 * `grpc-status-details-bin` trailer (a google.rpc.Status); nulls when absent
 * or malformed.
 */
function statusDetails(err) {
  const none = { reason: null, metadata: {}, retryAfterMs: null };
  const raw = err && err.metadata && typeof err.metadata.get === 'function'
    ? err.metadata.get('grpc-status-details-bin') : [];
  if (!raw || raw.length === 0) return none;
  try {
    const found = { ...none };
    for (const any of protoFields(Buffer.from(raw[0])).get(3) || []) {
      const anyFields = protoFields(any);
      const value = (anyFields.get(2) || [Buffer.alloc(0)])[0];
      const type = text(anyFields, 1);
      if (type === ERROR_INFO_TYPE) {
        const info = protoFields(value);
        if (text(info, 2) !== ERROR_DOMAIN) continue;
        found.reason = text(info, 1);
        found.metadata = {};
        for (const entry of info.get(3) || []) {
          const kv = protoFields(entry);
          found.metadata[text(kv, 1)] = text(kv, 2);
        }
      } else if (type === RETRY_INFO_TYPE) {
        const delay = (protoFields(value).get(1) || [])[0];
        if (delay) {
          const d = protoFields(delay);
          const seconds = Number((d.get(1) || [0n])[0]);
          const nanos = Number((d.get(2) || [0n])[0]);
          found.retryAfterMs = seconds * 1000 + Math.floor(nanos / 1e6);
        }
      }
    }
    return found;
  } catch (_) {
    return none;
  }
}

/**
 * A gRPC error from the broker, with its status code name (e.g. NOT_FOUND).
 * Decide on `reason` (the broker's google.rpc.ErrorInfo reason, such as
 * MIN_TTL_UNREACHABLE; the README lists them), never on the message text.
 * `metadata` holds the ErrorInfo metadata (`field`, `credential`, ...) and
 * `retryAfterMs` the google.rpc.RetryInfo delay, when the broker knows one.
 */
class BrokerError extends Error {
  constructor(err) {
    const code = Object.keys(grpc.status).find((k) => grpc.status[k] === err.code) || String(err.code);
    super(`${code}: ${err.details}`);
    this.code = code;
    const { reason, metadata, retryAfterMs } = statusDetails(err);
    this.reason = reason;
    this.metadata = metadata;
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * grpc-js's target for `address`, and the credentials to use: accepts what the
 * Rust client accepts, `host:port`, `http://host:port`, `https://host:port`
 * (TLS with the system roots unless `credentials` is given) and `unix:/path`.
 */
function resolveTarget(address, credentials) {
  if (address.startsWith('http://')) {
    const target = address.slice('http://'.length).replace(/\/+$/, '');
    if (!credentials) checkPlaintext(address, target);
    return [target, credentials || grpc.credentials.createInsecure()];
  }
  if (address.startsWith('https://')) {
    return [address.slice('https://'.length).replace(/\/+$/, ''), credentials || grpc.credentials.createSsl()];
  }
  if (!credentials) checkPlaintext(address, address);
  return [address, credentials || grpc.credentials.createInsecure()];
}

/** The host of a `host:port` / `[v6]:port` target. */
function hostOf(target) {
  const authority = target.split('/')[0];
  if (authority.startsWith('[')) return authority.slice(1).split(']')[0];
  const colon = authority.lastIndexOf(':');
  return colon < 0 ? authority : authority.slice(0, colon);
}

/** True for `localhost` and loopback addresses (127.0.0.0/8, ::1). */
function isLoopback(host) {
  if (host.toLowerCase() === 'localhost') return true;
  if (net.isIPv4(host)) return host.split('.')[0] === '127';
  if (net.isIPv6(host)) return host === '::1' || host === '0:0:0:0:0:0:0:1';
  return false;
}

/**
 * Plaintext to a non-loopback host is refused unless `http://` is written
 * out, which is allowed with a loud warning (as the CLI and the Rust client).
 */
function checkPlaintext(address, target) {
  if (target.startsWith('unix:') || target.startsWith('unix-abstract:')) return;
  const host = hostOf(target);
  if (isLoopback(host)) return;
  if (address.startsWith('http://')) {
    process.emitWarning(
      `twilio-broker client: speaking PLAINTEXT to ${host} because the address says http://; ` +
        'bearer tokens and credentials cross the network unencrypted',
      'TwilioBrokerPlaintextWarning',
    );
    return;
  }
  throw new Error(
    `${address}: refusing plaintext to ${host}, which is not this machine: use https://${address} ` +
      `(with credentials: grpc.credentials.createSsl(...)), or write http://${address} to insist on plaintext`,
  );
}

/**
 * Calls a twilio-broker; caches bearer tokens per credential. For mTLS pass
 * `credentials: grpc.credentials.createSsl(rootCa, key, certChain)`.
 */
class BrokerClient {
  constructor(address, { credentials, safetyMarginMs = 60000, timeoutMs = 10000 } = {}) {
    const [target, creds] = resolveTarget(address, credentials);
    // `localhost` as `:authority` on a Unix socket (grpc-js's own default too).
    const options = target.startsWith('unix:') ? { 'grpc.default_authority': 'localhost' } : {};
    this.broker = new v1.Broker(target, creds, options);
    this.admin = new v1.Admin(target, creds, { ...options, channelOverride: this.broker.getChannel() });
    this.safetyMarginMs = safetyMarginMs;
    this.timeoutMs = timeoutMs;
    this.cache = new Map();     // credential -> { accessToken, expiresAt }
    this.inflight = new Map();  // credential -> Promise (one broker call per herd)
    this.bearerFetches = 0;
  }

  call(service, method, request) {
    return new Promise((resolve, reject) => {
      service[method](request, { deadline: Date.now() + this.timeoutMs }, (err, reply) =>
        (err ? reject(new BrokerError(err)) : resolve(reply)));
    });
  }

  /** GetBearer, uncached: { accessToken, expiresAt (ms), accountSid }. */
  async getBearer(credential, minTtlSeconds = 0) {
    const reply = await this.call(this.broker, 'GetBearer', { credential, min_ttl_seconds: minTtlSeconds });
    const expiresAt = Number(reply.expires_at.seconds) * 1000 + Math.floor(reply.expires_at.nanos / 1e6);
    return { accessToken: reply.access_token, expiresAt, accountSid: reply.account_sid };
  }

  /**
   * A bearer token, cached until safetyMarginMs before it expires (half its
   * life for tokens shorter than twice the margin). One broker call per
   * credential however many callers ask at once; `bearerFetches` counts them.
   */
  async bearer(credential) {
    const cached = this.cache.get(credential);
    if (cached && cached.bearer.expiresAt - Date.now() > cached.marginMs) return cached.bearer;
    if (!this.inflight.has(credential)) {
      const fetch = this.fetchBearer(credential)
        .then((entry) => { this.cache.set(credential, entry); return entry.bearer; })
        .finally(() => this.inflight.delete(credential));
      this.inflight.set(credential, fetch);
    }
    return this.inflight.get(credential);
  }

  async fetchBearer(credential) {
    const received = Date.now();
    const minTtl = Math.ceil((this.safetyMarginMs * 2) / 1000);
    try {
      this.bearerFetches += 1;
      return { bearer: await this.getBearer(credential, minTtl), marginMs: this.safetyMarginMs };
    } catch (err) {
      // Twilio issues this credential's tokens for less than twice our margin
      // (a short access_token_ttl): take what the broker has and keep it for
      // half its remaining life at most.
      if (!(err instanceof BrokerError && err.reason === MIN_TTL_UNREACHABLE)) {
        throw err;
      }
    }
    this.bearerFetches += 1;
    const bearer = await this.getBearer(credential, 0);
    return { bearer, marginMs: Math.min(this.safetyMarginMs, (bearer.expiresAt - received) / 2) };
  }

  /** Drops a cached bearer (e.g. after Twilio answered 401). */
  forget(credential) {
    this.cache.delete(credential);
  }

  /** MintAccessToken: `{ credential, identity, ttl_seconds, video: { room } ... }` (proto field names). */
  mintAccessToken(request) {
    return this.call(this.broker, 'MintAccessToken', request);
  }

  /** ValidateWebhook: `{ credential, url, params: [{ name, value }], body, signature, signature_settings }`. */
  validateWebhook(request) {
    return this.call(this.broker, 'ValidateWebhook', request);
  }

  /** Recommend. */
  recommend(request) {
    return this.call(this.broker, 'Recommend', request);
  }

  /** Admin/PutCredential; drops any cached bearer of that name. Resolves to the metadata. */
  async putCredential(request) {
    const reply = await this.call(this.admin, 'PutCredential', request);
    this.forget(request.name);
    return reply.credential;
  }

  /** Admin/GetCredential. Resolves to the metadata. */
  async getCredential(name) {
    return (await this.call(this.admin, 'GetCredential', { name })).credential;
  }

  /**
   * Admin/ListCredentials: every page, optionally filtered (e.g.
   * `kind = api_key AND labels.environment = production`). Resolves to an
   * array of metadata.
   */
  async listCredentials(filter = '') {
    const found = [];
    let pageToken = '';
    for (;;) {
      const page = await this.call(this.admin, 'ListCredentials', { page_token: pageToken, filter });
      found.push(...page.credentials);
      if (!page.next_page_token) return found;
      pageToken = page.next_page_token;
    }
  }

  /** Admin/DeleteCredential; drops any cached bearer of that name. */
  async deleteCredential(name) {
    const reply = await this.call(this.admin, 'DeleteCredential', { name });
    this.forget(name);
    return reply.credential;
  }

  /** Admin/ReloadPolicy: `{ rules, source }`. */
  reloadPolicy() {
    return this.call(this.admin, 'ReloadPolicy', {});
  }

  /** Closes the one channel both services share. */
  close() {
    this.broker.close();
  }
}

/**
 * twilio-node's abstract base class `name` when twilio is installed beside
 * this package (so `instanceof` and its TypeScript types hold), else a
 * stand-in of the same shape.
 */
function twilioBase(name) {
  try {
    // eslint-disable-next-line global-require, import/no-dynamic-require
    return require(`twilio/lib/${name}`).default;
  } catch (_) {
    return class {
      constructor(authType) {
        this.authType = authType;
      }

      getAuthType() {
        return this.authType;
      }
    };
  }
}

const CredentialProvider = twilioBase('credential_provider/CredentialProvider');
const AuthStrategy = twilioBase('auth_strategy/AuthStrategy');

/** twilio-node's AuthStrategy: `Authorization: Bearer <token>` from the client's cache. */
class BrokerBearerStrategy extends AuthStrategy {
  constructor(client, credential) {
    super('client-credentials');
    this.client = client;
    this.credential = credential;
  }

  async getAuthString() {
    return `Bearer ${(await this.client.bearer(this.credential)).accessToken}`;
  }

  requiresAuthentication() {
    return true;
  }
}

/** A credential provider for twilio-node (>= 5.4): Authorization: Bearer from the broker. */
class BrokerCredentialProvider extends CredentialProvider {
  constructor(address, credential, options = {}) {
    super('client-credentials');
    this.client = options.client || new BrokerClient(address, options);
    this.credential = credential;
  }

  get brokerCalls() {
    return this.client.bearerFetches;
  }

  toAuthStrategy() {
    return new BrokerBearerStrategy(this.client, this.credential);
  }
}

module.exports = { BrokerClient, BrokerCredentialProvider, BrokerError, ERROR_DOMAIN, v1 };
