"""The download an auditor hands over: one ZIP holding the data file and its signed manifest.

Written as a stream (the data entry while its bytes are produced, the manifest once they are all
out, then ZIP's central directory), so neither the file nor the archive is ever held in memory;
readers find the entries through the central directory at the end, as every ZIP reader does.
"""
from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

COMPRESSION = zipfile.ZIP_DEFLATED
LEVEL = 1  # zlib's fastest: CSV and JSON Lines still shrink several times over


class _Sink:
    """What ZipFile writes, kept until the stream takes it (ZipFile sees an unseekable file)."""

    def __init__(self):
        self._parts: list[bytes] = []

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def _entry(name: str, when: datetime, size: int | None = None) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=when.timetuple()[:6])
    info.compress_type = COMPRESSION
    info._compresslevel = LEVEL  # ZipInfo has no public setter before Python 3.13
    info.external_attr = 0o644 << 16
    if size is not None:
        info.file_size = size  # only says whether ZIP64 is needed; the real size is counted
    return info


def stream(data_name: str, data: Iterable[bytes], manifest_name: str, manifest: Callable[[], bytes],
           when: datetime, size: int | None = None) -> Iterator[bytes]:
    """The archive's bytes: `data` as `data_name`, then `manifest()` (called once `data` is exhausted)."""
    sink = _Sink()
    archive = zipfile.ZipFile(sink, "w", compression=COMPRESSION, compresslevel=LEVEL, allowZip64=True)
    with archive.open(_entry(data_name, when, size), "w", force_zip64=size is None) as member:
        for chunk in data:
            member.write(chunk)
            out = sink.take()
            if out:
                yield out
    archive.writestr(_entry(manifest_name, when), manifest())
    archive.close()
    yield sink.take()

