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
