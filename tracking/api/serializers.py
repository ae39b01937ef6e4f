"""Shapes of the conversion API: what a caller may send, and how a conversion is shown back."""

from rest_framework import serializers

from tracking.models import Conversion, ConversionKind, ConversionStatus


class ConversionCreateSerializer(serializers.Serializer):
    """Input of POST …/conversions/. Amount and currency are checked by the service, which names bad values."""

    kind = serializers.ChoiceField(choices=ConversionKind.choices, default=ConversionKind.SALE)
    order_id = serializers.CharField(max_length=128, required=False, allow_null=True, allow_blank=True)
    # Text, not a float: 49.90 must reach the Decimal untouched. JSON numbers arrive as their text.
    amount = serializers.CharField(max_length=40, required=False, allow_null=True, allow_blank=True)
    currency = serializers.CharField(max_length=8, required=False, allow_null=True, allow_blank=True)
    click_id = serializers.CharField(max_length=64, required=False, allow_null=True, allow_blank=True)
    coupon = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    customer_id = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    status = serializers.ChoiceField(
        choices=[ConversionStatus.PENDING, ConversionStatus.APPROVED], required=False, allow_null=True
    )
    occurred_at = serializers.DateTimeField(required=False, allow_null=True)
    ip = serializers.IPAddressField(required=False, allow_blank=True, default="")
    reason = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")


class ConversionStatusSerializer(serializers.Serializer):
    """Input of POST …/conversions/<id>/status/: approve, reject or reverse, with a reason."""

    status = serializers.ChoiceField(
        choices=[ConversionStatus.APPROVED, ConversionStatus.REJECTED, ConversionStatus.REVERSED]
    )
    reason = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")


class ConversionSerializer(serializers.ModelSerializer):
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, coerce_to_string=True)
    revenue = serializers.DecimalField(max_digits=14, decimal_places=2, coerce_to_string=True)
    commission = serializers.DecimalField(max_digits=14, decimal_places=2, coerce_to_string=True)

    class Meta:
        model = Conversion
        fields = [
            "id",
            "kind",
            "order_id",
            "status",
            "status_reason",
            "created_at",
            "amount",
            "currency",
            "exchange_rate",
            "revenue",
            "commission",
            "commission_rule",
            "commission_explanation",
            "customer_id",
            "is_new_customer",
            "renewal_number",
            "coupon",
            "click",
            "affiliate",
            "offer",
            "attributed_by",
            "source",
            "fraud_flags",
            "in_review",
        ]
        read_only_fields = fields
