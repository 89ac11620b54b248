#!/usr/bin/env node
// tus-upload.js uploads a file to thumbd the way Qencode's docs tell users to:
// get a task through the official SDK (qencode-api@3.0.1), then upload with
// tus-js-client to upload_url + "/" + task_token. The Go end-to-end tests run
// it and start a job with source "tus:<file_id>".
//
// Environment:
//   THUMBD_ENDPOINT    base URL of thumbd, e.g. http://127.0.0.1:8080 (required)
//   THUMBD_API_KEY     project API key, at least 12 characters (required)
//   FILE               path of the file to upload (required)
//   CHUNK_SIZE         optional PATCH size in bytes (default: the whole file
//                      in one PATCH, or ABORT_AFTER_BYTES when that is set)
//   ABORT_AFTER_BYTES  optional; once the server has acknowledged at least
//                      this many bytes (checked after each PATCH, so the abort
//                      lands on a chunk boundary), the upload is aborted and a
//                      fresh tus.Upload resumes it from the same URL (uploadUrl
//                      option, no endpoint: it must HEAD and continue, it
//                      cannot silently start over)
//   TIMEOUT_MS         overall deadline in milliseconds (default 120000)
//
// Output: exactly one JSON line on stdout,
//   {"task_token": "...", "upload_url": "...", "endpoint": "<upload_url>/<task_token>",
//    "location": "<absolute upload URL>", "location_header": "<raw Location>",
//    "file_id": "<last path segment of location>", "size": N,
//    "resumed": true|false, "offset_at_resume": N (only when resumed)}
// "offset_at_resume" is the Upload-Offset the server returned to the HEAD of
// the resumed upload. Exit 0 on success; 2 on any error (message on stderr);
// 3 on timeout.
'use strict';

const fs = require('fs');
const path = require('path');
const tus = require('tus-js-client');
const QencodeApiClient = require('qencode-api');

function fail(code, msg) {
  process.stderr.write(`tus-upload: ${msg}\n`);
  process.exit(code);
}

function intEnv(name) {
  const v = process.env[name];
  if (v === undefined || v === '') return null;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) fail(2, `bad ${name} ${JSON.stringify(v)}`);
  return n;
}

// upload runs one tus.Upload to completion or abort and resolves with
// {done: bool, offset: acknowledged bytes, url}.
function upload(file, options, abortAfter, hooks) {
  return new Promise((resolve, reject) => {
    let up;
    let acked = 0;
    up = new tus.Upload(fs.createReadStream(file), {
      ...options,
      onAfterResponse(req, res) {
        if (hooks.onAfterResponse) hooks.onAfterResponse(req, res);
      },
      onChunkComplete(chunkSize, bytesAccepted) {
        acked = bytesAccepted;
        if (abortAfter != null && bytesAccepted >= abortAfter && bytesAccepted < options.uploadSize) {
          // abort() inside onChunkComplete stops the next PATCH from being
          // sent (tus-js-client checks _aborted in _performUpload).
          up.abort(false).then(() => resolve({ done: false, offset: acked, url: up.url }), reject);
        }
      },
      onSuccess() {
        resolve({ done: true, offset: options.uploadSize, url: up.url });
      },
      onError(err) {
        reject(err);
      },
    });
    up.start();
  });
}

async function main() {
  const endpoint = process.env.THUMBD_ENDPOINT;
  const key = process.env.THUMBD_API_KEY;
  const file = process.env.FILE;
  if (!endpoint) fail(2, 'THUMBD_ENDPOINT is not set');
  if (!key) fail(2, 'THUMBD_API_KEY is not set');
  if (!file) fail(2, 'FILE is not set');
  const abortAfter = intEnv('ABORT_AFTER_BYTES');
  let chunkSize = intEnv('CHUNK_SIZE');
  if (chunkSize == null && abortAfter != null) chunkSize = abortAfter;
  const timeoutMs = intEnv('TIMEOUT_MS') || 120000;

  let size;
  try {
    size = fs.statSync(file).size;
  } catch (err) {
    fail(2, `FILE: ${err.message}`);
  }

  let taskToken = null;
  const timer = setTimeout(() => fail(3, `timed out after ${timeoutMs} ms; task_token=${taskToken}`), timeoutMs);

  const qencodeApiClient = await new QencodeApiClient({ key, endpoint });
  const task = await qencodeApiClient.CreateTask();
  taskToken = task.taskToken;
  if (!task.uploadUrl) throw new Error(`create_task returned no upload_url (task_token=${taskToken})`);
  const tusEndpoint = task.uploadUrl + '/' + task.taskToken;

  let locationHeader = null;
  let offsetAtResume = null;
  const hooks = {
    onAfterResponse(req, res) {
      const method = req.getMethod();
      if (method === 'POST' && res.getHeader('Location')) locationHeader = res.getHeader('Location');
      if (method === 'HEAD') offsetAtResume = Number.parseInt(res.getHeader('Upload-Offset'), 10);
    },
  };
  const common = {
    uploadSize: size,
    metadata: { filename: path.basename(file), filetype: 'application/octet-stream' },
  };
  if (chunkSize != null) common.chunkSize = chunkSize;

  let res = await upload(file, { ...common, endpoint: tusEndpoint }, abortAfter, hooks);
  const out = { resumed: false };
  if (!res.done) {
    if (!res.url) throw new Error('aborted before an upload URL was known');
    res = await upload(file, { ...common, uploadUrl: res.url }, null, hooks);
    if (!res.done) throw new Error('resumed upload did not finish');
    out.resumed = true;
    out.offset_at_resume = offsetAtResume;
  }

  clearTimeout(timer);
  const location = res.url;
  const fileId = String(location).split(/[?#]/)[0].replace(/\/+$/, '').split('/').pop();
  process.stdout.write(JSON.stringify({
    task_token: taskToken,
    upload_url: task.uploadUrl,
    endpoint: tusEndpoint,
    location,
    location_header: locationHeader,
    file_id: fileId,
    size,
    ...out,
  }) + '\n');
}

main().then(
  () => process.exit(0),
  (err) => fail(2, (err && err.stack) || String(err)),
);
