"""The ceiling for scripts/bench: a bare aiohttp server on the routes the benchmark drives.

Each handler reads and parses the request body as taskgate would (JSON with the same
JSON library, XML with defusedxml) and answers a constant of the size and content type
taskgate answers with. No authentication, validation, storage or logging: what is left
is the framework, the event loop and the parser, which bound any handler's throughput.
It runs on the same event loop as taskgate (uvloop when installed) via gateway.speedups.

Usage: python scripts/bench_ceiling.py [--host 127.0.0.1] [--port 0]; prints
``ceiling listening on http://HOST:PORT`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import defusedxml.ElementTree  # noqa: E402
from aiohttp import web  # noqa: E402

from gateway.speedups import dumps_bytes, loads, run  # noqa: E402

# What taskgate answers, in size and shape: one TaskStatus, a page of them, a BatchTaskInfo.
TASK_STATUS = {"id": "0" * 31 + "1", "type": "QUARTZ", "uniqueName": "Cloud Account Aggregation", "description": "",
               "parentName": None, "launcher": "import", "created": "2026-11-22T13:43:47.522Z",
               "modified": "2026-11-22T13:43:47.522Z", "launched": None, "completed": None,
               "completionStatus": "ERROR", "messages": [], "returns": [], "attributes": {},
               "progress": "step 42", "percentComplete": 42}
BATCH_TASK = {"Id": 1, "Name": "Export 1", "AssociateId": 627, "DetailsTable": 0, "DetailsRecord": 0,
              "IsSystemTask": False, "IsInternalTask": False, "ParameterObject": {},
              "LastStarted": "0001-01-01T00:00:00", "Created": "2026-11-22T13:43:50", "StartCount": 0,
              "DatabaseSerialNumber": "", "Context": "", "Result": "", "State": "Started",
              "Description": "Exports sales", "Response": "progress 42", "Request": "", "ProgressDescription": "",
              "ProgressPercent": 0, "FileName": "", "CancellationBehaviour": "CanCancel",
              "TableRight": {"Mask": "Select, Update", "Reason": ""},
              "FieldProperties": {name: {"FieldRight": {"Mask": "Update", "Reason": ""},
                                         "FieldType": "System.String", "FieldLength": 254}
                                  for name in ("Description", "Response", "Request")}}


def _xml(value: object, tag: str) -> str:
    if isinstance(value, dict):
        return f"<{tag}>" + "".join(_xml(v, k) for k, v in value.items()) + f"</{tag}>"
    text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return f"<{tag}>{text}</{tag}>"


def constants(list_size: int) -> dict[str, bytes]:
    return {"task": dumps_bytes(TASK_STATUS), "list": dumps_bytes([TASK_STATUS] * list_size),
            "batch_json": dumps_bytes(BATCH_TASK),
            "batch_xml": b'<?xml version="1.0" encoding="utf-8"?>\n' + _xml(BATCH_TASK, "BatchTaskInfo").encode(),
            "empty": b"{}"}


def build_app(list_size: int = 50) -> web.Application:
    out = constants(list_size)

    def answer(body: bytes, content_type: str = "application/json") -> web.Response:
        return web.Response(body=body, content_type=content_type, charset="utf-8")

    async def parse_json(request: web.Request) -> web.Response:
        loads(await request.read())
        return answer(out["task"])

    async def get_task(request: web.Request) -> web.Response:
        return answer(out["task"])

    async def list_tasks(request: web.Request) -> web.Response:
        return answer(out["list"])

    async def put_batch_task(request: web.Request) -> web.Response:
        body = await request.read()
        if request.content_type in ("application/xml", "text/xml"):
            defusedxml.ElementTree.fromstring(body, forbid_dtd=True)
            return answer(out["batch_xml"], "application/xml")
        loads(body)
        return answer(out["batch_json"])

    async def put_open_task(request: web.Request) -> web.Response:
        loads(await request.read())
        return answer(out["empty"])

    app = web.Application()
    app.router.add_patch("/task-status/v1/{id}", parse_json)
    app.router.add_get("/task-status/v1/{id}", get_task)
    app.router.add_get("/task-status/v1", list_tasks)
    app.router.add_put("/api/v1/BatchTask/{id}", put_batch_task)
    app.router.add_put("/rest/pub/opentask/{taskID}", put_open_task)
    return app


async def serve(host: str, port: int) -> None:
    runner = web.AppRunner(build_app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    for bound_host, bound_port, *_ in runner.addresses:
        print(f"ceiling listening on http://{bound_host}:{bound_port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
