"""The one exception the API turns into a JSON error response."""

from __future__ import annotations

__all__ = ["ApiError"]


class ApiError(Exception):
    """An error the client can fix: ``status`` (400, 401, 403, 404, 413) and a message saying how."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def to_dict(self) -> dict[str, object]:
        return {"success": False, "error": {"status": self.status, "message": self.message}}
