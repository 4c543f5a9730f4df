// The PouchDB side of the peer scenario; one step per process, printing one JSON line:
//     node client.js load   DB DOCS.jsonl   put every document (one JSON object a line) into DB, not timed
//     node client.js push   DB URL          replicate DB -> URL (the express-pouchdb database), timed
//     node client.js pull   DB URL          replicate URL -> DB, timed
//     node client.js change DB N SEED       change N documents of DB (a new revision each)
// DB is a leveldb folder (PouchDB's default adapter in Node.js). Replication uses PouchDB's defaults
// (batches of 100 documents), as an application would.
'use strict';
const fs = require('fs');
const { performance } = require('perf_hooks');
const PouchDB = require('pouchdb');

function out(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }

async function load(db, file) {
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
  let n = 0;
  for (let i = 0; i < lines.length; i += 1000) {
    const docs = lines.slice(i, i + 1000).map((l) => JSON.parse(l));
    const res = await db.bulkDocs(docs);
    const bad = res.filter((r) => r.error);
    if (bad.length) throw new Error('bulkDocs: ' + JSON.stringify(bad[0]));
    n += docs.length;
  }
  out({ loaded: n });
}

async function replicate(from, to) {
  const t0 = performance.now();
  const res = await PouchDB.replicate(from, to);
  const ms = performance.now() - t0;
  if (!res.ok || (res.errors && res.errors.length)) throw new Error('replication: ' + JSON.stringify(res.errors));
  out({ ms, docs_read: res.docs_read, docs_written: res.docs_written });
}

function rng(seed) { // mulberry32: a small seeded generator, so every run changes the same documents
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function change(db, n, seed) {
  const ids = (await db.allDocs()).rows.map((r) => r.id);
  const rand = rng(seed);
  const picked = new Set();
  while (picked.size < Math.min(n, ids.length)) picked.add(ids[Math.floor(rand() * ids.length)]);
  for (const id of picked) {
    const doc = await db.get(id);
    doc.author = 'edited-' + String(Math.floor(rand() * 1e6)).padStart(6, '0');
    await db.put(doc);
  }
  out({ changed: picked.size });
}

async function main() {
  const [cmd, dbPath, arg, seed] = process.argv.slice(2);
  const db = new PouchDB(dbPath);
  try {
    if (cmd === 'load') await load(db, arg);
    else if (cmd === 'push') await replicate(db, arg);
    else if (cmd === 'pull') await replicate(arg, db);
    else if (cmd === 'change') await change(db, Number(arg), Number(seed || 1));
    else throw new Error('unknown command ' + cmd);
  } finally {
    await db.close();
  }
}

main().catch((err) => { process.stderr.write(String(err && err.stack || err) + '\n'); process.exit(1); });
