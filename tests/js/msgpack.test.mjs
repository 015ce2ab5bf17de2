// The shared client suite with socket.io-msgpack-parser on both sides
// (client `parser` option, server --parser msgpack).
import parser from 'socket.io-msgpack-parser';
import { clientSuite } from './client-suite.mjs';
import { TARGET } from './harness.mjs';

clientSuite({ title: `socket.io-client, msgpack parser (${TARGET})`, parser, serverOpts: { parser: 'msgpack' } });
