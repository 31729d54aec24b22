"""The thread rejections: HTTP errors whose `error.details.error_code` the SDKs recover by (THREADS.md §3)."""

from __future__ import annotations

from messages_bridge.errors import InvalidRequestError, NotFoundError

_NO_RETRY = {"x-should-retry": "false"}  # the SDKs recover by replaying or unthreading, never by resending as is


def _details(code: str) -> dict[str, object]:
    return {"error_code": code}


class ThreadNotFoundError(NotFoundError):
    """Unknown, expired, evicted or another tenant's id: the client replays the full history as a new thread."""

    def __init__(self, message_id: str, why: str = "it is unknown or has expired") -> None:
        super().__init__(
            f"thread.previous_message_id: no message thread holds {message_id!r}: {why}. "
            "Resend the full conversation with `thread: {type: create}`.",
            headers=_NO_RETRY,
            details=_details("thread_not_found"),
        )


class ThreadAlreadyContinuedError(InvalidRequestError):
    def __init__(self, message_id: str) -> None:
        super().__init__(
            f"thread.previous_message_id: {message_id!r} was already continued; a reply can be continued only once",
            headers=_NO_RETRY,
            details=_details("thread_already_continued"),
        )


class ThreadContinueInFlightError(InvalidRequestError):
    def __init__(self, message_id: str) -> None:
        super().__init__(
            f"thread.previous_message_id: another request continuing {message_id!r} is still running",
            headers=_NO_RETRY,
            details=_details("thread_continue_in_flight"),
        )


class ThreadFingerprintMismatchError(InvalidRequestError):
    def __init__(self, fields: list[str]) -> None:
        names = " and ".join(f"`{f}`" for f in fields)
        super().__init__(
            f"{names} must stay the same for the whole thread; start a new thread to change it",
            headers=_NO_RETRY,
            details=_details("thread_fingerprint_mismatch"),
        )


class ThreadUnsupportedRequestError(InvalidRequestError):
    def __init__(self, message: str) -> None:
        super().__init__(message, headers=_NO_RETRY, details=_details("thread_unsupported_request"))


THREADS_OFF_MESSAGE = (
    "This gateway does not hold message threads (BRIDGE_THREADS=off); resend the full conversation without `thread`."
)
