// socket.io-client (JSON parser) against the server under test: the shared
// suite of client-suite.mjs over websocket, polling and polling+upgrade.
import { clientSuite } from './client-suite.mjs';
import { TARGET } from './harness.mjs';

clientSuite({ title: `socket.io-client, JSON parser (${TARGET})` });
