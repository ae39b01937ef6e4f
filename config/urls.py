"""Goalpost's URLconf: accounts, manager pages under /p/<slug>/, the portal under /portal/<slug>/, the API."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from affiliates import urls as affiliate_urls
from affiliates import views as affiliate_views
from affiliates.forms import EmailAuthenticationForm
from config.health import healthz
from goals import urls as goal_urls
from tracking import clickpath
from tracking import urls as tracking_urls
from tracking.postback import postback_view

admin.site.site_header = "Goalpost"

# Each app contributes its program pages; one namespace per area keeps names like "manage:home" stable.
manager_urlpatterns = [
    *affiliate_urls.manager_urlpatterns,
    *tracking_urls.manager_urlpatterns,
    *goal_urls.manager_urlpatterns,
]
portal_urlpatterns = [
    *affiliate_urls.portal_urlpatterns,
    *tracking_urls.portal_urlpatterns,
    *goal_urls.portal_urlpatterns,
]

accounts_patterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(authentication_form=EmailAuthenticationForm, redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password-reset/", auth_views.PasswordResetView.as_view(), name="password_reset"),
    path("password-reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path("reset/<uidb64>/<token>/", auth_views.PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path("reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("invite/<str:token>/", affiliate_views.accept_invitation, name="accept_invitation"),
]

urlpatterns = [
    path("", affiliate_views.home, name="home"),
    path("healthz/", healthz, name="healthz"),
    # gunicorn answers these in config.wsgi before Django; these routes serve runserver and the test client.
    path("c/<str:code>", clickpath.click_view, name="click"),
    path("i/<str:code>", clickpath.impression_view, name="impression"),
    path("admin/", admin.site.urls),
    path("accounts/", include(accounts_patterns)),
    path("p/<slug:program_slug>/", include((manager_urlpatterns, "manage"))),
    path("portal/<slug:program_slug>/", include((portal_urlpatterns, "portal"))),
    # Server-to-server conversions; the trailing slash is optional because advertisers' platforms differ.
    re_path(r"^postback/(?P<program_slug>[-a-zA-Z0-9_]+)/?$", postback_view, name="postback"),
    path("api/v1/", include("affiliates.api.urls")),
    path("api/v1/", include("tracking.api.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
]
