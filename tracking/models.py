"""Tracking models (offers, links, clicks, conversions) arrive with the tracking issue."""
