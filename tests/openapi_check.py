"""Real answers checked against the server's own ``/openapi.json``: the shared machinery.

The checks are those of schemathesis' response checks, applied to answers the tests
choose (every route, each success and each error it can give) rather than to generated
requests: the operation is documented for the method and path, the status is documented
for the operation, the media type is one it documents for that status (no body where it
documents none), a JSON body validates against the documented schema (OpenAPI 3.0:
nullable, ``$ref`` into the components), an XML body is well-formed, and each documented
header validates against its schema (a required one must be there). A generated client
trusts exactly these.

Which routes are checked: each test file builds a :class:`Document` for the tags it
answers for (:data:`CHECKED_TAGS`) and ends with :meth:`Document.unanswered` empty, so an
operation of its tag that no test answered with a success fails that file; and
``tests/test_openapi_taskgate_routes.py`` fails when a route of the router carries a tag
that no file answers for. Together: a new route without a response check fails.

This module checks, and sends only what a test gives it (:func:`answer`); it builds no app.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any, NamedTuple
from xml.etree import ElementTree

from openapi_schema_validator import OAS30ReadValidator

__all__ = ["CHECKED_TAGS", "Document", "Answer", "answer", "is_json", "is_xml"]

#: every tag of the document → the test file whose Document answers every operation of it
CHECKED_TAGS = {
    "SailPoint task-status": "tests/apis/test_sailpoint_openapi.py",
    "SuperOffice BatchTask": "tests/apis/test_superoffice_openapi.py",
    "webMethods opentask": "tests/apis/test_webmethods_openapi.py",
    "taskgate": "tests/test_openapi_taskgate_routes.py",
    "taskgate dashboard": "tests/ui/test_ui_openapi.py",
    "taskgate events": "tests/events/test_sse.py",
    "taskgate testing": "tests/testing/test_openapi_testing.py",
    "Webhooks": "tests/apis/test_webhook_subscriptions.py",
}


def is_json(media: str) -> bool:
    return media in ("application/json", "text/json") or media.endswith("+json")


def is_xml(media: str) -> bool:
    return media in ("application/xml", "text/xml") or media.endswith("+xml")


class Document:
    """The operations of an OpenAPI document (those of *tags*, or all), and the checks of
    one answer against them; remembers which statuses each operation was answered with."""

    def __init__(self, document: dict[str, Any], *tags: str) -> None:
        unknown = set(tags) - set(CHECKED_TAGS)
        assert not unknown, f"add {unknown} to CHECKED_TAGS, with the file that answers for it"
        self.document = document
        self.operations = {(method.upper(), path): op for path, ops in document["paths"].items()
                           for method, op in ops.items() if not tags or set(tags) & set(op.get("tags", ()))}
        # literal paths before templated ones: /beta/task-status/pending-tasks is not an {id}
        self.templates = sorted({path for _method, path in self.operations}, key=lambda p: (p.count("{"), p))
        self.checked: dict[tuple[str, str], set[int]] = {key: set() for key in self.operations}

    def template(self, method: str, path: str) -> str:
        """The documented path template of *method* that *path* (no query) matches."""
        for template in self.templates:
            if (method, template) in self.operations and \
                    re.fullmatch(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)), path):
                return template
        raise AssertionError(f"{method} {path} is not a documented operation")

    def errors(self, schema: dict[str, Any], instance: Any) -> list[str]:
        """What is wrong with *instance* against *schema*, one line per error ([] if nothing)."""
        root = {**schema, "components": self.document["components"]}  # local $refs resolve against the root
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in OAS30ReadValidator(root).iter_errors(instance)]

    def check(self, method: str, path: str, status: int, headers: Any, body: bytes) -> None:
        """Assert that one answer (*path* with or without its query) is what the document says."""
        key = (method, self.template(method, path.partition("?")[0]))
        op = self.operations[key]
        where = f"{method} {path} {status}"
        response = op["responses"].get(str(status))
        assert response is not None, f"{method} {path}: {status} is not documented ({sorted(op['responses'])})"
        content = response.get("content", {})
        media = headers.get("Content-Type", "").partition(";")[0].strip().lower()
        if not content:
            assert body == b"", f"{where}: the document describes no body, the answer has {body[:200]!r}"
        else:
            assert media in content, f"{where}: {media!r} is not documented ({sorted(content)})"
            schema = content[media].get("schema", {})
            if is_json(media):
                found = self.errors(schema, json.loads(body))
                assert not found, f"{where}: the body does not match the document: {found}\n{body[:2000]!r}"
            elif is_xml(media):
                ElementTree.fromstring(body)  # well-formed; the schemas describe the JSON form
            elif media.startswith("text/"):
                text = body.decode("utf-8")
                assert not self.errors(schema, text), f"{where}: {self.errors(schema, text)}"
        for name, header in response.get("headers", {}).items():
            if name not in headers:
                assert not header.get("required"), f"{where}: the required header {name} is missing"
                continue
            value: Any = headers[name]
            if header.get("schema", {}).get("type") == "integer":
                assert re.fullmatch(r"[0-9]+", value), (where, name, value)
                value = int(value)
            found = self.errors(header.get("schema", {}), value)
            assert not found, f"{where}: header {name}: {value!r}: {found}"
        self.checked[key].add(status)

    def unanswered(self) -> list[str]:
        """The operations no answer with a 2xx or 3xx status was checked against."""
        return sorted(f"{m} {p}" for (m, p), statuses in self.checked.items()
                      if not any(200 <= s < 400 for s in statuses))


class Answer(NamedTuple):
    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def answer(client: Any, document: Document, method: str, path: str, *,
                 headers: dict[str, str] | None = None, data: str | bytes | None = None, body: Any = None,
                 ctype: str = "application/json") -> Answer:
    """Send one request with *client* (an aiohttp TestClient), check the answer against
    *document*, and return it. *body* is sent as JSON; a body goes as *ctype* unless
    *headers* name a Content-Type."""
    if body is not None:
        data = json.dumps(body)
    headers = dict(headers or {})
    if data is not None:
        headers.setdefault("Content-Type", ctype)
    payload = io.BytesIO(data) if isinstance(data, bytes) else data  # a large body as a stream, as aiohttp asks
    resp = await client.request(method, path, data=payload, headers=headers, allow_redirects=False)
    raw = await resp.read()
    document.check(method, path, resp.status, resp.headers, raw)
    return Answer(resp.status, resp.headers, raw)
