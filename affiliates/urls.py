"""URL patterns of the affiliates app, mounted by config/urls.py under /p/<slug>/ and /portal/<slug>/."""

from django.urls import path

from affiliates import portal_views, views

manager_urlpatterns = [
    path("", views.program_home, name="home"),
    path("affiliates/", views.affiliate_list, name="affiliate_list"),
    path("affiliates/<int:affiliate_id>/", views.affiliate_detail, name="affiliate_detail"),
    path("affiliates/<int:affiliate_id>/status/", views.affiliate_status, name="affiliate_status"),
    path("members/", views.members, name="members"),
    path("settings/", views.program_settings, name="settings"),
]

portal_urlpatterns = [
    path("", portal_views.portal_home, name="home"),
    path("apply/", portal_views.apply, name="apply"),
]
