"""The request side of the HTTP app: the limits a request must keep, and the batcher that joins
concurrent requests into one nlp.pipe call at a time (shared by /predict, /explain and Label
Studio's /predict).

    batcher = Batcher(predict, max_texts=limits.max_texts)
    check_limits(texts, limits=limits)   # TooLarge (413) or UserError (422)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable, Optional

from scripts.common.errors import UserError
from scripts.inference.annotation_check import MAX_CHARS
from scripts.inference.predict import Prediction, unreadable_text
from scripts.inference.serving import note_texts

# Label Studio's own upload limit (DATA_UPLOAD_MAX_MEMORY_SIZE) is 250 MiB: any request it makes of
# projects it holds fits.
STUDIO_BODY_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Limits:
    max_texts: int = 256  # texts (or Label Studio tasks) per request
    max_chars: int = MAX_CHARS  # characters per text

    @property
    def max_body_bytes(self) -> int:
        # Generous: JSON escapes (\uXXXX) take up to six bytes a character, plus the label config.
        return self.max_texts * self.max_chars * 6 + 1_000_000

    def body_limit(self, path: str) -> int:
        """The largest body a route takes: Label Studio's routes take whole projects."""
        studio = path.startswith("/labelstudio/")
        return max(self.max_body_bytes, STUDIO_BODY_BYTES) if studio else self.max_body_bytes


class TooLarge(Exception):
    """A request over the limits: answered 413 with the message."""


class Batcher:
    """Runs predictions one batch at a time in a worker thread; requests that arrive meanwhile wait
    and go together into the next batch, up to max_texts texts. Adds no delay when the server is
    idle."""

    def __init__(self, predict: Callable[[list[str]], list[Prediction]], *, max_texts: int) -> None:
        self.predict = predict
        self.max_texts = max_texts
        self.queue: asyncio.Queue[tuple[list[str], asyncio.Future]] = asyncio.Queue()

    async def submit(self, texts: list[str]) -> list[Prediction]:
        if not texts:
            return []
        note_texts(len(texts))
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        await self.queue.put((texts, future))
        return await future

    async def run(self) -> None:
        waiting: Optional[tuple[list[str], asyncio.Future]] = None  # did not fit the last batch
        while True:
            batch = [waiting or await self.queue.get()]
            waiting, size = None, len(batch[0][0])
            while not self.queue.empty():
                item = self.queue.get_nowait()
                if size + len(item[0]) > self.max_texts:
                    waiting = item
                    break
                batch.append(item)
                size += len(item[0])
            texts = [text for request, _ in batch for text in request]
            try:
                predictions = await asyncio.to_thread(self.predict, texts)
            except Exception as err:  # a bad request answers 500; the others and serving go on
                if len(batch) == 1:
                    settle(batch[0][1], error=err)
                else:
                    await self.one_by_one(batch)
                continue
            start = 0
            for request, future in batch:
                settle(future, result=predictions[start : start + len(request)])
                start += len(request)

    async def one_by_one(self, batch: list[tuple[list[str], asyncio.Future]]) -> None:
        """Retry the requests of a failed batch alone: only those that fail again fail."""
        for texts, future in batch:
            try:
                settle(future, result=await asyncio.to_thread(self.predict, texts))
            except Exception as err:
                settle(future, error=err)


def settle(
    future: asyncio.Future, *, result: Any = None, error: Optional[BaseException] = None
) -> None:
    if future.done():  # the client may have gone away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def check_limits(texts: list[str], *, limits: Limits, what: str = "texts") -> None:
    if len(texts) > limits.max_texts:
        raise TooLarge(
            f"{len(texts)} {what} in one request; the limit is {limits.max_texts} (--max-texts): "
            "send fewer per request"
        )
    for i, text in enumerate(texts):
        if len(text) > limits.max_chars:
            raise TooLarge(
                f"{what} {i} has {len(text)} characters; the limit is {limits.max_chars} "
                "(--max-chars): split long texts"
            )
        problem = unreadable_text(text)
        if problem is not None:
            raise UserError(f"{what} {i} cannot be predicted: {problem}; send valid Unicode text")
