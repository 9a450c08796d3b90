// Compiled by tests/e2e/clients/packages.rs with tsc (pinned in
// tests/oracles/package.json) inside a folder where the `npm pack` tarball
// is installed beside twilio 6.x: the README's Node snippet, typed, no cast.
import twilio = require('twilio');
import { BrokerClient, BrokerCredentialProvider, Bearer } from 'twilio-broker';

const client = twilio();
client.setCredentialProvider(new BrokerCredentialProvider('unix:/run/twilio-broker/broker.sock', 'prod-oauth'));
client.setAccountSid('AC00000000000000000000000000000000');

const broker = new BrokerClient('127.0.0.1:50051', { timeoutMs: 5000 });
export async function accountOf(credential: string): Promise<string> {
  const bearer: Bearer = await broker.bearer(credential);
  return bearer.accountSid;
}
