#!/usr/bin/env node
// control-example.js is the JavaScript example of thumbd's
// test-control plane (/_thumbd/, served when THUMBD_TEST_API=1): a test of
// code that uses Qencode's official Node SDK, with deterministic states, the
// callback inspector and an injected failure, shown in docs/test-control.md.
// The Go test TestControlPlaneFromNode runs it, and TestDocExamples checks
// that the page shows this code, so the example stays true.
//
// Environment: THUMBD_ENDPOINT (thumbd's base URL), SOURCE_URL (a video).
// Prints "ok" and exits 0, or throws (exit 1).
'use strict';

const assert = require('node:assert/strict');
const QencodeApiClient = require('qencode-api');

const endpoint = process.env.THUMBD_ENDPOINT;
const source = process.env.SOURCE_URL;

// thumbd posts to one of the test-control plane's endpoints.
async function thumbd(path, fields = {}) {
  const res = await fetch(`${endpoint}/_thumbd/${path}`, { method: 'POST', body: new URLSearchParams(fields) });
  const body = await res.json();
  assert.equal(body.error, 0, body.message);
  return body;
}

async function main() {
  await thumbd('reset'); // forget every task, token, file and callback

  // Each task stays queued for one status poll, then encoding for one.
  await thumbd('hold', { state: 'queued', polls: '1' });
  await thumbd('hold', { state: 'encoding', polls: '1' });

  const client = await new QencodeApiClient({ key: 'my-project-key-0001', endpoint });
  const task = await client.CreateTask();
  await task.StartCustom({
    source,
    format: [{ output: 'thumbnail', time: '0.5', width: 320 }],
    callback_url: 'http://127.0.0.1:9/qencode-hook', // nobody listens: see the inspector
  }, 'order-1234');

  const seen = [];
  for (let i = 0; i < 3; i++) seen.push((await task.GetStatus()).status);
  assert.deepEqual(seen, ['queued', 'encoding', 'completed']);

  // Every callback thumbd sent, with its fields and attempts.
  let callbacks = [];
  for (let i = 0; i < 50 && callbacks.length < 2; i++) {
    ({ callbacks } = await thumbd('callbacks', { task_token: task.taskToken }));
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(callbacks.map((c) => c.event), ['queued', 'saved']);
  assert.equal(callbacks[1].fields.payload, 'order-1234');
  assert.equal(JSON.parse(callbacks[1].fields.status).status, 'completed');

  // The next task fails with this description.
  await thumbd('fail/task', { message: 'Source file is unavailable' });
  const failing = await client.CreateTask();
  await failing.StartCustom({ source, format: [{ output: 'thumbnail', time: '0.5' }] });
  let status;
  do status = await failing.GetStatus(); while (status.status !== 'error' && status.status !== 'completed');
  assert.equal(status.status, 'error');
  assert.equal(status.error_description, 'Source file is unavailable');

  await thumbd('reset');
  console.log('ok');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
