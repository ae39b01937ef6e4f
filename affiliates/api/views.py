"""Read-only affiliate endpoints: managers list their program's affiliates; an affiliate reads only itself."""

from django.http import Http404
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from affiliates import selectors
from affiliates.api.permissions import ProgramAPIView
from affiliates.api.serializers import AffiliateSerializer
from affiliates.forms import AffiliateFilterForm
from affiliates.models import Affiliate, Role


class AffiliateListAPI(ProgramAPIView):
    def get(self, request: Request, program_slug: str) -> Response:
        filters = AffiliateFilterForm(request.query_params).cleaned_or_defaults()
        queryset = selectors.affiliates_for_list(
            program=self.program, search=filters["q"], status=filters["status"], sort=filters["sort"]
        )
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(AffiliateSerializer(page, many=True).data)


class MyAffiliateAPI(ProgramAPIView):
    allowed_roles = frozenset({Role.AFFILIATE})

    def get(self, request: Request, program_slug: str) -> Response:
        affiliate = Affiliate.objects.filter(program=self.program, user=request.user).first()
        if affiliate is None:
            raise Http404
        return Response(AffiliateSerializer(affiliate).data)
