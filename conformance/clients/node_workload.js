// node-redis counter workload: prints `ok NAME` / `FAIL NAME detail`; usage: node node_workload.js PORT
const { createClient } = require('redis');

let failures = 0;
function check(name, cond, detail) {
  if (cond) { console.log(`ok ${name}`); } else { failures++; console.log(`FAIL ${name} ${detail || ''}`); }
}

(async () => {
  const client = createClient({ socket: { host: '127.0.0.1', port: Number(process.argv[2]) } });
  client.on('error', (e) => { console.log(`FAIL client-error ${e}`); });
  await client.connect();
  await client.del(['node:c', 'node:p', 'node:m']);
  let v = 0;
  for (let i = 1; i <= 50; i++) { v = await client.incrBy('node:c', i); }
  check('incrby', v === 1275, `got ${v}`);
  check('get', (await client.get('node:c')) === '1275');
  check('del', (await client.del('node:c')) === 1 && (await client.get('node:c')) === null);
  const results = await Promise.all(Array.from({ length: 200 }, () => client.incr('node:p')));
  check('pipeline', results[199] === 200 && (await client.get('node:p')) === '200', `last ${results[199]}`);
  const r = await client.multi().incrBy('node:m', 5).incr('node:m').get('node:m').exec();
  check('multi-exec', r[0] === 5 && r[1] === 6 && r[2] === '6', JSON.stringify(r));
  await client.hSet('node:h', { a: '1', b: '2' });
  const h = await client.hGetAll('node:h');
  check('hash', h.a === '1' && h.b === '2' && (await client.hIncrBy('node:h', 'a', 9)) === 10, JSON.stringify(h));
  // A subscriber connection (node-redis duplicates the client for pub/sub), messages in order.
  const subscriber = client.duplicate();
  subscriber.on('error', (e) => { console.log(`FAIL subscriber-error ${e}`); });
  await subscriber.connect();
  const got = [];
  await subscriber.subscribe('node:ch', (message) => { got.push(message); });
  await subscriber.pSubscribe('node:p*', (message, channel) => { got.push(`${channel}:${message}`); });
  const counts = [];
  for (let i = 0; i < 30; i++) { counts.push(await client.publish('node:ch', `m${i}`)); }
  counts.push(await client.publish('node:pat', 'x'));
  const deadline = Date.now() + 5000;
  while (got.length < 31 && Date.now() < deadline) { await new Promise((r) => setTimeout(r, 10)); }
  const want = Array.from({ length: 30 }, (_, i) => `m${i}`).concat(['node:pat:x']);
  check('pubsub-messages', JSON.stringify(got) === JSON.stringify(want), JSON.stringify(got.slice(0, 3)));
  check('pubsub-receivers', counts.every((c) => c === 1), JSON.stringify(counts));
  const numsub = await client.pubSubNumSub(['node:ch']);
  check('pubsub-numsub', numsub['node:ch'] === 1, JSON.stringify(numsub));
  await subscriber.unsubscribe();
  await subscriber.pUnsubscribe();
  await subscriber.quit();
  await client.quit();
  process.exit(failures ? 1 : 0);
})().catch((e) => { console.log(`FAIL exception ${e}`); process.exit(1); });
