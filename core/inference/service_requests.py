"""Reading a ``/predict`` request: the body within its size limit, its images, its threshold.

A request carries its images as the raw body (``Content-Type: image/*`` or
``application/octet-stream``: one image) or as a multipart form whose parts named ``file``
or ``files`` are images, in order (up to ``MAX_IMAGES`` per request). Every problem is a
``RequestError`` with the status the service answers: 400 (empty, malformed), 413 (too
large), 415 (content type) or 422 (bad parameters, no image field).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

RAW_TYPES = ("application/octet-stream",)
IMAGE_FIELDS = ("file", "files")
MAX_IMAGES = 64             # images in one multipart request


class RequestError(Exception):
    """A bad request: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class RequestImages:
    """The images of one request, in order, with their multipart file names (None for a raw
    body); ``many``: answer with a list (several images, or the field ``files``)."""
    images: list[bytes]
    names: list[str | None]
    many: bool


async def read_body_limited(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes, whatever the headers say."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise RequestError(413, f"body too large: {int(declared):,} bytes declared; "
                                        f"the limit is {limit:,} bytes")
        except ValueError:
            raise RequestError(400, "invalid Content-Length header") from None
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise RequestError(413, f"body too large: more than {limit:,} bytes sent; "
                                    f"the limit is {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def request_images(request: Request, limit: int) -> RequestImages:
    """The request's images from a raw body or the multipart fields ``file``/``files``; the
    whole body counts against ``limit`` bytes."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    multipart = ctype == "multipart/form-data"
    if not (multipart or ctype.startswith("image/") or ctype in RAW_TYPES):
        raise RequestError(415, f"unsupported Content-Type {ctype or '(none)'!r}: send the image "
                                "as the body with Content-Type image/*, or as the multipart "
                                "form field 'file' (several: repeat 'file' or 'files')")
    body = await read_body_limited(request, limit)
    if not body:
        raise RequestError(400, "empty body: no image was sent")
    if not multipart:
        return RequestImages([body], [None], False)

    async def once():
        yield body

    try:
        form = await MultiPartParser(Headers(raw=request.scope["headers"]), once(),
                                     max_files=MAX_IMAGES, max_fields=MAX_IMAGES + 10).parse()
    except MultiPartException as exc:
        raise RequestError(400, f"bad multipart form: {exc.message} (at most {MAX_IMAGES} "
                                "images per request)") from None
    try:
        uploads = [(key, v) for key, v in form.multi_items()
                   if key in IMAGE_FIELDS and isinstance(v, UploadFile)]
        if not uploads:
            raise RequestError(422, "the multipart form has no file field named 'file' "
                                    "(or 'files')")
        images, names = [], []
        for k, (_, upload) in enumerate(uploads):
            data = await upload.read()
            if not data:
                which = f"file {k + 1} ({upload.filename!r})" if len(uploads) > 1 else "the 'file' field"
                raise RequestError(400, f"empty file: {which} has 0 bytes")
            images.append(data)
            names.append(upload.filename)
    finally:
        await form.close()
    many = len(images) > 1 or any(key == "files" for key, _ in uploads)
    return RequestImages(images, names, many)


def parse_threshold(request: Request, default: float) -> float:
    """The request's ``threshold`` query parameter, or ``default``; raises ``RequestError`` (422)
    unless it is a number in [0, 1]."""
    raw = request.query_params.get("threshold")
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1:
        raise RequestError(422, f"threshold must be a number between 0 and 1, not {raw!r}")
    return value
