"""Files that every web process and worker must reach: uploaded imports, finished exports.

They live in the file storage named "files" (settings.STORAGES): by default
the database, in 1 MB chunks, so workers on other hosts need nothing shared;
or a shared folder, or S3 through django-storages (FILE_STORAGE).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from django.core.files import File
from django.core.files.storage import Storage, storages
from django.db import transaction
from django.utils.deconstruct import deconstructible

from subscriptions.models import StoredFile, StoredFileChunk

CHUNK_BYTES = 1024 * 1024
_CHUNKS_PER_INSERT = 8


def files_storage() -> Storage:
    """Return the storage that keeps imports and exports."""
    return storages["files"]


def file_store(*, source: Path, prefix: str, suffix: str = ".csv") -> str:
    """Copy the local file into the storage under a new unique name; return that name."""
    name = f"{prefix}/{uuid.uuid4().hex}{suffix}"
    with open(source, "rb") as handle:
        return files_storage().save(name, File(handle))


def file_upload_store(*, upload, prefix: str, suffix: str = ".csv") -> str:
    """Keep an uploaded file in the storage; return its name."""
    return files_storage().save(f"{prefix}/{uuid.uuid4().hex}{suffix}", upload)


@contextlib.contextmanager
def file_local_copy(name: str) -> Iterator[Path]:
    """Yield a local path holding the stored file, removed afterwards (FileNotFoundError if it is gone)."""
    storage = files_storage()
    if not storage.exists(name):
        raise FileNotFoundError(name)
    with tempfile.TemporaryDirectory(prefix="dwvlist-file-") as folder:
        path = Path(folder) / Path(name).name
        with storage.open(name, "rb") as source, open(path, "wb") as target:
            shutil.copyfileobj(source, target, CHUNK_BYTES)
        yield path


def file_delete(name: str) -> None:
    """Delete the stored file if it is there."""
    if name:
        files_storage().delete(name)


class _ChunkReader(io.RawIOBase):
    """Read a stored file chunk by chunk, one query each, in constant memory."""

    def __init__(self, file_id: int) -> None:
        self._file_id = file_id
        self._seq = 0
        self._buffer = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        if not self._buffer and not self._done:
            row = StoredFileChunk.objects.filter(file_id=self._file_id, seq=self._seq).values_list("data", flat=True)
            data = row.first()
            if data is None:
                self._done = True
            else:
                self._buffer = bytes(data)
                self._seq += 1
        count = min(len(target), len(self._buffer))
        target[:count] = self._buffer[:count]
        self._buffer = self._buffer[count:]
        return count


@deconstructible
class DatabaseStorage(Storage):
    """A Django storage that keeps each file in the database, in CHUNK_BYTES pieces.

    A file is written in one transaction, so it is either whole or absent.
    """

    def _save(self, name: str, content) -> str:
        with transaction.atomic():
            stored = StoredFile.objects.create(name=name)
            size, pending = 0, []
            for seq, piece in enumerate(_pieces(content)):
                pending.append(StoredFileChunk(file=stored, seq=seq, data=piece))
                size += len(piece)
                if len(pending) >= _CHUNKS_PER_INSERT:
                    StoredFileChunk.objects.bulk_create(pending)
                    pending = []
            StoredFileChunk.objects.bulk_create(pending)
            StoredFile.objects.filter(pk=stored.pk).update(size=size)
        return name

    def _open(self, name: str, mode: str = "rb") -> File:
        if "w" in mode or "a" in mode:
            raise ValueError("stored files are written with save(), not opened for writing")
        stored = StoredFile.objects.filter(name=name).first()
        if stored is None:
            raise FileNotFoundError(name)
        return File(io.BufferedReader(_ChunkReader(stored.pk), CHUNK_BYTES), name=name)

    def exists(self, name: str) -> bool:
        return StoredFile.objects.filter(name=name).exists()

    def delete(self, name: str) -> None:
        StoredFile.objects.filter(name=name).delete()

    def size(self, name: str) -> int:
        stored = StoredFile.objects.filter(name=name).first()
        if stored is None:
            raise FileNotFoundError(name)
        return stored.size

    def url(self, name: str) -> str:
        raise NotImplementedError("stored files are served by the views that check who may read them")


def _pieces(content) -> Iterator[bytes]:
    """Yield the content in CHUNK_BYTES pieces, whatever sizes it reads in."""
    if hasattr(content, "seek"):
        with contextlib.suppress(OSError, ValueError):
            content.seek(0)
    reads = content.chunks(CHUNK_BYTES) if hasattr(content, "chunks") else iter(lambda: content.read(CHUNK_BYTES), b"")
    buffer = b""
    for piece in reads:
        buffer += piece
        while len(buffer) >= CHUNK_BYTES:
            yield buffer[:CHUNK_BYTES]
            buffer = buffer[CHUNK_BYTES:]
    if buffer:
        yield buffer
