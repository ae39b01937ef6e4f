"""One JSON error shape for the whole API: {"error": {"code", "message", "fields"}}."""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


def json_exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else {}
        exc = exceptions.ValidationError(detail=fields or {"non_field_errors": exc.messages})
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        fields = {
            name: [str(message) for message in messages] if isinstance(messages, list) else [str(messages)]
            for name, messages in detail.items()
        }
        first = next(iter(fields.items()))
        message = f"{first[0]}: {first[1][0]}" if first[0] != "non_field_errors" else first[1][0]
        return Response(
            {"error": {"code": "invalid", "message": message, "fields": fields}},
            status=status.HTTP_400_BAD_REQUEST,
            headers=response.headers,
        )
    code = getattr(exc, "default_code", "error")
    message = str(getattr(exc, "detail", exc))
    response.data = {"error": {"code": code, "message": message, "fields": {}}}
    return response
