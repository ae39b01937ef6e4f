"""Goal models (KPI targets, progress, bonuses) arrive with the goals issue."""
