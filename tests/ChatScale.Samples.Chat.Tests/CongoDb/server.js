// Starts CongoDB on 127.0.0.1:<port> and prints "listening <port>" once it accepts connections.
// usage: node server.js <port> [--exit-on-stdin-close]
// The test fixture passes --exit-on-stdin-close, so a crashed test run never leaves a server behind.
import { CongoServer } from './node_modules/@push.rocks/smartmongo/dist_ts/congodb/index.js';

const port = Number.parseInt(process.argv[2] ?? '', 10);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node server.js <port>');
  process.exit(2);
}

const server = new CongoServer({ host: '127.0.0.1', port });
await server.start();
console.log(`listening ${port}`);

const stop = async () => {
  try {
    await server.stop();
  } finally {
    process.exit(0);
  }
};
if (process.argv.includes('--exit-on-stdin-close')) {
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
