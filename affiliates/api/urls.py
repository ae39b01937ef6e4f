from django.urls import path

from affiliates.api import views

urlpatterns = [
    path("programs/<slug:program_slug>/affiliates/", views.AffiliateListAPI.as_view(), name="api_affiliate_list"),
    path("programs/<slug:program_slug>/me/", views.MyAffiliateAPI.as_view(), name="api_my_affiliate"),
]
