#!/usr/bin/env node
// templates.js calls the official Node SDK's getTemplates() (npm
// qencode-api@3.0.1: POST <endpoint>/v1/request_templates {api_key}, which
// returns the reply's `templates`) and prints {"templates": <what it
// returned>} as one JSON line. The SDK retries a failed request for about
// a minute; TIMEOUT_MS (default 10000) turns that into exit code 3.
//
// Environment: THUMBD_ENDPOINT, THUMBD_API_KEY (as run-query.js), TIMEOUT_MS.
// Exit codes: 0 printed; 2 the SDK threw (message on stderr); 3 timed out.
'use strict';

const QencodeApiClient = require('qencode-api');

async function main() {
  const endpoint = process.env.THUMBD_ENDPOINT;
  const key = process.env.THUMBD_API_KEY;
  if (!endpoint || !key) {
    process.stderr.write('templates: THUMBD_ENDPOINT and THUMBD_API_KEY are required\n');
    process.exit(2);
  }
  const timeoutMs = Number(process.env.TIMEOUT_MS || 10000);
  setTimeout(() => {
    process.stderr.write(`templates: getTemplates() did not return within ${timeoutMs} ms\n`);
    process.exit(3);
  }, timeoutMs).unref();
  const client = await new QencodeApiClient({ key, endpoint });
  const templates = await client.getTemplates();
  process.stdout.write(JSON.stringify({ templates }) + '\n');
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`templates: ${(err && err.stack) || String(err)}\n`);
    process.exit(2);
  },
);
