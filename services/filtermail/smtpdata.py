"""SMTP message data (RFC 5321 section 4.5.2): the end marker and dot-stuffing.

Both directions in one place: the server side collects DATA up to the end
marker and undoes dot-stuffing (`DataReader`, `unstuff`); the reinjection
side stuffs again before sending (`dot_stuff`, `stuffed_parts`).
"""


def unstuff(message: bytearray) -> bytearray:
    """Undo dot-stuffing (RFC 5321 section 4.5.2): a line's leading dot goes."""
    if message[:1] == b".":
        del message[0]
    if message.find(b"\r\n.") >= 0:
        message = message.replace(b"\r\n.", b"\r\n")
    return message


END_OF_DATA = b"\r\n.\r\n"


class DataReader:
    """Collect DATA chunks up to the end marker, keeping at most `limit` bytes."""

    def __init__(self, limit: int):
        self.limit = limit
        self.buffer = bytearray()
        self.size = 0
        self.tail = b"\r\n"  # DATA starts at the beginning of a line

    @property
    def too_big(self) -> bool:
        return self.buffer is None

    def feed(self, chunk: bytes):
        """Take a chunk; return the bytes after the end marker, or None if not there yet."""
        window = self.tail + chunk
        marker = window.find(END_OF_DATA)
        if marker < 0:
            self._keep(chunk)
            self.tail = window[-4:]
            return None
        end = marker + 2 - len(self.tail)  # the CRLF before "." belongs to the message
        if end >= 0:
            self._keep(chunk[:end])
        elif self.buffer is not None:
            del self.buffer[end:]
        return window[marker + len(END_OF_DATA):]

    def _keep(self, data: bytes):
        self.size += len(data)
        if self.buffer is None:
            return
        if self.size > self.limit:
            self.buffer = None  # discard, keep only counting and looking for the end
        else:
            self.buffer += data


def dot_stuff(data, at_line_start: bool = True):
    """Double each leading dot (the inverse of unstuff)."""
    if data.find(b"\r\n.") >= 0:
        data = data.replace(b"\r\n.", b"\r\n..")
    if at_line_start and data[:1] == b".":
        data = b"." + data
    return data


def stuffed_parts(parts) -> list:
    """Dot-stuff consecutive parts of one message."""
    out, at_line_start = [], True
    for part in parts:
        if len(part):
            out.append(dot_stuff(part, at_line_start))
            at_line_start = part[-1:] == b"\n"
    return out
