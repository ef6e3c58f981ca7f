class EventDecodeError(Exception):
    """A message that cannot become an event; the text is meant for an operator."""

    def __init__(self, message: str, *, event_type: str | None = None, version: int | None = None):
        super().__init__(message)
        self.event_type = event_type
        self.version = version


class MalformedEvent(EventDecodeError):
    pass


class UnknownEventType(EventDecodeError):
    pass


class UnsupportedVersion(EventDecodeError):
    pass


class InvalidEvent(EventDecodeError):
    pass


class MisplacedEvent(EventDecodeError):
    """An event found on a topic the catalog does not give it, so written by someone not allowed to speak it."""
