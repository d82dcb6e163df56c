// Drives the official @superoffice/webapi BatchAgent against a running taskgate.
//
// Reads one JSON plan on standard input:
//   {"baseUrl": "http://127.0.0.1:PORT/Cust12345/",
//    "auth": {"ticket": "..."} | {"token": "..."} | {"username": "...", "password": "..."},
//    "appToken": "...",                          (optional: WebApi.applicationToken)
//    "options": {"timezone": "UTC", "timezoneInclude": true, ...},   (optional WebApiOptions)
//    "calls": [{"method": "getBatchTaskInfoAsync", "args": [5]}, ...]}
// and prints one JSON document on standard output:
//   {"calls": [{"method", "ok": true, "value": ..., "wire": [...]}
//              | {"method", "ok": false, "error": {"message", "status", "data"}, "wire": [...]}]}
//
// An argument {"$result": i, "set": {...}} is the object call i returned (as the client parsed it:
// Date objects, numeric rights masks) with the fields of "set" assigned: the get-modify-update
// round trip a real integration does. In the output a Date is {"$date": ISO string} and an
// undefined value is {"$undefined": true}, so that the test sees what the client really parsed.
// "wire" lists what went over the socket for the call: method, path, the request headers Node
// sent, the request body, the status and the body axios parsed.
"use strict";

const { WebApi } = require("@superoffice/webapi");

function encode(value) {
  if (value === undefined) return { $undefined: true };
  if (value instanceof Date) return { $date: isNaN(value.getTime()) ? null : value.toISOString() };
  if (Array.isArray(value)) return value.map(encode);
  if (value !== null && typeof value === "object") {
    const out = {};
    for (const key of Object.keys(value)) out[key] = encode(value[key]);
    return out;
  }
  return value;
}

function resolveArg(arg, results) {
  if (arg !== null && typeof arg === "object" && !Array.isArray(arg) && "$result" in arg) {
    const base = results[arg.$result];
    if (base === null || typeof base !== "object") throw new Error(`call ${arg.$result} returned no object`);
    return Object.assign(base, arg.set || {});
  }
  return arg;
}

function exchange(response) {
  const request = response.request;
  let body = response.config.data;
  if (typeof body === "string" && body !== "") {
    try { body = JSON.parse(body); } catch (e) { /* keep the raw string */ }
  }
  return {
    method: request.method,
    path: request.path,
    headers: request.getHeaders(),
    body: body === undefined ? null : body,
    status: response.status,
    // a copy: the converters rewrite parts of the parsed body in place (FieldProperties)
    data: response.data === undefined ? null : JSON.parse(JSON.stringify(response.data)),
  };
}

async function main() {
  let input = "";
  for await (const chunk of process.stdin) input += chunk;
  const plan = JSON.parse(input);

  const api = new WebApi({ baseUrl: plan.baseUrl, ...(plan.options || {}) });
  const auth = plan.auth || {};
  if (auth.ticket !== undefined) api.authenticateWithTicket(auth.ticket);
  if (auth.token !== undefined) api.authenticateWithToken(auth.token);
  if (auth.username !== undefined) api.authenticateWithPassword(auth.username, auth.password);
  if (plan.appToken !== undefined) api.applicationToken(plan.appToken);
  const agent = api.getBatchAgent();

  let wire = [];
  agent._axios.interceptors.response.use(
    (response) => { wire.push(exchange(response)); return response; },
    (error) => { if (error && error.response) wire.push(exchange(error.response)); return Promise.reject(error); },
  );

  const results = [];
  const calls = [];
  for (const call of plan.calls) {
    wire = [];
    const args = (call.args || []).map((arg) => resolveArg(arg, results));
    try {
      const value = await agent[call.method](...args);
      results.push(value);
      calls.push({ method: call.method, ok: true, value: encode(value), wire });
    } catch (err) {
      results.push(null);
      const response = err && err.response;
      calls.push({
        method: call.method,
        ok: false,
        error: {
          message: String(err && err.message),
          status: response ? response.status : null,
          data: response ? encode(response.data) : null,
        },
        wire,
      });
    }
  }
  process.stdout.write(JSON.stringify({ calls }) + "\n");
}

main().catch((err) => {
  process.stderr.write(`${(err && err.stack) || err}\n`);
  process.exit(1);
});
