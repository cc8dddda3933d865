"""The multipart body of a Raynet file upload: the file read as it is sent, a chunk at a
time, into the body a multipart parser reads back whole."""

from __future__ import annotations

import io
from email.parser import BytesParser
from email.policy import default as default_policy

import pytest

from engine.crmstore.raynet_upload import CHUNK, MultipartFile

CONTENT = bytes(range(256)) * 1000      # 256 kB, every byte value


class Watched(io.BytesIO):
    """A file that remembers the largest read asked of it."""

    largest = 0

    def read(self, size: int | None = -1) -> bytes:
        self.largest = max(self.largest, size if size is not None and size >= 0 else 1 << 62)
        return super().read(size)


def test_the_body_holds_the_file_and_reads_it_a_chunk_at_a_time() -> None:
    stream = Watched(CONTENT)
    body = MultipartFile(stream, len(CONTENT), 'nabídka "2026".pdf', "application/pdf")
    raw = b"".join(iter(lambda: body.read(8192), b""))
    assert len(raw) == len(body)
    assert stream.largest <= CHUNK
    parsed = BytesParser(policy=default_policy).parsebytes(
        f"Content-Type: {body.content_type}\r\n\r\n".encode() + raw)
    part, = parsed.iter_parts()
    assert part.get_param("name", header="content-disposition") == "file"
    assert part.get_filename() == "nabídka %222026%22.pdf"
    assert part.get_content_type() == "application/pdf"
    assert part.get_payload(decode=True) == CONTENT


@pytest.mark.parametrize("actual", [CONTENT[:-1], CONTENT + b"x"])
def test_a_file_changed_since_its_size_was_taken_fails_the_upload(actual: bytes) -> None:
    body = MultipartFile(io.BytesIO(actual), len(CONTENT), "a.pdf", "application/pdf")
    with pytest.raises(OSError, match="changed while it was being sent"):
        while body.read(CHUNK):
            pass
