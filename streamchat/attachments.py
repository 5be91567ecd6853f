"""`-a FILE`: images and PDFs for the model to see, their type found from their bytes."""

from __future__ import annotations

from streamchat.errors import UsageError
from streamchat.events import Attachment
from streamchat.paths import user_path
from streamchat.prompt_input import file_label

KINDS = {"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"}
MAX_BYTES = 32 * 1024 * 1024  # the largest any provider takes (PDFs); each adapter checks its own limits


def load(source: str) -> Attachment:
    """Read and type-check one attachment; anything else is a usage error, before anything is sent."""
    import filetype

    path, name = user_path(source), file_label(source)
    too_large = UsageError(f"{name} is larger than {MAX_BYTES // (1024 * 1024)} MB", hint="attach a smaller file")
    try:
        if path.is_dir():
            raise UsageError(f"{name} is a directory", hint="attach image or PDF files")
        if path.stat().st_size > MAX_BYTES:
            raise too_large
        with path.open("rb") as f:  # a pipe (-a <(curl …)) or a device has no size: read one byte past the cap
            data = f.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise too_large
    except FileNotFoundError:
        raise UsageError(f"no such file: {name}", hint="check the path given to -a") from None
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror}", hint="check the path and its permissions") from None
    kind = filetype.guess(data)
    mime = kind.mime if kind is not None else None
    if mime not in KINDS:
        found = f" ({mime})" if mime else ""
        raise UsageError(f"{name} is not a PNG, JPEG, GIF, WebP or PDF file{found}",
                         hint="pass text files with -f, and images or PDFs with -a")
    return Attachment(file_label(path.name), mime, data)


def pdf_text(attachment: Attachment) -> str:
    """A PDF's text (pypdf), for a provider that cannot take the document itself."""
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(attachment.data))
        return "\n\n".join((page.extract_text() or "").strip() for page in reader.pages).strip()
    except (PdfReadError, ValueError) as exc:
        raise UsageError(f"cannot read the PDF {attachment.name}: {exc}", hint="check the file") from None
