"""Human labels for the machine codes tracking stores: status reasons, postback refusals, fraud flags."""

from django.utils.translation import gettext_lazy as _

REASON_LABELS = {
    # Status reasons of conversions (tracking/services.py, attribution.py).
    "outside_window": _("Outside the cookie window"),
    "cap_reached": _("Cap reached"),
    "affiliate_not_approved": _("Affiliate not approved"),
    "fraud_review": _("Held for fraud review"),
    "unattributed": _("No affiliate found"),
    "hold_elapsed": _("Approved after the hold period"),
    "manager": _("Changed by a manager"),
    "system": _("Changed automatically"),
    "postback": _("Changed by a postback"),
    # Postback refusals and input errors.
    "missing_token": _("Token missing"),
    "bad_token": _("Wrong token"),
    "missing_signature": _("Signature missing"),
    "bad_signature": _("Wrong signature"),
    "ip_not_allowed": _("IP address not on the allowlist"),
    "method_not_allowed": _("Method not allowed"),
    "invalid_body": _("Unreadable request body"),
    "invalid_amount": _("Invalid amount"),
    "invalid_click_id": _("Invalid or unknown click id"),
    "invalid_ip": _("Invalid customer IP"),
    "invalid_kind": _("Invalid kind"),
    "invalid_occurred_at": _("Invalid time"),
    "invalid_status": _("Invalid status"),
    "invalid_transition": _("Status change not allowed"),
    "unknown_currency": _("Unknown currency"),
    "missing_rate": _("No exchange rate for the currency"),
    "required": _("A required parameter is missing"),
    "unchanged": _("Status already set"),
    "in_review": _("In review; a manager decides"),
    "invalid": _("Invalid parameters"),
    # Fraud flags (tracking/fraud.py): why a conversion waits in the review queue.
    "fast_conversion": _("Converted too fast after the click"),
    "click_flood": _("Many clicks from one IP address on one link"),
    "self_referral": _("Same IP address as the affiliate's own login"),
    "conversion_rate_outlier": _("Conversion rate far above the program's"),
    "bot_click": _("Click flagged as a bot"),
}


def reason_label(code: str) -> str:
    """The label of ``code``, or the code made readable when it is one we have not named yet."""
    if not code:
        return ""
    label = REASON_LABELS.get(code)
    if label is not None:
        return str(label)
    return code.replace("_", " ").strip().capitalize()
