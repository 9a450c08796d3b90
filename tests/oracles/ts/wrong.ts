// Must NOT compile (tests/e2e/clients/packages.rs): proves the declarations
// are real types, not `any`. A BrokerClient is not a credential provider.
import twilio = require('twilio');
import { BrokerClient } from 'twilio-broker';

twilio().setCredentialProvider(new BrokerClient('127.0.0.1:50051'));
