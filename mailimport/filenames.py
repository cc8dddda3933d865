"""File names for saved attachments, built by the server from an untrusted name.

An attachment's name comes from whoever sent the e-mail. It may try to climb out of the folder
(`../../etc/passwd`), hide its real type behind a right-to-left override
(`invoice<U+202E>fdp.exe` shows as `invoiceexe.pdf`), name a Windows device (`CON.txt`), or
simply be too long for the share. `safe_filename` turns any text into a name that is valid and
harmless on Linux, on an SMB share and on Windows.

Decisions:
- Emoji and other printable Unicode are kept: NTFS, ext4 and SMB store them fine, and a person
  looking for "📎 smlouva.pdf" recognises it. Invisible format characters are removed, including
  the zero-width joiner, so a joined emoji (a family) becomes its separate emoji.
- Names never start with a dot: no hidden files on the share, and the store's own bookkeeping
  folders (`.incoming`, `.sha256`) can never be taken by an attachment.
- Runs of dots become one dot, so `..` never appears in a name.
- The limit is in UTF-8 bytes, because that is what file systems count (255 at most); the
  default 150 leaves room for the folder path on Windows clients.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

FALLBACK = "attachment"
MAX_BYTES = 255  # what ext4, NTFS (in UTF-16 units, fewer than bytes) and SMB allow

# Windows refuses these whatever follows the first dot (`CON.txt`, `com1.tar.gz`); the
# superscript digits count as digits there too.
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{port}{n}" for port in ("COM", "LPT") for n in "123456789¹²³"]
)
# Separators and what Windows forbids in a name.
_FORBIDDEN = frozenset('/\\<>:"|?*')
# Control (Cc) characters are turned into spaces, not dropped, so `a\tb` stays two words.
# Format (Cf: bidi overrides, zero-width characters, BOM), surrogates (Cs, cannot be written
# as UTF-8) and line/paragraph separators are dropped.
_DROPPED_CATEGORIES = frozenset(["Cf", "Cs", "Zl", "Zp"])
# An extension longer than this is treated as part of the name when shortening: a real one
# is short, and keeping a long one could leave nothing of the name itself.
_MAX_EXTENSION_BYTES = 16


def safe_filename(original: str, max_length: int = 150) -> str:
    """A harmless, non-empty file name of at most `max_length` UTF-8 bytes.

    The extension is kept when the name is shortened. Applying it twice changes nothing.
    """
    if not 32 <= max_length <= MAX_BYTES:
        raise ValueError(f"max_length must be between 32 and {MAX_BYTES} bytes")
    name = _shorten(_clean(original), max_length)
    if _is_reserved(name):
        # Prefixing keeps the name recognisable; shortening again cannot make it reserved,
        # since it still starts with "_".
        name = _shorten("_" + name, max_length)
    return name or FALLBACK


def real_extension(name: str) -> str:
    """The extension as the file system will see it: lower-case, without the dot.

    Taken from the cleaned name, never from the declared content type: `report.pdf.` is a PDF
    on Windows, `invoice<U+202E>fdp.exe` is an `exe`. `archive.tar.gz` gives `gz`, `.pdf` (a
    hidden file's name) gives nothing.
    """
    # A long "extension" is not one: shortening the name would not keep it.
    return _split_extension(_clean(name))[1].removeprefix(".").lower()


def allowed(name: str, extensions: str | Iterable[str]) -> bool:
    """Whether the attachment's real extension is in the list (`"pdf;docx"` or an iterable)."""
    if isinstance(extensions, str):
        extensions = extensions.split(";")
    wanted = {e.strip().lower().removeprefix(".") for e in extensions}
    extension = real_extension(name)
    return bool(extension) and extension in wanted


def numbered_filename(name: str, number: int, max_length: int = 150) -> str:
    """`report.pdf`, 2 → `report (2).pdf`, for a safe `name` whose place is taken.

    The name is shortened before the number, so the number and extension always survive.
    """
    stem, suffix = _split_extension(name)
    tail = f" ({number}){suffix}"
    stem = _cut(stem, max_length - len(tail.encode())).rstrip(". ")
    return (stem or FALLBACK) + tail


def numbered_apart(names: Iterable[str], max_length: int = 150) -> list[str]:
    """The names, each made different from the ones before it by a number, as the store
    numbers a name taken in a folder: `smlouva.pdf`, `smlouva.pdf` → `smlouva.pdf`,
    `smlouva (2).pdf`. Compared without case, as Windows and SMB compare names."""
    taken: set[str] = set()
    out = []
    for name in names:
        unique, number = name, 1
        while unique.casefold() in taken:
            number += 1
            unique = numbered_filename(name, number, max_length)
        taken.add(unique.casefold())
        out.append(unique)
    return out


def _split_extension(name: str) -> tuple[str, str]:
    """(stem, ".ext"), or (name, "") when there is no extension short enough to keep."""
    stem, dot, extension = name.rpartition(".")
    if not (dot and stem) or len((dot + extension).encode()) > _MAX_EXTENSION_BYTES:
        return name, ""
    return stem, dot + extension


def _cut(text: str, max_bytes: int) -> str:
    # Cut at a character boundary: a cut multi-byte character would not be valid UTF-8.
    return text.encode()[:max_bytes].decode(errors="ignore")


def _clean(original: str) -> str:
    characters = []
    for char in unicodedata.normalize("NFC", original):
        category = unicodedata.category(char)
        if category in _DROPPED_CATEGORIES:
            continue
        if category == "Cc" or char.isspace():
            characters.append(" ")
        elif char in _FORBIDDEN:
            characters.append("_")
        else:
            characters.append(char)
    name = "".join(characters)
    while ".." in name:
        name = name.replace("..", ".")
    # Windows drops trailing dots and spaces itself (so `a.pdf.` would become `a.pdf` there
    # but not here); leading ones would make a hidden file.
    name = name.strip(". ")
    # Removing characters may have un-composed neighbours; normalising again keeps the result
    # stable when it is cleaned a second time.
    return unicodedata.normalize("NFC", name)


def _shorten(name: str, max_length: int) -> str:
    if len(name.encode()) <= max_length:
        return name
    stem, suffix = _split_extension(name)
    stem = _cut(stem, max_length - len(suffix.encode()))
    return unicodedata.normalize("NFC", stem.rstrip(". ") + suffix).strip(". ")


def _is_reserved(name: str) -> bool:
    return name.partition(".")[0].rstrip(" ").upper() in _RESERVED
