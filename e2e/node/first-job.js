#!/usr/bin/env node
// first-job.js is the README's Node example, run by TestReadmeNodeExample
// (which checks that the README's lines are in this file, in order). It
// makes a thumbnail of thumbd's sample video through Qencode's official SDK,
// prints the image URLs and exits 0; when the task fails it prints the
// error and exits 1. THUMBD_ENDPOINT sets thumbd's address.
'use strict';

const QencodeApiClient = require('qencode-api');

const endpoint = process.env.THUMBD_ENDPOINT || 'http://127.0.0.1:8080';

async function main() {
  const client = await new QencodeApiClient({key: 'my-project-key-0001', endpoint});
  const task = await client.CreateTask();
  await task.StartCustom({source: `${endpoint}/static/test_mini.mp4`,
                          format: [{output: 'thumbnail', time: '0.50', width: '320', height: '240'}]});
  for (;;) {
    const status = await task.GetStatus();
    if (status.status === 'error') throw new Error(status.error_description);
    if (status.status === 'completed') return status.images.map((image) => image.url);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

main().then(
  (urls) => console.log(urls.join('\n')),
  (err) => { console.error('thumbd task failed:', err.message); process.exit(1); });
