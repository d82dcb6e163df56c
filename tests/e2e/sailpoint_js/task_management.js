// Drives the official sailpoint-api-client (SailPoint's TypeScript SDK) task-management calls
// against a running taskgate, for tests/e2e/test_sailpoint_js.py.
//
// Reads one JSON plan on standard input:
//   {"baseUrl": "http://127.0.0.1:PORT",
//    "credentials": {"admin": {"accessToken": "..."}, "client": {"clientId": "...", "clientSecret": "..."}},
//    "calls": [{"label": "get", "version": "beta" | "v2024", "as": "admin",
//               "method": "getTaskStatus", "params": {"id": "..."}}, ...]}
// and prints one JSON document on standard output:
//   {"sdk": "1.4.15", "warnings": [...],
//    "calls": [{"label", "ok": true, "status", "headers", "data", "wire", "printed", "warnings"}
//              | {"label", "ok": false, "error": {"message", "status", "headers", "data"}, ...}]}
//
// "data" is what the SDK resolved with (the parsed body the TypeScript models describe);
// "wire" lists what went over the socket for the call (method, path, the request headers
// taskgate sees, the request body, the status); "printed" is what the SDK wrote to the
// console during the call, and "warnings" every process warning Node emitted (run with
// --throw-deprecation, so a deprecation is an error, not a warning).
"use strict";

const axios = require("axios");
const sdk = require("sailpoint-api-client");

const API_CLASSES = { beta: sdk.TaskManagementBetaApi, v2024: sdk.TaskManagementV2024Api };

let wire = [];
let printed = [];
const warnings = [];
process.on("warning", (warning) => warnings.push(`${warning.name}: ${warning.message}`));
for (const level of ["log", "info", "warn", "error"]) {
  console[level] = (...args) => printed.push(`${level}: ${args.map(String).join(" ")}`);
}

function exchange(response) {
  const request = response.request;
  let body = response.config.data;
  if (typeof body === "string" && body !== "") {
    try { body = JSON.parse(body); } catch (e) { /* keep the raw string */ }
  } else if (body !== undefined && body !== null && typeof body !== "string") {
    body = "<form data>";
  }
  const headers = request.getHeaders();
  return {
    method: request.method,
    path: request.path,
    headers: {
      accept: headers.accept,
      "content-type": headers["content-type"],
      authorization: headers.authorization ? String(headers.authorization).replace(/ .*/, " …") : undefined,
      "x-sailpoint-experimental": headers["x-sailpoint-experimental"],
      "x-sailpoint-sdk": headers["x-sailpoint-sdk"],
    },
    body: body === undefined ? null : body,
    status: response.status,
  };
}

axios.interceptors.response.use(
  (response) => { wire.push(exchange(response)); return response; },
  (error) => { if (error && error.response) wire.push(exchange(error.response)); return Promise.reject(error); },
);

function plainHeaders(headers) {
  const out = {};
  for (const [key, value] of Object.entries(headers || {})) out[key.toLowerCase()] = value;
  return out;
}

async function main() {
  let input = "";
  for await (const chunk of process.stdin) input += chunk;
  const plan = JSON.parse(input);
  const apis = {};
  function api(who, version) {
    const key = `${who} ${version}`;
    if (!(key in apis)) {
      const given = plan.credentials[who];
      const configuration = new sdk.Configuration({
        baseurl: plan.baseUrl, tokenUrl: `${plan.baseUrl}/oauth/token`,
        accessToken: given.accessToken, clientId: given.clientId, clientSecret: given.clientSecret,
      });
      configuration.experimental = true; // the v2024 calls send X-SailPoint-Experimental and refuse without it
      configuration.retriesConfig = { retries: 0 }; // one request per call, so "wire" is exactly it
      apis[key] = new API_CLASSES[version](configuration);
    }
    return apis[key];
  }

  const calls = [];
  for (const call of plan.calls) {
    wire = [];
    printed = [];
    const outcome = { label: call.label };
    try {
      const response = await api(call.as || "admin", call.version)[call.method](call.params);
      Object.assign(outcome, {
        ok: true, status: response.status, headers: plainHeaders(response.headers),
        data: response.data === undefined ? null : response.data,
      });
    } catch (err) {
      const response = err && err.response;
      outcome.ok = false;
      outcome.error = {
        message: String(err && err.message),
        status: response ? response.status : null,
        headers: response ? plainHeaders(response.headers) : null,
        data: response && response.data !== undefined ? response.data : null,
      };
    }
    Object.assign(outcome, { wire, printed, warnings: warnings.splice(0) });
    calls.push(outcome);
  }
  await new Promise((resolve) => setImmediate(resolve)); // warnings are delivered on a later tick
  const version = require("sailpoint-api-client/package.json").version;
  process.stdout.write(JSON.stringify({ sdk: version, calls, warnings }) + "\n");
}

main().catch((err) => {
  process.stderr.write(`${(err && err.stack) || err}\n`);
  process.exit(1);
});
