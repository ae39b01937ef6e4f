from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TrackingConfig(AppConfig):
    name = "tracking"
    verbose_name = _("Tracking")

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from tracking.fraud import record_login_ip

        # The self-referral signal compares a conversion's IP hash with the affiliate's last login.
        user_logged_in.connect(record_login_ip, dispatch_uid="tracking.record_login_ip")
