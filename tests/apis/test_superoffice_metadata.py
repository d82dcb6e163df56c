"""SuperOffice's ``$metadata``: the OData list's ``odata.metadata`` link answers the CSDL
document, and that document describes the rows the list answers (every member, its type,
its enum's names), under a tenant prefix and a base path too."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, fromstring

import pytest
from yarl import URL

from gateway.apis import superoffice
from gateway.app import create_app
from gateway.auth import AUTHENTICATOR
from gateway.config import Config, ServerConfig
from gateway.context import STORE

EDMX = "{http://schemas.microsoft.com/ado/2007/06/edmx}"
EDM = "{http://schemas.microsoft.com/ado/2009/11/edm}"
META = "{http://schemas.microsoft.com/ado/2007/08/dataservices/metadata}"
SEEDED = "2024-01-02T03:04:05.678Z"

DOCUMENT = """<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx">
<edmx:DataServices m:DataServiceVersion="3.0" m:MaxDataServiceVersion="3.0" \
xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata">
<Schema Namespace="SuperOffice.Data" xmlns="http://schemas.microsoft.com/ado/2009/11/edm">
<EntityType Name="BatchTaskInfo" OpenType="true">
  <Documentation>
    <Summary>A row of GET api/v1/BatchTask: a BatchTaskInfo without TableRight and FieldProperties, which only \
the single task's GET carries.</Summary>
    <LongDescription>ParameterObject, an object of string values, is a dynamic property: CSDL has no map type. \
Dates are Edm.DateTime in the SO-TimeZone, whole seconds, 0001-01-01T00:00:00 when empty; with includeTZOffset they \
carry their offset. State and CancellationBehaviour are written as the names of their enum members.</LongDescription>
  </Documentation>
  <Key><PropertyRef Name="Id"/></Key>
  <Property Name="Id" Type="Edm.Int32" Nullable="false"/>
  <Property Name="Name" Type="Edm.String" Nullable="false"/>
  <Property Name="AssociateId" Type="Edm.Int32" Nullable="false"/>
  <Property Name="DetailsTable" Type="Edm.Int16" Nullable="false"/>
  <Property Name="DetailsRecord" Type="Edm.Int32" Nullable="false"/>
  <Property Name="IsSystemTask" Type="Edm.Boolean" Nullable="false"/>
  <Property Name="IsInternalTask" Type="Edm.Boolean" Nullable="false"/>
  <Property Name="LastStarted" Type="Edm.DateTime" Nullable="false" Precision="0"/>
  <Property Name="Created" Type="Edm.DateTime" Nullable="false" Precision="0"/>
  <Property Name="StartCount" Type="Edm.Int32" Nullable="false"/>
  <Property Name="DatabaseSerialNumber" Type="Edm.String" Nullable="false" MaxLength="39"/>
  <Property Name="Context" Type="Edm.String" Nullable="false"/>
  <Property Name="Result" Type="Edm.String" Nullable="false"/>
  <Property Name="State" Type="SuperOffice.Data.BatchTaskState" Nullable="false"/>
  <Property Name="Description" Type="Edm.String" Nullable="false" MaxLength="254"/>
  <Property Name="Response" Type="Edm.String" Nullable="false" MaxLength="254"/>
  <Property Name="Request" Type="Edm.String" Nullable="false" MaxLength="254"/>
  <Property Name="ProgressDescription" Type="Edm.String" Nullable="false" MaxLength="254"/>
  <Property Name="ProgressPercent" Type="Edm.Int16" Nullable="false"/>
  <Property Name="FileName" Type="Edm.String" Nullable="false" MaxLength="260"/>
  <Property Name="CancellationBehaviour" Type="SuperOffice.Data.BatchTaskCancellationBehaviour" Nullable="false"/>
</EntityType>
<EnumType Name="BatchTaskState" UnderlyingType="Edm.Int32">
  <Member Name="Unknown" Value="0"/>
  <Member Name="New" Value="1"/>
  <Member Name="Aquired" Value="2"/>
  <Member Name="Started" Value="3"/>
  <Member Name="Succeeded" Value="4"/>
  <Member Name="Failed" Value="5"/>
  <Member Name="SucceededManualCleanup" Value="6"/>
  <Member Name="All" Value="99999"/>
</EnumType>
<EnumType Name="BatchTaskCancellationBehaviour" UnderlyingType="Edm.Int32">
  <Member Name="CanCancel" Value="0"/>
  <Member Name="CancelWithWarning" Value="1"/>
  <Member Name="CannotCancel" Value="2"/>
</EnumType>
<EntityContainer Name="BatchTasks" m:IsDefaultEntityContainer="true">
  <EntitySet Name="BatchTask" EntityType="SuperOffice.Data.BatchTaskInfo"/>
