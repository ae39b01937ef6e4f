"""URL patterns of the goal pages, mounted by config/urls.py under /p/<slug>/ and /portal/<slug>/."""

from datetime import date

from django.urls import path, register_converter

from goals import portal_views, views
from goals.periods import month_from_text


class MonthConverter:
    """A month written YYYY-MM, as the first day of the month; 2026-13 does not match, so it is a 404."""

    regex = r"[0-9]{4}-[0-9]{2}"

    def to_python(self, value: str) -> date:
        month = month_from_text(value)  # ValueError for a month that does not exist: the URL does not match
        if month.year < 2000:
            raise ValueError(value)
        return month

    def to_url(self, value: date | str) -> str:
        if isinstance(value, date):
            return f"{value.year:04d}-{value.month:02d}"
        return value


register_converter(MonthConverter, "goalmonth")

manager_urlpatterns = [
    path("goals/", views.goals_home, name="goals"),
    path("goals/<goalmonth:month>/", views.goal_board, name="goal_board"),
    path("goals/<goalmonth:month>/new/", views.goal_create, name="goal_create"),
    path("goals/<goalmonth:month>/template/", views.goal_bulk, name="goal_bulk"),
    path("goals/<goalmonth:month>/copy/", views.goal_copy, name="goal_copy"),
    path("goals/<goalmonth:month>/suggestions/", views.goal_suggest, name="goal_suggest"),
    path("goals/<goalmonth:month>/reviews/", views.review_list, name="review_list"),
    path("goals/goal/<int:goal_id>/", views.goal_edit, name="goal_edit"),
    path("goals/goal/<int:goal_id>/target/", views.goal_target, name="goal_target"),
    path("goals/goal/<int:goal_id>/delete/", views.goal_delete, name="goal_delete"),
    path("goals/goal/<int:goal_id>/value/", views.goal_manual, name="goal_manual"),
    path("goals/goal/<int:goal_id>/confirm/", views.goal_confirm, name="goal_confirm"),
    path("goals/reviews/<int:review_id>/", views.review_detail, name="review_detail"),
    path("goals/reviews/<int:review_id>/feedback/", views.review_feedback, name="review_feedback"),
    path("goals/reviews/<int:review_id>/share/", views.review_share, name="review_share"),
    path("notifications/", views.notification_list, name="notification_list"),
    path("notifications/read/", views.notifications_read, name="notifications_read"),
    path("notifications/badge/", views.notification_badge, name="notification_badge"),
]

portal_urlpatterns = [
    path("goals/", portal_views.portal_goals, name="goals"),
    path("goals/goal/<int:goal_id>/value/", portal_views.portal_goal_report, name="goal_report"),
    path("goals/reviews/<int:review_id>/", portal_views.portal_review, name="review"),
    path("notifications/", portal_views.portal_notification_list, name="notification_list"),
    path("notifications/read/", portal_views.portal_notifications_read, name="notifications_read"),
    path("notifications/badge/", portal_views.portal_notification_badge, name="notification_badge"),
]
