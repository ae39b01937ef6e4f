"""Salted hashes of visitor data: raw IP addresses are never stored, only these per-program digests."""

import hmac
from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=1024)
def _program_key(secret: str, program_id: int) -> bytes:
    return hmac.digest(secret.encode(), f"goalpost-visitor:{program_id}".encode(), "sha256")


def _digest(program_id: int, *parts: str) -> str:
    # hmac.digest is OpenSSL's one-shot HMAC: the same digest as hmac.new(...).hexdigest() without building
    # HMAC objects, on every click and postback. The secret is part of the cache key, so a changed SECRET_KEY
    # (tests override it) never reuses an old program key.
    key = _program_key(settings.SECRET_KEY, program_id)
    return hmac.digest(key, "\x1f".join(parts).encode(), "sha256").hex()


def ip_hash(program_id: int, ip: str) -> str:
    """A program-specific digest of an IP address; equal IPs give equal digests within one program only."""
    return _digest(program_id, "ip", ip) if ip else ""


def sender_ip_hash(program_id: int, ip: str) -> str:
    """``ip_hash`` of the address a server-to-server call comes from (postbacks): advertisers send from a few
    addresses over and over, so their digests are kept (per secret key) instead of computed on every call."""
    return _sender_hash(settings.SECRET_KEY, program_id, ip) if ip else ""


@lru_cache(maxsize=4096)
def _sender_hash(secret: str, program_id: int, ip: str) -> str:
    return _digest(program_id, "ip", ip)


def visitor_hash(program_id: int, ip: str, user_agent: str) -> str:
    """A program-specific digest of IP + user agent: the 'visitor' of KPI.md's unique clicks."""
    return _digest(program_id, "visitor", ip, user_agent) if ip or user_agent else ""


def client_ip(meta: dict) -> str:
    """The caller's IP: REMOTE_ADDR, or the first X-Forwarded-For hop when behind a trusted proxy."""
    if settings.TRUSTED_PROXY_COUNT:
        forwarded = [part.strip() for part in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= settings.TRUSTED_PROXY_COUNT:
            return forwarded[-settings.TRUSTED_PROXY_COUNT]
    return meta.get("REMOTE_ADDR", "")
