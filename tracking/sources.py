"""The traffic source of a click, by the rule in KPI.md: paid, social, organic, referral or direct."""

import re
from urllib.parse import urlsplit

from tracking.models import TrafficSource

PAID_MEDIUMS = frozenset({"cpc", "ppc", "paid", "display"})

# Registrable domains; a referrer matches a domain or any of its subdomains (m.facebook.com, l.instagram.com).
SOCIAL_DOMAINS = frozenset(
    {
        "facebook.com",
        "fb.com",
        "fb.me",
        "messenger.com",
        "instagram.com",
        "threads.net",
        "twitter.com",
        "x.com",
        "t.co",
        "linkedin.com",
        "lnkd.in",
        "pinterest.com",
        "pin.it",
        "reddit.com",
        "redd.it",
        "tiktok.com",
        "youtube.com",
        "youtu.be",
        "snapchat.com",
        "tumblr.com",
        "vk.com",
        "ok.ru",
        "t.me",
        "telegram.org",
        "whatsapp.com",
        "wa.me",
        "discord.com",
        "bsky.app",
        "mastodon.social",
        "quora.com",
        "weibo.com",
    }
)
SEARCH_DOMAINS = frozenset(
    {
        "bing.com",
        "duckduckgo.com",
        "ecosia.org",
        "search.brave.com",
        "startpage.com",
        "qwant.com",
        "baidu.com",
        "naver.com",
        "seznam.cz",
        "ask.com",
        "search.aol.com",
        "yahoo.com",
        "search.yahoo.com",
        "yandex.ru",
        "yandex.com",
        "ya.ru",
        "so.com",
        "sogou.com",
        "kagi.com",
    }
)
# Search engines with a domain per country: google.de, google.co.uk, yandex.com.tr, search.yahoo.co.jp.
COUNTRY_SEARCH = re.compile(r"(?:^|\.)(?:google|yandex|yahoo)\.(?:[a-z]{2,3}|com?\.[a-z]{2})$")


def _matches(host: str, domains: frozenset[str]) -> bool:
    labels = host.split(".")
    return any(".".join(labels[index:]) in domains for index in range(len(labels) - 1))


def referrer_host(referrer: str) -> str:
    """The lower-case host of a referrer URL, or "" when there is none or it cannot be read."""
    try:
        return (urlsplit(referrer.strip()).hostname or "").rstrip(".")
    except ValueError:
        return ""


def traffic_source(*, utm_medium: str, referrer: str) -> str:
    """Classify a click: paid by utm_medium, then social, organic search or referral by referrer, else direct."""
    if utm_medium.strip().lower() in PAID_MEDIUMS:
        return TrafficSource.PAID
    host = referrer_host(referrer)
    if not host:
        return TrafficSource.DIRECT
    if _matches(host, SOCIAL_DOMAINS):
        return TrafficSource.SOCIAL
    if _matches(host, SEARCH_DOMAINS) or COUNTRY_SEARCH.search(host):
        return TrafficSource.ORGANIC
    return TrafficSource.REFERRAL
