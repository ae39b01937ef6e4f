"""factory_boy factories for Goalpost's models; tenant rows take their program explicitly."""

import factory
from django.utils import timezone

from affiliates.models import Affiliate, AffiliateStatus, Membership, Program, Role, User

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"person{n}@example.test")
    name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class ProgramFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Program
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Program {n}")
    slug = factory.Sequence(lambda n: f"program-{n}")
    timezone = "Europe/Warsaw"
    currency = "EUR"


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    program = factory.SubFactory(ProgramFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.MANAGER


class AffiliateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Affiliate

    program = factory.SubFactory(ProgramFactory)
    user = None
    name = factory.Faker("company")
    email = factory.Sequence(lambda n: f"affiliate{n}@partners.test")
    website = factory.Sequence(lambda n: f"https://site{n}.example")
    country = "PL"
    status = AffiliateStatus.PENDING
    terms_accepted_at = factory.LazyFunction(timezone.now)


# tracking ------------------------------------------------------------------------------------------------
# Raw rows for page and admin tests. Tests that exercise business rules create conversions through
# tracking.services instead; these factories only lay out rows to be looked at.

from decimal import Decimal  # noqa: E402 - this section is appended, the top of the file belongs to everyone


class OfferFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "tracking.Offer"

    program = factory.SubFactory(ProgramFactory)
    name = factory.Sequence(lambda n: f"Offer {n}")
    destination_url = factory.Sequence(lambda n: f"https://shop{n}.example/landing")
    status = "active"


class LinkFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "tracking.Link"

    program = factory.SubFactory(ProgramFactory)
    offer = factory.SubFactory(OfferFactory, program=factory.SelfAttribute("..program"))
    affiliate = factory.SubFactory(
        AffiliateFactory, program=factory.SelfAttribute("..program"), status=AffiliateStatus.APPROVED
    )
    name = ""
    status = "active"


class ClickFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "tracking.Click"

    program = factory.SubFactory(ProgramFactory)
    link = factory.SubFactory(LinkFactory, program=factory.SelfAttribute("..program"))
    affiliate = factory.SelfAttribute("link.affiliate")
    offer = factory.SelfAttribute("link.offer")
    created_at = factory.LazyFunction(timezone.now)
    source = "direct"


class ConversionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "tracking.Conversion"

    program = factory.SubFactory(ProgramFactory)
    kind = "sale"
    order_id = factory.Sequence(lambda n: f"ORDER-{n:05d}")
    status = "pending"
    amount = Decimal("100.00")
    currency = factory.SelfAttribute("program.currency")
    revenue = factory.SelfAttribute("amount")
    commission = Decimal("10.00")
    affiliate = None
    offer = None
    attributed_by = "none"
    source = "postback"


class ConversionEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "tracking.ConversionEvent"

    program = factory.SelfAttribute("conversion.program")
    conversion = factory.SubFactory(ConversionFactory)
    from_status = ""
    to_status = "pending"


class PostbackAttemptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "tracking.PostbackAttempt"

    program = factory.SubFactory(ProgramFactory)
    method = "GET"
    params = factory.LazyFunction(lambda: {"order_id": "1001", "kind": "sale"})
    result = "refused"
    reason = "bad_token"
    message = "Wrong or missing token."
    http_status = 401


class CommissionPlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "tracking.CommissionPlan"

    program = factory.SubFactory(ProgramFactory)
    name = "Standard"
    is_default = True


class CommissionRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "tracking.CommissionRule"

    program = factory.SelfAttribute("plan.program")
    plan = factory.SubFactory(CommissionPlanFactory)
    kind = "sale"
    rule_type = "revenue_share"
    percent = Decimal("10")
