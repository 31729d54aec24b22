from tests.observability.helpers import capture_logs

__all__ = ["capture_logs"]
