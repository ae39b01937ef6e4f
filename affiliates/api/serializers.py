from rest_framework import serializers

from affiliates.models import Affiliate


class AffiliateSerializer(serializers.ModelSerializer):
    class Meta:
        model = Affiliate
        fields = ["id", "name", "email", "website", "country", "status", "tier", "created_at"]
        read_only_fields = fields
