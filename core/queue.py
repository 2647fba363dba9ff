"""The one way Gavel queues work for its Celery workers: `after_commit("app.tasks.name", *args)`.

The task runs once the current transaction commits (at once outside one), through Celery's
own `delay_on_commit`, so a worker never looks for rows that are not there yet. Tasks are
named rather than imported: a task calls its feature's services, and those queue tasks, so
an import either way would be a cycle. A name no tasks module registers fails here, at once,
in the request or test that used it, never later on a worker.
"""
from __future__ import annotations

import importlib

from celery import current_app


def task(name: str):
    """The registered Celery task `name` (an error when nothing registers it). Its tasks module
    is loaded on first use: a web process has not imported it yet."""
    if name not in current_app.tasks:
        importlib.import_module(name.rpartition(".")[0])
    return current_app.tasks[name]


def after_commit(name: str, *args) -> None:
    """Run task `name` with `args` once the current transaction commits."""
    task(name).delay_on_commit(*args)


def now(name: str, *args) -> None:
    """Send task `name` at once: for code already running after a commit (a task, an on_commit hook)."""
    task(name).delay(*args)
