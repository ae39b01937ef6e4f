from django.urls import path

from tracking.api import views

urlpatterns = [
    path(
        "programs/<slug:program_slug>/conversions/",
        views.ConversionCreateAPI.as_view(),
        name="api_conversion_create",
    ),
    path(
        "programs/<slug:program_slug>/conversions/<int:conversion_id>/status/",
        views.ConversionStatusAPI.as_view(),
        name="api_conversion_status",
    ),
]
