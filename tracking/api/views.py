"""Conversion endpoints: owners and managers record conversions and change their status with an API token."""

from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from affiliates.api.permissions import ProgramAPIView
from affiliates.models import MANAGING_ROLES
from affiliates.tenancy import get_in_program_or_404
from tracking import services
from tracking.api.serializers import ConversionCreateSerializer, ConversionSerializer, ConversionStatusSerializer
from tracking.hashing import ip_hash
from tracking.models import Conversion


class ConversionCreateAPI(ProgramAPIView):
    """POST: record a conversion (201 created, 200 for a duplicate order) through the same service as postbacks."""

    allowed_roles = MANAGING_ROLES

    def post(self, request: Request, program_slug: str) -> Response:
        serializer = ConversionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        customer_ip = data.pop("ip")
        conversion, created = services.record_conversion(
            program=self.program,
            source=Conversion.Source.API,
            ip_hash=ip_hash(self.program.pk, customer_ip),
            actor=request.user,
            **data,
        )
        return Response(
            {"status": "created" if created else "duplicate", "conversion": ConversionSerializer(conversion).data},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class ConversionStatusAPI(ProgramAPIView):
    """POST: approve, reject or reverse one conversion of the program, with a reason for the audit trail."""

    allowed_roles = MANAGING_ROLES

    def post(self, request: Request, program_slug: str, conversion_id: int) -> Response:
        conversion = get_in_program_or_404(Conversion.objects, self.program, pk=conversion_id)
        serializer = ConversionStatusSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        conversion = services.change_conversion_status(
            program=self.program,
            conversion=conversion,
            to_status=serializer.validated_data["status"],
            reason=serializer.validated_data["reason"],
            actor=request.user,
        )
        return Response(ConversionSerializer(conversion).data)
