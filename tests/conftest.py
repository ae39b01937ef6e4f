"""Shared fixtures: two programs full of data (alice's and bob's), their people, and scoped access."""

from dataclasses import dataclass

import pytest
from django_scopes import scopes_disabled

from affiliates.models import AffiliateStatus, Role
from config.celery import app as celery_app
from tests.factories import AffiliateFactory, MembershipFactory, ProgramFactory, UserFactory
from tracking import fraud


@pytest.fixture(autouse=True)
def _fast_and_local(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    # PBKDF2 costs ~0.3 s per hash by design; tests create dozens of users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The fraud signal's month volumes live in process memory for minutes; each test counts its own.
    fraud._volumes.clear()


@pytest.fixture(autouse=True)
def _tasks_run_inline():
    """Run Celery tasks in the test process, as `make run` does, even when a broker is configured.

    Otherwise a run with CELERY_BROKER_URL set would leave tasks on the shared broker, where a worker would
    later run them against the wrong database. tests/integration overrides this to use a real worker.
    """
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = eager


@pytest.fixture
def unscoped():
    """Tests arrange and inspect rows across programs on purpose, as admin and commands do."""
    with scopes_disabled():
        yield


@dataclass
class World:
    """A program with an owner, a manager, an analyst and affiliates in every status."""

    program: object
    owner: object
    manager: object
    analyst: object
    affiliate_user: object
    affiliate: object
    other_affiliate_user: object
    other_affiliate: object
    pending: object


def build_world(slug: str) -> World:
    with scopes_disabled():
        program = ProgramFactory(slug=slug, name=slug.title())
        owner = MembershipFactory(program=program, role=Role.OWNER).user
        manager = MembershipFactory(program=program, role=Role.MANAGER).user
        analyst = MembershipFactory(program=program, role=Role.ANALYST).user
        affiliate_user = MembershipFactory(program=program, role=Role.AFFILIATE).user
        affiliate = AffiliateFactory(
            program=program,
            user=affiliate_user,
            email=affiliate_user.email,
            status=AffiliateStatus.APPROVED,
            name=f"{slug} partner one",
        )
        other_affiliate_user = MembershipFactory(program=program, role=Role.AFFILIATE).user
        other_affiliate = AffiliateFactory(
            program=program,
            user=other_affiliate_user,
            email=other_affiliate_user.email,
            status=AffiliateStatus.APPROVED,
            name=f"{slug} partner two",
        )
        pending = AffiliateFactory(program=program, status=AffiliateStatus.PENDING, name=f"{slug} applicant")
        AffiliateFactory(
            program=program, status=AffiliateStatus.REJECTED, status_reason="Spam", name=f"{slug} rejected"
        )
        AffiliateFactory(
            program=program, status=AffiliateStatus.SUSPENDED, status_reason="Fraud", name=f"{slug} suspended"
        )
    return World(
        program, owner, manager, analyst, affiliate_user, affiliate, other_affiliate_user, other_affiliate, pending
    )


@pytest.fixture
def alice(db) -> World:
    return build_world("alice")


@pytest.fixture
def bob(db) -> World:
    return build_world("bob")


@pytest.fixture
def user_factory(db):
    return UserFactory
