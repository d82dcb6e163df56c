"""What SuperOffice clients are promised, written out once for the tests: every
BatchTaskInfo member with its .NET type and FieldLength, and the TableRight and
FieldProperties each kind of caller sees. Deliberately not derived from the code under test.
"""

from __future__ import annotations

from typing import Any

#: the associate id of the owner user (tje0) in the SuperOffice tests
OWNER_ID = 627

#: every BatchTaskInfo member in the vendor's order with its .NET type and FieldLength
FIELDS = [
    ("Id", "System.Int32", 4), ("Name", "System.String", 0), ("AssociateId", "System.Int32", 4),
    ("DetailsTable", "System.Int16", 2), ("DetailsRecord", "System.Int32", 4),
    ("IsSystemTask", "System.Boolean", 1), ("IsInternalTask", "System.Boolean", 1),
    ("ParameterObject", "SuperOffice.Util.StringDictionary", 0), ("LastStarted", "System.DateTime", 16),
    ("Created", "System.DateTime", 16), ("StartCount", "System.Int32", 4),
    ("DatabaseSerialNumber", "System.String", 39), ("Context", "System.String", 0), ("Result", "System.String", 0),
    ("State", "SuperOffice.Data.BatchTaskState", 4), ("Description", "System.String", 254),
    ("Response", "System.String", 254), ("Request", "System.String", 254),
    ("ProgressDescription", "System.String", 254), ("ProgressPercent", "System.Int16", 2),
    ("FileName", "System.String", 260),
    ("CancellationBehaviour", "SuperOffice.Data.BatchTaskCancellationBehaviour", 4),
]
UPDATABLE = ("State", "Description", "Response", "Request")
READ_ONLY_REASON = "only State, Description, Response and Request can be updated"


def rights(who: str, associate_id: int = OWNER_ID) -> dict[str, Any]:
    """TableRight and FieldProperties for admin / owner / other / readonly, written out."""
    table = {"admin": {"Mask": "Select, Update, Insert, Delete", "Reason": ""},
             "owner": {"Mask": "Select, Update", "Reason": "only an administrator may create or delete batch tasks"},
             "other": {"Mask": "Select", "Reason": f"only the task's owner (associate {associate_id}) or an "
                                                   "administrator may update it"},
             "readonly": {"Mask": "Select", "Reason": "this token is read-only"}}[who]
    may_update = who in ("admin", "owner")
    props = {}
    for name, dotnet, length in FIELDS:
        if name in UPDATABLE and may_update:
            right = {"Mask": "Update", "Reason": ""}
        elif name in UPDATABLE:
            right = {"Mask": "Read", "Reason": table["Reason"]}
        else:
            right = {"Mask": "Read", "Reason": READ_ONLY_REASON}
        props[name] = {"FieldRight": right, "FieldType": dotnet, "FieldLength": length}
    return {"TableRight": table, "FieldProperties": props}
