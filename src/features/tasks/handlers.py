"""Task pages: list with search/filter/sort/pages, create, edit, complete, delete (HTTP only)."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from features.tasks.models import TaskStatus
from features.tasks.schemas import (
    STATUS_FILTERS,
    TaskQuery,
    parse_query,
    parse_task_id,
    parse_title,
)
from features.tasks.service import TaskNotFound, TaskService
from shared.database.repository import PageOutOfRange
from shared.web.forms import read_form
from shared.web.render import page, redirect

NOT_FOUND = "That task does not exist."


def _task_id(raw: str) -> uuid.UUID:
    task_id = parse_task_id(raw)
    if task_id is None:
        raise NotFoundException(NOT_FOUND)
    return task_id


def _return_to(data: dict[str, str]) -> str:
    """The list URL to go back to: only ``/tasks`` with a query string is accepted."""
    target = data.get("return_to", "")
    if target == "/tasks" or (
        target.startswith("/tasks?") and "\\" not in target and len(target) < 1000
    ):
        return target
    return "/tasks"


def query_url(query: TaskQuery, **changes: object) -> str:
    """``/tasks?...`` for ``query`` with ``changes`` applied; default values are left out."""
    values = {"q": query.q, "status": query.status, "sort": query.sort, "page": query.page}
    values.update(changes)
    defaults = {"q": "", "status": "all", "sort": "created", "page": 1}
    params = {k: v for k, v in values.items() if v != defaults[k]}
    return "/tasks" + (f"?{urlencode(params)}" if params else "")


class TaskController(Controller):
    """``/tasks`` and its sub-paths. Every route needs a signed-in user."""

    path = "/tasks"

    async def _list_page(
        self,
        request: Request,
        service: TaskService,
        query: TaskQuery,
        *,
        errors: dict[str, str] | None = None,
        form: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Template:
        try:
            results = await service.list(request.user.id, query)
        except PageOutOfRange:
            raise NotFoundException("That page does not exist.") from None
        context = {
            "tasks": results,
            "query": query,
            "errors": errors or {},
            "form": form or {},
            "status_filters": STATUS_FILTERS,
            "query_url": lambda **changes: query_url(query, **changes),
            "here": query_url(query),
        }
        return page(request, "tasks/index.html", context, status_code=status_code)

    @get("/", name="tasks.index")
    async def index(self, request: Request, db_session: NamedDependency[AsyncSession]) -> Template:
        """The list. Unknown filters → 422 with a message; a bad or past-the-end page → 404."""
        query, errors, page_invalid = parse_query(dict(request.query_params))
        if page_invalid:
            raise NotFoundException("That page does not exist.")
        return await self._list_page(
            request,
            TaskService(db_session),
            query,
            errors=errors,
            status_code=422 if errors else 200,
        )

    @post("/", name="tasks.create")
    async def create(
        self, request: Request, db_session: NamedDependency[AsyncSession]
    ) -> Template | Redirect:
        """Add a task (303 back to the list) or re-render the list with the error (422)."""
        data = await read_form(request)
        title, error = parse_title(data.get("title", ""))
        service = TaskService(db_session)
        if title is None:
            query, _, _ = parse_query({})
            return await self._list_page(
                request, service, query, errors={"title": error or ""}, form=data, status_code=422
            )
        await service.create(request.user.id, title)
        return redirect(request, _return_to(data), flash=("success", "Task added."))

    @get("/{task_id:str}/edit", name="tasks.edit")
    async def edit_page(
        self, request: Request, db_session: NamedDependency[AsyncSession], task_id: FromPath[str]
    ) -> Template:
        """The edit form of an owned task (404 otherwise)."""
        try:
            task = await TaskService(db_session).get(request.user.id, _task_id(task_id))
        except TaskNotFound:
            raise NotFoundException(NOT_FOUND) from None
        return_to = _return_to(dict(request.query_params))
        return page(
            request,
            "tasks/edit.html",
            {"task": task, "form": {"title": task.title}, "errors": {}, "return_to": return_to},
        )

    @post("/{task_id:str}/edit", name="tasks.update")
    async def update(
        self, request: Request, db_session: NamedDependency[AsyncSession], task_id: FromPath[str]
    ) -> Template | Redirect:
        """Rename an owned task (303) or re-render the form with the error (422)."""
        service = TaskService(db_session)
        data = await read_form(request)
        try:
            task = await service.get(request.user.id, _task_id(task_id))
            title, error = parse_title(data.get("title", ""))
            if title is None:
                context = {
                    "task": task,
                    "form": data,
                    "errors": {"title": error},
                    "return_to": _return_to(data),
                }
                return page(request, "tasks/edit.html", context, status_code=422)
            await service.rename(request.user.id, task.id, title)
        except TaskNotFound:
            raise NotFoundException(NOT_FOUND) from None
        return redirect(request, _return_to(data), flash=("success", "Task updated."))

    @post("/{task_id:str}/status", name="tasks.status")
    async def set_status(
        self, request: Request, db_session: NamedDependency[AsyncSession], task_id: FromPath[str]
    ) -> Template | Redirect:
        """Mark an owned task ``completed`` or ``pending`` (the ``status`` field)."""
        data = await read_form(request)
        try:
            status = TaskStatus(data.get("status", ""))
        except ValueError:
            query, _, _ = parse_query({})
            errors = {"status": "Choose pending or completed."}
            return await self._list_page(
                request, TaskService(db_session), query, errors=errors, status_code=422
            )
        try:
            await TaskService(db_session).set_status(request.user.id, _task_id(task_id), status)
        except TaskNotFound:
            raise NotFoundException(NOT_FOUND) from None
        message = "Task completed." if status is TaskStatus.COMPLETED else "Task marked as pending."
        return redirect(request, _return_to(data), flash=("success", message))

    @post("/{task_id:str}/delete", name="tasks.delete")
    async def delete(
        self, request: Request, db_session: NamedDependency[AsyncSession], task_id: FromPath[str]
    ) -> Redirect:
        """Delete an owned task (303) or answer 404."""
        data = await read_form(request)
        try:
            await TaskService(db_session).delete(request.user.id, _task_id(task_id))
        except TaskNotFound:
            raise NotFoundException(NOT_FOUND) from None
        return redirect(request, _return_to(data), flash=("success", "Task deleted."))
