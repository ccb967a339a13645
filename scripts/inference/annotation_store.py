"""The annotations Label Studio sends, kept in an append-only journal (DIR/annotations.jsonl).

    store = AnnotationStore.open(Path("ls-data"))
    change = parse_event({"action": "ANNOTATION_CREATED", "annotation": {...}, "task": {...}})
    store.apply(change)  # one line, flushed and fsync'ed before it returns
    store.export(upto=store.seq)  # [{"id", "data", "annotations": [...]}], Label Studio's export

Each journal line is one event that changed something: {"seq", "event", "put": [{"annotation",
"task"}], "delete": [annotation ids]}. Replaying the lines in order rebuilds the state: an update
replaces the annotation with the same id, a deletion removes it, and re-sending what is already
stored changes nothing and writes nothing. A torn last line (a crash in the middle of a write) is
set aside into annotations.torn with a warning; any other unreadable line stops the server.

Event shapes (Label Studio's webhooks and its ML backend calls):
    ANNOTATION_CREATED, ANNOTATION_UPDATED  {"annotation": {...}, "task": {...}}
    ANNOTATIONS_CREATED                     {"annotation": [...], "task": [...]}
    ANNOTATIONS_DELETED                     {"annotations": [{"id": 17}, ...]}
    START_TRAINING, POST /train             {"annotations": [tasks with "annotations"]}, optional
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from scripts.common.errors import UserError

JOURNAL = "annotations.jsonl"
TORN = "annotations.torn"
ANNOTATION_EVENTS = ("ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED")
DELETE_EVENTS = ("ANNOTATIONS_DELETED", "ANNOTATION_DELETED")
TRAIN_EVENTS = ("START_TRAINING",)
# What training needs of an annotation; the rest of Label Studio's record is not kept.
ANNOTATION_FIELDS = (
    "id",
    "task",
    "result",
    "was_cancelled",
    "ground_truth",
    "created_at",
    "updated_at",
    "completed_by",
)


class BadEvent(UserError):
    """A webhook body we cannot store: answered 422 with the message."""


@dataclass(frozen=True)
class Change:
    """What one event asks for: annotations to store (each with its task) and ids to delete."""

    event: str
    put: tuple[dict[str, Any], ...] = ()  # {"annotation": {...}, "task": {"id", "data"}}
    delete: tuple[int, ...] = ()
    # Task ids of annotations whose task data has to come from the store (sent before).
    needs_task: tuple[int, ...] = ()


@dataclass
class AnnotationStore:
    """The stored annotations, and the journal they are replayed from."""

    path: Path
    annotations: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> {annotation, task}
    tasks: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> {"id", "data"}
    seq: int = 0  # the last journal line's number
    # (seq, annotations that line added or changed), for "N changes since the last training"
    changes: list[tuple[int, int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def open(
        cls, directory: Path, *, upto: int | None = None, repair: bool = True
    ) -> AnnotationStore:
        """Replay DIR/annotations.jsonl (up to line `upto`); repair=False only reads (a second
        process reading while the server writes must not cut the file)."""
        directory.mkdir(parents=True, exist_ok=True)
        store = cls(directory / JOURNAL)
        if not store.path.exists():
            return store
        data = store.path.read_bytes()
        good_end = 0
        for number, line, end in _lines(data):
            if upto is not None and store.seq >= upto:
                break
            try:
                record = json.loads(line)
                change = Change(
                    event=str(record["event"]),
                    put=tuple(record.get("put", ())),
                    delete=tuple(int(i) for i in record.get("delete", ())),
                )
                seq = int(record["seq"])
            except (ValueError, KeyError, TypeError) as err:
                if end == len(data) and not data.endswith(b"\n"):
                    store._set_torn_aside(data[good_end:], repair=repair)
                    break
                raise UserError(
                    f"{store.path}:{number}: not a journal line ({err}); the file is damaged: "
                    "restore it from a backup or remove the line"
                ) from None
            store._replay(change, seq)
            good_end = end
        return store

    def _set_torn_aside(self, torn: bytes, *, repair: bool) -> None:
        self.warnings.append(
            f"{self.path}: the last line ({len(torn)} bytes) was cut off by a crash and is "
            f"ignored{f'; kept in {self.path.with_name(TORN)}' if repair else ''}"
        )
        if not repair:
            return
        with self.path.with_name(TORN).open("ab") as aside:
            aside.write(torn + b"\n")
            aside.flush()
            os.fsync(aside.fileno())
        with self.path.open("r+b") as journal:
            journal.truncate(self.path.stat().st_size - len(torn))
            journal.flush()
            os.fsync(journal.fileno())

    def _replay(self, change: Change, seq: int) -> int:
        """Apply a change to the state; how many annotations it added or changed."""
        changed = 0
        for item in change.put:
            annotation, task = item["annotation"], item["task"]
            self.tasks[int(task["id"])] = task
            if self.annotations.get(int(annotation["id"])) != item:
                changed += 1
            self.annotations[int(annotation["id"])] = item
        for annotation_id in change.delete:
            self.annotations.pop(annotation_id, None)
        self.seq = seq
        if changed:
            self.changes.append((seq, changed))
        return changed

    def resolve(self, change: Change) -> Change:
        """Fill in the task data of annotations that came without it, from the store."""
        if not change.needs_task:
            return change
        missing = sorted({t for t in change.needs_task if t not in self.tasks})
        if missing:
            raise BadEvent(
                f"{change.event}: no task data for task {missing[0]} (and the task was never sent "
                "before); turn on 'Send payload' in the Label Studio webhook settings"
            )
        put = tuple(
            item
            if item["task"] is not None
            else {**item, "task": self.tasks[item["annotation"]["task"]]}
            for item in change.put
        )
        return Change(event=change.event, put=put, delete=change.delete)

    def is_noop(self, change: Change) -> bool:
        return all(
            self.annotations.get(int(item["annotation"]["id"])) == item
            and self.tasks.get(int(item["task"]["id"])) == item["task"]
            for item in change.put
        ) and not any(i in self.annotations for i in change.delete)

    def apply(self, change: Change) -> int:
        """Journal the change (flushed and fsync'ed) and apply it; how many annotations it added or
        changed. A change that changes nothing writes nothing."""
        with self.lock:
            change = self.resolve(change)
            if self.is_noop(change):
                return 0
            record = {
                "seq": self.seq + 1,
                "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "event": change.event,
                "put": list(change.put),
                "delete": list(change.delete),
            }
            line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
            with self.path.open("ab") as journal:
                journal.write(line.encode("utf8"))
                journal.flush()
                os.fsync(journal.fileno())
            return self._replay(change, self.seq + 1)

    def changed_since(self, seq: int) -> int:
        """Annotations added or changed by journal lines after `seq`."""
        return sum(n for line, n in self.changes if line > seq)

    def export(self) -> list[dict[str, Any]]:
        """The stored annotations as Label Studio's JSON export: tasks by id, each with its
        annotations (the reader picks one per task)."""
        by_task: dict[int, list[dict[str, Any]]] = {}
        with self.lock:
            items = list(self.annotations.values())
        for item in items:
            by_task.setdefault(int(item["task"]["id"]), []).append(item["annotation"])
        return [
            {
                "id": task_id,
                "data": self.tasks[task_id]["data"],
                "annotations": sorted(by_task[task_id], key=lambda a: a["id"]),
            }
            for task_id in sorted(by_task)
        ]


def _lines(data: bytes) -> Iterator[tuple[int, bytes, int]]:
    """(line number, line, offset after it) for each non-blank line."""
    start = 0
    for number, line in enumerate(data.splitlines(keepends=True), 1):
        start += len(line)
        if line.strip():
            yield number, line, start


# ---- parsing Label Studio's bodies -----------------------------------------------------------


def event_name(payload: Any) -> str:
    """The body's "action"; BadEvent when there is none."""
    if not isinstance(payload, dict):
        raise BadEvent(
            f"the webhook body is a JSON {type(payload).__name__}, not an object; "
            "point a Label Studio webhook at this URL"
        )
    action = payload.get("action")
    if not isinstance(action, str) or not action:
        raise BadEvent("the webhook body has no 'action'; point a Label Studio webhook at this URL")
    if not action.isascii():  # Label Studio's actions are upper-case ASCII names
        raise BadEvent(f"the webhook's 'action' {action!a} is not a Label Studio event name")
    return action


def parse_event(payload: Any) -> Change | None:
    """The change a webhook body asks for; None for events that carry no annotations; BadEvent
    for a body that does not have the shape its action promises."""
    action = event_name(payload)
    if action in ANNOTATION_EVENTS:
        many = action == "ANNOTATIONS_CREATED"
        annotations = payload.get("annotation")
        if many and isinstance(annotations, dict):
            annotations = [annotations]
        if not (isinstance(annotations, list) if many else isinstance(annotations, dict)):
            raise BadEvent(
                f"{action}: 'annotation' is missing or not {'a list' if many else 'an object'}; "
                "turn on 'Send payload' in the Label Studio webhook settings"
            )
        tasks = payload.get("task")
        task_list = tasks if isinstance(tasks, list) else [tasks] if tasks is not None else []
        by_id = {}
        for i, task in enumerate(task_list):
            checked = _task(task, where=f"{action}: task {i}" if many else f"{action}: task")
            by_id[checked["id"]] = checked
        items = [annotations] if not many else annotations
        return _change(action, items, by_id)
    if action in DELETE_EVENTS:
        listed = payload.get("annotations", payload.get("annotation"))
        if isinstance(listed, dict):
            listed = [listed]
        if not isinstance(listed, list):
            raise BadEvent(
                f"{action}: 'annotations' is missing or not a list of {{\"id\": ...}}; "
                "turn on 'Send payload' in the Label Studio webhook settings"
            )
        ids = [
            _id(
                item.get("id") if isinstance(item, dict) else item,
                what=f"{action}: annotation {i} id",
            )
            for i, item in enumerate(listed)
        ]
        return Change(event=action, delete=tuple(ids))
    if action in TRAIN_EVENTS:
        return parse_tasks(payload.get("annotations") or payload.get("tasks") or [], event=action)
    return None


def parse_tasks(tasks: Any, *, event: str) -> Change:
    """Tasks in Label Studio's export format ({"id", "data", "annotations"}), as POST /train sends
    them, as one change."""
    if not isinstance(tasks, list):
        raise BadEvent(f"{event}: 'annotations' is not a list of tasks")
    items: list[dict[str, Any]] = []
    by_id: dict[int, dict[str, Any]] = {}
    for i, task in enumerate(tasks):
        checked = _task(task, where=f"{event}: task {i}")
        by_id[checked["id"]] = checked
        annotations = task.get("annotations") or task.get("completions") or []
        if not isinstance(annotations, list):
            raise BadEvent(f"{event}: task {i}: 'annotations' is not a list")
        items.extend(
            {**a, "task": checked["id"]} if isinstance(a, dict) else a for a in annotations
        )
    return _change(event, items, by_id)


def _change(event: str, annotations: list[Any], tasks: dict[int, dict[str, Any]]) -> Change:
    put, needs = [], []
    for i, annotation in enumerate(annotations):
        where = f"{event}: annotation {i}" if len(annotations) > 1 else f"{event}: annotation"
        if not isinstance(annotation, dict):
            raise BadEvent(f"{where} is a {type(annotation).__name__}, not an object")
        kept = {key: annotation[key] for key in ANNOTATION_FIELDS if key in annotation}
        kept["id"] = _id(annotation.get("id"), what=f"{where} id")
        task_ref = annotation.get("task")
        task_id = _id(
            task_ref.get("id") if isinstance(task_ref, dict) else task_ref,
            what=f"{where} task",
        )
        kept["task"] = task_id
        if not isinstance(kept.get("result", []), list):
            raise BadEvent(f"{where} {kept['id']}: 'result' is not a list")
        kept.setdefault("result", [])
        task = tasks.get(task_id)
        if task is None and isinstance(task_ref, dict) and "data" in task_ref:
            task = _task(task_ref, where=f"{where} task")
        if task is None:
            needs.append(task_id)
        put.append({"annotation": kept, "task": task})
    return Change(event=event, put=tuple(put), needs_task=tuple(needs))


def _task(task: Any, *, where: str) -> dict[str, Any]:
    if not isinstance(task, dict):
        raise BadEvent(f"{where} is not an object with 'id' and 'data'")
    if not isinstance(task.get("data"), dict):
        raise BadEvent(f"{where} {task.get('id')!a}: 'data' is missing or not an object")
    return {"id": _id(task.get("id"), what=f"{where} id"), "data": task["data"]}


def _id(value: Any, *, what: str) -> int:
    digits = isinstance(value, str) and value.isascii() and value.isdigit()
    if not (digits or isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        raise BadEvent(f"{what} is {json.dumps(value)[:40]}, not a Label Studio id (a number)")
    return int(value)
