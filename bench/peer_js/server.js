// express-pouchdb on 127.0.0.1 (a free port), databases in leveldb under DIR (PouchDB's default adapter
// in Node.js, on disk like motcua's hub). Prints {"port": N} once listening; ends on SIGTERM or when its
// stdin closes (so it never outlives bench/peer.py).
//     node server.js DIR
'use strict';
const fs = require('fs');
const path = require('path');
const express = require('express');
const PouchDB = require('pouchdb');

const dir = path.resolve(process.argv[2]);
fs.mkdirSync(dir, { recursive: true });
const DB = PouchDB.defaults({ prefix: dir + path.sep });
const app = express();
app.use('/', require('express-pouchdb')(DB, {
  mode: 'minimumForPouchDB', // the replication endpoints only: no Fauxton, no config API
  logPath: path.join(dir, 'log.txt'),
  configPath: path.join(dir, 'config.json'),
}));
const server = app.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();