</EntityContainer>
</Schema>
</edmx:DataServices>
</edmx:Edmx>
"""
HEADERS = {"Content-Type": "application/xml; charset=utf-8", "DataServiceVersion": "3.0;", "Content-Language": "en"}
#: members seeded beyond the defaults: every type the document names, at its edges
TASKS = [
    {"Id": 1, "Name": "Import", "AssociateId": 627, "State": "Started", "LastStarted": "2024-07-01T10:00:00.250Z",
     "ParameterObject": {"file": "a.csv", "rows": "10"}, "DetailsTable": 32767, "ProgressPercent": 100,
     "Description": "d" * 254, "FileName": "f" * 260, "DatabaseSerialNumber": "9" * 39, "IsSystemTask": False,
     "CancellationBehaviour": "CannotCancel"},
    {"Id": 2147483647, "Name": "O'Brien <&>", "AssociateId": 0, "State": "Aquired", "DetailsRecord": -2147483648,
     "IsInternalTask": True},
]


@pytest.fixture(name="client")
async def _client(aiohttp_client, tmp_path: Path):
    async def make(base_path: str = ""):
        client = await aiohttp_client(create_app(Config(base_dir=str(tmp_path),
                                                        server=ServerConfig(base_path=base_path))))
        # under a base path the application is a sub-application of the one served
        app = next(r.get_info()["app"] for r in client.app.router.resources()
                   if "app" in r.get_info()) if base_path else client.app
        store = app[STORE]
        await store.add_user("root", "admin", None)
        for task in TASKS:
            task_id, doc = superoffice.import_task({"Created": SEEDED, **task}, SEEDED)
            await store.put("superoffice", task_id, doc, actor="seed", request_id="seed")
        token = await app[AUTHENTICATOR].create_token("root")
        return client, {"Authorization": f"SOTicket {token}"}
    return make


def _headers(resp: Any) -> dict[str, str]:
    return {k: v for k, v in resp.headers.items() if k not in ("Date", "Server", "Content-Length", "X-Request-ID")}


@pytest.mark.parametrize("base_path, prefix", [("", ""), ("", "/Cust12345"), ("/tg", ""), ("/tg", "/Cust1")])
async def test_the_odata_metadata_link_answers_the_csdl_document(client, base_path: str, prefix: str):
    c, auth = await client(base_path)
    resp = await c.get(f"{base_path}{prefix}/api/v1/BatchTask", params={"$top": "1"}, headers=auth)
    link = URL((await resp.json())["odata.metadata"])
    assert (link.path, link.fragment) == (f"{base_path}{prefix}/api/v1/$metadata", "BatchTask")
    resp = await c.get(link.path, headers=auth)
    assert (resp.status, _headers(resp), await resp.text()) == (200, HEADERS, DOCUMENT)
    head = await c.head(link.path, headers=auth)
    assert (head.status, _headers(head), await head.read()) == (200, HEADERS, b"")


async def test_it_is_xml_whatever_the_accept_and_needs_a_caller(client):
    c, auth = await client()
    for accept in ("application/json", "text/json", "aplication/json", "*/*"):
        resp = await c.get("/api/v1/$metadata", headers={**auth, "Accept": accept})
        assert (resp.status, _headers(resp), await resp.text()) == (200, HEADERS, DOCUMENT), accept
    resp = await c.get("/api/v1/$metadata")
    assert (resp.status, await resp.json()) == (401, {
        "Error": True, "ErrorType": "SoAuthenticationException", "ErrorMessage": "no authorization header",
        "ErrorSource": "SuperOffice.Services.Implementation"})
    assert resp.headers["WWW-Authenticate"] == 'Basic realm="SuperOffice"'
    resp = await c.post("/api/v1/$metadata", headers=auth)
    assert (resp.status, resp.headers["Allow"], (await resp.json())["ErrorType"]) == (
        405, "GET,HEAD", "HttpMethodNotAllowedException")


def _edm_value_matches(edm_type: str, prop: Element, value: Any, enums: dict[str, set[str]]) -> bool:
    if edm_type in enums:
        return value in enums[edm_type]
    if edm_type == "Edm.String":
        return isinstance(value, str) and len(value) <= int(prop.get("MaxLength", "1000000"))
    if edm_type == "Edm.Boolean":
        return isinstance(value, bool)
    if edm_type == "Edm.DateTime":
        return isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", value) is not None
    bits = {"Edm.Int16": 16, "Edm.Int32": 32}[edm_type]
    return isinstance(value, int) and not isinstance(value, bool) and -2**(bits - 1) <= value < 2**(bits - 1)


async def test_the_document_describes_every_member_of_every_row_the_list_answers(client):
    c, auth = await client()
    listed = await (await c.get("/api/v1/BatchTask", headers=auth)).json()
    rows = listed["value"]
    assert [row["Id"] for row in rows] == [1, 2147483647]
    root = fromstring((await (await c.get("/api/v1/$metadata", headers=auth)).text()).encode())
    schema = root.find(f"{EDMX}DataServices/{EDM}Schema")
    assert schema is not None and root.find(f"{EDMX}DataServices").get(f"{META}DataServiceVersion") == "3.0"
    namespace = schema.get("Namespace")
    (entity_set,) = schema.iter(f"{EDM}EntitySet")
    assert entity_set.get("Name") == URL(listed["odata.metadata"]).fragment
    (entity,) = schema.findall(f"{EDM}EntityType")
    assert f"{namespace}.{entity.get('Name')}" == entity_set.get("EntityType")
    assert [ref.get("Name") for ref in entity.iter(f"{EDM}PropertyRef")] == ["Id"]
    enums = {f"{namespace}.{e.get('Name')}": {m.get("Name") for m in e.iter(f"{EDM}Member")}
             for e in schema.findall(f"{EDM}EnumType")}
    properties = {p.get("Name"): p for p in entity.findall(f"{EDM}Property")}
    assert entity.get("OpenType") == "true"  # ParameterObject, an object, is the one dynamic property
    for row in rows:
        assert set(row) == {*properties, "ParameterObject"}
        assert isinstance(row["ParameterObject"], dict)
        assert all(isinstance(v, str) for v in row["ParameterObject"].values())
        wrong = {name: value for name, value in row.items() if name != "ParameterObject"
                 and not _edm_value_matches(properties[name].get("Type"), properties[name], value, enums)}
        assert wrong == {}, wrong
    # and a $select answers a subset of those members, the link unchanged
    resp = await c.get("/api/v1/BatchTask", params={"$select": "Id,State"}, headers=auth)
    selected = await resp.json()
    assert selected["odata.metadata"] == listed["odata.metadata"]
    assert [set(row) for row in selected["value"]] == [{"Id", "State"}] * 2
