"""The FastAPI + SQLModel peer of scripts/bench --peers, written as SQLModel's tutorial writes
its heroes API ("Update Data with FastAPI"): a table model, a public model and an update
model with every field optional; ``PATCH /tasks/{id}`` gets a Session per request from a
dependency, reads the row, ``sqlmodel_update``\\ s it with the fields the client sent, commits,
refreshes and returns it through the public model.

It runs under uvicorn from the bench's own virtual environment (``WORKDIR/venv``), never
taskgate's: ``uvicorn heroes:app --app-dir scripts/bench_peers``, with the SQLite file in
``BENCH_PEER_DB`` (seeded by the bench, in WAL mode; SQLite's default ``synchronous``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from sqlmodel import Field, Session, SQLModel, create_engine


class TaskBase(SQLModel):
    type: str
    unique_name: str
    description: str = ""
    parent_name: str | None = None
    launcher: str
    created: str
    modified: str
    launched: str | None = None
    completed: str | None = None
    completion_status: str | None = None
    progress: str | None = None
    percent_complete: int | None = None


class Task(TaskBase, table=True):
    id: int | None = Field(default=None, primary_key=True)


class TaskPublic(TaskBase):
    id: int


class TaskUpdate(SQLModel):
    type: str | None = None
    unique_name: str | None = None
    description: str | None = None
    parent_name: str | None = None
    launcher: str | None = None
    modified: str | None = None
    launched: str | None = None
    completed: str | None = None
    completion_status: str | None = None
    progress: str | None = None
    percent_complete: int | None = None


engine = create_engine(f"sqlite:///{os.environ.get('BENCH_PEER_DB', 'heroes.db')}",
                       connect_args={"check_same_thread": False})


def get_session() -> Iterator[Session]:
    with Session(engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


@asynccontextmanager
async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
    SQLModel.metadata.create_all(engine)
    yield


app = FastAPI(lifespan=lifespan)


@app.patch("/tasks/{task_id}", response_model=TaskPublic)
def update_task(task_id: int, task: TaskUpdate, session: SessionDep) -> Task:
    db_task = session.get(Task, task_id)
    if not db_task:
        raise HTTPException(status_code=404, detail="Task not found")
    db_task.sqlmodel_update(task.model_dump(exclude_unset=True))
    session.add(db_task)
    session.commit()
    session.refresh(db_task)
    return db_task
