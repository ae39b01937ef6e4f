"""URL patterns of the tracking pages, mounted by config/urls.py under /p/<slug>/ and /portal/<slug>/."""

from django.urls import path

from tracking import portal_views, views

manager_urlpatterns = [
    path("offers/", views.offer_list, name="offer_list"),
    path("offers/new/", views.offer_create, name="offer_create"),
    path("offers/<int:offer_id>/", views.offer_edit, name="offer_edit"),
    path("links/", views.link_list, name="link_list"),
    path("links/new/", views.link_create, name="link_create"),
    path("links/<int:link_id>/status/", views.link_status, name="link_status"),
    path("coupons/", views.coupon_list, name="coupon_list"),
    path("coupons/new/", views.coupon_create, name="coupon_create"),
    path("coupons/<int:coupon_id>/", views.coupon_edit, name="coupon_edit"),
    path("clicks/", views.click_list, name="click_list"),
    path("conversions/", views.conversion_list, name="conversion_list"),
    path("conversions/review/", views.review_queue, name="review_queue"),
    path("conversions/new/", views.conversion_create, name="conversion_create"),
    path("conversions/bulk/", views.conversion_bulk, name="conversion_bulk"),
    path("conversions/<int:conversion_id>/", views.conversion_detail, name="conversion_detail"),
    path("conversions/<int:conversion_id>/status/", views.conversion_status, name="conversion_status"),
    path("postbacks/", views.postback_setup, name="postback_setup"),
    path("postbacks/test/", views.postback_test, name="postback_test"),
    path("postbacks/log/", views.postback_log, name="postback_log"),
    path("postbacks/<int:attempt_id>/replay/", views.postback_replay, name="postback_replay"),
    path("rates/", views.rate_list, name="rate_list"),
    path("rates/new/", views.rate_create, name="rate_create"),
    path("commissions/", views.commission_list, name="commission_list"),
    path("commissions/plans/new/", views.plan_create, name="plan_create"),
    path("commissions/rules/new/", views.rule_create, name="rule_create"),
    path("commissions/rules/<int:rule_id>/", views.rule_edit, name="rule_edit"),
    path("caps/", views.cap_list, name="cap_list"),
    path("caps/new/", views.cap_create, name="cap_create"),
    path("caps/<int:cap_id>/", views.cap_edit, name="cap_edit"),
    path("tracking/settings/", views.tracking_settings_edit, name="tracking_settings"),
]

portal_urlpatterns = [
    path("links/", portal_views.link_list, name="link_list"),
    path("links/new/", portal_views.link_create, name="link_create"),
    path("links/build/", portal_views.link_builder, name="link_builder"),
    path("clicks/", portal_views.click_list, name="click_list"),
    path("conversions/", portal_views.conversion_list, name="conversion_list"),
    path("conversions/<int:conversion_id>/", portal_views.conversion_detail, name="conversion_detail"),
]
