"""Helpers for server-side sorted, paginated list pages, shared by every app's list views."""

from dataclasses import dataclass

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest

PAGE_SIZE = 25


def sort_orders(*options: tuple) -> dict[str, tuple[str, ...]]:
    """A list page's sort keys, each in both directions: ``(key, fields, then)`` sorts by ``fields`` (reversed
    for ``-key``), then by ``then`` in the same direction either way. ``("status", ("status",),
    ("-created_at", "-pk"))`` gives ``status`` and ``-status``, newest first among equals."""
    orders = {}
    for key, fields, *then in options:
        tie = tuple(then[0]) if then else ()
        orders[key] = (*fields, *tie)
        orders[f"-{key}"] = (*(name[1:] if name.startswith("-") else f"-{name}" for name in fields), *tie)
    return orders


@dataclass(frozen=True)
class Column:
    label: str
    sort_key: str = ""  # empty: not sortable

    def header(self, current_sort: str) -> dict:
        """Where this column's header links and which arrow it shows, given the current sort."""
        if not self.sort_key:
            return {"label": self.label, "sort": "", "arrow": ""}
        if current_sort == self.sort_key:
            return {"label": self.label, "sort": f"-{self.sort_key}", "arrow": "▲"}
        if current_sort == f"-{self.sort_key}":
            return {"label": self.label, "sort": self.sort_key, "arrow": "▼"}
        return {"label": self.label, "sort": self.sort_key, "arrow": ""}


def headers(columns: list[Column], current_sort: str) -> list[dict]:
    return [column.header(current_sort) for column in columns]


def paginate(request: HttpRequest, queryset: QuerySet, per_page: int = PAGE_SIZE) -> Page:
    """One page of ``queryset``; a page number out of range or not a number shows the nearest page."""
    return Paginator(queryset, per_page).get_page(request.GET.get("page"))
