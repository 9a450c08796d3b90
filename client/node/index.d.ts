// Type declarations for twilio-broker's Node client. The provider extends
// twilio-node's own CredentialProvider, so
//   client.setCredentialProvider(new BrokerCredentialProvider(addr, 'prod-oauth'))
// compiles against twilio-node's types without a cast.

import type { ChannelCredentials, GrpcObject } from '@grpc/grpc-js';
import CredentialProvider from 'twilio/lib/credential_provider/CredentialProvider';
import AuthStrategy from 'twilio/lib/auth_strategy/AuthStrategy';

/** A bearer token: treat `accessToken` as a secret. */
export interface Bearer {
  accessToken: string;
  /** Expiry, milliseconds since the epoch. */
  expiresAt: number;
  accountSid: string;
}

/** Options of `BrokerClient` (and of `BrokerCredentialProvider`). */
export interface BrokerClientOptions {
  /** TLS or mTLS: `grpc.credentials.createSsl(rootCa, key, certChain)`. */
  credentials?: ChannelCredentials;
  /** A cached bearer with less than this left is replaced (default 60000). */
  safetyMarginMs?: number;
  /** Deadline of each call (default 10000). */
  timeoutMs?: number;
}

/** The `google.rpc.ErrorInfo.domain` of errors the broker sends. */
export const ERROR_DOMAIN: 'twilio-broker';

/**
 * A gRPC error from the broker, with its status code name (e.g. `NOT_FOUND`).
 * Decide on `reason`, never on the message text.
 */
export class BrokerError extends Error {
  readonly code: string;
  /** The broker's `google.rpc.ErrorInfo.reason` (e.g. `MIN_TTL_UNREACHABLE`), or null. */
  readonly reason: string | null;
  /** The ErrorInfo metadata (`field`, `credential`, `retry_after_seconds`, ...). */
  readonly metadata: Record<string, string>;
  /** The `google.rpc.RetryInfo` delay in milliseconds, or null. */
  readonly retryAfterMs: number | null;
}

/** Messages use the proto field names (`ttl_seconds`, `min_ttl_seconds`, ...). */
export type Message = Record<string, unknown>;

/** Credential metadata as Admin returns it (never a secret). */
export interface CredentialMetadata {
  name: string;
  kind: string;
  [field: string]: unknown;
}

/**
 * Calls a twilio-broker at `host:port`, `http(s)://host:port` or
 * `unix:/path`; caches bearer tokens per credential.
 */
export class BrokerClient {
  constructor(address: string, options?: BrokerClientOptions);
  /** How many GetBearer calls the bearer cache made. */
  readonly bearerFetches: number;
  /** GetBearer, uncached. */
  getBearer(credential: string, minTtlSeconds?: number): Promise<Bearer>;
  /** A bearer, cached until `safetyMarginMs` before it expires; one broker call per herd. */
  bearer(credential: string): Promise<Bearer>;
  /** Drops a cached bearer (e.g. after Twilio answered 401). */
  forget(credential: string): void;
  mintAccessToken(request: Message): Promise<{ token: string; jti: string; expires_at: { seconds: number; nanos: number } }>;
  validateWebhook(request: Message): Promise<{ valid: boolean; reason: string }>;
  recommend(request: Message): Promise<Message>;
  putCredential(request: Message): Promise<CredentialMetadata>;
  getCredential(name: string): Promise<CredentialMetadata>;
  /** Every page; `filter` as in ListCredentialsRequest (e.g. `kind = api_key`). */
  listCredentials(filter?: string): Promise<CredentialMetadata[]>;
  deleteCredential(name: string): Promise<CredentialMetadata>;
  reloadPolicy(): Promise<{ rules: number; source: string }>;
  /** Closes the one channel both services share. */
  close(): void;
}

/** twilio-node's credential provider: `Authorization: Bearer` from the broker. */
export class BrokerCredentialProvider extends CredentialProvider {
  constructor(address: string, credential: string, options?: BrokerClientOptions & { client?: BrokerClient });
  readonly client: BrokerClient;
  readonly credential: string;
  /** How many times this provider asked the broker for a token. */
  readonly brokerCalls: number;
  toAuthStrategy(): AuthStrategy;
}

/** The loaded `twilio.broker.v1` package (service constructors for grpc-js). */
export const v1: GrpcObject;
