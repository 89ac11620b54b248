#!/usr/bin/env node
// run-query.js drives thumbd exactly as a Qencode customer's Node code does,
// through the official SDK (npm qencode-api@3.0.1). The Go end-to-end tests
// run it and assert on what it prints.
//
// Environment:
//   THUMBD_ENDPOINT  base URL of thumbd, e.g. http://127.0.0.1:8080 (required)
//   THUMBD_API_KEY   project API key; the SDK itself rejects keys shorter than
//                    12 characters before making any request (required)
//   QUERY_FILE       path to a JSON file holding the *inner* query object,
//                    {"source": ..., "format": [...]}; the SDK wraps it in
//                    {"query": ...} itself (required)
//   PAYLOAD          optional start_encode2 payload string (sent when set,
//                    even when empty)
//   TIMEOUT_MS       overall deadline in milliseconds (default 120000)
//   TASK_TOKEN       optional: start this existing task (one made by
//                    tus-upload.js, which uploaded its source) instead of
//                    calling create_task; the SDK's own TranscodingTask class
//                    is used, as a customer's code does after an upload
//
// Output: exactly one JSON line on stdout,
//   {"task_token": "...", "status_url": "...", "final": {<last status object>},
//    "states": [<distinct status values, in first-seen order>],
//    "percents": [<percent of every poll, consecutive repeats collapsed>]}
// Exit codes: 0 once a status of "completed" or "error" is seen (the Go test
// judges the result); 2 when the SDK throws or the input is unusable (message
// on stderr); 3 on timeout (progress so far on stderr).
//
// How the SDK talks to the server (qencode-api 3.0.1, QencodeApiClient.js and
// Classes/TranscodingTask.js):
//   * endpoint is trimmed and gets a trailing "/" appended when missing, then
//     every call goes to endpoint + "v1/" + method, so "http://h:p" and
//     "http://h:p/" both yield http://h:p/v1/access_token. A path prefix on
//     the endpoint is kept ("http://h:p/api" -> http://h:p/api/v1/...).
//   * Calls: POST access_token {api_key} in the constructor (which returns a
//     Promise, hence "await new"), create_task {token}, start_encode2
//     {task_token, query, payload?}, then status {task_tokens[]} posted to the
//     status_url returned by start_encode2 (or endpoint + "v1/status" when it
//     is absent), switching to any statuses[token].status_url it sees.
//   * Any axios failure (non-2xx status, refused connection, 20 s timeout) is
//     retried 20 times, 3 s apart, then "All attempts to execute request
//     failed." is thrown: API errors must come back as HTTP 200.
//   * A reply without an "error" field throws "Invalid API response"; error
//     != 0 (loose comparison) throws Error(reply.message). create_task loops
//     forever re-authenticating while message == "Token not found".
//   * GetStatus reads reply.statuses[task_token]; when it is null/missing it
//     resets the status URL to endpoint + "v1/status" and calls itself again
//     at once, with no delay and no limit.
'use strict';

const fs = require('fs');
const QencodeApiClient = require('qencode-api');
const TranscodingTask = require('qencode-api/Classes/TranscodingTask');

const POLL_MS = 250;

function fail(code, msg) {
  process.stderr.write(`run-query: ${msg}\n`);
  process.exit(code);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function main() {
  const endpoint = process.env.THUMBD_ENDPOINT;
  const key = process.env.THUMBD_API_KEY;
  const queryFile = process.env.QUERY_FILE;
  if (!endpoint) fail(2, 'THUMBD_ENDPOINT is not set');
  if (!key) fail(2, 'THUMBD_API_KEY is not set');
  if (!queryFile) fail(2, 'QUERY_FILE is not set');

  const timeoutMs = process.env.TIMEOUT_MS ? Number(process.env.TIMEOUT_MS) : 120000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) fail(2, `bad TIMEOUT_MS ${JSON.stringify(process.env.TIMEOUT_MS)}`);

  let query;
  try {
    query = JSON.parse(fs.readFileSync(queryFile, 'utf8'));
  } catch (err) {
    fail(2, `reading QUERY_FILE ${queryFile}: ${err.message}`);
  }
  const payload = process.env.PAYLOAD !== undefined ? process.env.PAYLOAD : null;

  const states = [];
  const percents = [];
  let last = null;
  let taskToken = null;

  const timer = setTimeout(() => {
    fail(3, `timed out after ${timeoutMs} ms; task_token=${taskToken} states=${JSON.stringify(states)} last=${JSON.stringify(last)}`);
  }, timeoutMs);

  const qencodeApiClient = await new QencodeApiClient({ key, endpoint });
  const task = process.env.TASK_TOKEN
    ? new TranscodingTask(qencodeApiClient, process.env.TASK_TOKEN, null)
    : await qencodeApiClient.CreateTask();
  taskToken = task.taskToken;
  await task.StartCustom(query, payload);

  for (;;) {
    const status = await task.GetStatus();
    last = status;
    const state = status ? status.status : undefined;
    if (!states.includes(state)) states.push(state);
    const percent = status ? status.percent : undefined;
    if (percents.length === 0 || percents[percents.length - 1] !== percent) percents.push(percent);
    if (state === 'completed' || state === 'error') break;
    await sleep(POLL_MS);
  }

  clearTimeout(timer);
  process.stdout.write(JSON.stringify({
    task_token: taskToken,
    status_url: task.statusUrl,
    final: last,
    states,
    percents,
  }) + '\n');
}

main().then(
  () => process.exit(0),
  (err) => fail(2, (err && err.stack) || String(err)),
);
